"""The Distribution Focal Loss product: ``distribution_focal_loss`` / ``DistributionFocalLoss`` and its kernels — the C
kernel (``dfl_cpu.c``) against the float64 closed form and an independent ``log_softmax`` formulation with autograd,
an arbitrary-precision oracle at every logit scale, cross-entropy's limits at non-finite logits, sums independent of
the thread count, every bad argument rejected naming it, strided and half-precision inputs, the module, a compiled
training step, ``torch.export``/opcheck, a double backward, and the Triton path in Triton's interpreter.

Inputs are what the peers send: ultralytics' ``(boxes * 4, 16)`` rows (``pred_dist.view(-1, reg_max)``) and mmdet's
``(N, 17)`` (``reg_max + 1`` bins), continuous targets in ``[0, n - 1]``."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap

import mpmath
import pytest
import torch
import torch.nn.functional as F

import focalbench
from focalbench.kernels import choose, dfl_cpu
from focalbench.kernels.dfl_eager import closed_form
from focalbench.losses.dfl.api import (
    RECOMMENDED_DFL,
    DistributionFocalLoss,
    dfl_implementation_for,
    distribution_focal_loss,
    distribution_focal_loss_on,
)
from focalbench.losses.dfl.semantics import DEFAULTS, validate

#: The accuracy claimed: each loss element and each gradient row (max-norm) relative to the exact answer.
BOUND = {torch.float32: 2e-6, torch.float64: 1e-12}
C_KERNEL = pytest.mark.skipif(dfl_cpu.available() is not None, reason=f"no C kernel: {dfl_cpu.available()}")


def _batch(rows: int, bins: int, dtype: torch.dtype, seed: int, scale: float = 4.0, extra: tuple[int, ...] = ()):
    """Logits ``(rows, *extra, bins)`` and targets in ``[0, bins - 1]``: random, integer, both ends, at the maximum."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, *extra, bins, generator=g, dtype=torch.float64) * scale
    target = torch.rand(rows, *extra, generator=g, dtype=torch.float64) * (bins - 1)
    flat = target.view(-1)
    specials = torch.tensor([0.0, bins - 1.0, 1.0, bins - 2.0, 0.5, bins - 1.5], dtype=torch.float64)[: flat.numel()]
    flat[: specials.numel()] = specials
    if flat.numel() > 8:
        flat[6:8] = logits.view(-1, bins)[6:8].argmax(-1).double()  # the maximum's own bin: a confident row's target
    return logits.to(dtype), target.to(dtype)


def _reduced_closed_form(logits: torch.Tensor, target: torch.Tensor, reduction: str):
    """The float64 closed form, reduced, and the gradient of the reduced loss."""
    loss, grad = closed_form(logits.double(), target.double())
    if reduction == "none":
        return loss, grad
    if reduction == "sum":
        return loss.sum(), grad
    return loss.mean() if loss.numel() else loss.sum(), grad / max(loss.numel(), 1)


def _relative(value: torch.Tensor, exact: torch.Tensor) -> float:
    """Max relative error of elements; exact values below the result dtype's smallest normal number may come out as
    anything within it (as the accuracy sweep judges them)."""
    tiny = torch.finfo(value.dtype).tiny
    error = (value.detach().double() - exact).abs()
    relative = torch.where(error <= tiny, 0.0, math.inf)
    return float(torch.where(exact.abs() >= tiny, error / exact.abs().clamp_min(tiny), relative).max())


def _row_relative(grad: torch.Tensor, exact: torch.Tensor) -> float:
    """Max over rows of the max-norm error relative to the row's max-norm (below the smallest normal: absolutely)."""
    tiny = torch.finfo(grad.dtype).tiny
    error = (grad.detach().double() - exact).abs().amax(-1)
    scale = exact.abs().amax(-1)
    return float(torch.where(scale >= tiny, error / scale.clamp_min(tiny), torch.where(error <= tiny, 0.0, math.inf))
                 .max())  # fmt: skip


# --- the C kernel against the closed form and an independent formulation -------------------------------------------


