"""Find the commit that made a row slower: git bisect's search over a commit range, each step a timed comparison.

A row is an implementation at one of its family's shapes, timed forward+backward as a ratio to the family's baseline
loss (float32 on the CPU). The good commit is the reference: every step times it and the candidate commit in
alternating probe processes (good, candidate, candidate, good, ...: asv's ``continuous`` practice, so a slow spell of
a shared machine lands on both), pools each side's per-round ratios, and calls the candidate *bad* when its median
ratio grew by more than ``threshold`` over the good commit's, surely: the one-sided Mann-Whitney test says so
(p < ``alpha``) or the growth's interval lies beyond the threshold
(:meth:`~focalbench.bench.stats.Shift.slower_beyond`). Before searching, the bad commit is judged the same way: a range
whose end is not bad has nothing to find. The search assumes one step (a commit after which the row stays slow), as
``git bisect`` does.

Each commit is installed once (``git archive`` + ``pip install --no-deps`` into a directory of its own, reused by
later steps) and timed by :mod:`focalbench.bench.probe` in a process where ``focalbench`` is that commit; its C
kernel is built on first use and cached by its source, so a commit's kernel is built once. The inputs, the baseline
and the call's keywords come from this checkout's family record, so every commit is timed on the same inputs.
"""

from __future__ import annotations

import json
import pickle
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from focalbench.bench.ab import ABError, install_commit
from focalbench.bench.stats import paired_ratios, shift

__all__ = ["BisectError", "Judgement", "Outcome", "Row", "bisect", "commit_range", "row_job", "run_probe", "write_job"]


class BisectError(RuntimeError):
    """A range or row that cannot be bisected (one line: why)."""


@dataclass(frozen=True)
class Row:
    """What is timed: ``impl`` (a registered name or ``module:attr``) of ``family`` at the family's shape ``shape``,
    on logits of ``dtype`` (a torch dtype's name)."""

    family: str
    impl: str
    shape: str
    threads: int = 1
    dtype: str = "float32"


@dataclass(frozen=True)
class Judgement:
    """One commit against the good one: median ratios to the baseline, the change, its p-value, the verdict."""

    commit: str
    subject: str
    good_ratio: float
    ratio: float
    p_value: float
    bad: bool
    seconds: float

    @property
    def change(self) -> float:
        return self.ratio / self.good_ratio - 1

    def line(self) -> str:
        verdict = "BAD" if self.bad else "good"
        return (f"{self.commit[:10]} {verdict:4}  ratio {self.good_ratio:.2f} -> {self.ratio:.2f} "
                f"({100 * self.change:+.0f}%, p = {self.p_value:.2g})  {self.subject[:70]}")  # fmt: skip


