"""Figures from reports (matplotlib, an optional extra: ``pip install 'focalbench[plot]'``).

``focalbench plot REPORT [REPORT ...] --output DIR`` writes each figure as PNG and SVG:

* ``speed-ratio``  time relative to the family's baseline (``F.cross_entropy``; sigmoid: BCE with logits) per
  representative shape and implementation (speed reports); bars are the median per-round ratio, whiskers its 95 %
  interval (older reports: one IQR of the time over the baseline's median);
* ``size-sweep``   time per call against rows, log-log, every implementation and the baseline (the ``sweep_*`` rows of
  speed reports), whiskers one IQR;
* ``accuracy-gap`` worst relative error (loss and gradient) against the family's sweep axis per implementation (accuracy
  reports, ``focalbench accuracy``);
* ``focal-figure-1`` Lin et al. (2017), Fig. 1: loss against p_t for gamma in {0, 0.5, 1, 2, 5}, computed by the
  registered implementations (always written).

Reading and checking the files is :func:`load_documents` (no matplotlib needed); drawing is :func:`write_figures`.
matplotlib is imported only there, with the Agg backend (no display).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from focalbench.arena.family import Family, get_family

__all__ = ["FIGURE_1_GAMMAS", "Document", "PlotError", "figure_1_losses", "load_documents", "write_figures"]

FIGURE_1_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
SPEED, ACCURACY = "speed", "accuracy"
_ACCURACY_ROW_KEYS = ("implementation", "gap", "max_loss_error", "max_grad_error")
_TIMED_MODE = "forward+backward"  # what the figures show when a report has several modes
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")  # lines that overlap stay told apart


class PlotError(ValueError):
    """A file that cannot be plotted (missing, unreadable, not a report, an unknown kind): one line."""


@dataclass(frozen=True)
class Document:
    path: Path
    kind: str  # speed | accuracy
    data: dict

    @property
    def family(self) -> str:
        """The loss family the report is about (reports from before families say none: softmax)."""
        if self.kind == SPEED:
            return str(self.data.get("settings", {}).get("family", "softmax"))
        return str(self.data.get("family", "softmax"))

    @property
    def label(self) -> str:
        env = self.data.get("environment", {})
        return f"{self.path.stem} ({env.get('device', '?')}, {str(self.data.get('created', ''))[:10]})"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise PlotError(f"{path}: no such file") from error
    except OSError as error:
        raise PlotError(f"{path}: cannot read: {error.strerror or error}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PlotError(f"{path}: not a JSON report: {error}") from error


def _accuracy_document(path: Path, data: dict) -> Document:
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        raise PlotError(f"{path}: an accuracy report must have a non-empty list of rows")
    for i, row in enumerate(rows):
        missing = [k for k in _ACCURACY_ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise PlotError(f"{path}: accuracy row {i} lacks {', '.join(missing)}")
    return Document(path, ACCURACY, data)


def _speed_document(path: Path) -> Document:
    from focalbench.bench.report import ReportError, read_report

    try:
        data = read_report(path)
    except ReportError as error:
        raise PlotError(str(error)) from error
    if not data["results"]:
        raise PlotError(f"{path}: a speed report without timing rows")
    return Document(path, SPEED, data)


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Read and check every file before anything is drawn.

    Raises:
        PlotError: a missing or unreadable file, or one that is neither a speed report (``focalbench run``) nor an
            accuracy report (``focalbench accuracy``).
    """
    documents = []
    for name in paths:
        path = Path(name)
        data = _read_json(path)
        if not isinstance(data, dict):
            raise PlotError(f"{path}: not a focalbench report (a JSON object is expected)")
        kind = data.get("kind")
        if kind == ACCURACY:
            documents.append(_accuracy_document(path, data))
        elif kind is None and "results" in data:
            documents.append(_speed_document(path))
        else:
            found = repr(kind) if kind is not None else "no kind and no timing results"
            raise PlotError(f"{path}: report kind must be a speed report (focalbench run) or 'accuracy'. Got: {found}")
    return documents