@C_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bins", [2, 16, 17, 100, 1000])
def test_the_c_kernel_matches_the_float64_closed_form(bins, dtype):
    """Every reduction, rows (N, n), (N, 4, n) as ultralytics passes its four sides, one row (n,), and none (0, n)."""
    for shape, extra in (((37,), ()), ((5,), (4,)), ((), ()), ((0,), ())):
        if shape == ():
            logits, target = _batch(1, bins, dtype, seed=bins)
            logits, target = logits[0], target[0]
        else:
            logits, target = _batch(shape[0], bins, dtype, seed=bins + len(extra), extra=extra)
        for reduction in ("none", "sum", "mean"):
            args = validate(logits, target, reduction=reduction, kernel_checks_range=True)
            loss, grad = dfl_cpu.forward_args(args, need_grad=True)
            exact_loss, exact_grad = _reduced_closed_form(logits, target, reduction)
            assert loss.shape == exact_loss.shape and grad.shape == logits.shape and grad.dtype == dtype
            if exact_loss.numel():
                assert _relative(loss, exact_loss) <= BOUND[dtype], (shape, reduction)
            if exact_grad.numel():
                assert _row_relative(grad, exact_grad) <= BOUND[dtype], (shape, reduction)
            no_grad_loss, none = dfl_cpu.forward_args(args, need_grad=False)
            assert none is None and torch.equal(no_grad_loss, loss)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_the_gradient_is_autograd_of_a_log_softmax_formulation(reduction):
    """float64, mmdet's (N, 17) and ultralytics' (N * 4, 16): value and gradient equal the two-bin cross-entropy
    written with log_softmax and differentiated by autograd (an upstream gradient of per-row weights for "none")."""
    for bins, rows in ((17, 40), (16, 4 * 25)):
        logits, target = _batch(rows, bins, torch.float64, seed=rows)
        x = logits.clone().requires_grad_(True)
        left = target.floor().clamp(max=bins - 2)
        w_left, w_right = left + 1 - target, target - left
        log_p = torch.log_softmax(x, dim=-1)
        per_row = -(w_left * log_p.gather(-1, left.long()[:, None])[:, 0]
                    + w_right * log_p.gather(-1, left.long()[:, None] + 1)[:, 0])  # fmt: skip
        expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[reduction]
        upstream = torch.rand(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), x)
        y = logits.clone().requires_grad_(True)
        loss = distribution_focal_loss(y, target, reduction=reduction)
        (grad,) = torch.autograd.grad((loss * upstream).sum(), y)
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)


