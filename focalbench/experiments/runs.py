"""Run an experiment's independent training runs, in this process, in worker processes or on a Dask cluster, with a
progress bar.

Each run is a picklable task handed to a top-level function; everything random in a run derives from the seed in its
task, so the results do not depend on how many workers there are, which worker ran a run or in which order the runs
finish (the rows come back in the order of the tasks; the tests compare ``jobs=1`` with ``jobs=2``, and the local
process pool with a Dask cluster, bit for bit). Local workers are started with ``spawn`` (a forked OpenMP runtime can
hang) and run one torch thread each unless told otherwise.

The runs go through a :class:`concurrent.futures.Executor` chosen by name (:func:`parse_executor`):

* ``local`` (the default): ``jobs`` worker processes of this machine (:class:`~concurrent.futures.ProcessPoolExecutor`),
  or this process when ``jobs`` is 1;
* ``dask://HOST:PORT``: the workers of the Dask scheduler at ``tcp://HOST:PORT`` (``dask scheduler``; ``dask worker
  tcp://HOST:PORT --nworkers N --nthreads 1``); each worker needs this focalbench version with the ``experiments``
  extra installed, since it imports the run's function by name;
* ``dask-local``: a Dask ``LocalCluster`` of ``jobs`` worker processes of one thread, started for the runs and closed
  after them.

Dask (``distributed``, in the ``experiments`` extra) is imported only when a Dask executor is chosen. On a Dask worker
each run sets its torch threads itself and runs alone in its process (a worker started with several threads runs its
runs one after the other: a run seeds torch's global generator while it builds its model).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = [
    "EXECUTORS", "SchedulerUnreachable", "choose", "default_jobs", "map_runs", "open_executor", "parse_executor",
    "run_environment",
]  # fmt: skip

#: the executors :func:`map_runs` accepts, in the words of its error messages
EXECUTORS = "local, dask-local or dask://HOST:PORT (a Dask scheduler's address)"
DASK_INSTALL_HINT = "pip install 'focalbench[experiments]' (in a checkout: pip install -e \".[experiments]\")"


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


def parse_executor(value: object) -> str:
    """``value`` checked to name an executor of :data:`EXECUTORS`, and written the one way: ``local``, ``dask-local``
    or ``dask://HOST:PORT`` (the port a number in 1..65535).

    Example:
        >>> parse_executor("local"), parse_executor("dask://scheduler.lan:8786"), parse_executor("dask://[::1]:8786")
        ('local', 'dask://scheduler.lan:8786', 'dask://[::1]:8786')
        >>> parse_executor("dask://scheduler.lan")
        Traceback (most recent call last):
        ...
        ValueError: executor must be local, dask-local or dask://HOST:PORT (a Dask scheduler's address). Got: 'dask://scheduler.lan'
    """  # noqa: E501
    if value in ("local", "dask-local"):
        return value  # type: ignore[return-value]
    if isinstance(value, str) and value.startswith("dask://"):
        try:
            parts = urllib.parse.urlsplit(value)
            port = parts.port
        except ValueError:  # a port that is not a number in 0..65535
            port = None
        if (port is not None and port > 0 and parts.hostname and not (parts.username or parts.password)
                and not (parts.path or parts.query or parts.fragment)):  # fmt: skip
            return value
    raise ValueError(f"executor must be {EXECUTORS}. Got: {value!r}")


class SchedulerUnreachable(OSError):
    """No Dask scheduler answered at a ``dask://HOST:PORT`` executor's address."""


def _scheduler_address(executor: str) -> str:
    """``dask://HOST:PORT`` -> ``tcp://HOST:PORT``."""
    return "tcp://" + executor.removeprefix("dask://")


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


_ONE_RUN_AT_A_TIME = threading.Lock()


