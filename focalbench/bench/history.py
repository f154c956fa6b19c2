"""The benchmark history: the gated rows timed at every commit of a range, stored per machine kind, and the steps.

**What is timed.** The gate's rows (:func:`focalbench.bench.gated.plan`): every family's product at its representative
shapes in float32 and its half-precision row (the public function, ``Family.product``, as each commit has it: the
registry's name for it may not exist yet at an old commit), each as a ratio to the family's baseline loss
(``F.cross_entropy``, BCE-with-logits) timed in the same process in alternating turns, one thread. Each commit is
installed as :mod:`focalbench.bench.bisect` installs it (``git archive`` + ``pip install --no-deps``) and timed by
:mod:`focalbench.bench.probe` in one process per commit (all rows, ``rounds`` turns of each side, each turn the fastest
of ``inner`` calls; glibc's malloc thresholds fixed as the gate fixes them); the inputs, baselines and keywords are
this checkout's, so every commit sees the same work. A row a commit cannot run (an implementation it does not have
yet) is stored as its error.

**What is stored.** One small JSON per (machine kind, commit): ``<folder>/<machine fingerprint>/<commit>.json``.
Commits whose product source (:mod:`focalbench.bench.product_source`, computed from the commit's git objects, no
install needed) equals an earlier measured commit's share its measurement: their file names it (``measured_by``)
and holds no rows, so a long range costs what its product changes cost. A commit with a file is skipped: a run
interrupted is resumed by running it again.

**Steps.** Each row's series has one point per measurement (commits that share one are one point). A step between
adjacent points must pass three tests, each at ``alpha`` (0.01) Bonferroni-adjusted over the series' adjacent pairs:
the two-sided Mann-Whitney U test of their per-turn ratios (the turns differ); a change of the log median beyond
``z`` times the noise between measurements (:func:`level_noise`: each commit is timed in a process of its own, whose
level moves by a few percent, which the turns of one process cannot show; estimated from the series itself, as
asv estimates its noise from the data); and a change of at least :data:`MIN_STEP` (10 %). Under no change a row's
series then raises a false step with probability about ``alpha`` however long it is (measured in
``tests/test_history.py`` on simulated series of 20 measurements with 3 % process-level shifts: 7 of 400 null rows;
every 10x step and its fix found where they are, a 1.5x step 97 of 100 times, 1.3x 53 of 100).
"""

from __future__ import annotations

import datetime
import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from focalbench.bench.bisect import BisectError, Row, row_job, run_probe, write_job
from focalbench.bench.stats import median_interval, paired_ratios

__all__ = [
    "FORMAT",
    "MIN_STEP",
    "HistoryError",
    "HistoryRow",
    "Point",
    "Step",
    "commit_fingerprint",
    "find_steps",
    "history_rows",
    "level_noise",
    "load",
    "measure_range",
    "series",
]

#: Version of the stored JSON's layout.
FORMAT = 1

#: The smallest change of a row's median ratio named as a step.
MIN_STEP = 0.10


class HistoryError(RuntimeError):
    """A range or folder that cannot be measured or read (one line: why)."""


@dataclass(frozen=True)
class HistoryRow:
    """One gated row: ``impl`` (a ``module:attr`` or a registered name) of ``family`` at ``shape`` on ``dtype``
    logits."""

    family: str
    impl: str
    shape: str
    dtype: str

    @property
    def key(self) -> str:
        """``family/impl/shape/dtype`` (``impl`` without its module): the row's name in the stored JSON."""
        return f"{self.family}/{self.impl.rpartition(':')[2]}/{self.shape}/{self.dtype}"


def history_rows() -> list[HistoryRow]:
    """The gated rows of every registered family (:func:`focalbench.bench.gated.plan`), each of the family's product
    (its recommended implementation where the family names no product function)."""
    from focalbench.arena.family import get_family
    from focalbench.bench.gated import HALF, plan

    gated, _ = plan()
    rows = []
    for g in gated:
        impl = get_family(g.family).product or g.impl
        rows += [HistoryRow(g.family, impl, shape, "float32") for shape in g.shapes]
        if g.half_shape is not None:
            rows.append(HistoryRow(g.family, impl, g.half_shape, HALF))
    return rows


def _git(*args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["git", *args], input=data, capture_output=True)
    if result.returncode != 0:
        raise HistoryError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def commits_of(revision_range: str) -> list[str]:
    """The commits of ``revision_range`` (git's ``A..B``, or one ref for everything up to it) on the first-parent
    path, oldest first."""
    try:
        listed = _git("rev-list", "--first-parent", "--reverse", revision_range, "--").decode().split()
    except HistoryError as error:
        first = str(error).split(": ", 1)[-1].splitlines()[0]
        raise HistoryError(f"RANGE must name commits of this repository. Got: {revision_range!r} ({first})") from None
    if not listed:
        raise HistoryError(f"RANGE must name at least one commit. Got: {revision_range!r} (no commits)")
    return listed


