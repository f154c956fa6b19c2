"""The tables README.md and docs/ restate, generated from the code (checks, implementations) and from the reports
the index names (conformance, which loss to use, mutation score: :mod:`focalbench.bench.named_reports`), never copied
by hand. A report the index names but the tables must not read (measured on other product source, missing, ...)
raises :class:`~focalbench.bench.named_reports.RefusedReport` in the block's generator: :func:`refresh` leaves that
block as it is, :func:`stale` counts it stale.

A generated table sits between two markers in a markdown file::

    <!-- BEGIN generated: NAME -->
    ...
    <!-- END generated: NAME -->

:func:`refresh` rewrites every marked block from :func:`generators`; :func:`stale` says which committed blocks differ
from what the generators give now (``focalbench docs --check``, and a test).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from tabulate import tabulate

from focalbench.arena.family import families, get_family
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.bench.named_reports import INDEX, RefusedReport, named
from focalbench.bench.report import baseline_of, interval_text

__all__ = ["add_missing", "blocks", "generators", "missing", "refresh", "stale"]

_FLOAT32_BOUND = next(bound for dtype, bound in ACCURACY_BOUND.items() if str(dtype) == "torch.float32")
_BLOCK = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)", re.S
)


def _md(rows: list[list[str]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def _checks_table(family: str) -> Callable[[Path], str]:
    def generate(root: Path) -> str:
        rows = [[f"`{c.name}`", c.description] for c in get_family(family).all_checks().values()]
        return _md(rows, ["check", "what it asserts"])

    return generate


def _implementations(root: Path) -> str:
    from focalbench.arena.registry import get_implementation, list_implementations

    rows = []
    for name in list_implementations():
        impl = get_implementation(name)
        defects = sorted({d.check for d in impl.known_defects})
        # a Triton kernel the tests run in Triton's interpreter is a CUDA kernel
        devices = "cuda" if impl.extra.get("interpreted") else ", ".join(impl.devices)
        rows.append([f"`{name}`", impl.family, impl.description, devices,
                     ", ".join(sorted(impl.capabilities)) or "-", ", ".join(defects) or "none"])  # fmt: skip
    return _md(rows, ["implementation", "family", "what it is", "devices", "capabilities", "declared defects in"])


def _conformance(family: str) -> Callable[[Path], str]:
    def generate(root: Path) -> str:
        speed = named(root, family, "speed")
        if speed is None:
            return f"`{INDEX.as_posix()}` names no speed report of the {family} family yet.\n"
        path, data = speed
        checks = data["checks"]
        columns = list(dict.fromkeys(c for verdicts in checks.values() for c in verdicts))
        rows = [[f"`{impl}`"] + [verdicts.get(c, "") for c in columns] for impl, verdicts in checks.items()]
        source = f"From `{path.relative_to(root).as_posix()}` (commit `{data['environment'].get('git_commit')}`).\n\n"
        return source + _md(rows, [""] + columns)

    return generate


def _mutants(family: str) -> Callable[[Path], str]:
    """The family's mutant catalogue (from the code), with the check that killed each in the family's
    ``focalbench mutants --output results`` report the index names."""

    def generate(root: Path) -> str:
        found = named(root, family, "mutants")
        killed_by = {k["mutant"]: k["check"] or "**survived**" for k in found[1]["kills"]} if found else {}
        rows = [[f"`{m.name}`", m.kind, m.bug, m.seen_in or "", killed_by.get(m.name, "not run")]
                for m in get_family(family).mutants().mutants]  # fmt: skip
        if not found:
            return f"`{INDEX.as_posix()}` names no mutation report of the family yet.\n\n" + _md(rows, _MUTANT_COLUMNS)
        path, data = found
        environment = data.get("environment", {})
        source = (f"{data['killed']} of {data['total']} killed, from `{path.relative_to(root).as_posix()}` (commit "
                  f"`{environment.get('git_commit')}`, {data['device']}: {environment.get('cpu')}, "
                  f"{environment.get('threads')} threads, torch {environment.get('torch')}; "
                  f"{data['seconds']:g} s).\n\n")  # fmt: skip
        return source + _md(rows, _MUTANT_COLUMNS)

    return generate


_MUTANT_COLUMNS = ["mutant", "kind", "the bug", "seen in", "killed by"]


def _accuracy_summary(rows: Iterable[dict]) -> dict[str, tuple[str, str, str]]:
    """{implementation: (correct up to, worst error up to there, first non-finite value)} against the fp32 bound."""
    bound = _FLOAT32_BOUND
    by_impl: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        error = max(float(row["max_loss_error"]), float(row["max_grad_error"]))
        by_impl.setdefault(row["implementation"], []).append((float(row["gap"]), error))
    out = {}
    for name, points in by_impl.items():
        points.sort()
        good = []
        for value, error in points:
            if error > bound:
                break
            good.append((value, error))
        upto = "every value" if len(good) == len(points) else (f"{good[-1][0]:g}" if good else "none")
        worst = f"{max(e for _, e in good):.1e}" if good else "-"
        infinite = next((f"{v:g}" for v, e in points if math.isinf(e)), "—")
        out[name] = (upto, worst, infinite)
    return out


def _which_loss(root: Path) -> str:
    """The products and the peers people install (the implementations whose version the speed report records), per
    family: README's table."""
    return _which_loss_table(root, every=False)


