r"""The soft-gamma report: mean +- std over seeds, paired tests against fixed gamma 2, markdown, files.

Paired statistics, per metric, for each condition against the reference (fixed gamma 2 under the same alpha): the
per-seed difference ``condition - reference``; its mean; a 95 % percentile bootstrap interval of that mean
(:data:`BOOTSTRAP_RESAMPLES` resamples of the seeds, a fixed generator seed, so the report is reproducible); the
two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, exact for small samples without ties); and that
p-value Holm-adjusted over every comparison of the same metric in the report. A difference counts as **beyond noise**
when the Holm-adjusted p is below 0.05 and the interval excludes 0. With ``n`` seeds the smallest two-sided Wilcoxon
p is ``2 / 2**n`` (0.25 with 3 seeds, 0.0625 with 5), so a quick run cannot show anything beyond noise.

Files: ``write_soft_gamma_report`` writes ``soft-gamma-cpu-<UTC time>-<commit>.json`` and ``.md`` as new files,
atomically, through :func:`focalbench.bench.report.write_document` (never overwriting).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from tabulate import tabulate

from focalbench.bench.report import write_document

__all__ = [
    "workers_text",
    "BOOTSTRAP_RESAMPLES", "difference_text", "experiment_document", "family_size", "holm", "p_text", "paired_by_seed",
    "paired_comparisons", "paired_difference", "paired_table", "save_new_figure", "smallest_holm_p",
    "soft_gamma_document", "soft_gamma_markdown", "summarize_conditions", "summary_table", "write_soft_gamma_report",
]  # fmt: skip

SCHEMA_VERSION = 1
SCALAR_METRICS = ("balanced_accuracy", "macro_f1", "ece", "accuracy")
TESTED_METRICS = ("balanced_accuracy", "macro_f1", "ece")
METRIC_LABELS = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1", "ece": "ECE", "accuracy": "accuracy"}
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
#: The fewest seeds an interval is given for: below 6 the smallest two-sided Wilcoxon p (2 / 2**n) is above 0.05,
#: and a percentile bootstrap of so few values is little more than their range (with 2 seeds, exactly their min and
#: max), not a 95 % interval.
MIN_INTERVAL_PAIRS = 6
SIGNIFICANCE = 0.05


def workers_text(settings: dict) -> str:
    """Where a report's runs ran, in words: ``2 worker process(es) of 1 torch thread``, or the Dask executor's.

    Example:
        >>> workers_text({"jobs": 2, "threads": 1}), workers_text({"jobs": 2, "threads": 1, "executor": "dask://h:1"})
        ('2 worker process(es) of 1 torch thread', 'the Dask executor dask://h:1 (workers of 1 torch thread)')
    """
    executor = settings.get("executor", "local")
    if executor != "local":
        return f"the Dask executor {executor} (workers of {settings['threads']} torch thread)"
    return f"{settings['jobs']} worker process(es) of {settings['threads']} torch thread"


def _conditions(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """``(alpha, schedule)`` pairs in first-seen order."""
    return list(dict.fromkeys((r["alpha"], r["schedule"]) for r in rows))


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize_conditions(rows: Sequence[dict]) -> list[dict]:
    """Per ``(alpha, schedule)``: number of runs, mean and sample std (ddof 1) of each metric and of per-class recall.

    Example:
        >>> rows = [{"alpha": "none", "schedule": "ce", "seed": s, "metrics": {"balanced_accuracy": b, "macro_f1": b,
        ...          "ece": 0.1, "accuracy": b, "recall": [b, b]}} for s, b in ((0, 0.5), (1, 0.7))]
        >>> summary = summarize_conditions(rows)[0]
        >>> summary["runs"], round(summary["mean"]["balanced_accuracy"], 6), round(summary["std"]["ece"], 6)
        (2, 0.6, 0.0)
    """
    summaries = []
    for alpha, schedule in _conditions(rows):
        runs = [r["metrics"] for r in rows if (r["alpha"], r["schedule"]) == (alpha, schedule)]
        recall = np.array([m["recall"] for m in runs], dtype=np.float64)
        summaries.append(
            {
                "alpha": alpha,
                "schedule": schedule,
                "runs": len(runs),
                "mean": {k: float(np.mean([m[k] for m in runs])) for k in SCALAR_METRICS},
                "std": {k: _std(np.array([m[k] for m in runs])) for k in SCALAR_METRICS},
                "recall_mean": recall.mean(axis=0).tolist(),
                "recall_std": [_std(column) for column in recall.T],
            }
        )
    return summaries


def paired_difference(differences: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Mean of paired differences, its percentile bootstrap interval and the two-sided Wilcoxon signed-rank p.

    Fewer than :data:`MIN_INTERVAL_PAIRS` pairs give no interval (``None``: the seeds cannot support one), fewer
    than two no p either; all-zero differences give p = 1.

    Example:
        >>> result = paired_difference([0.1, 0.2, 0.15, 0.12, 0.3, 0.25])
        >>> round(result["mean"], 4), result["wilcoxon_p"], result["ci_low"] > 0
        (0.1867, 0.03125, True)
    """
    values = np.asarray(differences, dtype=np.float64)
    result = {"pairs": len(values), "mean": float(values.mean()), "ci_low": None, "ci_high": None, "wilcoxon_p": None}
    if len(values) < 2:
        return result
    if len(values) >= MIN_INTERVAL_PAIRS:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
        tail = 100 * (1 - LEVEL) / 2
        result["ci_low"], result["ci_high"] = (float(q) for q in np.percentile(means, [tail, 100 - tail]))
    if not np.any(values):
        result["wilcoxon_p"] = 1.0
    else:
        with warnings.catch_warnings():  # zeros or ties: scipy says it falls back to the normal approximation
            warnings.simplefilter("ignore", UserWarning)
            result["wilcoxon_p"] = float(stats.wilcoxon(values).pvalue)
    return result


