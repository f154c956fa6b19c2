"""pytest-benchmark timings of every registered implementation (not part of the default run).

Run with ``pytest tests/test_benchmarks.py --benchmark-only [--device cuda]``; gate with pytest-benchmark's own
``--benchmark-autosave`` / ``--benchmark-compare --benchmark-compare-fail=median:10%``. The timer synchronizes CUDA, so
a GPU kernel is timed to its end, not to its launch. For ratios to F.cross_entropy measured interleaved (what the CI
gate uses), see ``focalbench run``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from focalbench.arena.families.softmax import SHAPES
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.bench.timing import synchronized_perf_counter

pytestmark = pytest.mark.benchmark_suite

BENCH_SHAPES = [s for s in SHAPES if s.name in ("yolov2_voc", "imagenet", "segmentation")]
NAMES = ["cross_entropy", *list_implementations(family="softmax")]


@pytest.mark.benchmark(timer=synchronized_perf_counter, min_rounds=5, warmup=True)
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: s.name)
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(benchmark, name, shape, device):
    if name == "cross_entropy":
        impl = None
    else:
        impl = get_implementation(name)
        reason = impl.supports(device=device, needs={"dense"} if len(shape.shape) > 2 else ())
        if reason or impl.extra.get("interpreted"):
            pytest.skip(reason or "interpreted Triton is not timed")
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device).requires_grad_(True)
    target = torch.randint(0, shape.shape[1], (shape.shape[0], *shape.shape[2:]), generator=g).to(device)

    def step():
        logits.grad = None
        loss = F.cross_entropy(logits, target) if impl is None else impl(logits, target, gamma=2.0)
        loss.backward()

    benchmark.group = f"{shape.name} forward+backward"
    benchmark.extra_info.update(implementation=name, shape=list(shape.shape), device=device)
    benchmark(step)
