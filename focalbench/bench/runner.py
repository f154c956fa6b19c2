"""The speed run: representative shapes x implementations x modes, timed interleaved against a baseline:
``F.cross_entropy`` for the softmax family, ``F.binary_cross_entropy_with_logits`` for the sigmoid family
(each family's :class:`~focalbench.arena.family.Workload`: its baseline, inputs, call and shapes).

For every (shape, dtype, mode) all implementations and the baseline run on the same inputs, in the same process, in
rounds: each round takes one sample of each, in an order that rotates from round to round, so a slow spell of a
shared machine spreads over all of them instead of landing on one. Compile time is measured on the first call, before
any timing; a recompilation during timing is an error.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from focalbench.arena.family import Shape, get_family
from focalbench.arena.registry import Implementation
from focalbench.bench.stats import paired_ratios, reliability, summarize
from focalbench.bench.timing import peak_memory, timer_for

__all__ = ["COPY", "FLOOR", "MODES", "run_case", "select_shapes"]

#: The compute floor on the CPU: one vectorized exponential per logit (``torch.exp`` into a preallocated output, same
#: threads), timed in the same rounds; every row reports its time per logit and its ratio to this floor, and beside
#: them the time per logit of that exp pass and of one copy of the logits (``Tensor.copy_``: the memory traffic alone).
FLOOR = "exp_floor"
COPY = "copy_floor"
MODES = ("forward", "backward", "forward+backward")
#: Rounds a case may add while a ratio is unreliable: this many times the rounds asked for, within this many seconds.
EXTRA_ROUNDS, EXTRA_BUDGET_S = 2, 20.0


def select_shapes(names: Sequence[str] | None, quick: bool, family: str) -> list[Shape]:
    """Shapes by name, or ``(rows, classes[, d...])`` literals like ``4096x20``; default: the family's (quick: no
    sweep)."""
    shapes = get_family(family).workload.shapes
    if not names:
        return [s for s in shapes if not (quick and s.sweep)]
    known = {s.name: s for s in shapes}
    chosen = []
    for name in names:
        if name in known:
            chosen.append(known[name])
            continue
        try:
            dims = tuple(int(d) for d in name.lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) < 2 or min(dims) < 1 or dims[1] < 2:
            raise ValueError(
                f"shape must be one of {', '.join(known)} or like 4096x20 (rows x classes, classes >= 2). Got: {name!r}"
            )
        chosen.append(Shape(name, dims, "custom"))
    return chosen


def _bytes_moved(shape: Shape, dtype: torch.dtype, mode: str, family: str) -> int:
    """Minimum traffic: logits read (forward), gradient written (backward), targets read once."""
    logits = shape.numel * torch.empty((), dtype=dtype).element_size()
    targets = get_family(family).workload.target_bytes(shape, dtype)
    return {"forward": logits + targets, "backward": logits, "forward+backward": 2 * logits + targets}[mode]


def _callables(loss: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor, mode: str, free=None):
    """(timed fn, untimed prepare or None, reset) for one mode, on a leaf copy of the logits.

    ``reset`` frees the gradient a previous call left (and calls ``free``, the workload's own reset), so a memory
    measurement starts from the inputs alone.
    """
    leaf = logits.detach().clone().requires_grad_(True)

    def reset():
        leaf.grad = None
        if free is not None:
            free()

    if mode == "forward":
        return (lambda: loss(leaf)), None, reset
    if mode == "forward+backward":

        def step():
            leaf.grad = None
            loss(leaf).backward()

        return step, None, reset
    holder: dict = {}

    def prepare():
        leaf.grad = None
        holder["loss"] = loss(leaf)

    return (lambda: holder.pop("loss").backward()), prepare, reset


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_case(
    impls: Sequence[Implementation],
    shape: Shape,
    dtype: torch.dtype,
    mode: str,
    parameters: Mapping[str, float],
    device: str,
    rounds: int,
    sample_s: float,
    bandwidth_gbps: float | None,
    progress: Callable[[str], None] | None = None,
    *,
    family: str,
) -> list[dict]:
    """Time every implementation of ``family`` and its baseline on one case (``parameters``: the family's timed
    parameters, :attr:`~focalbench.arena.family.Family.parameters`); one report row per implementation."""
    workload = get_family(family).workload
    baseline = workload.baseline
    logits, target = workload.inputs(shape, dtype, device)
    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        baseline: lambda x: workload.baseline_loss(x, target),
    }
    needs = workload.needs(shape)
    for impl in impls:
        # else: no row (the seed has no dense; an implementation of another family has none either)
        if impl.supports(device=device, dtype=dtype, needs=needs, family=family) is None:
            losses[impl.name] = lambda x, impl=impl: workload.call(impl, x, target, dict(parameters))
    timers, compile_s, peaks = {}, {}, {}
    if workload.floors:
        exp_out = torch.empty_like(logits)
        floor = timer_for(lambda: torch.exp(logits, out=exp_out), device, None)
        floor.calibrate(sample_s)
        copy = timer_for(lambda: exp_out.copy_(logits), device, None)
        copy.calibrate(sample_s)
    for name, loss in list(losses.items()):
        fn, prepare, reset = _callables(loss, logits, mode, workload.reset)
        start = time.perf_counter()
        try:
            if prepare is not None:
                prepare()
            fn()  # first call: compilation (if any), caches, allocator warm-up
            _sync(device)
        except Exception as error:  # a peer that fails on these inputs: no row, the others are still timed
            if name == baseline:
                raise
            del losses[name]
            print(f"focalbench run: {name} raised {type(error).__name__} at {shape.name} ({error}): not timed",
                  file=sys.stderr)  # fmt: skip
            continue
        first = time.perf_counter() - start
        compile_s[name] = first if name != baseline and _compiles(impls, name) else None
        reset()
        if prepare is not None:
            prepare()
        peaks[name] = peak_memory(fn, device)
        timer = timer_for(fn, device, prepare)
        timer.calibrate(sample_s)
        timers[name] = timer
    if workload.floors:
        timers[FLOOR], timers[COPY] = floor, copy
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    timed = [n for n in names if n not in (baseline, FLOOR, COPY)]

    def more_rounds(r: int) -> bool:
        """The rounds asked for, then more of this case only while a ratio is unreliable (stats.reliability), up to
        EXTRA_ROUNDS times as many again and EXTRA_BUDGET_S seconds."""
        if r < rounds:
            return True
        if r >= rounds * (1 + EXTRA_ROUNDS) or time.perf_counter() - started >= EXTRA_BUDGET_S:
            return False
        return any(reliability(paired_ratios(samples[n], samples[baseline]))[1] is not None for n in timed)

    with _no_recompilation():
        r = 0
        while more_rounds(r):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(timers[name].sample())
            r += 1
            if progress is not None:
                progress(f"{shape.name} {str(dtype).replace('torch.', '')} {mode}: round {r}/{rounds}")
    base = summarize(samples[baseline])
    floor_median = copy_median = moved = None
    if workload.floors:
        floor_median = summarize(samples.pop(FLOOR)).median
        copy_median = summarize(samples.pop(COPY)).median
        names.remove(FLOOR)
        names.remove(COPY)
        moved = _bytes_moved(shape, dtype, mode, family)
    rows = []
    for name in names:
        stats = summarize(samples[name])
        gbps = None if moved is None else moved / stats.median / 1e9
        interval, unreliable = reliability(paired_ratios(samples[name], samples[baseline]))
        rows.append(
            {
                "implementation": name,
                "device": device,
                "dtype": str(dtype).replace("torch.", ""),
                "shape": list(shape.shape),
                "shape_name": shape.name,
                "mode": mode,
                "parameters": dict(parameters),
                "median_s": stats.median,
                "iqr_s": stats.iqr,
                "min_s": stats.minimum,
                "runs": stats.runs,
                "calls_per_run": timers[name].number,
                "baseline": baseline,
                "baseline_median_s": base.median,
                "ratio_to_baseline": statistics.median(paired_ratios(samples[name], samples[baseline])),
                "ratio_interval": [interval.low, interval.high],
                "ratio_confidence": interval.confidence,
                "unreliable": unreliable,
                "samples_s": samples[name],
                "baseline_samples_s": samples[baseline],
                "bytes_moved": moved,
                "gbytes_per_s": gbps,
                "fraction_of_bandwidth": gbps / bandwidth_gbps if bandwidth_gbps and gbps is not None else None,
                "peak_memory_bytes": peaks[name],
                "baseline_peak_memory_bytes": peaks[baseline],
                "compile_s": compile_s[name],
                "floor": FLOOR if workload.floors else None,
                "floor_median_s": floor_median,
                "ns_per_logit": stats.median / shape.numel * 1e9 if workload.floors else None,
                "ratio_to_floor": stats.median / floor_median if workload.floors else None,
                "floor_ns_per_logit": floor_median / shape.numel * 1e9 if workload.floors else None,
                "copy_median_s": copy_median,
                "copy_ns_per_logit": copy_median / shape.numel * 1e9 if workload.floors else None,
            }
        )
    return rows


def _compiles(impls: Sequence[Implementation], name: str) -> bool:
    return any(impl.name == name and impl.compiles for impl in impls)


@contextlib.contextmanager
def _no_recompilation():
    """Make a torch.compile recompilation inside the timed region raise instead of silently costing seconds."""
    try:
        import torch._dynamo.config as dynamo_config
    except ImportError:  # pragma: no cover - torch without dynamo
        yield
        return
    with dynamo_config.patch(error_on_recompile=True):
        yield
