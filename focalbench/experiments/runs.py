"""Run an experiment's independent training runs, in this process or in worker processes, with a progress bar.

Each run is a picklable task handed to a top-level function; everything random in a run derives from the seed in its
task, so the results do not depend on how many workers there are or in which order the runs finish (the tests
compare ``jobs=1`` with ``jobs=2`` bit for bit). Workers are started with ``spawn`` (a forked OpenMP runtime can hang)
and run one torch thread each unless told otherwise.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["choose", "default_jobs", "map_runs", "run_environment"]


def choose(name: str, given: Iterable | None, known: Sequence) -> list:
    """The conditions to run: ``given`` (default: all of ``known``), checked to be a non-empty list of distinct names
    from ``known``.

    Example:
        >>> choose("losses", None, ("ce", "gamma2")), choose("losses", ["gamma2"], ("ce", "gamma2"))
        (['ce', 'gamma2'], ['gamma2'])
    """
    chosen = list(known if given is None else given)
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"{name} must be a non-empty list without repeats from {', '.join(map(str, known))}. "
                         f"Got: {chosen!r}")  # fmt: skip
    return chosen


def run_environment(threads: int = 1) -> dict:
    """The environment (:func:`focalbench.bench.environment.environment` on the CPU) as each run sees it: threads and
    the machine fingerprint taken at the runs' ``threads`` torch threads (restored afterwards)."""
    from focalbench.bench.environment import environment

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return environment("cpu")
    finally:
        torch.set_num_threads(previous)


def default_jobs() -> int:
    """The CPUs this process may use (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _bar(total: int, description: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the experiments extra brings tqdm; without it, no bar (the finished lines still print)
        return None
    # disable=None: drawn on a terminal only (a CI log gets the finished lines, not a bar redrawn into it)
    return tqdm(total=total, desc=description, file=sys.stderr, disable=None if enabled else True, dynamic_ncols=True,
                leave=False)  # fmt: skip


def map_runs(
    function: Callable[[Any], dict],
    tasks: Sequence[Any],
    *,
    jobs: int = 1,
    threads: int = 1,
    description: str = "runs",
    progress: Callable[[str], None] | None = None,
    describe: Callable[[dict], str] = lambda row: "done",
    bar: bool = True,
) -> list[dict]:
    """``[function(task) for task in tasks]``, in ``jobs`` processes of ``threads`` torch threads each.

    Args:
        function: a module-level function (workers import it by name); returns a result row.
        tasks: picklable arguments, one run each.
        jobs: worker processes; 1 runs everything here, in order. Default: 1.
        threads: torch threads per run (restored afterwards when ``jobs`` is 1). Default: 1.
        description: the progress bar's label.
        progress: called with ``"  [done/total] " + describe(row)`` after each finished run (in finishing order).
        describe: one run's result row in a few words (its condition, seed and metrics).
        bar: show a tqdm bar on stderr when it is a terminal (and tqdm is installed). Default: True.

    Returns:
        The rows in the order of ``tasks``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1. Got: {jobs!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1. Got: {threads!r}")
    total = len(tasks)
    rows: list[dict | None] = [None] * total
    status = _bar(total, description, bar)

    def finished(index: int, row: dict, done: int) -> None:
        rows[index] = row
        if status is not None:
            status.update(1)
        if progress is not None:
            line = f"  [{done}/{total}] {describe(row)}"
            if status is None:
                progress(line)
            else:  # a line printed while the bar is drawn: the bar steps aside and redraws below it
                with status.external_write_mode(file=sys.stderr):
                    progress(line)

    try:
        if jobs == 1 or total <= 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for index, task in enumerate(tasks):
                    finished(index, function(task), index + 1)
            finally:
                torch.set_num_threads(previous)
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=min(jobs, total), mp_context=context, initializer=_set_threads, initargs=(threads,)
            ) as pool:
                futures = {pool.submit(function, task): index for index, task in enumerate(tasks)}
                try:
                    for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                        finished(futures[future], future.result(), done)
                except BaseException:  # Ctrl-C or a failed run: drop the queued runs instead of finishing them
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        if status is not None:
            status.close()
    return rows  # type: ignore[return-value]
