"""Reports: the JSON schema (read, write), markdown, and tables. Writing is atomic and never overwrites a report."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

__all__ = [
    "baseline_of", "interval_text",
    "SCHEMA_VERSION", "ReportError", "read_report", "results_table", "to_markdown", "unreliable_lines",
    "write_document", "write_new",
    "write_report",
]  # fmt: skip

SCHEMA_VERSION = 1
REQUIRED_ROW_KEYS = (
    "implementation", "device", "dtype", "shape", "mode", "parameters", "median_s", "iqr_s", "runs", "baseline",
    "baseline_median_s", "ratio_to_baseline", "gbytes_per_s", "fraction_of_bandwidth", "peak_memory_bytes",
    "compile_s",
)  # fmt: skip

CPU_MEMORY_NOTE = (
    "CPU peak memory: bytes allocated through PyTorch's CPU allocator, peak at operator boundaries, from the "
    "profiler's memory events (memory a kernel allocates with malloc is not seen)."
)


class ReportError(ValueError):
    """A file that cannot be used as a report (unreadable, not a report, other schema version)."""


def new_report(environment: dict, results: list[dict], checks: dict, settings: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "settings": settings,
        "results": results,
        "checks": checks,
        "notes": [CPU_MEMORY_NOTE] if environment.get("device") == "cpu" else [],
    }


def _unique_path(directory: Path, stem: str, suffix: str) -> Path:
    path, n = directory / f"{stem}{suffix}", 1
    while path.exists():
        path, n = directory / f"{stem}-{n}{suffix}", n + 1
    return path


def write_new(path: Path, text: str) -> Path:
    """Write ``text`` to a new file next to ``path`` atomically; never replace an existing file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared report from the others who read results/
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        while True:
            try:
                os.link(tmp, path)  # fails if the name exists: a report is never overwritten
                return path
            except FileExistsError:
                path = _unique_path(path.parent, path.stem, path.suffix)
    finally:
        os.unlink(tmp)


def write_document(
    document: dict, markdown: str | Callable[[Path], str], directory: str | Path, kind: str
) -> tuple[Path, Path]:
    """Write a JSON document and its markdown under ``directory`` as new files named by kind, device, time, commit.

    ``markdown`` may be a function of the JSON file's path, called once that file exists (a report that writes
    figures named after itself and links them)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = document["environment"]
    stamp = document["created"].replace(":", "").replace("-", "").replace("+0000", "Z")
    commit = (env.get("git_commit") or "nogit")[:10]
    stem = f"{kind}-{env['device']}-{stamp}-{commit}"
    json_path = write_new(_unique_path(directory, stem, ".json"), json.dumps(document, indent=1) + "\n")
    text = markdown(json_path) if callable(markdown) else markdown
    md_path = write_new(_unique_path(directory, json_path.stem, ".md"), text)
    return json_path, md_path


def write_report(report: dict, directory: str | Path) -> tuple[Path, Path]:
    """Write a speed report as JSON and markdown under ``directory``; returns both paths."""
    return write_document(report, to_markdown(report), directory, "focalbench")


def read_report(path: str | Path) -> dict:
    """Load and validate a report. Raises :class:`ReportError` with a one-line reason."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise ReportError(f"{path}: cannot read: {error.strerror or error}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: not a JSON report: {error}") from error
    if not isinstance(data, dict) or "schema_version" not in data or "results" not in data:
        raise ReportError(f"{path}: not a focalbench report (no schema_version/results)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ReportError(f"{path}: schema version {data['schema_version']!r}, this focalbench reads {SCHEMA_VERSION}")
    if not isinstance(data["results"], list):
        raise ReportError(f"{path}: results must be a list of rows. Got: {type(data['results']).__name__}")
    if not isinstance(data.get("checks", {}), dict):
        raise ReportError(f"{path}: checks must be an object. Got: {type(data['checks']).__name__}")
    if not isinstance(data.get("environment", {}), dict):
        raise ReportError(f"{path}: environment must be an object. Got: {type(data['environment']).__name__}")
    for i, row in enumerate(data["results"]):
        if not isinstance(row, dict):
            raise ReportError(f"{path}: result row {i} must be an object. Got: {row!r}")
        if "parameters" not in row and "gamma" in row:  # a report of before the parameters were data: gamma was all
            row["parameters"] = {"gamma": row["gamma"]}
        if not isinstance(row.get("parameters", {}), dict):
            raise ReportError(f"{path}: result row {i}: parameters must be an object. Got: {row['parameters']!r}")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ReportError(f"{path}: result row {i} lacks {', '.join(missing)}")
        for key in ("median_s", "baseline_median_s", "ratio_to_baseline"):
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ReportError(f"{path}: result row {i}: {key} must be a finite number > 0. Got: {value!r}")
    for impl, verdicts in data.get("checks", {}).items():
        if not isinstance(verdicts, dict):
            raise ReportError(f"{path}: checks[{impl!r}] must be an object. Got: {verdicts!r}")
    return data


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:.3f}"


def baseline_of(rows: list[dict]) -> str:
    """The rows' baseline (one per report: cross_entropy, or bce_with_logits for the sigmoid family)."""
    return rows[0].get("baseline", "cross_entropy") if rows else "cross_entropy"