def test_the_peers_forms_are_the_same_loss():
    """ultralytics' two cross-entropies with integer bins (after its clamp to [0, n - 1.01]) and an integer target's
    hard-label cross-entropy are this loss."""
    logits, target = _batch(4 * 30, 16, torch.float32, seed=8)
    target = target.clamp(0, 16 - 1 - 0.01)
    left = target.long()
    w_left = left + 1 - target
    ultralytics = F.cross_entropy(logits, left, reduction="none") * w_left + F.cross_entropy(
        logits, left + 1, reduction="none"
    ) * (1 - w_left)
    torch.testing.assert_close(distribution_focal_loss(logits, target, reduction="none"), ultralytics,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    hard = torch.randint(0, 17, (30,), generator=torch.Generator().manual_seed(1))
    mmdet_logits = _batch(30, 17, torch.float64, seed=2)[0]
    torch.testing.assert_close(distribution_focal_loss(mmdet_logits, hard.double(), reduction="none"),
                               F.cross_entropy(mmdet_logits, hard, reduction="none"), rtol=1e-13, atol=0)  # fmt: skip


# --- accuracy at every logit scale: a 60-digit oracle ----------------------------------------------------------------


def _oracle(row: list[float], y: float) -> tuple[float, list[float]]:
    """The loss and gradient of one row in 60-digit arithmetic (log1p of the terms off the maximum: a confident row's
    loss is far below 1e-60)."""
    with mpmath.workdps(60):
        z = [mpmath.mpf(v) for v in row]
        target = mpmath.mpf(y)
        left = min(int(mpmath.floor(target)), len(z) - 2)
        weights = {left: left + 1 - target, left + 1: target - left}
        m = max(z)
        top = z.index(m)
        rest = mpmath.fsum(mpmath.exp(v - m) for j, v in enumerate(z) if j != top)
        total = 1 + rest
        loss = mpmath.fsum(w * ((m - z[k]) + mpmath.log1p(rest)) for k, w in weights.items() if w)
        grad = [(1 - weights.get(j, 0)) - rest / total if j == top else mpmath.exp(v - m) / total - weights.get(j, 0)
                for j, v in enumerate(z)]  # fmt: skip
        return float(loss), [float(g) for g in grad]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_logit_scale_is_within_the_accuracy_bound(dtype):
    """Scales 1e-6 (every row near its optimum for n = 2: the gradient is a small difference of probabilities) to
    1e20, YOLO's 16 bins and mmdet's 17 and n = 2; targets at the maximum (the loss is then log1p(R), as small as
    e^-1e20), integers, the ends, random. Per loss element and per gradient row, against the oracle. And confident
    rows whose R is made of terms below the dtype's normal range: float32's at a gap of 100 (e^-100 is subnormal
    there), float64's at 685 with a term at 708.5 (8.6e-11 of the loss, below float64's normal range on its own)."""
    g = torch.Generator().manual_seed(21)
    confident = torch.tensor([[0.0, -100.0, -101.5, -120.0], [3.0, 3.0 - 685.3234, 3.0 - 708.4991, -1e4]])
    for bins in (2, 16, 17, 4):
        for scale in (1e-6, 1e-2, 1.0, 8.0, 30.0, 100.0, 1e3, 1e6, 1e20) if bins != 4 else (None,):
            if scale is None:
                logits, target = confident.double().to(dtype), torch.tensor([0.0, 0.0], dtype=dtype)
            else:
                logits = (torch.randn(12, bins, generator=g, dtype=torch.float64) * scale).to(dtype)
                target = torch.rand(12, generator=g, dtype=torch.float64) * (bins - 1)
                top = logits.double().argmax(-1).double()
                target[:4] = top[:4].clamp(max=bins - 1)
                target[4:6] = (top[4:6] - 0.25).clamp(min=0)
                target[6], target[7] = 0.0, bins - 1.0
                target = target.to(dtype)
            x = logits.clone().requires_grad_(True)
            loss = distribution_focal_loss(x, target, reduction="none")
            loss.sum().backward()
            for i in range(len(target)):
                exact_loss, exact_grad = (
                    torch.tensor(v, dtype=torch.float64) for v in _oracle(logits[i].tolist(), float(target[i]))
                )
                element, row = _relative(loss[i], exact_loss), _row_relative(x.grad[i], exact_grad)
                assert element <= BOUND[dtype] and row <= BOUND[dtype], (bins, scale, i, element, row)


def test_non_finite_logits_take_cross_entropys_limits():
    """As F.cross_entropy with the two-hot target in float64: a -inf bin has probability 0 (a target bin at -inf gives
    +inf and the gradient -w there), a +inf logit, an all -inf row and a NaN give NaN. A weight-0 bin at -inf (an
    integer target beside an absent bin) contributes 0, as the hard-label cross-entropy of that integer says (the
    soft-label form forms 0 * inf = NaN)."""
    inf, nan = math.inf, math.nan
    rows = [([0.0, -inf, 1.0, 2.0], 0.5), ([inf, 0.0, 1.0, 2.0], 0.0), ([inf, 0.0, 1.0, 2.0], 2.5),
            ([inf, inf, inf, inf], 1.0), ([-inf, -inf, -inf, -inf], 1.0), ([nan, 0.0, 1.0, 2.0], 2.0),
            ([5.0, 5.0, 1.0, 2.0], 0.0), ([1e20, 0.0, -1e20, 3.0], 0.25)]  # fmt: skip
    for dtype in (torch.float32, torch.float64):
        logits = torch.tensor([r[0] for r in rows], dtype=dtype, requires_grad=True)
        target = torch.tensor([r[1] for r in rows], dtype=dtype)
        loss = distribution_focal_loss(logits, target, reduction="none")
        loss.sum().backward()
        for i, (row, y) in enumerate(rows):
            x = torch.tensor([row], dtype=torch.float64, requires_grad=True)
            left = min(int(y), 2)
            two_hot = torch.zeros(1, 4, dtype=torch.float64)
            two_hot[0, left], two_hot[0, left + 1] = left + 1 - y, y - left
            expected = F.cross_entropy(x, two_hot, reduction="sum")
            expected.backward()
            torch.testing.assert_close(loss[i].double(), expected.detach(), rtol=1e-6, atol=0, equal_nan=True)
            torch.testing.assert_close(logits.grad[i].double(), x.grad[0], rtol=1e-6, atol=1e-7, equal_nan=True)
        beside = torch.tensor([[0.0, -inf, 1.0, 2.0], [0.0, 1.0, -inf, 2.0]], dtype=dtype, requires_grad=True)
        hard = torch.tensor([0, 3])
        loss = distribution_focal_loss(beside, hard.to(dtype), reduction="none")
        torch.testing.assert_close(loss, F.cross_entropy(beside.detach(), hard, reduction="none"))
        loss.sum().backward()
        assert beside.grad[0, 1] == 0 and beside.grad[1, 2] == 0 and bool(torch.isfinite(beside.grad).all())


# --- the kernel's own guarantees --------------------------------------------------------------------------------------


@C_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sums_do_not_depend_on_the_thread_count(dtype, monkeypatch):
    """Rows over several chunks (and a partial block at the end): one thread and two give bitwise the same mean and
    sum, and the same gradient."""
    logits, target = _batch(3 * dfl_cpu.CHUNK + 21, 17, dtype, seed=4)
    monkeypatch.setattr(dfl_cpu, "ELEMENTS_PER_THREAD", 1)  # as many threads as torch has, even at this size
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append([dfl_cpu.forward_args(validate(logits, target, reduction=r), need_grad=True)
                            for r in ("sum", "mean")])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    for (loss_1, grad_1), (loss_2, grad_2) in zip(*results, strict=True):
        assert torch.equal(loss_1, loss_2) and torch.equal(grad_1, grad_2)


@C_KERNEL
def test_the_partial_sums_chunk_matches_the_c_source():
    """dfl_cpu.CHUNK sizes the buffer of per-chunk partial sums the C kernel writes (DFL_CHUNK rows each); the ctypes
    table itself is checked with every kernel's in test_native.py."""
    assert re.findall(r"#define DFL_CHUNK (\d+)", dfl_cpu.SOURCE.read_text()) == [str(dfl_cpu.CHUNK)]


def test_non_contiguous_logits_are_read_as_they_are():
    """A transposed (n, N) buffer viewed as (N, n), and a head's (B, 4 * 16, A) output permuted to (B, A, 4, 16)."""
    g = torch.Generator().manual_seed(6)
    head = torch.randn(2, 4 * 16, 30, generator=g)
    views = [torch.randn(17, 40, generator=g).t(), head.view(2, 4, 16, 30).permute(0, 3, 1, 2)]
    for view in views:
        assert not view.is_contiguous()
        target = torch.rand(view.shape[:-1], generator=g) * (view.shape[-1] - 1)
        x = view.detach().clone().requires_grad_(True)  # the same values, contiguous
        y = view.detach().requires_grad_(True)
        for reduction in ("none", "mean"):
            expected = distribution_focal_loss(x, target, reduction=reduction)
            loss = distribution_focal_loss(y, target, reduction=reduction)
            torch.testing.assert_close(loss, expected, rtol=0, atol=0)
            (grad,) = torch.autograd.grad(loss.sum(), y)
            (expected_grad,) = torch.autograd.grad(expected.sum(), x)
            torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)
            exact_loss, exact_grad = _reduced_closed_form(view.detach(), target, reduction)
            assert _relative(loss, exact_loss) <= BOUND[torch.float32]
            assert _row_relative(grad, exact_grad) <= BOUND[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(dtype):
    logits, target = _batch(4 * 20, 16, torch.float32, seed=10)
    logits, target = logits.to(dtype), target.to(dtype)
    x = logits.clone().requires_grad_(True)
    loss = distribution_focal_loss(x, target, reduction="none")
    loss.sum().backward()
    expected_loss, expected_grad = closed_form(logits.double(), target.double())
    assert loss.dtype == dtype and x.grad.dtype == dtype
    torch.testing.assert_close(loss, expected_loss.to(dtype), rtol=0, atol=0)  # one rounding of the float32 value
    torch.testing.assert_close(x.grad, expected_grad.to(dtype), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = distribution_focal_loss(logits, target)
    assert autocast_loss.dtype == torch.float32
    torch.testing.assert_close(autocast_loss, distribution_focal_loss(logits.float(), target.float()))


def test_one_row_and_empty_inputs():
    row = torch.zeros(16, requires_grad=True)
    loss = distribution_focal_loss(row, torch.tensor(7.5), reduction="none")
    assert loss.shape == () and loss.item() == pytest.approx(math.log(16), rel=1e-7)
    loss.backward()
    assert row.grad[7].item() == row.grad[8].item() == pytest.approx(1 / 16 - 0.5, rel=1e-7)
    empty = torch.zeros(0, 4, 16, requires_grad=True)
    for reduction, shape in (("mean", ()), ("sum", ()), ("none", (0, 4))):
        loss = distribution_focal_loss(empty, torch.zeros(0, 4), reduction=reduction)
        assert loss.shape == shape and float(loss.detach().sum()) == 0.0
    distribution_focal_loss(empty, torch.zeros(0, 4)).backward()
    assert empty.grad.shape == (0, 4, 16)


# --- arguments --------------------------------------------------------------------------------------------------------

#: (logits, target, keywords, error, message): every rejected argument, named.
BAD = [
    (torch.zeros(4, 16), torch.full((4,), 15.0 + 1e-5), {}, ValueError,
     r"target values must be in \[0, 15\] \(the bins' range, n - 1 with n = 16 bins along the logits' last axis\)\. "
     r"Got: 4 value\(s\) outside, e\.g\. \[15\.0000"),
    (torch.zeros(4, 17), torch.tensor([1.0, -0.5, 2.0, 3.0]), {}, ValueError,
     r"target values must be in \[0, 16\] .*Got: 1 value\(s\) outside, e\.g\. \[-0\.5\]"),
    (torch.zeros(4, 16), torch.tensor([1.0, math.nan, 2.0, 3.0]), {}, ValueError,
     r"target values must be in \[0, 15\] .*Got: 1 value\(s\) outside, e\.g\. \[nan\]"),
    (torch.zeros(4, 16), torch.zeros(4, 1), {}, ValueError,
     r"target must have the logits' shape without the bin axis, \(4,\)\. Got: shape \(4, 1\)"),
    (torch.zeros(4, 16), torch.zeros(4, 16), {}, ValueError,
     r"target must have the logits' shape without the bin axis, \(4,\)\. Got: shape \(4, 16\)"),
    (torch.zeros(4, 16), torch.zeros(4, dtype=torch.int64), {}, TypeError,
     r"target must be a floating-point tensor of continuous bin positions in \[0, n - 1\] .*Got: torch\.int64"),
    (torch.zeros(4, 1), torch.zeros(4), {}, ValueError,
     r"logits must have the bins along their last axis, at least 2 of them: shape \(\.\.\., n\), n >= 2\. "
     r"Got: shape \(4, 1\)"),
    (torch.zeros(()), torch.zeros(()), {}, ValueError, r"logits must have the bins along their last axis"),
    (torch.zeros(4, 16, dtype=torch.int32), torch.zeros(4), {}, TypeError,
     r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int32"),
    ([[0.0] * 16], torch.zeros(1), {}, TypeError, r"logits must be a torch\.Tensor\. Got: list"),
    (torch.zeros(4, 16), [1.0] * 4, {}, TypeError, r"target must be a torch\.Tensor\. Got: list"),
    (torch.zeros(4, 16), torch.zeros(4, requires_grad=True), {}, ValueError, r"target must not require grad"),
    (torch.zeros(4, 16), torch.zeros(4), {"reduction": "batchmean"}, ValueError,
     r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'batchmean'"),
]  # fmt: skip


def test_bad_arguments_are_rejected_before_any_work_naming_the_argument(monkeypatch):
    """validate raises before a kernel is chosen (monkeypatched to fail); the loss raises the same error (on the CPU
    the target's range is counted by the kernel in its own pass: the same message, and nothing is returned)."""
    import focalbench.losses.common as common

    for logits, target, keywords, error, message in BAD:
        with monkeypatch.context() as patched:
            patched.setattr(common, "choose", lambda *a, **k: pytest.fail("a kernel was chosen for a bad call"))
            with pytest.raises(error, match=message):
                validate(logits, target, **keywords)
        x = logits.clone().requires_grad_(True) if isinstance(logits, torch.Tensor) and logits.is_floating_point() \
            else logits  # fmt: skip
        with pytest.raises(error, match=message):
            distribution_focal_loss(x, target, **keywords)
        if isinstance(x, torch.Tensor) and x.requires_grad:
            assert x.grad is None


@C_KERNEL
def test_the_c_kernel_counts_the_targets_outside_as_it_computes_with_the_host_checks_error():
    """On the CPU validation leaves the range to the kernel (no host pass): one bad value in the last chunk raises the
    host check's exact message, for each reduction, and with or without a gradient."""
    assert choose("dfl", "cpu").range_checked
    logits = torch.randn(3 * dfl_cpu.CHUNK, 16, requires_grad=True)
    for bad in (15.5, -0.25, math.nan, math.inf):
        target = torch.rand(3 * dfl_cpu.CHUNK) * 15
        target[-3] = bad
        with pytest.raises(ValueError) as on_host:
            validate(logits, target)
        for reduction in ("none", "sum", "mean"):
            with pytest.raises(ValueError) as raised:
                distribution_focal_loss(logits, target, reduction=reduction)
            assert str(raised.value) == str(on_host.value)
        with torch.no_grad(), pytest.raises(ValueError):
            distribution_focal_loss(logits, target)
    assert logits.grad is None


def test_the_module_stores_its_reduction_and_calls_the_function():
    """The defaults have one home; the module and the function agree; a bad reduction fails at construction."""
    assert DEFAULTS == {"reduction": "mean"}
    criterion = DistributionFocalLoss(reduction="sum")
    assert repr(criterion) == "DistributionFocalLoss(reduction='sum')"
    assert repr(DistributionFocalLoss()) == "DistributionFocalLoss(reduction='mean')"
    logits, target = _batch(4 * 8, 16, torch.float32, seed=12)
    assert torch.equal(criterion(logits, target), distribution_focal_loss(logits, target, reduction="sum"))
    assert torch.equal(DistributionFocalLoss()(logits, target), focalbench.distribution_focal_loss(logits, target))
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'Mean'"):
        DistributionFocalLoss(reduction="Mean")
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.jit.script(criterion)
    assert focalbench.DflArgs is type(validate(logits, target))


def test_the_kernel_table_names_the_registered_implementations():
    assert RECOMMENDED_DFL == focalbench.RECOMMENDED_DFL == "dfl_fused"
    expected = "dfl_fused" if dfl_cpu.available() is None else "dfl_fused_eager"
    assert dfl_implementation_for("cpu") == expected
    assert choose("dfl", "cpu").range_checked == (expected == "dfl_fused")
    assert dfl_implementation_for("mps") == "dfl_fused_eager"


# --- autograd, torch.compile, torch.export ----------------------------------------------------------------------------


def test_a_gradient_penalty_equals_autograd_through_log_softmax():
    """create_graph=True: the kernel's gradient with the closed form's derivative, as autograd of the formula."""
    logits, target = _batch(12, 17, torch.float64, seed=14, scale=2.0)

    def penalty(fn):
        x = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        return grad, torch.autograd.grad(grad.pow(2).sum(), x)[0]

    def formula(x):
        left = target.floor().clamp(max=15).long()[:, None]
        log_p = torch.log_softmax(x, dim=-1)
        w_left = left + 1 - target[:, None]
        return -(w_left * log_p.gather(-1, left) + (1 - w_left) * log_p.gather(-1, left + 1)).mean()

    for reduction in ("mean", "none"):
        grad, second = penalty(lambda x, reduction=reduction: distribution_focal_loss(x, target, reduction=reduction)
                               .mean())  # fmt: skip
        expected_grad, expected_second = penalty(formula)
        assert second.abs().max() > 1e-3
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(second, expected_second, rtol=1e-10, atol=1e-13)


def test_a_compiled_training_step_has_no_graph_break_and_matches_eager():
    """One fullgraph compilation of a YOLO-like box head's step: the loss and every parameter's gradient as eager; a
    bad target raises the eager error when the graph runs."""
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 4 * 16)
    features, target = torch.randn(50, 8), torch.rand(50, 4) * 14.99

    def step(inputs, boxes):
        distribution = head(inputs).view(-1, 4, 16)
        return (distribution_focal_loss(distribution, boxes, reduction="none").mean(-1) * 0.5).sum()

    def run(fn):
        head.zero_grad()
        loss = fn(features, target)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in head.parameters()]

    eager_loss, eager_grads = run(step)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss, grads = run(compiled)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
    for grad, eager in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 15\]"):
        compiled(features, target + 2)


def test_export_runs_the_custom_operator_and_opcheck_passes():
    from focalbench.losses.dfl.op import distribution_focal_loss as operator

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.criterion = DistributionFocalLoss()

        def forward(self, logits, target):
            return self.criterion(logits, target)

    logits, target = _batch(6, 17, torch.float32, seed=16)
    exported = torch.export.export(Head(), (logits, target))
    assert "focalbench.distribution_focal_loss" in str(exported.graph_module.code)
    torch.testing.assert_close(exported.module()(logits, target), distribution_focal_loss(logits, target))
    for shape, reduction in (((6,), "sum"), ((2, 4), "none"), ((), "mean")):
        x, t = _batch(1, 16, torch.float64, seed=17, extra=shape)
        x, t = x[0], t[0]
        torch.library.opcheck(operator, (x.requires_grad_(True), t, reduction, True))


# --- the CUDA path's Triton kernel, in Triton's interpreter on a CPU run ---------------------------------------------


def test_the_triton_kernel_matches_the_closed_form(device):
    """distribution_focal_loss on its CUDA path (Triton's interpreter on CPU tensors): every reduction, n = 2, 16,
    17 and a row longer than one tile, float32/float64/bfloat16, non-finite logits; a target outside gives NaN at its
    row (no host read), and check_values() raises the host check's error instead."""
    from focalbench.kernels import dfl_triton

    if dfl_triton.UNAVAILABLE is not None:
        pytest.skip(dfl_triton.UNAVAILABLE)
    if device == "cpu" and not dfl_triton.INTERPRETED:
        pytest.skip("the Triton kernel needs CUDA or TRITON_INTERPRET=1")
    on_cuda = distribution_focal_loss_on("cuda")
    for bins, rows, dtype in ((16, 24, torch.float32), (17, 9, torch.float64), (2, 5, torch.float32),
                              (1100, 3, torch.float32), (16, 8, torch.bfloat16)):  # fmt: skip
        logits, target = _batch(rows, bins, torch.float64, seed=bins, scale=6.0)
        logits[2, :2] = torch.tensor([-math.inf, 80.0])
        logits, target = logits.to(device=device, dtype=dtype), target.to(device=device, dtype=dtype)
        for reduction in ("none", "sum", "mean"):
            x = logits.clone().requires_grad_(True)
            loss = on_cuda(x, target, reduction=reduction)
            loss.sum().backward()
            exact_loss, exact_grad = _reduced_closed_form(logits.cpu(), target.cpu(), reduction)
            bound = 1e-2 if dtype == torch.bfloat16 else BOUND[dtype]
            assert loss.dtype == dtype and x.grad.dtype == dtype
            assert _relative(loss.cpu(), exact_loss) <= bound, (bins, dtype, reduction)
            assert _row_relative(x.grad.cpu(), exact_grad) <= bound, (bins, dtype, reduction)
    logits = torch.randn(4, 16, device=device)
    bad = torch.tensor([1.0, 15.5, math.nan, -0.1], device=device)
    loss = on_cuda(logits, bad, reduction="none")
    assert bool(torch.isfinite(loss[0])) and bool(torch.isnan(loss[1:]).all())
    assert bool(torch.isnan(on_cuda(logits, bad, reduction="sum")))
    with focalbench.check_values(), pytest.raises(ValueError, match=r"target values must be in \[0, 15\]"):
        on_cuda(logits, bad)


_TRACE = textwrap.dedent(
    """
    from pathlib import Path

    import torch
    import triton
    from torch._library.triton import triton_ops_to_kernels
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    from focalbench.kernels import dfl_triton
    from focalbench.losses.dfl import op

    print("TRITON_OPS", sorted(name for name in triton_ops_to_kernels if name.startswith("focalbench::distribution")))
    with FakeTensorMode(allow_non_fake_inputs=True):
        logits, target = torch.empty(64, 4, 16, device="cuda"), torch.empty(64, 4, device="cuda")
        for reduction in ("mean", "none"):
            print("GRAPH", make_fx(lambda z, t: op.cuda_body(z, t, reduction, True)[0])(logits, target).code)
    try:  # Triton's own compiler, for an H100, on this machine: what the interpreter never runs
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists():
            raise ImportError("no ptxas in this Triton")
        signature = {"z_ptr": "*fp32", "y_ptr": "*fp32", "loss_ptr": "*fp64", "grad_ptr": "*fp32", "R": "i32",
                     "N": "i32", "scale_hi": "fp32", "scale_lo": "fp32", **dict.fromkeys(
                         ("WRITE_LOSS", "NEED_GRAD", "ONE_TILE", "BLOCK_R", "BLOCK_N"), "constexpr")}
        constants = {"WRITE_LOSS": False, "NEED_GRAD": True, "ONE_TILE": True, "BLOCK_R": 64, "BLOCK_N": 16}
        source = ASTSource(fn=dfl_triton._dfl_kernel, signature=signature, constexprs=constants)
    except (ImportError, TypeError) as error:
        print("COMPILED skipped:", error)
    else:
        print("COMPILED", len(triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm["ptx"]))
    """
)


def test_the_cuda_operator_is_one_triton_kernel_that_compiles_for_a_gpu():
    """A fresh process without Triton's interpreter: the CUDA operator is a triton_op whose body, traced on fake CUDA
    tensors (no GPU), is one triton_kernel_wrapper node with no value read on the host; and the kernel compiles with
    Triton's own compiler for an sm_90 GPU (the interpreter runs its Python, not its code generation)."""
    from focalbench.kernels import dfl_triton

    if dfl_triton.UNAVAILABLE is not None:
        pytest.skip(dfl_triton.UNAVAILABLE)
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", _TRACE], capture_output=True, text=True, env=environment,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TRITON_OPS ['focalbench::distribution_focal_loss_cuda']" in result.stdout
    graphs = result.stdout.split("GRAPH")[1:]
    assert len(graphs) == 2
    for code in graphs:
        assert code.count("higher_order.triton_kernel_wrapper_mutation(") == 1, code
        assert "_local_scalar_dense" not in code and "nonzero" not in code, code
    assert re.search(r"COMPILED (\d+|skipped)", result.stdout), result.stdout[-2000:]
