"""The reports README.md and docs/ read their figures from, named in one committed index: ``docs/reports.json``.

The index names, per family, one file under ``results/`` for each kind of report a generated table reads
(:data:`KINDS`): ``speed`` (``focalbench run``: timings and the correctness checks), ``accuracy`` (``focalbench
accuracy``, float32, the family's whole sweep axis) and ``mutants`` (``focalbench mutants --output``). A new report
in ``results/`` changes nothing the docs say until the index names it (``focalbench docs --use FILE ...``,
:func:`use`), so a user's own run never makes the committed tables stale.

A named report is read only where it was measured on the current product source: its ``environment.product_source``
must equal :func:`~focalbench.bench.product_source.product_source_fingerprint`. Otherwise, or where the file is
missing or is not the report its entry says, reading it raises :class:`RefusedReport`, and ``focalbench docs``
(``--check`` too) fails naming the report: a change of the product's source asks for its reports again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from focalbench.arena.family import families, get_family
from focalbench.bench.product_source import product_source_fingerprint
from focalbench.bench.report import ReportError, read_report

__all__ = ["INDEX", "KINDS", "RESULTS", "RefusedReport", "kind_of", "named", "read_index", "refusals", "use"]

#: The index, relative to the repository's root.
INDEX = Path("docs") / "reports.json"
#: Where the named reports lie, relative to the repository's root; the index names them relative to it.
RESULTS = Path("results")
#: The kinds of report a table reads, each with the command that writes one of a family.
KINDS = {
    "speed": "focalbench run --family {family}",
    "accuracy": "focalbench accuracy --family {family}",
    "mutants": "focalbench mutants --family {family} --output results",
}

_ABOUT = (
    "The reports the generated tables of README.md and docs/ read, per family and kind, as paths under results/. "
    "Point an entry at a new report with `focalbench docs --use results/FILE.json ...`; a report must have been "
    "measured on the current product source (environment.product_source)."
)


class RefusedReport(ValueError):
    """A report the index names that the tables must not read: missing or unreadable, not the report its entry says,
    or measured on other product source than the current."""


def kind_of(document: dict) -> tuple[str, str]:
    """``(family, kind)`` of a report document; reports older than the family field are of the softmax family.

    Raises:
        ValueError: the document is no report a table reads.

    Example:
        >>> kind_of({"kind": "accuracy", "rows": []}), kind_of({"results": [], "settings": {"family": "sigmoid"}})
        (('softmax', 'accuracy'), ('sigmoid', 'speed'))
    """
    kind = document.get("kind")
    if kind == "accuracy":
        return document.get("family", "softmax"), "accuracy"
    if kind == "mutants" and "family" in document:
        return document["family"], "mutants"
    if kind is None and isinstance(document.get("results"), list):
        return (document.get("settings") or {}).get("family", "softmax"), "speed"
    raise ValueError(f"must be a report of one of the kinds the tables read ({', '.join(KINDS)}). Got: "
                     f"{'kind ' + repr(kind) if kind else 'no kind and no results'}")  # fmt: skip


def _unfit(document: dict, family: str, kind: str) -> str | None:
    """Why a report of its kind cannot fill its tables (None where it can)."""
    if kind == "speed":
        if (document.get("settings") or {}).get("interrupted"):
            return "is an interrupted run (its cases are not all measured and it holds no checks)"
        if not document.get("checks"):
            return "holds no correctness checks (it was run with --skip-checks)"
    elif kind == "accuracy":
        if document.get("dtype") != "float32":
            return f"must be a float32 sweep. Got: {document.get('dtype')!r}"
        axis = set(get_family(family).sweep.values)
        missing = axis - {float(row["gap"]) for row in document.get("rows", [])}
        if missing:
            return f"does not cover the family's sweep axis: no rows at {', '.join(f'{v:g}' for v in sorted(missing))}"
    elif not isinstance(document.get("kills"), list):
        return "holds no kills"
    return None


def _read(path: Path) -> tuple[dict, str, str]:
    """The report at ``path`` with its family and kind (a speed report validated by
    :func:`~focalbench.bench.report.read_report`).

    Raises:
        ValueError: unreadable, not JSON, or no report a table reads (:class:`ReportError` where it says why)."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ReportError(f"cannot read: {error.strerror or error}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"not a JSON report: {error}") from error
    if not isinstance(document, dict):
        raise ReportError(f"not a report: a JSON {type(document).__name__}, not an object")
    family, kind = kind_of(document)
    return (read_report(path) if kind == "speed" else document), family, kind


def _source_mismatch(document: dict, current: str) -> str | None:
    recorded = (document.get("environment") or {}).get("product_source")
    if recorded == current:
        return None
    said = f"records product source {recorded}" if recorded else "records no product source"
    return f"{said}; the current product source is {current}"