def smallest_holm_p(seeds: int, comparisons: int) -> float:
    """The smallest Holm-adjusted p a family of ``comparisons`` can reach with ``seeds`` pairs each: the exact
    two-sided Wilcoxon floor ``2 / 2**seeds`` times the family's size (capped at 1). Below 0.05 or not, it says
    whether the seed count can support a "beyond noise" verdict at all.

    Example:
        >>> round(smallest_holm_p(10, 12), 4), smallest_holm_p(6, 3) < 0.05
        (0.0234, False)
    """
    return min(1.0, comparisons * 2.0 / 2.0**seeds)


def family_size(paired: Sequence[dict], family: str) -> int:
    """How many comparisons :func:`paired_by_seed`'s ``family`` holds for one metric (Holm's family size).

    Example:
        >>> paired = [{"family": "f", "metric": m} for m in ("ap", "ap50")] * 2 + [{"family": "g", "metric": "ap"}]
        >>> family_size(paired, "f"), family_size(paired, "g")
        (2, 1)
    """
    members = [c for c in paired if c["family"] == family]
    return sum(c["metric"] == members[0]["metric"] for c in members) if members else 0


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (``None`` entries stay ``None`` and do not count).

    Example:
        >>> holm([0.01, 0.04, 0.03, None])
        [0.03, 0.06, 0.06, None]
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def paired_by_seed(
    rows: Sequence[dict], comparisons: Sequence[tuple[dict, dict] | tuple[dict, dict, str]], metrics: Sequence[str]
) -> list[dict]:
    """Paired statistics of conditions against references, by seed, for each metric; Holm within each family.

    A condition and its reference are *selectors*: dicts of row fields a row must match (e.g. ``{"alpha": "none",
    "loss": "gamma3"}`` against ``{"alpha": "none", "loss": "ce"}``); an optional third element names the
    comparison's family of questions (default ``"all"``). Seeds present under both are paired; the difference is
    ``condition - reference`` of ``row["metrics"][metric]``. A comparison with no common seed is left out. Returns
    one dict per (comparison, metric): ``{"condition", "reference", "family", "metric"}`` plus
    :func:`paired_difference`'s fields, ``holm_p`` (Holm-adjusted over the comparisons of the same family and metric)
    and ``beyond_noise`` (Holm p < 0.05 and the interval excludes 0).

    Example:
        >>> rows = [{"loss": loss, "seed": s, "metrics": {"ece": e + s / 100}}
        ...         for s in range(6) for loss, e in (("ce", 0.05), ("focal", 0.02))]
        >>> (c,) = paired_by_seed(rows, [({"loss": "focal"}, {"loss": "ce"})], ["ece"])
        >>> c["pairs"], round(c["mean"], 4), c["beyond_noise"]
        (6, -0.03, True)
    """

    def matching(selector: dict) -> dict:
        found = {}
        for row in rows:
            if all(row.get(key) == value for key, value in selector.items()):
                if row["seed"] in found:
                    raise ValueError(f"selector {selector} matches two rows of seed {row['seed']}: make it narrower")
                found[row["seed"]] = row["metrics"]
        return found

    results = []
    for condition, reference, *named in comparisons:
        runs, references = matching(condition), matching(reference)
        seeds = [seed for seed in runs if seed in references]
        if not seeds:
            continue
        for metric in metrics:
            differences = [runs[s][metric] - references[s][metric] for s in seeds]
            results.append(
                {"condition": dict(condition), "reference": dict(reference), "family": named[0] if named else "all",
                 "metric": metric} | paired_difference(differences)
            )  # fmt: skip
    for key in dict.fromkeys((c["family"], c["metric"]) for c in results):
        family = [c for c in results if (c["family"], c["metric"]) == key]
        for comparison, adjusted in zip(family, holm([c["wilcoxon_p"] for c in family]), strict=True):
            comparison["holm_p"] = adjusted
            comparison["beyond_noise"] = (
                adjusted is not None
                and comparison["ci_low"] is not None
                and adjusted < SIGNIFICANCE
                and not comparison["ci_low"] <= 0.0 <= comparison["ci_high"]
            )
    return results