def results_table(rows: list[dict], fmt: str = "simple") -> str:
    headers = ["shape", "mode", "dtype", "implementation", "median ms", "IQR ms", "runs", f"x {baseline_of(rows)}",
               "95% interval", "", "ns/logit", "exp ns/logit", "copy ns/logit", "x exp floor", "GB/s", "% BW",
               "peak MB", "peak / base", "compile s"]  # fmt: skip
    body = []
    for r in rows:
        base_peak = r.get("baseline_peak_memory_bytes")
        body.append(
            [
                r.get("shape_name", "x".join(map(str, r["shape"]))),
                r["mode"],
                r["dtype"],
                r["implementation"],
                _ms(r["median_s"]),
                _ms(r["iqr_s"]),
                r["runs"],
                f"{r['ratio_to_baseline']:.2f}",
                interval_text(r),
                "UNRELIABLE" if r.get("unreliable") else "",
                "" if r.get("ns_per_logit") is None else f"{r['ns_per_logit']:.2f}",
                "" if r.get("floor_ns_per_logit") is None else f"{r['floor_ns_per_logit']:.2f}",
                "" if r.get("copy_ns_per_logit") is None else f"{r['copy_ns_per_logit']:.2f}",
                "" if r.get("ratio_to_floor") is None else f"{r['ratio_to_floor']:.2f}",
                "" if r.get("gbytes_per_s") is None else f"{r['gbytes_per_s']:.1f}",
                "" if r["fraction_of_bandwidth"] is None else f"{100 * r['fraction_of_bandwidth']:.0f}",
                "" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f}",
                f"{r['peak_memory_bytes'] / base_peak:.2f}" if base_peak and r["peak_memory_bytes"] is not None else "",
                "" if r["compile_s"] is None else f"{r['compile_s']:.1f}",
            ]
        )
    return tabulate(body, headers=headers, tablefmt=fmt)


def interval_text(row: dict) -> str:
    """A row's 95 % interval of its ratio to the baseline, as low-high ("" without one)."""
    interval = row.get("ratio_interval")
    return "" if not interval else f"{interval[0]:.2f}-{interval[1]:.2f}"


def unreliable_lines(rows: list[dict]) -> list[str]:
    """One line per row whose ratio cannot be trusted, with why: re-measure those."""
    return [f"UNRELIABLE {r['implementation']} / {r.get('shape_name')} / {r['dtype']} / {r['mode']}: "
            f"{r['unreliable']} (re-measure: a busy machine, or more rounds)" for r in rows if r.get("unreliable")]


def checks_table(checks: dict, fmt: str = "simple") -> str:
    if not checks:
        return "(checks not run)"
    names = sorted({c for verdicts in checks.values() for c in verdicts})
    return tabulate([[impl] + [v.get(c, "") for c in names] for impl, v in checks.items()], headers=["", *names],
                    tablefmt=fmt)  # fmt: skip


def to_markdown(report: dict) -> str:
    env = report["environment"]
    baseline = baseline_of(report["results"])
    lines = [
        f"# focalbench report: {env['device']} ({env.get('device_name')})",
        "",
        f"Created {report['created']} from commit `{env.get('git_commit')}`.",
        "",
        "| python | torch | numpy | platform | cpu | isa | threads | cuda | copy bandwidth GB/s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {env['python']} | {env['torch']} | {env['numpy']} | {env['platform']} | {env['cpu']} ({env.get('cpu_id')}) "
        f"| {env.get('isa')} | {env['threads']} | {env.get('cuda')} | {env.get('bandwidth_gbps') or 0:.1f} |",
        "",
        f"Machine fingerprint `{env.get('machine_fingerprint')}`; C kernel built for "
        f"`{(env.get('kernel_build') or {}).get('target')}` (`{(env.get('kernel_build') or {}).get('flags')}`); "
        f"product source `{env.get('product_source')}`.",
        "",
        f"Settings: `{json.dumps(report.get('settings', {}))}`",
        "",
        f"Each row: median of per-call times over rounds in which every implementation and the baseline "
        f"(`{baseline}`) took one sample in rotating order; `x {baseline}` is "
        "the median of the per-round ratios (each sample over the baseline's of the same round, same inputs, same "
        "process), `95% interval` that median's distribution-free interval from order statistics; UNRELIABLE marks a "
        "ratio whose interval spans more than x1.25 or whose per-round ratios are dispersed (IQR above 25 % of their "
        "median) "
        "after the extra rounds such a row gets: re-measure it; every sample is in the JSON; "
        "`ns/logit` is the median per logit and `x exp floor` its ratio to one `torch.exp` over the same logits (the "
        "compute floor: one vectorized exponential per logit), timed in the same rounds.",
        "",
        "## Timings",
        "",
        results_table(report["results"], "github"),
        *(["", *unreliable_lines(report["results"])] if unreliable_lines(report["results"]) else []),
        "",
        "## Checks",
        "",
        checks_table(report.get("checks", {}), "github"),
        "",
    ]
    lines += [f"Note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines) + "\n"
