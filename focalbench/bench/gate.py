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

from scipy.stats import mannwhitneyu
from tabulate import tabulate

from focalbench.bench.stats import holm, paired_ratios, reliability, shift

__all__ = ["ALPHA", "MEAN_SLOWDOWN", "AllUnreliable", "Change", "Comparison", "GateError", "comparable",
           "compare_reports", "judge", "machine_kind", "merge_reports"]  # fmt: skip


class GateError(ValueError):
    """Two reports the gate cannot judge against each other (one line: why)."""


class AllUnreliable(GateError):
    """Every compared row is unreliable: no refusal of the reports, a measurement to take again."""


@dataclass(frozen=True)
class Change:
    """One compared row (or an implementation's summary): its ratios to the baseline, the change, the one-sided p-value
    of the per-round ratios having grown (None where a report kept no samples), and why it is unreliable (or None)."""

    key: tuple
    old_ratio: float
    new_ratio: float
    p_value: float | None = None
    unreliable: str | None = None
    low: float = -math.inf  # the change at its interval's favourable end (Shift.low); -inf where unknown
    adjusted_p: float | None = None  # p_value adjusted (Holm) over every tested row and mean judged together

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
    baseline: str = "cross_entropy"

    @property
    def unreliable(self) -> list[Change]:
        """Rows whose ratios cannot be trusted and that are not certain regressions: neither a pass nor a regression,
        to be measured again."""
        return [c for c in self.changes if c.unreliable and c not in self.regressions]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or self.broken_checks else 0

    def table(self) -> str:
        def verdict(c: Change) -> str:
            return "REGRESSION" if c in self.regressions else "UNRELIABLE" if c.unreliable else ""

        rows = [
            [*c.key, f"{c.old_ratio:.2f}", f"{c.new_ratio:.2f}", f"{100 * c.change:+.1f}%",
             "" if c.p_value is None else f"{c.p_value:.2g}",
             "" if c.adjusted_p is None else f"{c.adjusted_p:.2g}", verdict(c)]
            for c in self.changes + self.summaries
        ]  # fmt: skip
        headers = ["implementation", "shape", "dtype", "mode", "parameters", f"old x {self.baseline}",
                   f"new x {self.baseline}", "change", "p (grew)", "Holm p", ""]  # fmt: skip
        return tabulate(rows, headers=headers)


def _key(row: dict) -> tuple:
    """What makes two reports' rows the same measurement: implementation, shape, dtype, mode and the loss's
    parameters (a row timed at gamma 0.5 is never compared with one at gamma 2)."""
    shape = row.get("shape_name") or "x".join(map(str, row["shape"]))
    parameters = row.get("parameters")
    if parameters is None:  # a row of before the parameters were data
        parameters = {} if row.get("gamma") is None else {"gamma": row["gamma"]}
    text = ", ".join(f"{name} {value!r}" for name, value in sorted(parameters.items()))
    return (row["implementation"], shape, row["dtype"], row["mode"], text or None)


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


#: A row without samples (a report from before they were kept) is a regression only past this many times the
#: allowance: without samples there is no test, only the threshold.
ROW_FACTOR = 3.0
#: The significance a regression needs: a one-sided Mann-Whitney p-value below this.
ALPHA = 0.01
#: The default allowance of an implementation's geometric mean over its rows (each row has its own, ``max_slowdown``).
MEAN_SLOWDOWN = 0.2


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _ratios(row: dict) -> list[float] | None:
    """The row's per-round ratios, where the report kept its samples."""
    if row.get("samples_s") and row.get("baseline_samples_s"):
        return paired_ratios(row["samples_s"], row["baseline_samples_s"])
    return None


def _family(report: dict) -> str:
    return str((report.get("settings") or {}).get("family", "softmax"))


def _refusal(baseline: dict, new: dict) -> str | None:
    """Why the two reports cannot be judged against each other, or None."""
    if _family(baseline) != _family(new):
        return f"the reports must time one loss family. Got: {_family(baseline)} and {_family(new)}"
    bases = {r.get("baseline") for r in baseline["results"]}, {r.get("baseline") for r in new["results"]}
    if bases[0] and bases[1] and bases[0] != bases[1]:
        return f"the reports must time against one baseline. Got: {sorted(bases[0])} and {sorted(bases[1])}"
    return None


