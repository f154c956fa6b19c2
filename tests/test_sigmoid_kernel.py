"""The sigmoid family's C kernel (``sigmoid_focal_forward`` in ``sigmoid_cpu.c``): its sums do not depend on the number
of threads, chunk edges and strided inputs are handled, float32 keeps its digits down to the smallest normal number.
(That it vectorizes for AVX2 and AVX-512 is checked on each target's build in ``tests/test_native.py``.)"""

from __future__ import annotations

import math

import pytest
import torch

import focalbench
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.kernels import sigmoid_cpu
from focalbench.kernels.sigmoid_eager import closed_form
from focalbench.losses.sigmoid.semantics import validate

pytestmark = pytest.mark.skipif(sigmoid_cpu.available() is not None, reason=f"no C kernel: {sigmoid_cpu.available()}")


def _forward(x, t, reduction, gamma=2.0):
    return sigmoid_cpu.forward_args(validate(x, t, gamma=gamma, reduction=reduction), need_grad=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sums_do_not_depend_on_the_thread_count_and_chunk_edges_are_right(dtype, monkeypatch):
    g = torch.Generator().manual_seed(0)
    n = 3 * sigmoid_cpu.CHUNK + 5
    x = (torch.randn(n, generator=g, dtype=torch.float64) * 6).to(dtype)
    t = (torch.rand(n, generator=g) < 0.3).to(dtype)
    monkeypatch.setattr(sigmoid_cpu, "ELEMENTS_PER_THREAD", 1)  # as many threads as torch has, even for small n
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            results.append(_forward(x, t, "sum"))
    finally:
        torch.set_num_threads(threads)
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])
    exact_loss, exact_grad = closed_form(x.double(), t.double(), 0.25, 2.0)
    bound = ACCURACY_BOUND[dtype]
    torch.testing.assert_close(results[0][0], exact_loss.sum(), rtol=bound, atol=0)
    torch.testing.assert_close(results[0][1].double(), exact_grad, rtol=bound, atol=1e-300)


def test_strided_and_mixed_dtype_inputs_are_read_as_they_are():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(80, 33, generator=g, dtype=torch.float32) * 4
    x = base.t()  # (33, 80), not contiguous
    t = (torch.rand(33, 80, generator=g) < 0.1).double()  # float64 target for float32 logits
    loss, grad = _forward(x, t, "none", gamma=0.5)
    exact_loss, exact_grad = closed_form(x.double(), t, 0.25, 0.5)
    bound = ACCURACY_BOUND[torch.float32]
    torch.testing.assert_close(loss.double(), exact_loss, rtol=bound, atol=0)
    torch.testing.assert_close(grad.double(), exact_grad, rtol=bound, atol=1e-40)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_float32_keeps_its_digits_down_to_the_smallest_normal_number(gamma):
    """Confident negatives at x near -87.3, where exp(x) (the loss at gamma = 0) crosses float32's smallest normal
    number: within the accuracy bound while normal, within a subnormal's spacing below."""
    x = torch.linspace(-88.5, -85.0, 64)
    t = torch.zeros(64)
    loss, grad = _forward(x, t, "none", gamma=gamma)
    exact_loss, exact_grad = closed_form(x.double(), t.double(), 0.25, gamma)
    tiny = torch.finfo(torch.float32).smallest_normal
    for value, exact in ((loss, exact_loss), (grad, exact_grad)):
        error = (value.double() - exact).abs()
        allowed = torch.where(exact.abs() >= tiny, ACCURACY_BOUND[torch.float32] * exact.abs(), 1.5e-45)
        assert bool((error <= allowed).all()), (gamma, error)


def test_the_partial_sum_chunk_matches_the_c_source():
    """sigmoid_cpu.CHUNK sizes the buffer the C kernel writes one partial sum per SIGMOID_CHUNK elements into."""
    import re

    (chunk,) = re.findall(r"#define SIGMOID_CHUNK (\d+)", sigmoid_cpu.SOURCE.read_text())
    assert int(chunk) == sigmoid_cpu.CHUNK


@pytest.mark.parametrize("gamma", [2.0, 1.5, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_tiny_soft_target_at_an_infinite_logit_gives_an_infinite_loss(dtype, gamma):
    """CE = +inf there while the focal factor t^gamma underflows (1e-60 is 0 in float32): the limit is +inf, which the
    C kernel once returned as 0 (found by the sigmoid family's randomized differential test)."""
    logits = torch.tensor([-math.inf, math.inf, -math.inf], dtype=dtype)
    target = torch.tensor([1e-30, 1 - 2.0**-8, 0.0], dtype=dtype)  # the last one agrees: its limit is 0
    loss = focalbench.sigmoid_focal_loss(logits, target, gamma=gamma)
    assert loss.tolist() == [math.inf, math.inf, 0.0]
    zero_weight = focalbench.sigmoid_focal_loss(logits, torch.ones(3, dtype=dtype), alpha=0.0, gamma=gamma)
    assert zero_weight.tolist() == [0.0, 0.0, 0.0]  # weight 0 (alpha 0 at positives) gives 0 at any logit
