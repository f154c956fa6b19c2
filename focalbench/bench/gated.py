"""What the speed gate times and how: the gated rows of every family, measured against a stored baseline or against a
base commit, judged in one verdict.

**The gated rows** come from the family records (:func:`plan`), never from a list here: for every registered family,
its recommended implementation (the one that mirrors the product) at each of its representative shapes in float32,
and the half-precision path the product runs (bfloat16) at the family's first shape; a user's implementation in its
family instead, where one is named. A family registered later is gated by being registered.

**Baselines** are stored one per family and machine kind: ``results/baselines/<family>/<machine fingerprint>.json``,
the per-row medians of several runs (:func:`record`). The gate compares within one machine kind only.

**One verdict** for the run: every family's rows and means are judged together (:func:`focalbench.bench.gate.judge`:
Holm-adjusted over all of them, so more families do not mean more false alarms), every regressed row is named.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from focalbench.bench.ab import run_alternating, run_once
from focalbench.bench.gate import AllUnreliable, Change, GateError, compare_reports, judge, merge_reports

__all__ = ["HALF", "Gated", "Verdict", "baseline_path", "compare_all", "measure", "measure_ab", "plan", "record"]

#: The half-precision dtype the product's CPU path is gated in (it computes in float32 from bfloat16 logits).
HALF = "bfloat16"


@dataclass(frozen=True)
class Gated:
    """One family's gated rows: ``impl`` at ``shapes`` in float32 and at ``half_shape`` in :data:`HALF`."""

    family: str
    impl: str
    shapes: tuple[str, ...]
    half_shape: str | None

    def run_args(self) -> list[list[str]]:
        """The ``focalbench run`` argument lists that time these rows (each a quick run without checks)."""
        common = ["--family", self.family, "--impl", self.impl, "--quick", "--skip-checks"]
        runs = [[*common, "--dtype", "float32", *[a for s in self.shapes for a in ("--shape", s)]]]
        if self.half_shape is not None:
            runs.append([*common, "--dtype", HALF, "--shape", self.half_shape])
        return runs

    def rows(self) -> int:
        return len(self.shapes) + (self.half_shape is not None)


def plan(impl: str | None = None, families: Sequence[str] | None = None) -> tuple[list[Gated], list[str]]:
    """The gated rows of every registered family (or of ``families``), and why a family is not gated here (its
    recommended implementation unavailable on this machine).

    ``impl``: gate this implementation (a registered name or a user's ``module:attr``) in its family instead of every
    family's recommended one."""
    import torch

    from focalbench.arena.family import families as registered
    from focalbench.arena.family import get_family
    from focalbench.arena.registry import get_implementation, load_implementation, unavailable_implementations

    skipped = []
    if impl is not None:
        loaded = load_implementation(impl, families[0] if families else None)
        chosen = [(get_family(loaded.family), impl, loaded)]
    else:
        chosen = []
        for family in registered().values():
            if families and family.name not in families:
                continue
            try:
                chosen.append((family, family.recommended, get_implementation(family.recommended)))
            except ValueError:
                reason = unavailable_implementations().get(family.recommended, "not registered")
                skipped.append(f"{family.name}: {family.recommended} is unavailable here ({reason})")
    gated = []
    for family, name, implementation in chosen:
        shapes = tuple(s.name for s in family.workload.shapes if not s.sweep)
        half = shapes[0] if implementation.supports(device="cpu", dtype=getattr(torch, HALF)) is None else None
        gated.append(Gated(family.name, name, shapes, half))
    return gated, skipped


def baseline_path(root: Path, family: str, fingerprint: str) -> Path:
    """Where the baseline of ``family`` for the machine kind ``fingerprint`` lives under ``root`` (the checkout)."""
    return root / "results" / "baselines" / family / f"{fingerprint}.json"


def _combined(reports: list[dict]) -> dict:
    """One report of one family from several runs of different rows (float32 shapes, the half-precision one)."""
    combined = copy.deepcopy(reports[0])
    for other in reports[1:]:
        combined["results"] += copy.deepcopy(other["results"])
    return combined


