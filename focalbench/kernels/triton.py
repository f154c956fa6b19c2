"""The closed-form focal loss (:mod:`focalbench.losses.softmax.closed_form`) as one Triton kernel for CUDA (``triton``).

One launch reads the logits, computes each row's loss and, when the logits require a gradient, writes the gradient
too; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each program takes ``BLOCK_R`` rows (a
row is one ``(n, d1..dk)`` position) and walks the classes in chunks of ``BLOCK_C``:

1. online softmax over the chunks: running maximum ``m`` and running sum of ``exp(z_j - m)`` over the non-target
   classes (rescaled when ``m`` grows), float32 accumulation; the target logit is picked up on the way;
2. per-row scalars in float64 from ``d = log S + (m - z_t)``: loss and ``G`` (float64 is used there only: O(rows)
   operations, against O(rows x classes) float32 ones; float64 logits are computed in float64 throughout);
3. second walk: ``grad_j = G exp(z_j - m) / S`` off the target, ``-G`` at it, stored in the logits' dtype.

This is what :func:`focalbench.focal_loss` runs on CUDA, and it reads no value on the host: the target's range is
checked here (a counted target outside ``[0, C)`` gives its row a NaN loss and NaN gradient), the weight
``alpha[target]`` is read here from the ``C`` weights, and gamma and the mean's ``1 / count`` may be read from device
tensors (:data:`focalbench.losses.common.LossArgs.device_checks`). The exponential is libdevice's ``exp`` on a GPU
(``tl.exp`` lowers to ``ex2.approx``, whose error grows with ``|z - m|``: about 2e-6 relative at a gap of 30) and
NumPy's in the interpreter.

Each ``z_j - m`` is corrected by its exact float32 rounding error (Knuth's TwoSum, ``exp(hi + lo) ~ exp(hi)(1 + lo)``),
so confident rows keep their digits. Dense inputs are addressed through their strides (no permute-copy). The loss is
written per row and reduced by PyTorch: no atomics, the result does not depend on scheduling.

Non-finite logits take their limits: an exponent below float32's range, -inf included, is exactly 0 (a -inf class is
absent; no row sum: loss and gradient 0); a target at -inf gives ``d = +inf``, loss +inf and ``G = alpha_t``; a NaN
sum counts as mass, so NaN reaches the loss. Ignored rows (target ``ignore_index``) read no logit: loss and gradient
exactly 0 whatever they hold.

With ``TRITON_INTERPRET=1`` (set by the test suite on a CPU run) the kernel runs in Triton's interpreter on CPU
tensors, which is how it is checked without a GPU. Without triton installed, :data:`UNAVAILABLE` says why.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import TYPE_CHECKING

import numpy
import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.softmax.semantics import FocalArgs


__all__ = ["INTERPRETED", "UNAVAILABLE", "available", "launch", "split", "triton_forward", "value_pointer"]

#: None where triton can be used, else why not.
UNAVAILABLE: str | None = None
try:
    import triton
    import triton.language as tl
except ImportError as error:  # triton is an optional extra
    triton = None
    UNAVAILABLE = f"triton is not installed (pip install 'focalbench[triton]'): {error}"

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def available() -> str | None:
    """None where the Triton kernels can run (on CUDA; on the CPU through the interpreter), else why not."""
    return UNAVAILABLE


def launch(kernel, grid: tuple[int, ...], *args, **constants) -> None:
    """``kernel[grid](*args, **constants)``, visible to ``torch.compile``/``torch.export`` (``wrap_triton``: the
    kernel becomes a node Inductor schedules, not an opaque call); the interpreter's quiet NumPy errors (it evaluates
    both sides of every ``tl.where``, masked lanes included)."""
    from torch.library import wrap_triton

    quiet = numpy.errstate(all="ignore") if INTERPRETED else contextlib.nullcontext()
    with quiet:
        wrap_triton(kernel)[grid](*args, **constants)


def split(value: float) -> tuple[float, float]:
    """``value`` as two float32 numbers whose float64 sum is within 2^-48 of it: a Triton kernel receives a Python
    float as float32, which would round gamma or 1 / count to 6e-8 (the float64 bound is 1e-12)."""
    high = float(numpy.float32(value))
    return high, float(numpy.float32(value - high)) if math.isfinite(high) else 0.0


def value_pointer(value: float | torch.Tensor, like: torch.Tensor) -> tuple[float, float, torch.Tensor, bool]:
    """A scalar argument as a kernel takes it: ``(high, low, pointer, from_pointer)``; a device tensor stays one
    (its value is read by the kernel), a float is passed by value (:func:`split`) with ``like`` as an unused
    pointer."""
    if isinstance(value, torch.Tensor):
        return 0.0, 0.0, value.to(device=like.device, dtype=torch.float64, non_blocking=True).reshape(1), True
    return (*split(float(value)), like, False)

if triton is not None:
    if INTERPRETED:

        @triton.jit
        def exp(x):
            """exp in the interpreter: NumPy's."""
            return tl.exp(x)

        @triton.jit
        def log(x):
            """log in the interpreter: NumPy's."""
            return tl.log(x)

    else:
        from triton.language.extra import libdevice

        @triton.jit
        def exp(x):
            """exp on a GPU: libdevice's (a few ulp at every argument; ``tl.exp`` is ``ex2.approx`` of ``x log2 e``,
            whose error grows with ``|x|``)."""
            return libdevice.exp(x)

        @triton.jit
        def log(x):
            """log on a GPU: libdevice's (``tl.log`` is ``lg2.approx``: an absolute error of about 1e-7, a large
            relative one near 1)."""
            return libdevice.log(x)

    NAN = tl.constexpr(float("nan"))
    INF = tl.constexpr(float("inf"))

    @triton.jit
    def _exp_shifted(z, m, FLOOR: tl.constexpr):
        """exp(z - m) with the rounding error of z - m folded back in (TwoSum).

        Exactly 0 where ``z - m`` is below ``FLOOR`` (the exponent range of the dtype), -inf included (an absent class,
        or a gap beyond the dtype's range): there TwoSum's ``lo`` would be ``inf - inf``. A NaN ``z`` or ``m`` still
        gives NaN.
        """
        hi = z - m
        back = hi - z
        lo = (z - (hi - back)) + (-m - back)
        return tl.where(hi < FLOOR, 0.0, exp(hi) * (1.0 + lo))

    @triton.jit
    def _exp_low(z, m, FLOOR: tl.constexpr, LOW: tl.constexpr):
        """``exp(z - m + 64)`` where ``z - m`` lies in ``[FLOOR, LOW)``, else 0: an exponential below float32's
        normal range kept at its relative accuracy (``z - m + 64`` is exact there: both are multiples of ``z - m``'s
        spacing); the caller multiplies by ``e^-64`` in float64."""
        hi = z - m
        back = hi - z
        lo = (z - (hi - back)) + (-m - back)
        return tl.where((hi < FLOOR) | (hi >= LOW), 0.0, exp(hi + 64.0) * (1.0 + lo))

    @triton.jit
    def log1p(y):
        """log(1 + y) for y >= 0, accurate for tiny y: log(u) * y / (u - 1) with u = 1 + y (Goldberg)."""
        u = 1.0 + y
        um1 = u - 1.0
        safe = tl.where(um1 == 0.0, 1.0, um1)
        return tl.where(um1 == 0.0, y, tl.log(u) * (y / safe))

    @triton.jit
    def _softplus(x):
        return tl.maximum(x, 0.0) + log1p(exp(-tl.abs(x)))

    @triton.jit
    def _focal_kernel(
        z_ptr, t_ptr, a_ptr, gamma_ptr, scale_ptr, loss_ptr, g_ptr,  # a_ptr: C weights, or one (ALPHA_KIND 3)
        R, S, C,
        s_n, s_s, s_c, g_n, g_s, g_c,
        ignore_index, alpha_hi, alpha_lo, gamma_hi, gamma_lo, scale_hi, scale_lo,  # float64 values as float32 pairs
        ALPHA_KIND: tl.constexpr, GAMMA_FROM_PTR: tl.constexpr, SCALE_FROM_PTR: tl.constexpr,
        NEED_GRAD: tl.constexpr, F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        if F64:
            ACC: tl.constexpr = tl.float64
            LOWEST: tl.constexpr = -1.7976931348623157e308
            FLOOR: tl.constexpr = -746.0
            LOW: tl.constexpr = -746.0  # float64 keeps every exponential the loss needs: no low part
        else:
            ACC: tl.constexpr = tl.float32
            LOWEST: tl.constexpr = -3.4028234663852886e38
            FLOOR: tl.constexpr = -120.0  # below, even a million exponentials sum to under half the least float32
            LOW: tl.constexpr = -80.0  # below, exponentials are summed apart, times e^64 (_exp_low)
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < R
        n = (rows // S).to(tl.int64)
        s = (rows % S).to(tl.int64)
        z_row = z_ptr + n * s_n + s * s_s
        target = tl.load(t_ptr + rows, mask=row_ok, other=0)
        # 0. the values checked here, not on the host: a counted target outside [0, C), a gamma or a weight that is
        #    negative or not finite makes the row's loss and gradient NaN. An ignored row reads no logit: alpha = 0
        #    then makes its loss and gradient exactly 0, whatever its logits hold.
        counted = row_ok & (target != ignore_index)
        good = counted & (target >= 0) & (target < C)
        if GAMMA_FROM_PTR:
            gamma = tl.load(gamma_ptr).to(tl.float64)
        else:
            gamma = tl.cast(gamma_hi, tl.float64) + tl.cast(gamma_lo, tl.float64)
        gamma_rows = tl.zeros([BLOCK_R], tl.float64) + gamma  # gamma * 0 below: NaN at inf and NaN
        bad = (counted & ~good) | (row_ok & ((gamma_rows < 0.0) | (gamma_rows * 0.0 != 0.0)))
        target = tl.where(good, target, -1)
        if ALPHA_KIND == 0:
            alpha = tl.where(good, 1.0, 0.0).to(tl.float64)
        elif ALPHA_KIND == 1:
            alpha = tl.where(good, tl.cast(alpha_hi, tl.float64) + tl.cast(alpha_lo, tl.float64), 0.0)
        elif ALPHA_KIND == 3:  # one weight for every class, read from the device
            alpha = tl.where(good, tl.load(a_ptr).to(tl.float64), 0.0)
        else:
            alpha = tl.load(a_ptr + tl.where(good, target, 0), mask=good, other=0.0).to(tl.float64)
        if ALPHA_KIND >= 2:  # weights from a traced call are checked here: negative or not finite gives NaN
            bad = bad | (good & ((alpha < 0.0) | (alpha * 0.0 != 0.0)))
        if SCALE_FROM_PTR:
            scale = tl.load(scale_ptr).to(tl.float64)
        else:
            scale = tl.cast(scale_hi, tl.float64) + tl.cast(scale_lo, tl.float64)

        # 1. online maximum and non-target sum
        m = tl.full([BLOCK_R], LOWEST, ACC)
        total = tl.zeros([BLOCK_R], ACC)
        total_low = tl.zeros([BLOCK_R], ACC)  # the exponentials below LOW, times e^64
        z_t = tl.zeros([BLOCK_R], ACC)
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            ok = row_ok[:, None] & (cols < C)[None, :]
            live = ok & good[:, None]
            z = tl.load(z_row[:, None] + cols[None, :].to(tl.int64) * s_c, mask=live, other=0.0).to(ACC)
            z = tl.where(ok, z, LOWEST)
            is_t = cols[None, :] == target[:, None]
            z_t += tl.sum(tl.where(is_t & ok, z, 0.0), axis=1)
            new_m = tl.maximum(m, tl.max(z, axis=1))
            off_target = ok & (~is_t)
            e = tl.where(off_target, _exp_shifted(z, new_m[:, None], LOW), 0.0)
            e_low = tl.where(off_target, _exp_low(z, new_m[:, None], FLOOR, LOW), 0.0)
            rescale = exp(m - new_m)
            total = total * rescale + tl.sum(e, axis=1)
            total_low = total_low * rescale + tl.sum(e_low, axis=1)
            m = new_m

        # 2. per-row scalars in float64
        s64 = total.to(tl.float64) + total_low.to(tl.float64) * 1.603810890548638e-28  # e^-64
        has_rest = s64 != 0.0  # NaN counts as mass: it must reach the loss
        safe = tl.where(has_rest, s64, 1.0)
        d = tl.log(safe) + (m.to(tl.float64) - z_t.to(tl.float64))
        neg_log_p_t = _softplus(d)
        log_one_minus_p_t = -_softplus(-d)
        focal = tl.where(gamma == 0.0, 1.0, exp(gamma * log_one_minus_p_t))
        weighted = alpha * focal
        # an element of weight 0 weighs nothing, even at a target of -inf (0 * inf); a NaN still propagates
        inert = (weighted == 0.0) & (neg_log_p_t == INF)
        loss = tl.where(bad, NAN, tl.where(has_rest & ~inert, weighted * neg_log_p_t, 0.0))
        tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_ok)

        # 3. gradient: G exp(z_j - m) / S off the target, -G at it
        if NEED_GRAD:
            p_t = exp(-neg_log_p_t)
            p_t_log_p_t = tl.where(p_t > 0.0, p_t * neg_log_p_t, 0.0)  # x log x -> 0 as x -> 0: a target at -inf
            big_g = tl.where(has_rest, weighted * (exp(log_one_minus_p_t) + gamma * p_t_log_p_t) * scale, 0.0)
            coef = tl.where(bad, NAN, big_g / safe).to(ACC)
            coef_low = tl.where(bad, NAN, big_g / safe * 1.603810890548638e-28).to(ACC)  # for _exp_low's e^64
            minus_g = tl.where(bad, NAN, -big_g).to(ACC)
            g_row = g_ptr + n * g_n + s * g_s
            for c0 in range(0, C, BLOCK_C):
                cols = c0 + tl.arange(0, BLOCK_C)
                ok = row_ok[:, None] & (cols < C)[None, :]
                live = ok & good[:, None]
                z = tl.load(z_row[:, None] + cols[None, :].to(tl.int64) * s_c, mask=live, other=0.0).to(ACC)
                is_t = cols[None, :] == target[:, None]
                off = _exp_shifted(z, m[:, None], LOW) * coef[:, None]
                off += _exp_low(z, m[:, None], FLOOR, LOW) * coef_low[:, None]
                grad = tl.where(is_t, minus_g[:, None], off)
                tl.store(
                    g_row[:, None] + cols[None, :].to(tl.int64) * g_c,
                    grad.to(g_ptr.dtype.element_ty),
                    mask=ok,
                )

    def _blocks(rows: int, classes: int) -> tuple[int, int]:
        """Tile sizes: the classes in as few chunks as a register budget allows, rows to fill the tile."""
        budget = 1024 if INTERPRETED else 8192
        block_c = min(triton.next_power_of_2(classes), budget, 64 if INTERPRETED else 4096)
        block_r = max(1, min(triton.next_power_of_2(rows), budget // block_c))
        return block_r, block_c

    def triton_forward(args: FocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-element loss (float32; float64 for float64 logits) and the reduction-scaled gradient (logits' dtype),
        from one launch, reading no value on the host."""
        logits = args.logits
        n, c = logits.shape[:2]
        spatial = math.prod(logits.shape[2:])
        view = logits.reshape(n, c, spatial)  # a view for contiguous dense inputs; strided addressing either way
        rows = n * spatial
        target = args.target.reshape(-1).contiguous()
        f64 = logits.dtype == torch.float64
        loss = logits.new_empty(rows, dtype=torch.float64 if f64 else torch.float32)
        grad = logits.new_empty((n, c, spatial)) if need_grad else loss
        alpha = args.alpha
        if isinstance(alpha, torch.Tensor) and alpha.dim() == 0:  # a scalar of a traced call: a graph input
            alpha_kind, weights = 3, alpha.to(device=logits.device, dtype=torch.float64, non_blocking=True).reshape(1)
        else:
            alpha_kind = 0 if alpha is None else 1 if isinstance(alpha, float) else 2
            weights = alpha.contiguous() if alpha_kind == 2 else loss
        gamma_hi, gamma_lo, gamma_ptr, gamma_from_ptr = value_pointer(args.gamma, loss)
        scale_hi, scale_lo, scale_ptr, scale_from_ptr = value_pointer(args.reduction_scale, loss)
        alpha_hi, alpha_lo = split(float(alpha)) if alpha_kind == 1 else (0.0, 0.0)
        if rows:
            block_r, block_c = _blocks(rows, c)
            launch(
                _focal_kernel, (triton.cdiv(rows, block_r),),
                view, target, weights, gamma_ptr, scale_ptr, loss, grad,
                rows, spatial, c,
                view.stride(0), view.stride(2), view.stride(1), c * spatial, 1, spatial,
                args.ignore_index, alpha_hi, alpha_lo, gamma_hi, gamma_lo, scale_hi, scale_lo,
                ALPHA_KIND=alpha_kind, GAMMA_FROM_PTR=gamma_from_ptr, SCALE_FROM_PTR=scale_from_ptr,
                NEED_GRAD=need_grad, F64=f64, BLOCK_R=block_r, BLOCK_C=block_c,
            )  # fmt: skip
        return loss.reshape(args.target.shape), (grad.reshape(logits.shape) if need_grad else None)