def compare_reports(
    baseline: dict,
    new: dict,
    max_slowdown: float,
    impls: Iterable[str] | None = None,
    max_mean_slowdown: float = MEAN_SLOWDOWN,
    alpha: float = ALPHA,
    allow_unreliable: bool = False,
) -> Comparison:
    """Timing rows of ``impls`` (default: every implementation) and every check, ``baseline`` against ``new``.

    Each (implementation, shape, dtype, mode) row is judged on its own: a regression is a growth of the median
    per-round ratio beyond ``max_slowdown`` that the one-sided Mann-Whitney test of the two runs' per-round ratios
    supports (p < ``alpha``), so a slowdown confined to one shape is caught and one noisy row is not an alarm. An
    implementation's geometric mean over its rows is judged too, against ``max_mean_slowdown``, with the test on all
    its rows' ratios pooled (each row's log-ratios centred on its baseline median): a small slowdown of every shape.
    A row either report flags unreliable is neither a pass nor a regression: it is listed, to be measured again.
    Rows of reports that kept no samples fall back to the ratio alone (``ROW_FACTOR`` times the allowance).

    Raises:
        GateError: the reports time different families or baselines, no timing row is in both, or every compared
            row is unreliable (unless ``allow_unreliable``: a caller that judges them with other rows).
    """
    reason = _refusal(baseline, new)
    if reason is not None:
        raise GateError(reason)
    wanted = set(impls) if impls else None

    def timed(report: dict) -> dict:
        return {
            _key(r): r
            for r in report["results"]
            if r["implementation"] != r["baseline"] and (wanted is None or r["implementation"] in wanted)
        }

    old_rows, new_rows = timed(baseline), timed(new)
    keys = [key for key in old_rows if key in new_rows]
    if not keys:
        which = f" of {', '.join(sorted(wanted))}" if wanted else ""
        raise GateError(f"the reports must share timing rows{which}. Got: none in both ({len(old_rows)} in the "
                        f"baseline, {len(new_rows)} in the new report)")  # fmt: skip
    changes, pooled = [], {}
    for key in keys:
        old, fresh = old_rows[key], new_rows[key]
        unreliable = "; ".join(f"{side}: {row['unreliable']}" for side, row in (("baseline", old), ("new", fresh))
                               if row.get("unreliable")) or None  # fmt: skip
        old_r, new_r = _ratios(old), _ratios(fresh)
        if old_r and new_r:
            tested = shift(old_r, new_r)
            centre = math.log(statistics.median(old_r))
            mine = pooled.setdefault(key[0], ([], []))
            mine[0].extend(math.log(r) - centre for r in old_r)
            mine[1].extend(math.log(r) - centre for r in new_r)
            changes.append(Change(key, float(statistics.median(old_r)), float(statistics.median(new_r)), tested.p_value,
                                  unreliable, tested.low))  # fmt: skip
        else:
            changes.append(Change(key, old["ratio_to_baseline"], fresh["ratio_to_baseline"], None, unreliable))
    summaries = []
    for impl in dict.fromkeys(c.key[0] for c in changes):
        mine = [c for c in changes if c.key[0] == impl and not c.unreliable]
        if not mine:
            continue
        p_value = None
        if impl in pooled and all(c.p_value is not None for c in mine):
            p_value = float(mannwhitneyu(pooled[impl][1], pooled[impl][0], alternative="greater").pvalue)
        # one key whatever the number of reliable rows it spans: a regression of the mean is confirmed by the next
        # measurement even where that one left another row out
        summaries.append(Change((impl, "geometric mean", "", "", ""),
                                _geometric_mean([c.old_ratio for c in mine]),
                                _geometric_mean([c.new_ratio for c in mine]), p_value))  # fmt: skip
    changes, summaries, regressions = judge(changes, summaries, max_slowdown, max_mean_slowdown, alpha)
    if all(c.unreliable for c in changes) and not regressions and not allow_unreliable:
        raise AllUnreliable(f"every compared row is unreliable ({len(changes)}): re-measure. First: "
                        f"{' / '.join(map(str, changes[0].key))}: {changes[0].unreliable}")  # fmt: skip
    broken = []
    for impl, verdicts in new.get("checks", {}).items():
        for check, verdict in verdicts.items():
            old = baseline.get("checks", {}).get(impl, {}).get(check)
            # "xfail" (a declared defect, e.g. newly exercised) and "n/a" are not breaks; "fail" and "xpass" are
            if old == "pass" and verdict in ("fail", "xpass"):
                broken.append((impl, check, old, verdict))
    unmatched = len(set(old_rows) ^ set(new_rows))
    base_name = next(iter({r.get("baseline") for r in new["results"]} - {None}), "cross_entropy")
    return Comparison(changes, regressions, broken, unmatched, summaries, base_name)