def paired_comparisons(rows: Sequence[dict], reference: str) -> list[dict]:
    """Every condition against ``reference`` under the same alpha, paired by seed, for each tested metric.

    Returns rows ``{"alpha", "schedule", "reference", "metric", "pairs", "mean", "ci_low", "ci_high", "wilcoxon_p",
    "holm_p", "beyond_noise"}``; Holm's family is every comparison of the same metric.
    """
    comparisons = [
        ({"alpha": alpha, "schedule": schedule}, {"alpha": alpha, "schedule": reference})
        for alpha, schedule in _conditions(rows)
        if schedule != reference
    ]
    return [
        {"alpha": c["condition"]["alpha"], "schedule": c["condition"]["schedule"], "reference": reference}
        | {k: v for k, v in c.items() if k not in ("condition", "reference", "family")}
        for c in paired_by_seed(rows, comparisons, TESTED_METRICS)
    ]


def experiment_document(kind: str, environment: dict, settings: dict, rows: list[dict], summary: list[dict],
                        paired: list[dict], schema_version: int = SCHEMA_VERSION) -> dict:  # fmt: skip
    """An experiment's JSON document: its kind and creation time (UTC), environment, settings (with the seeds),
    result rows, per-condition summaries and paired comparisons, in that order."""
    return {
        "schema_version": schema_version,
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "settings": settings,
        "results": rows,
        "summary": summary,
        "paired": paired,
    }


