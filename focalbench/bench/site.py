"""``focalbench publish``: the benchmark site, static HTML that opens from the file system with no network.

Built from what the repository holds: the history (:mod:`focalbench.bench.history`, ``results/history/<machine
kind>/``), the reports ``docs/reports.json`` names (conformance, which loss, speed, accuracy:
:mod:`focalbench.bench.named_reports`) and the experiments' reports and figures under ``results/``. Pages:

* ``index.html``: the which-loss verdict over every family, each gated row's latest ratio per machine kind with its
  steps, and links to everything else;
* ``history-<kind>-<row>.html``: one gated row's ratio to its family's baseline per measured commit with its 95 %
  interval, the steps (:func:`~focalbench.bench.history.find_steps`) marked; hovering a point shows its commit(s);
* ``family-<name>.html``: the family's conformance matrix (declared defects shown as such), its product's speed
  against the hardware, and accuracy by the sweep axis per implementation;
* ``experiments.html``: every experiment report's verdict and figures.

The interactive plots are Plotly's (plotly.py writes the figure, plotly.js draws it): a well-kept library whose
single bundled script works from ``file://`` with hover, zoom and legend toggling, and whose figures are plain JSON,
so the site needs no JavaScript of ours. Its script is written once into the site (``plotly.min.js``), never fetched
from a CDN. The tables are the same generated markdown the docs hold (:mod:`focalbench.bench.tables`), rendered with
Python-Markdown.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PublishError", "publish"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f3f3f3; }
td.pass { background: #e6f4ea; } td.xfail { background: #fff4d6; } td.fail, td.xpass { background: #fde2e1; }
td.step-slower { color: #b00020; font-weight: bold; } td.step-faster { color: #1b7f3b; font-weight: bold; }
code { background: #f5f5f5; padding: 0 0.2em; }
nav a { margin-right: 1em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.plot { width: 100%; height: 30em; }
"""


class PublishError(RuntimeError):
    """Nothing to publish from (one line: why)."""


@dataclass
class _Page:
    name: str
    title: str
    body: str
    plots: bool = False
    steps: int = 0


def _markdown(text: str) -> str:
    import markdown

    return markdown.markdown(text, extensions=["tables", "fenced_code"])


def _page(page: _Page, pages: list[_Page]) -> str:
    links = " ".join(f'<a href="{p.name}">{html.escape(p.title)}</a>' for p in pages if not p.name.startswith("hist"))
    script = '<script src="plotly.min.js"></script>\n' if page.plots else ""
    title = page.title if page.name == "index.html" else f"{page.title} · focalbench"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n{script}</head>\n"
        f"<body>\n<nav>{links}</nav>\n<h1>{html.escape(page.title)}</h1>\n{page.body}\n</body>\n</html>\n"
    )


def _figure(figure, element_id: str) -> str:
    """A Plotly figure as a div and its script (plotly.js is loaded by the page)."""
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=element_id,
                          default_height="30em", config={"displaylogo": False, "responsive": True})  # fmt: skip


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _step_summary(step) -> str:
    """A step in the index: its commit, direction and change (the row's page has the rest)."""
    direction = "slower" if step.change > 0 else "faster"
    return f"<code>{step.after.commit['commit'][:10]}</code> {direction} {100 * step.change:+.0f}%"