# ---------------------------------------------------------------------------------------------------------------------
# data for the figures (plain Python, tested without matplotlib)


def _timed_rows(documents: Sequence[Document]) -> list[tuple[str, dict]]:
    """(series label, row) for the forward+backward rows (or each report's first mode) of the first dtype."""
    rows = []
    several = len(documents) > 1
    for doc in documents:
        results = doc.data["results"]
        modes = [r["mode"] for r in results]
        mode = _TIMED_MODE if _TIMED_MODE in modes else modes[0]
        dtype = results[0]["dtype"]
        for row in results:
            if row["mode"] == mode and row["dtype"] == dtype:
                label = f"{row['implementation']} [{doc.path.stem}]" if several else row["implementation"]
                rows.append((label, row))
    return rows


def _shape_name(row: dict) -> str:
    return row.get("shape_name") or "x".join(map(str, row["shape"]))


def ratio_series(
    documents: Sequence[Document],
) -> tuple[list[str], dict[str, dict[str, tuple[float, float, float]]]]:
    """(shapes, {implementation: {shape: (ratio, low, high)}}) for the non-sweep shapes: the whiskers are the ratio's
    95 % interval from the per-round ratios (both sides' dispersion); reports from before it was kept give one IQR of
    the implementation's time over the baseline's median, centred on the ratio."""
    shapes: list[str] = []
    series: dict[str, dict[str, tuple[float, float]]] = {}
    for label, row in _timed_rows(documents):
        name = _shape_name(row)
        if name.startswith("sweep_"):
            continue
        if name not in shapes:
            shapes.append(name)
        ratio = row["ratio_to_baseline"]
        if row.get("ratio_interval"):
            low, high = row["ratio_interval"]
        else:
            spread = row["iqr_s"] / row["baseline_median_s"]
            low, high = ratio - spread / 2, ratio + spread / 2
        series.setdefault(label, {})[name] = (ratio, low, high)
    return shapes, series


def sweep_series(documents: Sequence[Document]) -> dict[str, list[tuple[int, float, float]]]:
    """{implementation: [(rows, median_s, iqr_s), ...]} for the ``sweep_*`` shapes, sorted by rows."""
    series: dict[str, list[tuple[int, float, float]]] = {}
    for label, row in _timed_rows(documents):
        if _shape_name(row).startswith("sweep_"):
            series.setdefault(label, []).append((int(row["shape"][0]), row["median_s"], row["iqr_s"]))
    return {label: sorted(points) for label, points in series.items()}


def accuracy_series(documents: Sequence[Document]) -> tuple[list[float], dict[str, dict[float, float]], str]:
    """(gaps, {implementation: {gap: worst relative error}}, dtype) over the accuracy reports."""
    gaps: set[float] = set()
    series: dict[str, dict[float, float]] = {}
    dtypes = set()
    several = len(documents) > 1
    for doc in documents:
        dtypes.add(str(doc.data.get("dtype", "float32")))
        for row in doc.data["rows"]:
            label = f"{row['implementation']} [{doc.data.get('dtype', '')}]" if several else row["implementation"]
            gap = float(row["gap"])
            gaps.add(gap)
            series.setdefault(label, {})[gap] = max(float(row["max_loss_error"]), float(row["max_grad_error"]))
    return sorted(gaps), series, ", ".join(sorted(dtypes))


def figure_1_losses(
    implementations: Sequence,
    p_t: Sequence[float],
    gammas: Sequence[float] = FIGURE_1_GAMMAS,
    *,
    family: str | Family,
) -> dict[str, dict[float, list[float]]]:
    """``{implementation name: {gamma: [loss at each p_t]}}`` at the family's inputs for which the loss is
    ``-(1 - p_t)^gamma log p_t`` (:attr:`Family.figure_1_inputs`), ``reduction="none"``, flattened. An implementation
    that raises is left out."""
    kind = get_family(family) if isinstance(family, str) else family
    logits, target, kwargs = kind.figure_1_inputs(p_t)
    out: dict[str, dict[float, list[float]]] = {}
    for impl in implementations:
        try:
            out[impl.name] = {gamma: impl(logits, target, gamma=gamma, **kwargs).flatten().tolist() for gamma in gammas}
        except Exception:  # noqa: BLE001 - a figure of the others is still worth drawing
            continue
    return out