def soft_gamma_document(environment: dict, settings: dict, rows: list[dict]) -> dict:
    """The JSON document: environment, settings (with the seeds), result rows, summaries and paired comparisons."""
    return experiment_document("soft-gamma", environment, settings, rows, summarize_conditions(rows),
                               paired_comparisons(rows, settings["reference"]))  # fmt: skip


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def p_text(value: float | None) -> str:
    """A p-value as text, 3 significant digits; ``–`` where there is none.

    Example:
        >>> p_text(0.031234), p_text(None)
        ('0.0312', '–')
    """
    return "–" if value is None else f"{value:.3g}"


def difference_text(c: dict, digits: int = 4, holm_p: bool = False) -> str:
    """A paired comparison as text: ``+0.0123 [+0.0050, +0.0200]`` (`` p 0.012`` with ``holm_p``), `` **`` when beyond
    noise, or ``+0.0123 [no interval: 3 seeds < 6]``.

    Example:
        >>> difference_text({"mean": 0.01, "ci_low": 0.002, "ci_high": 0.02, "holm_p": 0.01, "beyond_noise": True,
        ...                  "pairs": 10}, digits=3, holm_p=True)
        '+0.010 [+0.002, +0.020] p 0.01 **'
    """
    if c["ci_low"] is None:  # too few seeds for an interval (MIN_INTERVAL_PAIRS)
        return f"{c['mean']:+.{digits}f} [no interval: {c['pairs']} seeds < {MIN_INTERVAL_PAIRS}]"
    text = f"{c['mean']:+.{digits}f} [{c['ci_low']:+.{digits}f}, {c['ci_high']:+.{digits}f}]"
    if holm_p:
        text += f" p {c['holm_p']:.2g}"
    return text + (" **" if c["beyond_noise"] else "")



def summary_table(document: dict, alpha: str, fmt: str = "github") -> str:
    """Mean ± std of every metric and per-class recall, one row per schedule, for one alpha setting."""
    classes = len(document["settings"]["task"]["frequencies"])
    headers = ["schedule", *(METRIC_LABELS[k] for k in SCALAR_METRICS), *(f"recall {c}" for c in range(classes))]
    body = [
        [s["schedule"]]
        + [_mean_std(s["mean"][k], s["std"][k]) for k in SCALAR_METRICS]
        + [_mean_std(m, d) for m, d in zip(s["recall_mean"], s["recall_std"], strict=True)]
        for s in document["summary"]
        if s["alpha"] == alpha
    ]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def paired_table(document: dict, fmt: str = "github") -> str:
    """One row per (alpha, schedule): difference to the reference [95 % interval], Wilcoxon p and Holm p per metric."""
    headers = ["alpha", "schedule"]
    for metric in TESTED_METRICS:
        headers += [f"Δ {METRIC_LABELS[metric]} [95% CI]", "p", "Holm p"]
    body = []
    for alpha, schedule in dict.fromkeys((c["alpha"], c["schedule"]) for c in document["paired"]):
        row = [alpha, schedule]
        for metric in TESTED_METRICS:
            (c,) = [c for c in document["paired"] if (c["alpha"], c["schedule"], c["metric"]) == (alpha, schedule,
                                                                                                  metric)]  # fmt: skip
            row += [difference_text(c), p_text(c["wilcoxon_p"]), p_text(c["holm_p"])]
        body.append(row)
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def _beyond_noise_list(comparisons: list[dict]) -> str:
    return "; ".join(f"{c['schedule']} (alpha {c['alpha']}) {METRIC_LABELS[c['metric']]} {c['mean']:+.4f}"
                     for c in comparisons)  # fmt: skip