def _history_pages(root: Path, history: Path) -> tuple[list[_Page], str]:
    """A page per (machine kind, row), and the index's table of the latest ratio and steps per row and kind."""
    import plotly.graph_objects as go

    from focalbench.bench.history import find_steps, load, series

    pages, summary = [], []
    kinds = sorted(p for p in history.iterdir() if p.is_dir() and any(p.glob("*.json"))) if history.is_dir() else []
    for kind in kinds:
        records = load(kind)
        rows = sorted({key for record in records for key in record["rows"]})
        machine = records[-1].get("machine", {})
        for row in rows:
            points = series(records, row)
            if not points:
                continue
            steps = find_steps(points, row)
            name = f"history-{_slug(kind.name)}-{_slug(row.replace('/', '-'))}.html"
            labels = [p.commit["commit"][:10] for p in points]
            hover = [
                f"{p.commit['commit'][:10]} {html.escape(p.commit['subject'][:80])}<br>{p.commit['date']}"
                + (f"<br>and {len(p.commits) - 1} later commit(s) of the same product source" if len(p.commits) > 1
                   else "")
                for p in points
            ]  # fmt: skip
            figure = go.Figure(go.Scatter(
                x=labels, y=[p.median for p in points], mode="lines+markers", name="median ratio",
                error_y={"type": "data", "symmetric": False, "array": [p.high - p.median for p in points],
                         "arrayminus": [p.median - p.low for p in points]},
                hovertext=hover, hoverinfo="text+y",
            ))  # fmt: skip
            for step in steps:
                label = step.after.commit["commit"][:10]
                colour = "#b00020" if step.change > 0 else "#1b7f3b"
                figure.add_vline(x=label, line_dash="dash", line_color=colour)
                # on a log axis an annotation's y is in decades
                figure.add_annotation(x=label, y=math.log10(step.after.median), text=f"step {100 * step.change:+.0f}%",
                                      showarrow=True, arrowcolor=colour, font={"color": colour})  # fmt: skip
            family = row.split("/")[0]
            figure.update_layout(
                xaxis_title="commit (one point per measured product source, oldest first)",
                yaxis_title=f"time / {family} baseline", yaxis_type="log", margin={"t": 30},
            )  # fmt: skip
            step_rows = "".join(
                f'<tr><td class="step-{"slower" if s.change > 0 else "faster"}">'
                f"{'slower' if s.change > 0 else 'faster'} {100 * s.change:+.0f}%</td>"
                f"<td><code>{s.after.commit['commit'][:10]}</code></td><td>{html.escape(s.after.commit['subject'])}</td>"
                f"<td>{s.before.median:.3g} → {s.after.median:.3g}</td><td>{s.p_value:.2g}</td></tr>"
                for s in steps
            )
            steps_html = (
                '<table class="steps"><tr><th>step</th><th>commit</th><th>subject</th><th>ratio</th>'
                f"<th>adjusted p</th></tr>{step_rows}</table>"
                if steps
                else "<p>No step in this row's history.</p>"
            )
            body = (
                f"<p>Machine kind <code>{html.escape(kind.name)}</code>: {html.escape(str(machine.get('cpu')))} "
                f"({html.escape(str(machine.get('isa')))}), {machine.get('threads')} thread(s), torch "
                f"{html.escape(str(machine.get('torch')))}. Forward+backward time of <code>{html.escape(row)}</code> "
                f"as a multiple of the family's baseline loss, timed in alternating turns in one process per commit; "
                f"bars: the median's 95 % interval. {len(records)} commit(s), {len(points)} measurement(s).</p>\n"
                f"{_figure(figure, 'history')}\n<h2>Steps</h2>\n<p>Adjacent measurements whose turns differ (two-sided "
                f"Mann-Whitney), whose change is beyond the noise between measurements and at least 10 %, each at "
                f"alpha 0.01 Bonferroni-adjusted over the row's series (docs/history.md).</p>\n{steps_html}"
            )
            pages.append(_Page(name, f"{row} on {kind.name}", body, plots=True, steps=len(steps)))
            latest = points[-1]
            summary.append(
                f'<tr><td><a href="{name}"><code>{html.escape(row)}</code></a></td>'
                f"<td><code>{html.escape(kind.name)}</code></td><td>{latest.median:.2f}</td>"
                f"<td><code>{latest.commit['commit'][:10]}</code></td><td>{len(points)}</td>"
                f"<td>{'; '.join(_step_summary(s) for s in steps) or '-'}</td></tr>"
            )
    table = (
        "<table><tr><th>row (family/product/shape/dtype)</th><th>machine kind</th><th>latest time / baseline</th>"
        f"<th>at</th><th>measurements</th><th>steps</th></tr>{''.join(summary)}</table>"
        if summary else "<p>No history yet: run <code>focalbench history RANGE</code>.</p>"
    )  # fmt: skip
    return pages, table


