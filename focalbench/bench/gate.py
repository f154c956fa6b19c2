"""Compare two reports: per (implementation, shape, dtype, mode), the change of the ratio to the baseline.

Ratios to F.cross_entropy measured in the same run cancel a uniformly faster or slower machine, but not a different
kind of machine: the C kernel is vectorized differently with AVX2 than with AVX-512, torch's own kernels differ too,
and the ratio moves by 2x between machine kinds on unchanged code. So two reports are compared only when they come
from the same machine kind (the same ``machine_fingerprint``: CPU model and id, widest SIMD extension, threads, torch)
and the same kernel build target; :func:`comparable` says why not otherwise. A regression is a ratio that grew by
more than ``max_slowdown`` (0.5 = 50 %), or a check that went from pass to fail (or to a known defect that no longer
reproduces).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from tabulate import tabulate

__all__ = ["Comparison", "comparable", "compare_reports", "machine_kind", "merge_reports"]


@dataclass(frozen=True)
class Change:
    key: tuple
    old_ratio: float
    new_ratio: float

    @property
    def change(self) -> float:
        return self.new_ratio / self.old_ratio - 1


@dataclass(frozen=True)
class Comparison:
    changes: list[Change]
    regressions: list[Change]
    broken_checks: list[tuple[str, str, str, str]]  # (implementation, check, old verdict, new verdict)
    unmatched: int
    summaries: list[Change] = dataclasses.field(default_factory=list)  # per implementation, over its rows

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or self.broken_checks else 0

    def table(self) -> str:
        rows = [
            [*c.key, f"{c.old_ratio:.2f}", f"{c.new_ratio:.2f}", f"{100 * c.change:+.1f}%",
             "REGRESSION" if c in self.regressions else ""]
            for c in self.changes + self.summaries
        ]  # fmt: skip
        headers = ["implementation", "shape", "dtype", "mode", "old x CE", "new x CE", "change", ""]
        return tabulate(rows, headers=headers)


def _key(row: dict) -> tuple:
    return (row["implementation"], row.get("shape_name") or "x".join(map(str, row["shape"])), row["dtype"], row["mode"])


def machine_kind(report: dict) -> tuple[str | None, str | None]:
    """(machine fingerprint, kernel build target) of a report; None where the report does not say."""
    env = report.get("environment") or {}
    build = env.get("kernel_build") if isinstance(env.get("kernel_build"), dict) else {}
    return env.get("machine_fingerprint"), build.get("target")


def comparable(baseline: dict, new: dict) -> str | None:
    """None when the two reports' timings may be compared, else the one-line reason they may not."""
    (old_fp, old_target), (new_fp, new_target) = machine_kind(baseline), machine_kind(new)
    if old_fp is None or new_fp is None:
        return "a report does not name its machine (no environment.machine_fingerprint)"
    if old_fp != new_fp:
        old_env, new_env = baseline["environment"], new["environment"]
        return (f"different machine kinds: {old_fp} ({old_env.get('cpu')}, {old_env.get('isa')}) vs {new_fp} "
                f"({new_env.get('cpu')}, {new_env.get('isa')})")  # fmt: skip
    if old_target != new_target:
        return f"different kernel build targets: {old_target} vs {new_target}"
    return None


#: A single row is a regression only past this many times the allowance (the geometric mean is the main verdict).
ROW_FACTOR = 3.0


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def compare_reports(baseline: dict, new: dict, max_slowdown: float, impls: Iterable[str] | None = None) -> Comparison:
    """Timing rows of ``impls`` (default: every implementation) and every check, ``baseline`` against ``new``.

    The verdict on an implementation's speed is the geometric mean of its rows' changes: the ratio to cross-entropy
    of one shape moves by up to ~60 % between runs of unchanged code on a small shared machine (cross-entropy's own
    time is the noisy part), in both directions, while a real slowdown moves every shape the same way. A regression
    is that mean growing by more than ``max_slowdown``, or one row growing by more than ``ROW_FACTOR`` times it (a
    slowdown confined to one shape)."""
    wanted = set(impls) if impls else None

    def timed(report: dict) -> dict:
        return {
            _key(r): r
            for r in report["results"]
            if r["implementation"] != r["baseline"] and (wanted is None or r["implementation"] in wanted)
        }

    old_rows, new_rows = timed(baseline), timed(new)
    changes = [
        Change(key, old_rows[key]["ratio_to_baseline"], new_rows[key]["ratio_to_baseline"])
        for key in old_rows
        if key in new_rows
    ]
    summaries = []
    for impl in dict.fromkeys(c.key[0] for c in changes):
        mine = [c for c in changes if c.key[0] == impl]
        summaries.append(
            Change(
                (impl, f"geometric mean of {len(mine)} rows", "", ""),
                _geometric_mean([c.old_ratio for c in mine]),
                _geometric_mean([c.new_ratio for c in mine]),
            )
        )
    regressions = [c for c in summaries if c.change > max_slowdown]
    regressions += [c for c in changes if c.change > ROW_FACTOR * max_slowdown]
    broken = []
    for impl, verdicts in new.get("checks", {}).items():
        for check, verdict in verdicts.items():
            old = baseline.get("checks", {}).get(impl, {}).get(check)
            # "xfail" (a declared defect, e.g. newly exercised) and "n/a" are not breaks; "fail" and "xpass" are
            if old == "pass" and verdict in ("fail", "xpass"):
                broken.append((impl, check, old, verdict))
    unmatched = len(set(old_rows) ^ set(new_rows))
    return Comparison(changes, regressions, broken, unmatched, summaries)


def merge_reports(reports: list[dict], same_machine: bool = False) -> dict:
    """One report whose rows hold, per key, the median over ``reports`` of each timing field.

    A gate baseline made this way carries the noise of one run less than a single report does: only the new run's
    noise is left for the threshold to absorb. Checks are kept where every report agrees, else marked "mixed".
    """
    if not reports:
        raise ValueError("reports must be non-empty. Got: []")
    for report in reports[1:]:
        reason = None if same_machine else comparable(reports[0], report)
        if reason is not None:
            raise ValueError(f"reports must come from one machine kind and build to be merged: {reason}")
    merged = copy.deepcopy(reports[0])
    keyed = [{_key(r): r for r in report["results"]} for report in reports]
    numeric = ("median_s", "iqr_s", "min_s", "baseline_median_s", "ratio_to_baseline", "gbytes_per_s",
               "fraction_of_bandwidth", "peak_memory_bytes", "baseline_peak_memory_bytes", "compile_s",
               "floor_median_s", "ns_per_logit", "ratio_to_floor")  # fmt: skip
    rows = []
    for row in merged["results"]:
        key = _key(row)
        present = [k[key] for k in keyed if key in k]
        for field in numeric:
            values = [r[field] for r in present if r.get(field) is not None]
            row[field] = statistics.median(values) if values else None
        row["runs"] = sum(r["runs"] for r in present)
        rows.append(row)
    merged["results"] = rows
    checks: dict = {}
    for impl, verdicts in merged.get("checks", {}).items():
        checks[impl] = {
            check: verdict if all(r.get("checks", {}).get(impl, {}).get(check) == verdict for r in reports) else "mixed"
            for check, verdict in verdicts.items()
        }
    merged["checks"] = checks
    merged.setdefault("settings", {})["merged_from"] = len(reports)
    return merged