# ---------------------------------------------------------------------------------------------------------------------
# drawing


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise PlotError(f"matplotlib is not installed (pip install 'focalbench[plot]'): {error}") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "focalbench", "font.size": 9, "axes.titlesize": 10})
    return plt


def _save(fig, output: Path, stem: str) -> list[Path]:
    paths = []
    for suffix, metadata in ((".png", {"Software": None}), (".svg", {"Date": None})):
        path = output / f"{stem}{suffix}"
        fig.savefig(path, dpi=100, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def _finish(ax, title: str, xlabel: str | None, ylabel: str, legend_columns: int = 1) -> None:
    """Labels, a legend outside the axes on the right, a light grid."""
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=legend_columns, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(which="both", linewidth=0.3, alpha=0.5)


def _gap_label(gap: float) -> str:
    return f"{gap:g}" if gap < 1e4 else f"1e{round(math.log10(gap))}"


def _environment_line(documents: Sequence[Document]) -> str:
    env = documents[0].data.get("environment", {})
    cpu = env.get("device_name") if env.get("device") == "cuda" else env.get("cpu")
    return f"{env.get('device', '?')}: {cpu or '?'}, torch {env.get('torch', '?')}"


def _ratio_figure(plt, documents: Sequence[Document], family: Family):
    shapes, series = ratio_series(documents)
    if not shapes:
        return None
    names = [n for n in series if n != family.workload.baseline]
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, name in enumerate(names):
        xs = [s + (i - (len(names) - 1) / 2) * width for s, shape in enumerate(shapes) if shape in series[name]]
        values = [series[name][shape] for shape in shapes if shape in series[name]]
        whiskers = [[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]]
        ax.bar(xs, [v[0] for v in values], width, label=name, yerr=whiskers, capsize=1.5,
               error_kw={"elinewidth": 0.7})  # fmt: skip
    baseline = family.labels.baseline
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label=f"{baseline} = 1")
    ax.set_yscale("log")
    ax.set_xticks(range(len(shapes)), shapes)
    title = f"forward+backward time relative to {baseline}, measured interleaved ({_environment_line(documents)})"
    _finish(ax, title, None, f"time / {baseline}'s time (lower is better)", legend_columns=2)
    return fig


def _sweep_figure(plt, documents: Sequence[Document], family: Family):
    series = sweep_series(documents)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (name, points) in enumerate(series.items()):
        baseline = name.startswith(family.workload.baseline)
        style = {"linewidth": 2.2, "color": "black", "linestyle": "--"} if baseline else {"linewidth": 1.0}
        ax.errorbar([p[0] for p in points], [p[1] * 1e3 for p in points], yerr=[p[2] * 1e3 / 2 for p in points],
                    marker=_MARKERS[i % len(_MARKERS)], markersize=3.5, label=name, capsize=2, **style)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    title = f"size sweep ({_environment_line(documents)})"
    _finish(ax, title, family.labels.sweep_rows, "time per forward+backward call (ms)")
    return fig