def _which_loss_all(root: Path) -> str:
    """Every timed implementation of every family: docs/results.md's table."""
    return _which_loss_table(root, every=True)


def _which_loss_table(root: Path, every: bool) -> str:
    rows = []
    sources = []
    for family in families().values():
        speed, accuracy = named(root, family.name, "speed"), named(root, family.name, "accuracy")
        if speed is None:
            continue
        path, data = speed
        sources.append(f"`{path.relative_to(root).as_posix()}`")
        ratios: dict[str, list[float]] = {}
        for row in data["results"]:
            timed = row.get("mode") == "forward+backward" and row.get("dtype") == "float32"
            if timed and not str(row.get("shape_name", "")).startswith("sweep_"):
                ratios.setdefault(row["implementation"], []).append(float(row["ratio_to_baseline"]))
        summary = {}
        if accuracy is not None:
            sources.append(f"`{accuracy[0].relative_to(root).as_posix()}`")
            summary = _accuracy_summary(accuracy[1]["rows"])
        peers = set((data.get("environment") or {}).get("implementation_versions") or {})
        for impl, verdicts in sorted(data["checks"].items(), key=lambda item: min(ratios.get(item[0], [math.inf]))):
            if not every and impl != family.recommended and impl not in peers:
                continue
            declared = sum(v == "xfail" for v in verdicts.values())
            failing = sum(v in ("fail", "xpass") for v in verdicts.values())
            defects = f"{declared}" + (f" (+{failing} failing)" if failing else "") if declared or failing else "none"
            upto, _, infinite = summary.get(impl, ("-", "-", "-"))
            r = ratios.get(impl)
            name = f"**`{impl}`**" if impl == family.recommended else f"`{impl}`"
            rows.append([name, family.name, defects, upto, infinite,
                         f"{min(r):.2f}–{max(r):.2f}" if r else "-"])  # fmt: skip
    headers = ["implementation", "family", "checks with a declared defect", f"fp32 within {_FLOAT32_BOUND:g} up to",
               "first non-finite at", "time / baseline"]  # fmt: skip
    shown = [f for f in families().values() if named(root, f.name, "speed") is not None]
    products = " / ".join(f"`{f.product.rpartition(':')[2] or f.recommended}`" for f in shown)
    axes = _grouped({f.name: _short(f.labels.accuracy_axis) for f in shown})
    baselines = _grouped({f.name: f.labels.baseline for f in shown})
    if every:
        which, origin = "", f"From {', '.join(sources)}."
    else:
        which = "The products and the peers people install (every implementation: docs/results.md). "
        origin = "From the reports docs/reports.json names."
    note = (
        f"{which}Bold: what {products} run. Accuracy by the sweep axis ({axes}); time: forward+backward, float32, "
        f"representative shapes, as a multiple of the baseline ({baselines}). {origin}\n\n"
    )
    return note + "\n".join("| " + " | ".join(row) + " |" for row in [headers, ["---"] * len(headers), *rows]) + "\n"


