"""Quality Focal Loss (the ``quality_cpu.c`` kernel's steps) as one Triton kernel: what
:func:`focalbench.quality_focal_loss` runs on CUDA (``quality_triton``).

One launch reads the logits and targets and, per element, computes the loss and, when the logits require a gradient,
writes the gradient; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each program takes
``BLOCK`` contiguous elements, in float32 for float16/bfloat16/float32 logits and float64 for float64 ones:

1. ``e = exp(-|x|)``, ``log(1 + e)`` (log u corrected by u = 1 + e's rounding error), ``p = sigmoid(x)`` and
   ``q = 1 - p`` from ``1 / u``, the softplus of ``x`` and ``-x``;
2. ``CE = (1 - y) softplus(x) + y softplus(-x)``, ``d = s - y = p (1 - y) - q y``, ``m = |d|``;
3. ``loss = m^beta CE`` and its derivative ``m^beta (d + beta CE p q / d)``: ``d`` for beta = 0, and otherwise
   ``d`` and ``m^beta`` in float64 from ``e`` again in float64 (``m`` cancels near ``s = y``: at ``|x| = 1``,
   ``y = 0.25`` it carries ten times the rounding of a float32 ``p``, and ``m^beta`` multiplies that by beta).

It reads no value on the host: a target outside ``[0, 1]`` (or a beta from a device tensor that is negative or not
finite) gives a NaN loss and gradient there. The loss is written per element (``reduction="none"``) or summed per
program into a float64 partial (reduced by PyTorch: no atomics). Limits as in the C kernel. With
``TRITON_INTERPRET=1`` the kernel runs in Triton's interpreter on CPU tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.quality.semantics import QualityArgs

from focalbench.kernels.triton import INTERPRETED, UNAVAILABLE, available, launch, split, triton, value_pointer

__all__ = ["INTERPRETED", "UNAVAILABLE", "available", "quality_triton_forward"]

BLOCK = 1024

if triton is not None:
    import triton.language as tl

    from focalbench.kernels.triton import INF, NAN, exp, log

    @triton.jit
    def _quality_focal_kernel(
        x_ptr, y_ptr, beta_ptr, loss_ptr, grad_ptr, n,
        beta_hi, beta_lo, scale_hi, scale_lo,  # float64 values as float32 pairs
        BETA_KIND: tl.constexpr, BETA_FROM_PTR: tl.constexpr, WRITE_LOSS: tl.constexpr, NEED_GRAD: tl.constexpr,
        F64: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        if F64:
            ACC: tl.constexpr = tl.float64
        else:
            ACC: tl.constexpr = tl.float32
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < n
        x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(ACC)
        y = tl.load(y_ptr + offsets, mask=inside, other=0.0).to(ACC)
        if BETA_FROM_PTR:
            beta = tl.load(beta_ptr).to(tl.float64)
        else:
            beta = tl.cast(beta_hi, tl.float64) + tl.cast(beta_lo, tl.float64)
        # 0. the values checked here, not on the host: a target outside [0, 1] (NaN included), a negative or
        #    non-finite beta
        beta_block = tl.zeros([BLOCK], tl.float64) + beta  # beta * 0 below: NaN at inf and NaN
        bad = ~((y >= 0.0) & (y <= 1.0)) | (beta_block < 0.0) | (beta_block * 0.0 != 0.0)

        # 1. exponential, log(1 + e), p and q, softplus of x and -x
        ax = tl.abs(x)
        e = exp(-ax)
        u = 1.0 + e
        r = 1.0 / u
        log1p_e = log(u) + (e - (u - 1.0)) * r
        er = e * r
        positive = x >= 0.0
        p = tl.where(positive, r, er)
        q = tl.where(positive, er, r)
        softplus_x = tl.where(x > 0.0, x, 0.0) + log1p_e
        softplus_minus_x = tl.where(x < 0.0, -x, 0.0) + log1p_e

        # 2. CE (a term whose weight is 0 is 0: (1 - y) inf at y = 1 would be NaN), d = s - y, m = |d|
        ce = tl.where(y < 1.0, (1.0 - y) * softplus_x, 0.0) + tl.where(y > 0.0, y * softplus_minus_x, 0.0)
        d = p * (1.0 - y) - q * y

        # 3. loss and gradient; beta > 0 in float64 from e again in float64: m = |s - y| cancels (at |x| = 1, y =
        #    0.25, ten times the rounding of a float32 p) and m^beta multiplies that by beta
        if BETA_KIND == 0:
            grad = d
            weighted = ce
            zero = ce != ce  # never: BCE has no weight
        else:
            e64 = exp(-ax.to(tl.float64))
            r64 = 1.0 / (1.0 + e64)
            p64 = tl.where(positive, r64, e64 * r64)
            q64 = tl.where(positive, e64 * r64, r64)
            y64 = y.to(tl.float64)
            d64 = p64 * (1.0 - y64) - q64 * y64
            m64 = tl.abs(d64)
            if BETA_KIND == 2:
                w = m64 * m64
            else:
                power = exp(beta * log(tl.where(m64 > 0.0, m64, 1.0)))
                w = tl.where(m64 > 0.0, power, tl.where(beta_block == 0.0, 1.0, 0.0))
            ratio = tl.where(m64 > 0.0, ce.to(tl.float64) * (p64 * q64) / tl.where(m64 > 0.0, d64, 1.0), 0.0)
            grad = w * (d64 + beta * ratio)
            weighted = w * ce.to(tl.float64)
            zero = (m64 == 0.0) & (beta_block > 0.0)
        # weight 0 (s == y) gives 0 at any logit (NaN stays NaN); CE = +inf gives +inf however far m^beta underflowed
        loss = tl.where(zero & (x == x), 0.0, tl.where(ce == INF, INF, weighted))
        loss = tl.where(bad, NAN, loss)
        if WRITE_LOSS:
            tl.store(loss_ptr + offsets, loss.to(loss_ptr.dtype.element_ty), mask=inside)
        else:
            tl.store(loss_ptr + tl.program_id(0), tl.sum(tl.where(inside, loss.to(tl.float64), 0.0), axis=0))
        if NEED_GRAD:
            scale = tl.cast(scale_hi, tl.float64) + tl.cast(scale_lo, tl.float64)
            grad = tl.where(bad, NAN, grad * scale.to(grad.dtype))
            tl.store(grad_ptr + offsets, grad.to(ACC).to(grad_ptr.dtype.element_ty), mask=inside)

    def quality_triton_forward(args: QualityArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype per element for ``"none"``) and the
        gradient of that loss (logits' dtype), from one launch, reading no value on the host."""
        logits = args.logits
        x = logits.reshape(-1).contiguous()
        y = args.target.to(args.compute_dtype).reshape(-1).contiguous()
        n = x.numel()
        programs = triton.cdiv(n, BLOCK)
        per_element = args.reduction == "none"
        loss = x.new_empty(n if per_element else programs, dtype=args.compute_dtype if per_element else torch.float64)
        grad = torch.empty_like(x) if need_grad else loss
        beta_hi, beta_lo, beta_ptr, beta_from_ptr = value_pointer(args.beta, loss)
        kind = 1 if beta_from_ptr else 0 if args.beta == 0 else 2 if args.beta == 2 else 1
        if n:
            launch(
                _quality_focal_kernel, (programs,),
                x, y, beta_ptr, loss, grad, n, beta_hi, beta_lo, *split(float(args.reduction_scale)),
                BETA_KIND=kind, BETA_FROM_PTR=beta_from_ptr, WRITE_LOSS=per_element, NEED_GRAD=need_grad,
                F64=logits.dtype == torch.float64, BLOCK=BLOCK,
            )  # fmt: skip
        result = loss.reshape(logits.shape) if per_element else args.reduce(loss)
        return result, (grad.reshape(logits.shape) if need_grad else None)