def read_index(root: Path) -> dict[str, dict[str, str]]:
    """``{family: {kind: path under results/}}`` from the index (empty where there is none).

    Raises:
        RefusedReport: the index is unreadable or not of that shape."""
    path = Path(root) / INDEX
    if not path.exists():
        return {}
    try:
        reports = json.loads(path.read_text())["reports"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RefusedReport(f"{INDEX}: must be a JSON object with a 'reports' object. Got: {error}") from error
    if not isinstance(reports, dict) or not all(
            isinstance(kinds, dict) and all(isinstance(name, str) for name in kinds.values())
            for kinds in reports.values()):  # fmt: skip
        raise RefusedReport(f"{INDEX}: 'reports' must map each family to {{kind: path under results/}}")
    return reports


def _write_index(root: Path, reports: dict[str, dict[str, str]]) -> None:
    """Replace the index atomically (unlike a report, the index is meant to be rewritten)."""
    path = Path(root) / INDEX
    ordered = {family: {kind: reports[family][kind] for kind in KINDS if kind in reports[family]}
               for family in sorted(reports)}  # fmt: skip
    text = json.dumps({"about": _ABOUT, "reports": ordered}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def named(root: Path, family: str, kind: str, current: str | None = None) -> tuple[Path, dict] | None:
    """The report the index names for ``family`` and ``kind`` as ``(path, document)``; None where it names none.

    ``current`` is the product source fingerprint to hold it to (default: the source imported now).

    Raises:
        RefusedReport: the named file is missing or unreadable, is not that family's report of that kind, cannot
            fill its tables, or was measured on other product source."""
    name = read_index(root).get(family, {}).get(kind)
    if name is None:
        return None
    path = Path(root) / RESULTS / name
    shown = (RESULTS / name).as_posix()
    try:
        document, *found = _read(path)
    except ValueError as error:
        raise RefusedReport(f"{shown} (the {family} {kind} report in {INDEX}): {error}") from error
    if tuple(found) != (family, kind):
        raise RefusedReport(f"{shown} is named as the {family} {kind} report in {INDEX} but is the {found[0]} "
                            f"{found[1]} report")  # fmt: skip
    unfit = _unfit(document, family, kind)
    if unfit:
        raise RefusedReport(f"{shown} (the {family} {kind} report in {INDEX}) {unfit}")
    mismatch = _source_mismatch(document, product_source_fingerprint() if current is None else current)
    if mismatch:
        command = KINDS[kind].format(family=family)
        raise RefusedReport(f"{shown} (the {family} {kind} report in {INDEX}) {mismatch}: re-record it (`{command}`) "
                            "and name the new file (`focalbench docs --use FILE`)")  # fmt: skip
    return path, document


def refusals(root: Path) -> list[str]:
    """One line per report the index names that the tables refuse (see :func:`named`); empty when all are good."""
    try:
        index = read_index(root)
    except RefusedReport as error:
        return [str(error)]
    current = product_source_fingerprint()
    out = []
    for family, kinds in index.items():
        for kind in kinds:
            if family not in families() or kind not in KINDS:
                out.append(f"{INDEX}: names a {family} {kind} report: must be one of the families "
                           f"{', '.join(families())} and kinds {', '.join(KINDS)}")  # fmt: skip
                continue
            try:
                named(root, family, kind, current)
            except RefusedReport as error:
                out.append(str(error))
    return out


def use(root: Path, paths: Iterable[str | Path]) -> list[tuple[str, str, str | None, str]]:
    """Point the index's entries at the reports ``paths``, each by its own family and kind; returns the changes as
    ``(family, kind, old path or None, new path)``, paths under results/.

    Raises:
        ValueError: a path is not a report under results/, not of a kind the tables read, cannot fill its tables,
            was measured on other product source, or names the same family and kind as another; nothing is written
            then."""
    root = Path(root)
    results = (root / RESULTS).resolve()
    current = product_source_fingerprint()
    index = read_index(root)
    chosen: dict[tuple[str, str], str] = {}
    for given in paths:
        path = Path(given).resolve()
        if not path.is_relative_to(results) or not path.is_file():
            raise ValueError(f"--use must name a report file under {root / RESULTS}. Got: {given}")
        name = path.relative_to(results).as_posix()
        try:
            document, family, kind = _read(path)
        except ValueError as error:
            raise ValueError(f"--use {given}: {error}") from error
        if family not in families():
            raise ValueError(f"--use {given}: a report of the family {family!r}; the families: {', '.join(families())}")
        problem = _unfit(document, family, kind) or _source_mismatch(document, current)
        if problem:
            raise ValueError(f"--use {given} {problem}")
        if (family, kind) in chosen:
            raise ValueError(f"--use names two {family} {kind} reports: {chosen[family, kind]} and {name}")
        chosen[family, kind] = name
    changes = [(family, kind, index.get(family, {}).get(kind), name) for (family, kind), name in chosen.items()]
    for family, kind, _, name in changes:
        index.setdefault(family, {})[kind] = name
    _write_index(root, index)
    return changes