def commit_fingerprint(commit: str) -> str | None:
    """The product source fingerprint of ``commit``, read from its git objects: what
    :func:`~focalbench.bench.product_source.product_source_fingerprint` gives on that commit's installed copy. None
    where the commit has no file of the product's packages (before they existed: such commits share nothing)."""
    from focalbench.bench.product_source import PRODUCT_PACKAGES, fingerprint, is_source

    folders = [name.replace(".", "/") for name in PRODUCT_PACKAGES]
    names = _git("ls-tree", "-r", "--name-only", commit, "--", *folders).decode().splitlines()
    names = sorted(n for n in names if is_source(Path(n)))
    if not names:
        return None
    return fingerprint((name, _git("cat-file", "blob", f"{commit}:{name}")) for name in names)


def _commit_facts(commit: str) -> dict:
    """The commit's hash, date and subject, and its generation (how many commits it reaches, itself included: a
    commit's generation exceeds its parents', which orders a history without git at hand)."""
    sha, date, subject = _git("log", "-1", "--format=%H%x00%cI%x00%s", commit).decode().rstrip("\n").split("\0")
    generation = int(_git("rev-list", "--count", commit).decode())
    return {"commit": sha, "date": date, "subject": subject, "generation": generation}


def machine_kind(threads: int) -> tuple[str, dict]:
    """This machine's fingerprint at ``threads`` torch threads, and the facts it stands for."""
    import torch

    from focalbench.bench.environment import cpu_model, isa, machine_fingerprint
    from focalbench.kernels.build import build_settings

    cpu, isa_name = cpu_model(), isa()
    facts = {"cpu": cpu, "isa": isa_name, "threads": threads, "torch": torch.__version__,
             "kernel_build": build_settings()}  # fmt: skip
    return machine_fingerprint(cpu, isa_name, threads, torch.__version__), facts


