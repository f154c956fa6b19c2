"""Distribution Focal Loss (the ``dfl_cpu.c`` kernel's steps) as one Triton kernel: what
:func:`focalbench.distribution_focal_loss` runs on CUDA (``dfl_triton``).

One launch reads the logits ``(rows, n)`` and targets and, per row, computes the loss and, when the logits require a
gradient, writes the gradient; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each
program takes ``BLOCK_R`` rows, their bins in tiles of ``BLOCK_N`` (one tile, kept in registers, for ``n <= 1024``).
The logits are read and the gradient written in their own dtype; the arithmetic between is float64, as the C kernel's
(near a row's optimum the gradient ``p_j - w_j`` is a small difference, which float32 exponentials would leave with
2e-6 of its value at a gradient of 0.01; the kernel is bound by memory traffic, not by this arithmetic):

1. the target's two bins ``y_l = min(floor(y), n - 2)``, ``y_r = y_l + 1`` and weights, the maximum ``m`` and the
   logits ``z_l``, ``z_r``;
2. ``e_j = exp(z_j - m)`` and ``R = sum_{e_j < 1} e_j + (#{e_j = 1} - 1)`` (``T = 1 + R``, never ``T - 1``);
3. ``loss = w_l (m - z_l) + w_r (m - z_r) + log1p(R)`` (a term of weight 0 is 0);
4. the gradient ``e_j / T - w_j``, and ``(1 - w_j) - R / T`` where ``e_j = 1`` (the maximum: no ``1 - p``
   cancellation), the reduction's scale folded in.

It reads no value on the host: a target outside ``[0, n - 1]`` (NaN included) gives a NaN loss and NaN gradient at its
row. The loss is written per row (``reduction="none"``) or summed per program into a float64 partial (reduced by
PyTorch: no atomics). Limits as in the C kernel (a ``+inf`` logit or a NaN: the row is NaN; a ``-inf`` bin:
probability 0). With ``TRITON_INTERPRET=1`` the kernel runs in Triton's interpreter on CPU tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.dfl.semantics import DflArgs

from focalbench.kernels.triton import INTERPRETED, UNAVAILABLE, available, launch, split, triton

__all__ = ["INTERPRETED", "UNAVAILABLE", "available", "dfl_triton_forward"]

#: Bins of one tile at most (a row of more bins is walked in tiles) and elements a program takes at a time.
MAX_BLOCK_N = 1024
ELEMENTS = 4096

if triton is not None:
    import triton.language as tl

    from focalbench.kernels.triton import NAN, exp, log

    @triton.jit
    def _log1p(y):
        """log(1 + y) for y >= 0, accurate for tiny y: log(u) * y / (u - 1) with u = 1 + y (Goldberg)."""
        u = 1.0 + y
        um1 = u - 1.0
        safe = tl.where(um1 == 0.0, 1.0, um1)
        return tl.where(um1 == 0.0, y, log(u) * (y / safe))

    @triton.jit
    def _exp_and_sums(z_row, cols, ok, m):
        """A tile's ``e_j = exp(z_j - m)`` (float64: ``-inf`` gives 0, NaN and a ``+inf`` maximum NaN) with its share
        of R's sums over the bins off M and on M (a NaN fails ``e >= 1``: it reaches R)."""
        z = tl.load(z_row[:, None] + cols[None, :], mask=ok, other=float("-inf")).to(tl.float64)
        e = exp(z - m[:, None])
        top = e >= 1.0
        return e, tl.sum(tl.where(top, 0.0, e), axis=1), tl.sum(tl.where(top, 1.0, 0.0), axis=1)

    @triton.jit
    def _dfl_kernel(
        z_ptr, y_ptr, loss_ptr, grad_ptr, R, N,
        scale_hi, scale_lo,  # a float64 value as a float32 pair
        WRITE_LOSS: tl.constexpr, NEED_GRAD: tl.constexpr, ONE_TILE: tl.constexpr,
        BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < R
        z_row = z_ptr + rows.to(tl.int64) * N
        scale = tl.cast(scale_hi, tl.float64) + tl.cast(scale_lo, tl.float64)

        # 0. the target's bins and weights; a target outside [0, n - 1] (NaN included) is read as 0 and its row NaN
        y = tl.load(y_ptr + rows, mask=row_ok, other=0.0).to(tl.float64)
        inside = (y >= 0.0) & (y <= (N - 1))
        bad = row_ok & ~inside
        y = tl.where(inside, y, 0.0)
        low = tl.minimum(y.to(tl.int32), N - 2)  # floor: y >= 0
        weight_r = y - low.to(tl.float64)
        weight_l = (low + 1).to(tl.float64) - y

        # 1. maximum and the two target bins' logits
        m = tl.full([BLOCK_R], float("-inf"), tl.float64)
        z_l = tl.zeros([BLOCK_R], tl.float64)
        z_r = tl.zeros([BLOCK_R], tl.float64)
        for c0 in range(0, N, BLOCK_N):
            cols = c0 + tl.arange(0, BLOCK_N)
            ok = row_ok[:, None] & (cols < N)[None, :]
            z = tl.load(z_row[:, None] + cols[None, :], mask=ok, other=float("-inf")).to(tl.float64)
            m = tl.maximum(m, tl.max(z, axis=1))
            z_l += tl.sum(tl.where(cols[None, :] == low[:, None], z, 0.0), axis=1)
            z_r += tl.sum(tl.where(cols[None, :] == low[:, None] + 1, z, 0.0), axis=1)

        # 2. exponentials and R = sum_{e_j < 1} e_j + (#{e_j = 1} - 1): T = 1 + R, never T - 1
        if ONE_TILE:
            cols = tl.arange(0, BLOCK_N)
            ok = row_ok[:, None] & (cols < N)[None, :]
            e, acc, ones = _exp_and_sums(z_row, cols, ok, m)
        else:
            acc = tl.zeros([BLOCK_R], tl.float64)
            ones = tl.zeros([BLOCK_R], tl.float64)
            for c0 in range(0, N, BLOCK_N):
                cols = c0 + tl.arange(0, BLOCK_N)
                ok = row_ok[:, None] & (cols < N)[None, :]
                _, tile_acc, tile_ones = _exp_and_sums(z_row, cols, ok, m)
                acc += tile_acc
                ones += tile_ones
        rest = (ones - 1.0) + acc

        # 3. the loss: three non-negative terms, a term of weight 0 is 0 (even at a -inf bin)
        loss_l = tl.where(weight_l > 0.0, weight_l * (m - z_l), 0.0)
        loss_r = tl.where(weight_r > 0.0, weight_r * (m - z_r), 0.0)
        loss = tl.where(bad, NAN, loss_l + loss_r + _log1p(rest))
        if WRITE_LOSS:
            tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_ok)
        else:
            tl.store(loss_ptr + tl.program_id(0), tl.sum(tl.where(row_ok, loss, 0.0), axis=0))

        # 4. gradient: e_j / T - w_j, (1 - w_j) - R / T where e_j = 1; NaN at a bad target's row
        if NEED_GRAD:
            inv_t = tl.where(bad, NAN, scale / (1.0 + rest))
            rest_t = rest * inv_t
            s_wl = weight_l * scale
            s_wr = weight_r * scale
            g_row = grad_ptr + rows.to(tl.int64) * N
            for c0 in range(0, N, BLOCK_N):
                cols = c0 + tl.arange(0, BLOCK_N)
                ok = row_ok[:, None] & (cols < N)[None, :]
                if ONE_TILE:
                    e_tile = e
                else:
                    e_tile, _, _ = _exp_and_sums(z_row, cols, ok, m)
                at_l = cols[None, :] == low[:, None]
                at_r = cols[None, :] == low[:, None] + 1
                w = tl.where(at_l, s_wl[:, None], tl.where(at_r, s_wr[:, None], 0.0))
                rest_w = tl.where(at_l, s_wr[:, None], tl.where(at_r, s_wl[:, None], scale))
                grad = tl.where(e_tile >= 1.0, rest_w - rest_t[:, None], e_tile * inv_t[:, None] - w)
                if grad_ptr.dtype.element_ty != tl.float64:  # half types through float32, as the CPU path rounds
                    grad = grad.to(tl.float32)
                tl.store(g_row[:, None] + cols[None, :], grad.to(grad_ptr.dtype.element_ty), mask=ok)

    def dfl_triton_forward(args: DflArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype per row for ``"none"``) and the
        gradient of that loss (logits' dtype), from one launch, reading no value on the host."""
        logits = args.logits
        bins = logits.shape[-1]
        x = logits.reshape(-1, bins).contiguous()
        y = args.target.to(args.compute_dtype).reshape(-1).contiguous()
        rows = y.numel()
        block_n = min(triton.next_power_of_2(bins), MAX_BLOCK_N)
        block_r = max(1, min(64, ELEMENTS // block_n))
        programs = triton.cdiv(rows, block_r)
        per_element = args.reduction == "none"
        loss = x.new_empty(rows if per_element else programs,
                           dtype=args.compute_dtype if per_element else torch.float64)  # fmt: skip
        grad = torch.empty_like(x) if need_grad else loss
        if rows:
            launch(
                _dfl_kernel, (programs,),
                x, y, loss, grad, rows, bins, *split(float(args.reduction_scale)),
                WRITE_LOSS=per_element, NEED_GRAD=need_grad, ONE_TILE=bins <= block_n, BLOCK_R=block_r,
                BLOCK_N=block_n,
            )  # fmt: skip
        result = loss.reshape(args.target.shape) if per_element else args.reduce(loss)
        return result, (grad.reshape(logits.shape) if need_grad else None)