def _grouped(by_family: dict[str, str]) -> str:
    """``{family: text}`` as one phrase, each text once with the families that share it: ``"a (f1, f2); b (f3)"``."""
    texts: dict[str, list[str]] = {}
    for family, text in by_family.items():
        texts.setdefault(text, []).append(family)
    return "; ".join(f"{text} ({', '.join(names)})" for text, names in texts.items())


def _short(label: str) -> str:
    """A label without its parenthesized explanation: ``"logit gap (target raised, ...)"`` -> ``"logit gap"``."""
    return label.split(" (")[0]


def _speed(family: str) -> Callable[[Path], str]:
    """The family's product against its baseline and the hardware, shape by shape, from the named speed report:
    forward+backward float32, the ratio to the baseline with its interval, and per logit the product's time, one
    exp pass's and one copy's, and the product's multiple of the exp pass."""

    def generate(root: Path) -> str:
        speed = named(root, family, "speed")
        if speed is None:
            return "No speed report is named for this family.\n"
        path, data = speed
        product = get_family(family).recommended
        env = data.get("environment", {})
        build = env.get("kernel_build") or {}
        floors = get_family(family).workload.floors
        rows = []
        for r in data["results"]:
            if r["implementation"] != product or r.get("mode") != "forward+backward" or r.get("dtype") != "float32":
                continue
            if floors:
                measures = [r[f] for f in ("ns_per_logit", "floor_ns_per_logit", "copy_ns_per_logit",
                                           "ratio_to_floor")]  # fmt: skip
            else:  # no logits to count: the call's time and its peak memory against the baseline's
                peak, base = r.get("peak_memory_bytes"), r.get("baseline_peak_memory_bytes")
                measures = [r["median_s"] * 1e3, (peak or 0) / 2**20, peak / base if peak and base else float("nan")]
            rows.append([f"`{r.get('shape_name')}`", "x".join(map(str, r["shape"])), f"{r['ratio_to_baseline']:.2f}",
                         interval_text(r) or "-", *(f"{v:.2f}" for v in measures)])  # fmt: skip
        baseline = baseline_of(data["results"])
        note = (
            f"`{product}` forward+backward, float32, from `{path.relative_to(root).as_posix()}`: {env.get('cpu')} "
            f"({env.get('isa')}), {env.get('threads')} threads, kernel build target "
            f"`{build.get('target', '-') if isinstance(build, dict) else build}`, torch {env.get('torch')}.\n\n"
        )
        headers = ["shape", "dims", f"x {baseline}", "95% interval", "ns / logit", "exp pass ns / logit",
                   "copy ns / logit", "x exp floor"]  # fmt: skip
        if not floors:
            headers = ["shape", "dims", f"x {baseline}", "95% interval", "ms", "peak MiB", f"peak / {baseline}'s"]
        return note + _md(rows, headers)

    return generate


Generators = dict[str, Callable[[Path], str]]


def generators(extra: Generators | None = None) -> Generators:
    """Block name -> generator ``(repository root) -> markdown``: the two tables of every family, two overall, and
    ``extra`` (the command line adds its command list: nothing here imports the command line)."""
    table: Generators = {"which-loss": _which_loss, "which-loss-all": _which_loss_all,
                         "implementations": _implementations, **(extra or {})}  # fmt: skip
    for name in families():
        table[f"checks-{name}"] = _checks_table(name)
        table[f"conformance-{name}"] = _conformance(name)
        table[f"speed-{name}"] = _speed(name)
        if families()[name].mutants is not None:
            table[f"mutants-{name}"] = _mutants(name)
    return table


