"""The free-core measure behind `focalbench run`'s "threads on about N free cores" warning: the CPUs' idle share now,
from two readings of /proc/stat, not the load average of the last minute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from focalbench.bench import cpu_load
from focalbench.bench.cpu_load import cpu_times, free_cores, free_cores_between

# user nice system idle iowait irq softirq steal guest guest_nice, then one line per CPU (ignored)
BEFORE = "cpu  1000 20 300 8000 500 10 20 5 40 0\ncpu0 500 10 150 4000 250 5 10 3 20 0\nintr 12345\n"
# 200 ticks of work (user 150, system 30, irq 10, softirq 10), 200 idle and iowait: half of every CPU
AFTER = "cpu  1150 20 330 8150 550 20 30 5 90 0\ncpu0 575 10 165 4075 275 10 15 3 45 0\nintr 12400\n"


class Snapshots:
    """A stand-in for /proc/stat that reads as the next snapshot each time."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def read_text(self) -> str:
        return self.texts.pop(0)


def test_cpu_times_counts_idle_and_iowait_as_free_and_guest_time_once() -> None:
    # total: the first eight fields (guest is inside user already); busy: the total less idle and iowait
    assert cpu_times(BEFORE) == (1000 + 20 + 300 + 10 + 20 + 5, 1000 + 20 + 300 + 8000 + 500 + 10 + 20 + 5)


def test_free_cores_between_two_snapshots_is_the_idle_share_of_every_cpu() -> None:
    assert free_cores_between(BEFORE, AFTER, cpu_count=2) == pytest.approx(1.0)
    assert free_cores_between(BEFORE, AFTER, cpu_count=8) == pytest.approx(4.0)
    all_idle = BEFORE.replace("cpu  1000 20 300 8000", "cpu  1000 20 300 8400", 1)
    assert free_cores_between(BEFORE, all_idle, cpu_count=2) == pytest.approx(2.0)
    all_busy = BEFORE.replace("cpu  1000", "cpu  1400", 1)
    assert free_cores_between(BEFORE, all_busy, cpu_count=2) == pytest.approx(0.0)


def test_free_cores_between_says_nothing_where_no_tick_passed() -> None:
    assert free_cores_between(BEFORE, BEFORE, cpu_count=2) is None


@pytest.mark.parametrize(
    "text",
    ["intr 12345\n", "cpu  1 2 3\n", "cpu0 1 2 3 4 5 6 7 8 0 0\n", ""],
    ids=["no cpu line", "three numbers", "only per-cpu lines", "empty"],
)
def test_cpu_times_refuses_a_text_without_an_aggregate_cpu_line(text) -> None:
    with pytest.raises(ValueError, match=r"/proc/stat must have an aggregate 'cpu' line of at least four numbers"):
        cpu_times(text)


def test_free_cores_reads_the_file_twice_a_window_apart(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: pytest.fail("the load average was read although /proc/stat was"))
    assert free_cores(window_s=0.0, stat_path=Snapshots(BEFORE, AFTER)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "snapshots",
    [None, (BEFORE, BEFORE), ("no cpu line", "no cpu line")],
    ids=["unreadable", "no tick passed", "unparsable"],
)
def test_free_cores_falls_back_to_the_load_average_where_proc_stat_says_nothing(monkeypatch, snapshots) -> None:
    def stat_path():
        return Path("/nonexistent/proc/stat") if snapshots is None else Snapshots(*snapshots)

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 0.5))
    assert free_cores(window_s=0.0, stat_path=stat_path()) == pytest.approx(2.5)

    def no_load_average():
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", no_load_average)
    assert free_cores(window_s=0.0, stat_path=stat_path()) is None


@pytest.mark.skipif(not cpu_load.PROC_STAT.is_file(), reason="no /proc/stat here (not Linux): nothing to measure")
def test_free_cores_sees_a_core_spinning_in_another_process() -> None:
    cpu_count = os.cpu_count() or 1
    spin = "print('spinning', flush=True)\nwhile True:\n    pass\n"
    spinner = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline() == "spinning\n"
        # one core of cpu_count is busy for the whole window, whatever else the machine does: at most cpu_count - 1
        # are free, measured with half a core to spare
        assert free_cores(window_s=0.5) < cpu_count - 0.5
    finally:
        spinner.kill()
        spinner.wait()