def _family_page(root: Path, family: str) -> _Page:
    import plotly.graph_objects as go

    from focalbench.arena.family import get_family
    from focalbench.arena.tolerances import ACCURACY_BOUND
    from focalbench.bench.named_reports import RefusedReport, named
    from focalbench.bench.tables import generators

    record = get_family(family)
    parts = [f"<p>{html.escape(record.description)}</p>"]
    table = generators()
    for block, heading in ((f"conformance-{family}", "Conformance (implementation × check)"),
                           (f"speed-{family}", "The product against its baseline and the hardware")):  # fmt: skip
        try:
            text = table[block](root)
        except RefusedReport as error:
            text = f"Not shown: {error}"
        cells = _markdown(text)
        for verdict in ("pass", "xfail", "xpass", "fail", "skip"):
            cells = cells.replace(f"<td>{verdict}</td>", f'<td class="{verdict}">{verdict}</td>')
        parts.append(f"<h2>{heading}</h2>\n{cells}")
        if block.startswith("conformance-"):
            parts.append("<p><em>xfail</em>: a declared defect, verified to fail as declared (an implementation that "
                         "stops failing it is an <em>xpass</em>, a failure).</p>")  # fmt: skip
    try:
        accuracy = named(root, family, "accuracy")
    except RefusedReport as error:
        accuracy, parts = None, [*parts, f"<p>Accuracy not shown: {html.escape(str(error))}</p>"]
    plots = False
    if accuracy is not None:
        path, data = accuracy
        bound = next(b for dtype, b in ACCURACY_BOUND.items() if str(dtype) == f"torch.{data.get('dtype')}")
        figure = go.Figure()
        by_impl: dict[str, list[tuple[float, float]]] = {}
        for row in data["rows"]:
            error = max(float(row["max_loss_error"]), float(row["max_grad_error"]))
            by_impl.setdefault(row["implementation"], []).append((float(row["gap"]), error))
        for impl, points in sorted(by_impl.items()):
            points.sort()
            # a non-finite error (the implementation gave inf or NaN) drawn at the top: log axes cannot hold inf
            figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[min(p[1], 1e30) for p in points],
                                        mode="lines+markers", name=impl))  # fmt: skip
        figure.add_hline(y=bound, line_dash="dash", annotation_text=f"bound {bound:g}")
        figure.update_layout(xaxis_title=record.labels.accuracy_axis, yaxis_title="max |error| (loss, gradient)",
                             yaxis_type="log", margin={"t": 30})  # fmt: skip
        parts.append(f"<h2>Accuracy against the oracle</h2>\n<p>From <code>{path.relative_to(root).as_posix()}"
                     f"</code> ({data.get('dtype')}); errors above 1e30 are non-finite results.</p>\n"
                     f"{_figure(figure, 'accuracy')}")  # fmt: skip
        plots = True
    return _Page(f"family-{_slug(family)}.html", f"The {family} family", "\n".join(parts), plots=plots)


def _experiments_page(root: Path, site: Path) -> _Page:
    results = root / "results"
    parts = []
    (site / "figures").mkdir(exist_ok=True)
    for kind in ("long-tail", "detection", "soft-gamma"):
        reports = sorted(results.glob(f"{kind}-*.md"))
        if not reports:
            continue
        report = reports[-1]
        text = report.read_text()
        figures = sorted((results / "figures").glob(f"{report.stem}-*.png"))
        for figure in figures:
            shutil.copy2(figure, site / "figures" / figure.name)
        # the report's own figure links point into results/figures/: the site has its copies in figures/
        text = re.sub(r"\]\((?:\.\./)?(?:results/)?figures/", "](figures/", text)
        # one h1 a page: each report's headings one level down
        body = re.sub(r"<(/?)h([1-5])>", lambda m: f"<{m[1]}h{int(m[2]) + 1}>", _markdown(text))
        parts.append(f"<section>\n<p><small>From <code>results/{report.name}</code>.</small></p>\n{body}\n</section>")
    body = "\n<hr>\n".join(parts) or "<p>No experiment report under results/ yet.</p>"
    return _Page("experiments.html", "Experiments", body)


def publish(root: Path, output: Path, history: Path | None = None) -> list[Path]:
    """Build the site from the repository at ``root`` into ``output``; returns the pages written.

    Raises:
        PublishError: plotly or markdown (the ``site`` extra) is not installed.
    """
    try:
        import markdown  # noqa: F401
        import plotly.offline
    except ImportError as error:
        message = f"focalbench publish needs the site extra: pip install 'focalbench[site]'. Got: {error}"
        raise PublishError(message) from error
    from focalbench.arena.family import families
    from focalbench.bench.named_reports import RefusedReport
    from focalbench.bench.tables import generators

    output.mkdir(parents=True, exist_ok=True)
    (output / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    history_pages, history_table = _history_pages(root, history or root / "results" / "history")
    family_pages = [_family_page(root, name) for name in families()]
    experiments = _experiments_page(root, output)
    try:
        which = _markdown(generators()["which-loss"](root))
    except RefusedReport as error:
        which = f"<p>Not shown: {html.escape(str(error))}</p>"
    index_body = (
        "<p>focalbench: correctness, stability and speed of focal losses. Every figure here comes from a report or "
        "history file committed under <code>results/</code>.</p>\n"
        f"<h2>Which loss to use</h2>\n{which}\n"
        f"<h2>History of the gated rows, per machine kind</h2>\n{history_table}\n"
        "<h2>Families</h2>\n<ul>"
        + "".join(f'<li><a href="{p.name}">{html.escape(p.title)}</a></li>' for p in family_pages)
        + f'</ul>\n<h2>Experiments</h2>\n<p><a href="{experiments.name}">The experiments\' verdicts and figures</a>.'
        "</p>"
    )
    index = _Page("index.html", "focalbench", index_body)
    pages = [index, *family_pages, experiments, *history_pages]
    written = []
    for page in pages:
        path = output / page.name
        path.write_text(_page(page, pages), encoding="utf-8")
        written.append(path)
    listing = {"pages": [p.name for p in pages], "steps": {p.name: p.steps for p in pages if p.steps}}
    (output / "site.json").write_text(json.dumps(listing, indent=1) + "\n")
    return written