def _accuracy_figure(plt, documents: Sequence[Document], family: Family):
    from focalbench.arena.tolerances import ACCURACY_BOUND

    gaps, series, dtypes = accuracy_series(documents)
    floor, ceiling = 1e-10, 10.0
    fig, ax = plt.subplots(figsize=(8, 4.2))
    positions = range(len(gaps))
    for i, (name, by_gap) in enumerate(series.items()):
        values = [by_gap.get(g, math.nan) for g in gaps]
        shown = [ceiling if v == math.inf else max(v, floor) for v in values]
        marker = _MARKERS[i % len(_MARKERS)]
        (line,) = ax.plot(positions, shown, marker=marker, markersize=3.5, linewidth=1.0, label=name, alpha=0.85)
        infinite = [i for i, v in enumerate(values) if v == math.inf]
        if infinite:
            ax.plot(infinite, [ceiling] * len(infinite), linestyle="none", marker="x", color=line.get_color())
    for name, bound in ACCURACY_BOUND.items():
        if str(name).replace("torch.", "") in dtypes:
            ax.axhline(bound, color="black", linewidth=0.8, linestyle="--", label=f"bound {bound:g} ({dtypes})")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, ceiling * 3)
    ax.set_xticks(list(positions), [_gap_label(g) for g in gaps])
    title = (f"{family.name} family: accuracy by {family.sweep.axis}, {dtypes} logits (x at the top: non-finite; "
             f"errors below {floor:g} at the floor)")  # fmt: skip
    _finish(ax, title, family.labels.accuracy_axis, "worst relative error vs mpmath (loss, gradient)")
    return fig


def _figure_1(plt, implementations: Sequence, reference_name: str, family: Family):
    dense = [i / 400 for i in range(1, 400)]
    coarse = [i / 20 for i in range(1, 20)]
    reference = next((i for i in implementations if i.name == reference_name), implementations[0])
    lines = figure_1_losses([reference], dense, family=family)[reference.name]
    others = figure_1_losses([i for i in implementations if i is not reference], coarse, family=family)
    exact = {g: [-((1 - p) ** g) * math.log(p) for p in coarse] for g in FIGURE_1_GAMMAS}
    worst, worst_name = 0.0, ""
    for name, by_gamma in others.items():
        for g, losses in by_gamma.items():
            error = max(abs(a - e) / e for a, e in zip(losses, exact[g], strict=True))
            if error > worst:
                worst, worst_name = error, name
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for g in FIGURE_1_GAMMAS:
        (line,) = ax.plot(dense, lines[g], linewidth=1.5, label=f"γ = {g:g}")
        for by_gamma in others.values():
            ax.plot(coarse, by_gamma[g], linestyle="none", marker=".", markersize=3, color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 5)
    agreement = f"; worst relative difference {worst:.1e} ({worst_name})" if others else ""
    title = (
        f"{family.labels.figure_1}\nlines: {reference.name}; dots: the other "
        f"{len(others)} registered implementations{agreement}"
    )
    _finish(ax, title, "probability of the ground-truth class p_t", "loss")
    ax.title.set_fontsize(8)
    return fig


def write_figures(
    documents: Sequence[Document],
    output: Path,
    implementations: Sequence,
    reference_name: str,
    progress: Callable,
    family: str,
) -> list[Path]:
    """Draw every figure the documents allow (per loss family, each with its family's baseline and axes; the file
    names carry the family where the documents hold several), plus Figure 1 from ``implementations`` of ``family``;
    returns the files written."""
    plt = _pyplot()
    present = list(dict.fromkeys(d.family for d in documents))
    written = []
    for name in present:
        kind = get_family(name)
        suffix = f"-{name}" if len(present) > 1 else ""
        speed = [d for d in documents if d.kind == SPEED and d.family == name]
        accuracy = [d for d in documents if d.kind == ACCURACY and d.family == name]
        figures = [
            ("speed-ratio", _ratio_figure, speed),
            ("size-sweep", _sweep_figure, speed),
            ("accuracy-gap", _accuracy_figure, accuracy),
        ]
        for stem, draw, docs in figures:
            fig = draw(plt, docs, kind) if docs else None
            if fig is None:
                what = "accuracy" if stem.startswith("accuracy") else "matching speed"
                progress(f"  {stem}{suffix}: skipped (no {what} rows)")
                continue
            written += _save(fig, output, stem + suffix)
            plt.close(fig)
    fig = _figure_1(plt, implementations, reference_name, get_family(family))
    written += _save(fig, output, "focal-figure-1")
    plt.close(fig)
    return written
