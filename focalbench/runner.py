"""The speed run: representative shapes x implementations x modes, timed interleaved against a baseline:
``F.cross_entropy`` for the softmax family, ``F.binary_cross_entropy_with_logits`` for the sigmoid family
(:data:`WORKLOADS`: each family's baseline, inputs and call).

For every (shape, dtype, mode) all implementations and the baseline run on the same inputs, in the same process, in
rounds: each round takes one sample of each, in an order that rotates from round to round, so a slow spell of a
shared machine spreads over all of them instead of landing on one. Compile time is measured on the first call, before
any timing; a recompilation during timing is an error.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from focalbench.registry import Implementation
from focalbench.stats import summarize
from focalbench.timing import peak_memory, timer_for

__all__ = ["BASELINE", "FLOOR", "MODES", "SHAPES", "SIGMOID_SHAPES", "WORKLOADS", "Shape", "Workload", "run_case",
           "select_shapes"]  # fmt: skip

BASELINE = "cross_entropy"  # the softmax family's; each family's is Workload.baseline
#: The compute floor on the CPU: one vectorized exponential per logit (``torch.exp`` into a preallocated output, same
#: threads), timed in the same rounds; every row reports its time per logit and its ratio to this floor.
FLOOR = "exp_floor"
MODES = ("forward", "backward", "forward+backward")


@dataclass(frozen=True)
class Shape:
    name: str
    shape: tuple[int, ...]
    stands_for: str
    sweep: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


SHAPES: tuple[Shape, ...] = (
    Shape("yolov2_voc", (54080, 20), "the seed's YOLOv2 head on VOC: 64 images x 13x13 cells x 5 anchors, 20 classes"),
    Shape("coco_rows", (32768, 80), "COCO-style detection: 32768 anchor rows, 80 classes"),
    Shape("imagenet", (256, 1000), "ImageNet classification: batch 256, 1000 classes"),
    Shape("segmentation", (8, 21, 128, 128), "dense segmentation, Pascal VOC: 8 x 21 classes x 128 x 128"),
) + tuple(
    Shape(f"sweep_{rows}x20", (rows, 20), "size sweep: rows x 20 classes", sweep=True) for rows in (2**12, 2**15, 2**18)
)

#: The sigmoid family's (RetinaNet's) shapes: every one representative, so a quick run takes them all.
SIGMOID_SHAPES: tuple[Shape, ...] = (
    Shape("retinanet_rows", (65536, 80), "RetinaNet-style detection head: 65536 anchors x 80 COCO classes"),
    Shape("retinanet_dense", (8, 80, 64, 64), "dense one-vs-rest logits: 8 images x 80 classes x 64 x 64"),
)


def select_shapes(names: Sequence[str] | None, quick: bool, family: str = "softmax") -> list[Shape]:
    """Shapes by name, or ``(rows, classes[, d...])`` literals like ``4096x20``; default: the family's (quick: no
    sweep)."""
    shapes = WORKLOADS[family].shapes
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


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    target = torch.randint(0, shape.shape[1], (shape.shape[0], *shape.shape[2:]), generator=g).to(device)
    return logits, target


def _sigmoid_inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits and one-vs-rest targets as a detector sees them: 1 % positives (foreground anchors), the rest 0."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    target = (torch.rand(shape.shape, generator=g) < 0.01).to(device=device, dtype=dtype)
    return logits, target


@dataclass(frozen=True)
class Workload:
    """What a loss family's timings run: the baseline and its name, the inputs, how an implementation is called (to a
    scalar loss), what a shape needs, the bytes of the targets, the family's shapes."""

    baseline: str
    baseline_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    inputs: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    call: Callable[[Implementation, torch.Tensor, torch.Tensor, float], torch.Tensor]
    needs: Callable[[Shape], set[str]]
    target_bytes: Callable[[Shape, torch.dtype], int]
    shapes: tuple[Shape, ...]


WORKLOADS: dict[str, Workload] = {
    "softmax": Workload(
        BASELINE,
        lambda x, target: F.cross_entropy(x, target),
        _inputs,
        lambda impl, x, target, gamma: impl(x, target, gamma=gamma),
        lambda shape: {"dense"} if len(shape.shape) > 2 else set(),
        lambda shape, dtype: shape.numel // shape.shape[1] * 8,
        SHAPES,
    ),
    # RetinaNet sums its loss (then divides by the number of positive anchors): reduction "sum" on both sides
    "sigmoid": Workload(
        "bce_with_logits",
        lambda x, target: F.binary_cross_entropy_with_logits(x, target, reduction="sum"),
        _sigmoid_inputs,
        lambda impl, x, target, gamma: impl(x, target, gamma=gamma, reduction="sum"),
        lambda shape: set(),
        lambda shape, dtype: shape.numel * torch.empty((), dtype=dtype).element_size(),
        SIGMOID_SHAPES,
    ),
}