def _call(function: Callable, threads: int, /, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` at ``threads`` torch threads, alone in this process: how a run is called on a
    Dask worker, whose threads and process are not the suite's to set up."""
    with _ONE_RUN_AT_A_TIME:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)


class _DaskExecutor(concurrent.futures.Executor):
    """A :class:`concurrent.futures.Executor` over a ``distributed.Client``: each :meth:`submit` is a
    ``client.submit`` of the call at ``threads`` torch threads (:func:`_call`), its result landing in a
    :class:`concurrent.futures.Future` (so ``as_completed`` works as with a process pool, and cancelling that future
    cancels the Dask task). :meth:`shutdown` closes the client, then the cluster if this executor started it."""

    def __init__(self, client: Any, cluster: Any = None, threads: int = 1) -> None:
        self._client, self._cluster, self._threads = client, cluster, threads

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        # pure=False: two identical calls are two runs, never one result reused
        remote = self._client.submit(_call, fn, self._threads, *args, pure=False, **kwargs)
        local: concurrent.futures.Future = concurrent.futures.Future()

        def landed(done: Any) -> None:  # called in distributed's callback thread
            if not local.set_running_or_notify_cancel():
                return  # cancelled here: nobody waits for it
            try:
                if done.status == "finished":
                    local.set_result(done.result())
                elif done.status == "error":
                    local.set_exception(done.exception())
                else:
                    local.set_exception(concurrent.futures.CancelledError(f"Dask task {done.key}: {done.status}"))
            except BaseException as error:  # the result could not be fetched (a lost worker, a closed client)
                local.set_exception(error)

        local.add_done_callback(lambda f: remote.cancel() if f.cancelled() else None)
        remote.add_done_callback(landed)
        return local

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def open_executor(executor: str, *, jobs: int = 1, threads: int = 1) -> concurrent.futures.Executor:
    """The executor ``executor`` names (:func:`parse_executor`), running each submitted call at ``threads`` torch
    threads; use it in a ``with`` block (it closes what it opened).

    ``local``: a spawn :class:`~concurrent.futures.ProcessPoolExecutor` of ``jobs`` workers; ``dask-local``: a new
    Dask ``LocalCluster`` of ``jobs`` worker processes of one thread; ``dask://HOST:PORT``: a client of the scheduler
    at ``tcp://HOST:PORT`` (``jobs`` is not used).

    Raises:
        ValueError: a bad ``executor`` (:data:`EXECUTORS`).
        MissingExtra: a Dask executor, and ``distributed`` is not installed (the message says how to install it).
        SchedulerUnreachable: no Dask scheduler answered at the address (an :class:`OSError`).
    """
    executor = parse_executor(executor)
    if executor == "local":
        return concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_set_threads, initargs=(threads,))  # fmt: skip
    from focalbench.experiments.digits import MissingExtra

    try:
        import distributed
    except ImportError as error:
        raise MissingExtra(f"executor {executor!r} needs dask[distributed] (not installed): "
                           f"{DASK_INSTALL_HINT}") from error  # fmt: skip
    if executor == "dask-local":
        # dashboard_address ":0": a free port (the scheduler serves HTTP even without a dashboard; 8787 may be taken)
        cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")  # fmt: skip
        try:
            return _DaskExecutor(distributed.Client(cluster), cluster, threads)
        except BaseException:
            cluster.close()
            raise
    address = _scheduler_address(executor)
    try:
        client = distributed.Client(address)
    except OSError as error:
        raise SchedulerUnreachable(f"executor {executor!r}: no Dask scheduler answered at {address} "
                                   f"({error})") from error  # fmt: skip
    return _DaskExecutor(client, None, threads)


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
    executor: str = "local",
) -> list[dict]:
    """``[function(task) for task in tasks]``, in ``jobs`` processes of ``threads`` torch threads each, or on a Dask
    cluster.

    Args:
        function: a module-level function (workers import it by name); returns a result row.
        tasks: picklable arguments, one run each.
        jobs: worker processes; 1 runs everything here, in order (``local``). Default: 1.
        threads: torch threads per run (restored afterwards when ``jobs`` is 1). Default: 1.
        description: the progress bar's label.
        progress: called with ``"  [done/total] " + describe(row)`` after each finished run (in finishing order).
        describe: one run's result row in a few words (its condition, seed and metrics).
        bar: show a tqdm bar on stderr when it is a terminal (and tqdm is installed). Default: True.
        executor: where the runs go, one of :data:`EXECUTORS` (:func:`open_executor`): ``local`` (``jobs``
            processes here), ``dask-local`` (a Dask ``LocalCluster`` of ``jobs`` processes) or ``dask://HOST:PORT``
            (the cluster's workers; ``jobs`` is not used). Default: ``local``.

    Returns:
        The rows in the order of ``tasks``, whichever executor ran them and whichever order they finished in.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1. Got: {jobs!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1. Got: {threads!r}")
    executor = parse_executor(executor)
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
        if total == 0 or (executor == "local" and (jobs == 1 or total <= 1)):
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for index, task in enumerate(tasks):
                    finished(index, function(task), index + 1)
            finally:
                torch.set_num_threads(previous)
        else:
            with open_executor(executor, jobs=min(jobs, max(total, 1)), threads=threads) as pool:
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
