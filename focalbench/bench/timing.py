"""Timers only: they take callables and return per-call times or byte counts; they print nothing.

* CPU: :class:`torch.utils.benchmark.Timer` (``blocked`` samples of ``number`` calls, thread count fixed and recorded);
  a backward alone is timed per call with ``time.perf_counter`` around the backward, its forward left outside.
* CUDA: CUDA events around each call, after warm-up, with an L2 flush (a write over a buffer larger than the cache)
  and a synchronization before every call, as triton's ``do_bench`` does.
* Peak memory: CUDA's allocator peak; on the CPU, the peak of PyTorch-allocated bytes at operator boundaries, read
  from the profiler's record of every allocation and free in time order (allocations outside PyTorch's allocator
  are not seen).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.utils.benchmark as benchmark

__all__ = ["Timer", "copy_bandwidth", "peak_memory", "synchronized_perf_counter", "timer_for"]

L2_FLUSH_BYTES = 256 * 1024 * 1024
#: Warm calls whose median time calibrates a timer, and the fewest calls a CPU sample holds.
CALIBRATION_CALLS, MIN_CALLS = 5, 3
#: A CPU call at least this long is calibrated on one call and sampled one call at a time.
LONG_CALL_S = 1.0


@dataclass
class Timer:
    """Times one callable on one device. ``prepare`` runs before each timed call and is not timed."""

    fn: Callable[[], object]
    device: str
    threads: int
    prepare: Callable[[], object] | None = None
    number: int = 1  # calls per sample (CPU)
    _flush: torch.Tensor | None = None

    def calibrate(self, target_s: float) -> float:
        """Choose ``number`` so one sample lasts at least ``target_s`` and holds at least :data:`MIN_CALLS` calls;
        returns the time of one call.

        The time of a call is the median of :data:`CALIBRATION_CALLS` warm calls, not of one cold one: a single call
        that met a stall of a busy machine (24 ms for a call of 0.1 ms was seen) would make every later sample one
        call long, each as exposed to the next stall as that one was."""
        if self.device == "cuda":
            return statistics.median(self._cuda_samples(CALIBRATION_CALLS))
        first = self._cpu_samples(1, 1)[0]
        if first >= LONG_CALL_S:  # a call of seconds (a language-model head): sampled alone, no stall to average
            self.number = 1
            return first
        single = statistics.median([first, *self._cpu_samples(CALIBRATION_CALLS - 1, 1)])
        self.number = max(MIN_CALLS, math.ceil(target_s / max(single, 1e-7)))
        return single

    def sample(self) -> float:
        """One sample: seconds per call."""
        if self.device == "cuda":
            return self._cuda_samples(1)[0]
        return self._cpu_samples(1, self.number)[0]

    def _cpu_samples(self, count: int, number: int) -> list[float]:
        # forward outside the timed region, or a call of seconds: time each call alone (torch.utils.benchmark's
        # timeit runs two warm-up calls before every sample: two more calls of a language-model head each time)
        if self.prepare is not None or number == 1:
            samples = []
            for _ in range(count):
                total = 0.0
                for _ in range(number):
                    if self.prepare is not None:
                        self.prepare()
                    start = time.perf_counter()
                    self.fn()
                    total += time.perf_counter() - start
                samples.append(total / number)
            return samples
        timer = benchmark.Timer(stmt="fn()", globals={"fn": self.fn}, num_threads=self.threads)
        return [timer.timeit(number).mean for _ in range(count)]

    def _cuda_samples(self, count: int) -> list[float]:
        if self._flush is None:
            self._flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")
        samples = []
        for _ in range(count):
            if self.prepare is not None:
                self.prepare()
            self._flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            self.fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        return samples


def timer_for(fn: Callable[[], object], device: str, prepare: Callable[[], object] | None = None) -> Timer:
    return Timer(fn=fn, device=device, threads=torch.get_num_threads(), prepare=prepare)


def copy_bandwidth(device: str, nbytes: int = 256 * 1024 * 1024, repeats: int = 5) -> float:
    """The device's copy bandwidth in GB/s (bytes read + bytes written per second), best of ``repeats``."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dst.copy_(src)
            end.record()
            torch.cuda.synchronize()
            elapsed = start.elapsed_time(end) / 1e3
        else:
            start_s = time.perf_counter()
            dst.copy_(src)
            elapsed = time.perf_counter() - start_s
        best = min(best, elapsed)
    return 2 * nbytes / best / 1e9


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler backend's start/stop lines, written by C++ straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_memory(fn: Callable[[], object], device: str) -> int:
    """Bytes allocated at the peak of one call of ``fn`` above what was allocated before it."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile

    # a full collection first: the collector then starts the call from zero counts, so that what reference cycles
    # hold (the Triton interpreter's objects hold a chunk's tensors) is freed at the same points of every call, not
    # by what earlier code left behind (the same call measured 85 KiB apart in two processes)
    gc.collect()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # every allocation and free of PyTorch's CPU allocator, as the profiler recorded it, in time order (the
    # operators' aggregated memory would put a free inside an operator of Python code — an autograd Function
    # releasing a buffer — at one of the operator's ends instead of when it happened)
    changes = sorted((event.start_ns(), event.nbytes()) for event in prof.profiler.kineto_results.events()
                     if event.name() == "[memory]")  # fmt: skip
    current = peak = 0
    for _, delta in changes:
        current += delta
        peak = max(peak, current)
    return peak


def synchronized_perf_counter() -> float:
    """``time.perf_counter`` after waiting for queued CUDA work: a timer for pytest-benchmark on a GPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()