def _bytes_moved(shape: Shape, dtype: torch.dtype, mode: str, family: str = "softmax") -> int:
    """Minimum traffic: logits read (forward), gradient written (backward), targets read once."""
    logits = shape.numel * torch.empty((), dtype=dtype).element_size()
    targets = WORKLOADS[family].target_bytes(shape, dtype)
    return {"forward": logits + targets, "backward": logits, "forward+backward": 2 * logits + targets}[mode]


def _callables(loss: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor, mode: str):
    """(timed fn, untimed prepare or None, reset) for one mode, on a leaf copy of the logits.

    ``reset`` frees the gradient a previous call left, so a memory measurement starts from the inputs alone.
    """
    leaf = logits.detach().clone().requires_grad_(True)

    def reset():
        leaf.grad = None

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
    gamma: float,
    device: str,
    rounds: int,
    sample_s: float,
    bandwidth_gbps: float | None,
    progress: Callable[[str], None] | None = None,
    family: str = "softmax",
) -> list[dict]:
    """Time every implementation of ``family`` and its baseline on one case; one report row per implementation."""
    workload = WORKLOADS[family]
    baseline = workload.baseline
    logits, target = workload.inputs(shape, dtype, device)
    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        baseline: lambda x: workload.baseline_loss(x, target),
    }
    needs = workload.needs(shape)
    for impl in impls:
        # else: no row (the seed has no dense; an implementation of another family has none either)
        if impl.supports(device=device, dtype=dtype, needs=needs, family=family) is None:
            losses[impl.name] = lambda x, impl=impl: workload.call(impl, x, target, gamma)
    timers, compile_s, peaks = {}, {}, {}
    exp_out = torch.empty_like(logits)
    floor = timer_for(lambda: torch.exp(logits, out=exp_out), device, None)
    floor.calibrate(sample_s)
    for name, loss in losses.items():
        fn, prepare, reset = _callables(loss, logits, mode)
        start = time.perf_counter()
        if prepare is not None:
            prepare()
        fn()  # first call: compilation (if any), caches, allocator warm-up
        _sync(device)
        first = time.perf_counter() - start
        compile_s[name] = first if name != baseline and _compiles(impls, name) else None
        reset()
        if prepare is not None:
            prepare()
        peaks[name] = peak_memory(fn, device)
        timer = timer_for(fn, device, prepare)
        timer.calibrate(sample_s)
        timers[name] = timer
    timers[FLOOR] = floor
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    with _no_recompilation():
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(timers[name].sample())
            if progress is not None:
                progress(f"{shape.name} {str(dtype).replace('torch.', '')} {mode}: round {r + 1}/{rounds}")
    base = summarize(samples[baseline])
    floor_median = summarize(samples.pop(FLOOR)).median
    names.remove(FLOOR)
    moved = _bytes_moved(shape, dtype, mode, family)
    rows = []
    for name in names:
        stats = summarize(samples[name])
        gbps = moved / stats.median / 1e9
        rows.append(
            {
                "implementation": name,
                "device": device,
                "dtype": str(dtype).replace("torch.", ""),
                "shape": list(shape.shape),
                "shape_name": shape.name,
                "mode": mode,
                "gamma": gamma,
                "median_s": stats.median,
                "iqr_s": stats.iqr,
                "min_s": stats.minimum,
                "runs": stats.runs,
                "calls_per_run": timers[name].number,
                "baseline": baseline,
                "baseline_median_s": base.median,
                "ratio_to_baseline": stats.median / base.median,
                "bytes_moved": moved,
                "gbytes_per_s": gbps,
                "fraction_of_bandwidth": gbps / bandwidth_gbps if bandwidth_gbps else None,
                "peak_memory_bytes": peaks[name],
                "baseline_peak_memory_bytes": peaks[baseline],
                "compile_s": compile_s[name],
                "floor": FLOOR,
                "floor_median_s": floor_median,
                "ns_per_logit": stats.median / shape.numel * 1e9,
                "ratio_to_floor": stats.median / floor_median,
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