@dataclass
class Outcome:
    """The first bad commit, the judgements in the order they were made, the range's size and the time taken."""

    first_bad: str
    subject: str
    steps: list[Judgement] = field(default_factory=list)
    candidates: int = 0
    seconds: float = 0.0


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BisectError(f"git {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout.strip()


def commit_range(good: str, bad: str) -> list[str]:
    """The commits after ``good`` up to ``bad`` on the first-parent path between them, oldest first (bad last).

    Raises:
        BisectError: a ref is unknown, or ``good`` is not an ancestor of ``bad``.
    """
    good_sha = _git("rev-parse", "--verify", f"{good}^{{commit}}")
    bad_sha = _git("rev-parse", "--verify", f"{bad}^{{commit}}")
    if subprocess.run(["git", "merge-base", "--is-ancestor", good_sha, bad_sha]).returncode != 0:
        raise BisectError(f"--good must be an ancestor of --bad. Got: {good} ({good_sha[:10]}) and {bad} "
                          f"({bad_sha[:10]})")  # fmt: skip
    listed = _git("rev-list", "--first-parent", "--ancestry-path", "--reverse", f"{good_sha}..{bad_sha}")
    commits = listed.split()
    if not commits:
        raise BisectError(f"--good and --bad must differ. Got: {good_sha[:10]} for both")
    return commits


def row_job(row: Row, rounds: int, warmup: int = 2, inner: int = 5) -> dict:
    """The probe's job for ``row``: this checkout's inputs, baseline and call keywords; each of the ``rounds`` samples
    of a side the fastest of ``inner`` calls (:mod:`focalbench.bench.probe`).

    Raises:
        BisectError: the shape is neither one of the family's nor like 4096x20.
    """
    import torch

    from focalbench.arena.family import get_family
    from focalbench.bench.runner import select_shapes

    family = get_family(row.family)
    try:
        (shape,) = select_shapes([row.shape], quick=False, family=row.family)
    except ValueError as error:
        raise BisectError(str(error)) from error
    logits, target = family.workload.inputs(shape, getattr(torch, row.dtype), "cpu")
    # the keywords the family's timings pass an implementation, read off its call with a recorder
    keywords = family.workload.call(lambda x, t, **kw: kw, logits, target, dict(family.parameters))
    return {
        "impl": row.impl,
        "logits": logits,
        "target": target,
        "baseline": family.workload.baseline_loss,
        "keywords": keywords,
        "rounds": rounds,
        "warmup": warmup,
        "inner": inner,
        "threads": row.threads,
    }


def write_job(path: Path, job: dict) -> None:
    """Pickle ``job`` (one :func:`row_job`, or ``{"rows": [...]}`` of several) into the probe's job file ``path``.

    Raises:
        BisectError: a family's baseline loss cannot be pickled.
    """
    try:
        data = pickle.dumps(job)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise BisectError(f"a family's baseline loss must be picklable (a function or a functools.partial) to time "
                          f"old commits. Got: {error}") from error  # fmt: skip
    path.write_bytes(data)


#: glibc's malloc thresholds fixed as .ci/gate fixes them: a large tensor's buffer is reused between calls instead of
#: being mapped afresh (and page-faulted) at each one, whose cost would depend on the allocation pattern of the code.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=8589934592"


def run_probe(site: Path, job: Path, fixed_malloc: bool = False) -> dict:
    """One probe process of the commit installed at ``site`` on the job file ``job``: the probe's output
    (``fixed_malloc``: with :data:`MALLOC_TUNABLES`).

    Raises:
        BisectError: the probe process failed.
    """
    import os
    import tempfile

    from focalbench.bench.probe import command

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if fixed_malloc:
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), MALLOC_TUNABLES]))
    result = subprocess.run(command(str(job)), env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if result.returncode != 0:
        raise BisectError(f"timing the commit at {site} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _probe(site: Path, job: Path) -> list[float]:
    """One probe process of the commit installed at ``site``: its per-round ratios to the baseline."""
    out = run_probe(site, job)
    return paired_ratios(out["samples_s"], out["baseline_samples_s"])


class _Sites:
    """Each commit installed once, on first use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sites: dict[str, Path] = {}

    def __call__(self, commit: str) -> Path:
        if commit not in self.sites:
            try:
                self.sites[commit] = install_commit(commit, self.workdir)
            except ABError as error:
                raise BisectError(str(error)) from error
        return self.sites[commit]


def bisect(
    row: Row,
    good: str,
    bad: str,
    workdir: Path,
    threshold: float = 0.5,
    pairs: int = 3,
    rounds: int = 7,
    alpha: float = 0.01,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """The first commit after ``good`` (up to ``bad``) where ``row``'s ratio grew beyond ``threshold``.

    ``pairs`` probe processes of each side per judgement, ``rounds`` timed calls of each in a probe.

    Raises:
        BisectError: a bad range or row, a commit that cannot be installed or timed, or a bad commit that is not
            slower than the good one.
    """
    start = time.perf_counter()
    commits = commit_range(good, bad)
    good_sha = _git("rev-parse", f"{good}^{{commit}}")
    job = workdir / "job.pkl"
    write_job(job, row_job(row, rounds))
    site = _Sites(workdir)
    say = progress or (lambda message: None)
    steps: list[Judgement] = []

    def judge(commit: str) -> Judgement:
        began = time.perf_counter()
        good_ratios: list[float] = []
        ratios: list[float] = []
        for p in range(pairs):
            for side in ("good", "candidate") if p % 2 == 0 else ("candidate", "good"):
                if side == "good":
                    good_ratios += _probe(site(good_sha), job)
                else:
                    ratios += _probe(site(commit), job)
        tested = shift(good_ratios, ratios)
        judgement = Judgement(
            commit,
            _git("log", "-1", "--format=%s", commit),
            statistics.median(good_ratios),
            statistics.median(ratios),
            tested.p_value,
            tested.slower_beyond(threshold, alpha),
            time.perf_counter() - began,
        )
        steps.append(judgement)
        say(f"step {len(steps)}: {judgement.line()}  [{judgement.seconds:.0f} s]")
        return judgement

    say(f"{len(commits)} commit(s) after {good_sha[:10]}; judging the bad end first")
    if not judge(commits[-1]).bad:
        raise BisectError(f"the row is not slower at {bad} than at {good} beyond {100 * threshold:.0f}% "
                          f"({steps[-1].line()}): nothing to bisect")  # fmt: skip
    low, high = -1, len(commits) - 1  # commits[low] good (-1: the good commit), commits[high] bad
    while high - low > 1:
        middle = (low + high) // 2
        if judge(commits[middle]).bad:
            high = middle
        else:
            low = middle
    first = commits[high]
    return Outcome(first, _git("log", "-1", "--format=%s", first), steps, len(commits), time.perf_counter() - start)
