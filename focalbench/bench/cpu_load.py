"""How busy the CPUs are now: the idle share of every CPU's time over a short window, from two readings of
/proc/stat (the load average stands in where there is none).

`focalbench run` records it as ``free_cores`` and warns when its threads outnumber it. The one-minute load average
alone is no measure of *now*: a minute after a command it still counts that command's work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["FREE_CORES_WINDOW_S", "PROC_STAT", "cpu_times", "free_cores", "free_cores_between"]


#: Where Linux keeps each CPU's time since boot, in clock ticks.
PROC_STAT = Path("/proc/stat")

#: How long :func:`free_cores` watches the CPUs: long enough for a few clock ticks per core (USER_HZ is 100), short
#: beside a run.
FREE_CORES_WINDOW_S = 0.25


def cpu_times(stat_text: str) -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs together, from the aggregate ``cpu`` line of /proc/stat's text.

    The line reads ``cpu user nice system idle iowait irq softirq steal guest guest_nice``; guest time is counted in
    user and nice already, so the total is the first eight fields, and busy is the total less idle and iowait (a CPU
    waiting on a disk is free to run a thread).

    Raises:
        ValueError: the text has no aggregate ``cpu`` line of at least four numbers.

    Example:
        >>> cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\\ncpu0 50 0 25 400 25 0 0 0 0 0\\n")
        (150, 1000)
    """
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(field) for field in fields[1:9]]
            if len(ticks) < 4:
                break
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            return sum(ticks) - idle, sum(ticks)
    raise ValueError(f"/proc/stat must have an aggregate 'cpu' line of at least four numbers. Got: {stat_text[:80]!r}")


def free_cores_between(before: str, after: str, cpu_count: int) -> float | None:
    """Cores left idle between two readings of /proc/stat: ``cpu_count`` times the idle fraction of the ticks that
    passed (None where no tick passed, so nothing was measured).

    Example:
        >>> before = "cpu  100 0 0 900 0 0 0 0 0 0\\n"
        >>> after = "cpu  150 0 0 1050 0 0 0 0 0 0\\n"  # 50 of 200 ticks busy: a quarter of 4 cores
        >>> free_cores_between(before, after, cpu_count=4)
        3.0
    """
    busy_before, total_before = cpu_times(before)
    busy_after, total_after = cpu_times(after)
    total = total_after - total_before
    if total <= 0:
        return None
    busy = min(max(busy_after - busy_before, 0), total)
    return cpu_count * (total - busy) / total


def free_cores(window_s: float = FREE_CORES_WINDOW_S, stat_path: Path = PROC_STAT) -> float | None:
    """Cores not busy with other work now: the idle share of every CPU's time over ``window_s`` seconds, read from
    ``stat_path`` (/proc/stat), while this process sleeps, so its own work is not counted.

    Where that file cannot be read (not Linux) or no clock tick passed, the one-minute load average stands in (it
    still counts the last minute's commands); None where the OS says neither.
    """
    cpu_count = os.cpu_count() or 1
    try:
        before = stat_path.read_text()
        time.sleep(window_s)
        after = stat_path.read_text()
        measured = free_cores_between(before, after, cpu_count)
    except (OSError, ValueError):
        measured = None
    if measured is not None:
        return measured
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return max(0.0, cpu_count - load)