def measure_range(
    revision_range: str,
    folder: Path,
    workdir: Path,
    rows: Sequence[HistoryRow] | None = None,
    threads: int = 1,
    rounds: int = 15,
    inner: int = 5,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Time ``rows`` (default :func:`history_rows`) at every commit of ``revision_range`` not yet stored under
    ``folder``; returns the machine kind's folder. ``workdir`` holds the installed commits."""
    rows = list(rows if rows is not None else history_rows())
    say = progress or (lambda message: None)
    kind, facts = machine_kind(threads)
    place = folder / kind
    place.mkdir(parents=True, exist_ok=True)
    measured = {}  # product fingerprint -> the commit whose file holds its rows
    for path in sorted(place.glob("*.json")):
        stored = json.loads(path.read_text())
        if stored.get("rows") is not None and stored.get("product_source"):
            measured.setdefault(stored["product_source"], stored["commit"])
    jobs = [row_job(Row(r.family, r.impl, r.shape, threads, r.dtype), rounds, inner=inner) for r in rows]
    workdir.mkdir(parents=True, exist_ok=True)
    job = workdir / "history-job.pkl"
    write_job(job, {"rows": jobs})
    commits = commits_of(revision_range)
    for number, commit in enumerate(commits, start=1):
        path = place / f"{commit}.json"
        if path.exists():
            continue
        record = {"format": FORMAT, **_commit_facts(commit), "machine": {"fingerprint": kind, **facts}}
        fingerprint = commit_fingerprint(commit)
        record["product_source"] = fingerprint
        if fingerprint is not None and fingerprint in measured:
            record.update(measured_by=measured[fingerprint], rows=None)
            say(f"[{number}/{len(commits)}] {commit[:10]} product source {fingerprint}: "
                f"as {measured[fingerprint][:10]}")  # fmt: skip
        else:
            began = time.perf_counter()
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            record.update(measured_by=commit, rows=_measure_commit(commit, rows, job, workdir),
                          settings={"rounds": rounds, "inner": inner, "threads": threads}, measured_at=now)  # fmt: skip
            if fingerprint is not None:
                measured[fingerprint] = commit
            medians = ", ".join(
                f"{_short_key(key)} {value['median']:.2f}" if "median" in value else f"{_short_key(key)} -"
                for key, value in record["rows"].items()
            )
            say(f"[{number}/{len(commits)}] {commit[:10]} measured in {time.perf_counter() - began:.0f} s: {medians}")
        path.write_text(json.dumps(record, indent=1) + "\n")
    return place


def _short_key(key: str) -> str:
    """A row's key in a progress line: its shape, and its dtype where not float32."""
    family, _, shape, dtype = key.split("/")
    return shape if dtype == "float32" else f"{shape}/{dtype}"


def _measure_commit(commit: str, rows: Sequence[HistoryRow], job: Path, workdir: Path) -> dict:
    from focalbench.bench.ab import ABError, install_commit

    try:
        site = install_commit(commit, workdir)
        out = run_probe(site, job, fixed_malloc=True)
    except (ABError, BisectError) as error:
        return {row.key: {"error": str(error)[-500:]} for row in rows}
    stored = {}
    for row, result in zip(rows, out["rows"], strict=True):
        if "error" in result:
            stored[row.key] = {"error": result["error"]}
            continue
        ratios = paired_ratios(result["samples_s"], result["baseline_samples_s"])
        interval = median_interval(ratios)
        stored[row.key] = {
            "median": statistics.median(ratios),
            "low": interval.low,
            "high": interval.high,
            "ratios": [round(r, 5) for r in ratios],
            "median_s": statistics.median(result["samples_s"]),
            "baseline_median_s": statistics.median(result["baseline_samples_s"]),
        }
    return stored


def load(place: Path) -> list[dict]:
    """The stored commits of one machine kind's folder in commit order (by generation: a parent before its child),
    each with its rows resolved (a commit that shares a measurement gets that measurement's rows).

    Raises:
        HistoryError: the folder holds no history, or a file of another layout.
    """
    records = {}
    for path in place.glob("*.json"):
        stored = json.loads(path.read_text())
        if stored.get("format") != FORMAT:
            raise HistoryError(f"{path} must be a history file of format {FORMAT}. Got: {stored.get('format')!r}")
        records[stored["commit"]] = stored
    if not records:
        raise HistoryError(f"{place} must hold history files (<commit>.json). Got: none")
    for record in records.values():
        if record.get("rows") is None:
            source = records.get(record["measured_by"])
            record["rows"] = source["rows"] if source else {}
    return sorted(records.values(), key=lambda r: (r["generation"], r["date"]))


@dataclass(frozen=True)
class Point:
    """One measurement in a row's series: the commits that share it (the first measured it), its per-turn ratios."""

    commits: tuple[dict, ...]
    ratios: tuple[float, ...]
    median: float
    low: float
    high: float

    @property
    def commit(self) -> dict:
        return self.commits[0]


@dataclass(frozen=True)
class Step:
    """A step of a row between two adjacent points: ``change`` of the median ratio, its adjusted p-value."""

    row: str
    before: Point
    after: Point
    change: float
    p_value: float

    def line(self) -> str:
        direction = "slower" if self.change > 0 else "faster"
        commit = self.after.commit
        return (f"{self.row}: {commit['commit'][:10]} {direction} {self.before.median:.2f} -> {self.after.median:.2f} "
                f"({100 * self.change:+.0f}%, adjusted p = {self.p_value:.2g})  {commit['subject'][:60]}")  # fmt: skip


def series(records: Sequence[dict], row: str) -> list[Point]:
    """``row``'s points in commit order: consecutive commits that share a measurement are one point; commits where
    the row has no timing (an error, or not measured) are left out."""
    points: list[Point] = []
    current: list[dict] = []
    measured_by = None
    for record in records:
        value = record["rows"].get(row)
        if not value or "ratios" not in value:
            continue
        if record["measured_by"] == measured_by:
            current.append(record)
            continue
        if current:
            points.append(_point(current, row))
        current, measured_by = [record], record["measured_by"]
    if current:
        points.append(_point(current, row))
    return points


def _point(records: list[dict], row: str) -> Point:
    value = records[0]["rows"][row]
    facts = tuple({k: r[k] for k in ("commit", "date", "subject")} for r in records)
    return Point(facts, tuple(value["ratios"]), value["median"], value["low"], value["high"])


def find_steps(points: Sequence[Point], row: str, alpha: float = 0.01, min_step: float = MIN_STEP) -> list[Step]:
    """The steps of one row's series (module docstring): adjacent points whose per-turn ratios differ by the
    two-sided Mann-Whitney U test at Bonferroni-adjusted ``alpha``, whose medians are at least ``min_step`` apart,
    and whose change is beyond the noise between measurements (:func:`level_noise`) at the same adjusted level."""
    import math

    from scipy.stats import mannwhitneyu, norm, t

    pairs = len(points) - 1
    if pairs < 1:
        return []
    # two-sided, Bonferroni over the series' adjacent pairs; Student's t where the noise is estimated from the series
    level = alpha / (2 * pairs)
    z = float(t.isf(level, df=pairs) if pairs >= 5 else norm.isf(level))
    beyond = z * level_noise(points)
    steps = []
    for before, after in zip(points, points[1:], strict=False):
        change = after.median / before.median - 1
        p_value = min(1.0, pairs * float(mannwhitneyu(after.ratios, before.ratios, alternative="two-sided").pvalue))
        if abs(change) >= min_step and p_value < alpha and abs(math.log(after.median / before.median)) > beyond:
            steps.append(Step(row, before, after, change, p_value))
    return steps


#: The noise between measurements assumed where a series is too short to estimate it (log units: about 3 %).
PRIOR_LEVEL_NOISE = 0.03


def level_noise(points: Sequence[Point]) -> float:
    """The standard deviation of the change of a row's log median from one measurement to the next under no real
    change: each commit is timed in a process of its own, whose level differs by a few percent (code layout, the
    machine's state), which the per-turn test cannot see. Estimated from the series itself, robustly (1.4826 x the
    median absolute successive difference of the log medians: a few real steps do not move it), never below
    :data:`PRIOR_LEVEL_NOISE`'s value for series of fewer than 6 points, nor below 1 %."""
    import math

    diffs = sorted(abs(math.log(b.median / a.median)) for a, b in zip(points, points[1:], strict=False))
    if len(diffs) < 5:
        return PRIOR_LEVEL_NOISE
    return max(0.01, 1.4826 * statistics.median(diffs))