def measure(gated: Sequence[Gated], site: Path | None = None, workdir: Path | None = None) -> dict[str, dict]:
    """One quick run of every family's gated rows, of the installed focalbench (or the one installed at ``site``):
    a report per family."""
    from focalbench.bench.report import read_report

    if workdir is None:  # the reports are read before returning: a directory of their own, removed after
        with tempfile.TemporaryDirectory(prefix="focalbench-gate-") as directory:
            return measure(gated, site, Path(directory))
    reports = {}
    for rows in gated:
        runs = []
        for number, args in enumerate(rows.run_args()):
            output = workdir / f"{rows.family}-{number}"
            output.mkdir(parents=True, exist_ok=True)
            runs.append(read_report(run_once(site, output, args)))
        reports[rows.family] = _combined(runs)
    return reports


def measure_ab(
    gated: Sequence[Gated],
    base_site: Path,
    new_site: Path | None,
    workdir: Path,
    rounds: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, tuple[dict, dict]]:
    """Every family's gated rows of two commits, ``rounds`` runs each in alternating order: (base, new) per family."""
    pairs = {}
    for rows in gated:
        base_runs, new_runs = [], []
        for number, args in enumerate(rows.run_args()):
            say = None if progress is None else (lambda m, f=rows.family: progress(f"{f}: {m}"))
            base, new = run_alternating(base_site, new_site, workdir / f"{rows.family}-{number}", rounds, args, say)
            base_runs.append(base)
            new_runs.append(new)
        pairs[rows.family] = (_combined(base_runs), _combined(new_runs))
    return pairs


def record(gated: Sequence[Gated], runs: int, workdir: Path | None = None) -> dict[str, dict]:
    """A baseline per family: the per-row medians of ``runs`` quick runs (each run's samples pooled)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1. Got: {runs}")
    measured = [measure(gated, workdir=workdir) for _ in range(runs)]
    return {rows.family: merge_reports([m[rows.family] for m in measured]) for rows in gated}


@dataclass(frozen=True)
class Verdict:
    """Every family's comparison judged together: the rows and means (Holm-adjusted), the regressions, the rows that
    stay unreliable, the checks that broke."""

    changes: list[Change]
    summaries: list[Change]
    regressions: list[Change]
    broken_checks: list[tuple[str, str, str, str]]
    baselines: dict[str, str]  # family -> its baseline loss's name
    unmatched: int = 0  # rows in only one of a family's two reports (a gated row the baseline lacks: re-record it)

    @property
    def unreliable(self) -> list[Change]:
        return [c for c in self.changes if c.unreliable and c not in self.regressions]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or self.broken_checks else 0


def compare_all(
    pairs: dict[str, tuple[dict, dict]],
    max_slowdown: float,
    max_mean_slowdown: float,
    impls: dict[str, str] | None = None,
) -> Verdict:
    """(baseline, new) reports per family, judged in one verdict.

    Raises:
        AllUnreliable: every row of the run is unreliable (measure again).
        GateError: a family's reports cannot be judged against each other (a refusal).
    """
    changes: list[Change] = []
    summaries: list[Change] = []
    broken = []
    baselines = {}
    unmatched = 0
    for family, (old, new) in pairs.items():
        wanted = [impls[family]] if impls and family in impls else None
        try:  # unreliable rows of one family are judged below with the others': not a refusal
            comparison = compare_reports(old, new, max_slowdown, wanted, max_mean_slowdown=max_mean_slowdown,
                                         allow_unreliable=True)  # fmt: skip
        except GateError as error:
            raise GateError(f"{family}: {error}") from error
        changes += [_in_family(c, family) for c in comparison.changes]
        summaries += [_in_family(c, family) for c in comparison.summaries]
        broken += comparison.broken_checks
        baselines[family] = comparison.baseline
        unmatched += comparison.unmatched
    changes, summaries, regressions = judge(changes, summaries, max_slowdown, max_mean_slowdown)
    if all(c.unreliable for c in changes) and not regressions:
        raise AllUnreliable(f"every compared row is unreliable ({len(changes)}): re-measure")
    return Verdict(changes, summaries, regressions, broken, baselines, unmatched)


def _in_family(change: Change, family: str) -> Change:
    """The change with its family first in its key (rows of several families in one table)."""
    return dataclasses.replace(change, key=(family, *change.key))