def _documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(root: Path) -> dict[str, tuple[Path, str]]:
    """Every generated block in README.md and docs/: ``{name: (file, committed text)}``."""
    found = {}
    for path in _documents(root):
        if path.exists():
            for match in _BLOCK.finditer(path.read_text()):
                found[match["name"]] = (path, match["body"])
    return found


def refresh(root: Path, extra: Generators | None = None) -> list[str]:
    """Rewrite every generated block from its generator, and add the blocks of a family the documents do not hold yet
    (:func:`add_missing`); returns the names of the blocks that changed or were added. A block whose report is
    refused keeps its committed text.

    Raises:
        ValueError: a block names no generator."""
    changed = []
    table = generators(extra)
    for path in _documents(root):
        if not path.exists():
            continue
        text = path.read_text()

        def replace(match: re.Match, path: Path = path) -> str:
            name = match["name"]
            if name not in table:
                raise ValueError(f"generated block must be one of {', '.join(table)}. Got: {name!r} in {path}")
            try:
                body = table[name](root)
            except RefusedReport:  # named_reports.refusals says which and why; the committed text stays
                return match.group(0)
            if body != match["body"]:
                changed.append(name)
            return match.group(1) + body + match.group(4)

        new = _BLOCK.sub(replace, text)
        if new != text:
            path.write_text(new)
    return changed + add_missing(root, extra)


def missing(root: Path, extra: Generators | None = None) -> list[str]:
    """Names of a family's blocks that no document holds while another family's block of the same kind is held (a
    newly registered family's tables, before ``focalbench docs`` adds them)."""
    held = blocks(root)
    kinds_held = {name.partition("-")[0] for name in held if name.partition("-")[2] in families()}
    return [name for name in generators(extra) if name not in held and name.partition("-")[2] in families()
            and name.partition("-")[0] in kinds_held]  # fmt: skip


def add_missing(root: Path, extra: Generators | None = None) -> list[str]:
    """Add each missing block of a family (``<kind>-<family>``) after the last block of the same kind of another
    family, in that block's document, under a heading naming the family; returns the names added. A missing block
    with no block of its kind to follow stays missing (:func:`stale` names it)."""
    table, added = generators(extra), []
    for name in missing(root, extra):
        kind, _, family = name.partition("-")
        if family not in families():
            continue
        siblings = [(path, other) for other, (path, _) in blocks(root).items() if other.startswith(f"{kind}-")]
        if not siblings:
            continue
        path, sibling = siblings[-1]
        try:
            body = table[name](root)
        except RefusedReport:
            continue
        end = f"<!-- END generated: {sibling} -->"
        heading = f"**The {family} family** (added by `focalbench docs` when the family was registered)"
        block = f"\n\n{heading}\n\n<!-- BEGIN generated: {name} -->\n{body}<!-- END generated: {name} -->"
        text = path.read_text()
        path.write_text(text.replace(end, end + block, 1))
        added.append(name)
    return added


def _current(generate: Callable[[Path], str], root: Path, body: str) -> bool:
    try:
        return generate(root) == body
    except RefusedReport:  # a table of a report it must not read is not current, whatever it says
        return False


def stale(root: Path, extra: Generators | None = None) -> list[str]:
    """Names of the committed blocks that differ from what their generators give now, of those whose report is
    refused, of unknown blocks, and of the generators' blocks no document holds (:func:`missing`: a family's tables
    are never silently absent from the docs)."""
    table = generators(extra)
    return [name for name, (_, body) in blocks(root).items()
            if name not in table or not _current(table[name], root, body)] + missing(root, extra)  # fmt: skip
