"""The closed-form focal loss (:mod:`focalbench.losses.softmax.closed_form`) as one Triton kernel for CUDA (``triton``).

One launch reads the logits, computes each row's loss and, when the logits require a gradient, writes the gradient
too; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each program takes ``BLOCK_R`` rows (a
row is one ``(n, d1..dk)`` position) and walks the classes in chunks of ``BLOCK_C``:

1. online softmax over the chunks: running maximum ``m`` and running sum of ``exp(z_j - m)`` over the non-target
   classes (rescaled when ``m`` grows), float32 accumulation; the target logit is picked up on the way;
2. per-row scalars in float64 from ``d = log S + (m - z_t)``: loss and ``G``;
3. second walk: ``grad_j = G exp(z_j - m) / S`` off the target, ``-G`` at it, stored in the logits' dtype.

Each ``z_j - m`` is corrected by its exact float32 rounding error (Knuth's TwoSum, ``exp(hi + lo) ~ exp(hi)(1 + lo)``),
so confident rows keep their digits. Dense inputs are addressed through their strides (no permute-copy). The loss is
written per row and reduced by PyTorch: no atomics, the result does not depend on scheduling.

Non-finite logits take their limits: an exponent below float32's range, -inf included, is exactly 0 (a -inf class is
absent; no row sum: loss and gradient 0); a target at -inf gives ``d = +inf``, loss +inf and ``G = alpha_t``; a NaN
sum counts as mass, so NaN reaches the loss. Ignored rows are passed as target -1 and read as zeros.

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


__all__ = ["INTERPRETED", "UNAVAILABLE", "triton_forward"]

#: None where triton can be used, else why not.
UNAVAILABLE: str | None = None
try:
    import triton
    import triton.language as tl
except ImportError as error:  # triton is an optional extra
    triton = None
    UNAVAILABLE = f"triton is not installed (pip install 'focalbench[triton]'): {error}"

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if triton is not None:

    @triton.jit
    def _exp_shifted(z, m):
        """exp(z - m) with the float32 rounding error of z - m folded back in (TwoSum).

        Exactly 0 where ``z - m`` is below float32's exponent range, -inf included (an absent class, or a gap beyond
        float32's range): there TwoSum's ``lo`` would be ``inf - inf``. A NaN ``z`` or ``m`` still gives NaN.
        """
        hi = z - m
        back = hi - z
        lo = (z - (hi - back)) + (-m - back)
        return tl.where(hi < -104.0, 0.0, tl.exp(hi) * (1.0 + lo))

    @triton.jit
    def log1p(y):
        """log(1 + y) for y >= 0, accurate for tiny y: log(u) * y / (u - 1) with u = 1 + y (Goldberg)."""
        u = 1.0 + y
        um1 = u - 1.0
        safe = tl.where(um1 == 0.0, 1.0, um1)
        return tl.where(um1 == 0.0, y, tl.log(u) * (y / safe))

    @triton.jit
    def _softplus(x):
        return tl.maximum(x, 0.0) + log1p(tl.exp(-tl.abs(x)))

    @triton.jit
    def _focal_kernel(
        z_ptr, t_ptr, a_ptr, loss_ptr, g_ptr,
        R, S, C,
        s_n, s_s, s_c, g_n, g_s, g_c,
        gamma, scale,
        NEED_GRAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < R
        n = (rows // S).to(tl.int64)
        s = (rows % S).to(tl.int64)
        z_row = z_ptr + n * s_n + s * s_s
        target = tl.load(t_ptr + rows, mask=row_ok, other=0)
        # an ignored row (target -1) is read as zeros: alpha = 0 then makes its loss and gradient exactly 0, whatever
        # its logits hold
        counted = row_ok & (target >= 0)
        alpha = tl.load(a_ptr + rows, mask=row_ok, other=0.0).to(tl.float64)
        lowest = -3.4028234663852886e38

        # 1. online maximum and non-target sum
        m = tl.full([BLOCK_R], lowest, tl.float32)
        total = tl.zeros([BLOCK_R], tl.float32)
        z_t = tl.zeros([BLOCK_R], tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            ok = row_ok[:, None] & (cols < C)[None, :]
            live = ok & counted[:, None]
            z = tl.load(z_row[:, None] + cols[None, :].to(tl.int64) * s_c, mask=live, other=0.0).to(tl.float32)
            z = tl.where(ok, z, lowest)
            is_t = cols[None, :] == target[:, None]
            z_t += tl.sum(tl.where(is_t & ok, z, 0.0), axis=1)
            new_m = tl.maximum(m, tl.max(z, axis=1))
            e = tl.where(ok & (~is_t), _exp_shifted(z, new_m[:, None]), 0.0)
            total = total * tl.exp(m - new_m) + tl.sum(e, axis=1)
            m = new_m

        # 2. per-row scalars in float64
        s64 = total.to(tl.float64)
        has_rest = s64 != 0.0  # NaN counts as mass: it must reach the loss
        safe = tl.where(has_rest, s64, 1.0)
        d = tl.log(safe) + (m.to(tl.float64) - z_t.to(tl.float64))
        neg_log_p_t = _softplus(d)
        log_one_minus_p_t = -_softplus(-d)
        focal = tl.where(gamma == 0.0, 1.0, tl.exp(gamma * log_one_minus_p_t))
        weighted = alpha * focal
        loss = tl.where(has_rest, weighted * neg_log_p_t, 0.0)
        tl.store(loss_ptr + rows, loss, mask=row_ok)

        # 3. gradient: G exp(z_j - m) / S off the target, -G at it
        if NEED_GRAD:
            p_t = tl.exp(-neg_log_p_t)
            p_t_log_p_t = tl.where(p_t > 0.0, p_t * neg_log_p_t, 0.0)  # x log x -> 0 as x -> 0: a target at -inf
            big_g = tl.where(has_rest, weighted * (tl.exp(log_one_minus_p_t) + gamma * p_t_log_p_t) * scale, 0.0)
            coef = (big_g / safe).to(tl.float32)
            minus_g = (-big_g).to(tl.float32)
            g_row = g_ptr + n * g_n + s * g_s
            for c0 in range(0, C, BLOCK_C):
                cols = c0 + tl.arange(0, BLOCK_C)
                ok = row_ok[:, None] & (cols < C)[None, :]
                live = ok & counted[:, None]
                z = tl.load(z_row[:, None] + cols[None, :].to(tl.int64) * s_c, mask=live, other=0.0).to(tl.float32)
                is_t = cols[None, :] == target[:, None]
                grad = tl.where(is_t, minus_g[:, None], _exp_shifted(z, m[:, None]) * coef[:, None])
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
        """Per-element loss (float32) and the reduction-scaled gradient (logits' dtype), from one launch."""
        logits = args.logits
        n, c = logits.shape[:2]
        spatial = math.prod(logits.shape[2:])
        view = logits.reshape(n, c, spatial)  # a view for contiguous dense inputs; strided addressing either way
        rows = n * spatial
        # ignored rows as -1: the kernel reads none of their logits
        target = (args.target if args.all_counted else args.target.masked_fill(~args.valid, -1)).reshape(-1)
        target = target.contiguous()
        alpha_t = args.alpha_t(torch.float32).reshape(-1).contiguous()
        loss = torch.empty(rows, dtype=torch.float32, device=logits.device)
        grad = torch.empty((n, c, spatial), dtype=logits.dtype, device=logits.device) if need_grad else loss
        scale = args.reduction_scale
        if rows:
            block_r, block_c = _blocks(rows, c)
            # the interpreter evaluates both sides of every tl.where in NumPy, masked lanes included
            quiet = numpy.errstate(all="ignore") if INTERPRETED else contextlib.nullcontext()
            with quiet:
                _launch(view, target, alpha_t, loss, grad, rows, spatial, c, args.gamma, scale, need_grad, block_r,
                        block_c)  # fmt: skip
        return loss.reshape(args.target.shape), (grad.reshape(logits.shape) if need_grad else None)

    def _launch(view, target, alpha_t, loss, grad, rows, spatial, c, gamma, scale, need_grad, block_r, block_c):
        _focal_kernel[(triton.cdiv(rows, block_r),)](
                view, target, alpha_t, loss, grad,
                rows, spatial, c,
                view.stride(0), view.stride(2), view.stride(1), c * spatial, 1, spatial,
                float(gamma), scale,
                NEED_GRAD=need_grad, BLOCK_R=block_r, BLOCK_C=block_c,
            )  # fmt: skip