def soft_gamma_markdown(document: dict) -> str:
    """The markdown report of a soft-gamma document."""
    env, settings = document["environment"], document["settings"]
    task, budget, seeds = settings["task"], settings["budget"], settings["seeds"]
    frequencies = "/".join(f"{100 * f:g}" for f in task["frequencies"])
    schedules = "; ".join(f"`{name}` {state['kind']} {json.dumps(state['config'])}"
                          for name, state in settings["schedules"].items())  # fmt: skip
    beyond = [c for c in document["paired"] if c["beyond_noise"]]
    lines = [
        "# Soft-gamma experiment: gamma schedules against fixed gamma 2 on a long-tailed task",
        "",
        f"Created {document['created']} from commit `{env.get('git_commit')}`: {env['cpu']}, {settings['threads']} "
        f"torch thread(s), torch {env['torch']}, numpy {env['numpy']}, python {env['python']}; "
        f"{len(document['results'])} runs in {settings['wall_s']} s"
        f"{' (--quick)' if settings['quick'] else ''}.",
        "",
        f"* Task: {len(task['frequencies'])} classes with "
        f"frequencies {frequencies} %, x ~ N(mu_c, I) in {task['dims']} dimensions, rare-class means at distance "
        f"{task['separation']:g} from the majority's (geometry seed {task['geometry_seed']}); {task['train_size']} "
        f"training and {task['test_size']} test points drawn from each seed.",
        f"* Model and budget: {settings['model']} (lr {budget['learning_rate']:g}), {budget['steps']} steps of "
        f"{budget['batch_size']} samples; the loss is `focalbench.FocalLoss` (gamma 0 = cross-entropy) driven by a "
        "gamma schedule stepped after every optimizer step.",
        f"* Schedules: {schedules}. Alpha: `none`, or `inverse-frequency` (alpha_c = N / (C n_c) from the training "
        "counts: mean weight 1 per training sample).",
        f"* Seeds ({len(seeds)}): {', '.join(map(str, seeds))}. Each seed draws the data, the initial weights and the "
        "batch order, shared by every condition: differences are paired by seed.",
        "* Metrics on the test set: per-class recall, balanced accuracy (mean recall), macro-F1, accuracy, and "
        f"top-label expected calibration error ({settings['ece_bins']} equal-width bins; lower is better).",
        "",
        f"## Mean ± std over {len(seeds)} seeds",
        "",
    ]
    for alpha in settings["alphas"]:
        lines += [f"### alpha = {alpha}", "", summary_table(document, alpha), ""]
    lines += [
        f"## Paired differences against fixed gamma 2 (`{settings['reference']}`, same alpha)",
        "",
        "Δ = condition − reference per seed: mean [95% percentile bootstrap interval, "
        f"{BOOTSTRAP_RESAMPLES} resamples of the seeds]; p = two-sided Wilcoxon signed-rank (scipy); Holm p = "
        "Holm-adjusted over all comparisons of the same metric. `**` = beyond noise (Holm p < 0.05 and the interval "
        f"excludes 0). With {len(seeds)} seeds the smallest possible two-sided Wilcoxon p is "
        f"{2 / 2 ** len(seeds):.3g}.",
        "",
        paired_table(document),
        "",
        "Beyond noise: "
        + (
            _beyond_noise_list(beyond)
            or "none — no condition differs from fixed gamma 2 by more than the seed-to-seed noise on any tested metric"
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def save_new_figure(figure, path: Path) -> Path:
    """Save a matplotlib figure as a new PNG file at ``path`` (``-v1``, ``-v2``, ... if taken), atomically and
    readable by all (a temporary file linked into place, never replacing one), and close it."""
    import matplotlib.pyplot as plt

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the figure from the others who read results/
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=110, bbox_inches="tight")
        stem, n = path.stem, 1
        while True:
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                path, n = path.with_name(f"{stem}-v{n}.png"), n + 1
    finally:
        os.unlink(tmp)
        plt.close(figure)


def write_soft_gamma_report(document: dict, directory: str | Path) -> tuple[Path, Path]:
    """Write the document as JSON and markdown under ``directory`` (new files, atomically); returns both paths."""
    return write_document(document, soft_gamma_markdown(document), directory, "soft-gamma")