def judge(
    changes: list[Change],
    summaries: list[Change],
    max_slowdown: float,
    max_mean_slowdown: float = MEAN_SLOWDOWN,
    alpha: float = ALPHA,
) -> tuple[list[Change], list[Change], list[Change]]:
    """The regressions among ``changes`` (rows) and ``summaries`` (implementations' geometric means), judged together:
    returns (changes, summaries) with their Holm-adjusted p-values, and the regressions.

    A row regressed when its ratio grew beyond ``max_slowdown`` (a mean: ``max_mean_slowdown``) and the growth is
    certain: its one-sided Mann-Whitney p-value, Holm-adjusted over every tested row and mean judged together, is
    below ``alpha`` — so a gate over more rows raises no more false alarms — or even the favourable end of its
    interval is beyond the allowance (however noisy its samples: such a row is a regression even when a report calls
    it unreliable). An unreliable row is otherwise neither a pass nor a regression. Rows without samples are judged by
    the ratio alone, against ``ROW_FACTOR`` times the allowance (a mean: the row allowance).
    """
    tested = [c for c in changes + summaries if c.p_value is not None and not c.unreliable]
    adjusted = dict(zip(map(id, tested), holm([c.p_value for c in tested]), strict=True))

    def with_adjusted(c: Change) -> Change:
        return dataclasses.replace(c, adjusted_p=adjusted.get(id(c)))

    changes, summaries = [with_adjusted(c) for c in changes], [with_adjusted(c) for c in summaries]
    regressions = []
    judged = [(c, max_slowdown, ROW_FACTOR * max_slowdown) for c in changes]
    judged += [(c, max_mean_slowdown, max_slowdown) for c in summaries]
    for c, allowance, untested_allowance in judged:
        if c.p_value is None:
            if not c.unreliable and c.change > untested_allowance:
                regressions.append(c)
        elif c.change > allowance and (c.low > allowance or (not c.unreliable and c.adjusted_p < alpha)):
            regressions.append(c)
    return changes, summaries, regressions


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
               "floor_median_s", "ns_per_logit", "ratio_to_floor", "floor_ns_per_logit", "copy_median_s",
               "copy_ns_per_logit")  # fmt: skip
    rows = []
    for row in merged["results"]:
        key = _key(row)
        present = [k[key] for k in keyed if key in k]
        for field in numeric:
            values = [r[field] for r in present if r.get(field) is not None]
            row[field] = statistics.median(values) if values else None
        row["runs"] = sum(r["runs"] for r in present)
        if all(r.get("samples_s") and r.get("baseline_samples_s") for r in present):
            # the runs' samples pooled, pairs kept: the ratio and its interval are those of all the rounds
            row["samples_s"] = [s for r in present for s in r["samples_s"]]
            row["baseline_samples_s"] = [s for r in present for s in r["baseline_samples_s"]]
            ratios = paired_ratios(row["samples_s"], row["baseline_samples_s"])
            interval, row["unreliable"] = reliability(ratios)
            row["ratio_to_baseline"] = statistics.median(ratios)
            row["ratio_interval"], row["ratio_confidence"] = [interval.low, interval.high], interval.confidence
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
