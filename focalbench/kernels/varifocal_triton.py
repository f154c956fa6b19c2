"""Varifocal Loss (the ``varifocal_cpu.c`` kernel's steps) as one Triton kernel: what :func:`focalbench.varifocal_loss`
runs on CUDA (``varifocal_triton``).

One launch reads the logits and targets and, per element, computes the loss and, when the logits require a gradient,
writes the gradient; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each program takes
``BLOCK`` contiguous elements, in float32 for float16/bfloat16/float32 logits and float64 for float64 ones:

1. ``e = exp(-|x|)``, ``log(1 + e)`` (log u corrected by u = 1 + e's rounding error), ``p = sigmoid(x)`` and
   ``q' = 1 - p`` from ``1 / u``, the softplus of ``x`` and ``-x``; ``CE = (1 - q) softplus(x) + q softplus(-x)``;
2. a positive (``q > 0``): weight ``q`` (``iou_weighted``) or 1, gradient ``w (p - q)``;
3. a negative: weight ``alpha p^gamma`` (``p p`` for gamma = 2, 1 for gamma = 0, otherwise ``exp(-gamma
   softplus(-x))`` in float64), gradient ``w (p + gamma q' softplus(x))``, or ``w p`` with ``detach_weight``.

It reads no value on the host: a target outside ``[0, 1]`` (or an alpha or gamma from a device tensor that is negative
or not finite) gives a NaN loss and gradient there. The loss is written per element (``reduction="none"``) or summed
per program into a float64 partial (reduced by PyTorch: no atomics). Limits as in the C kernel. With
``TRITON_INTERPRET=1`` the kernel runs in Triton's interpreter on CPU tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.varifocal.semantics import VarifocalArgs

from focalbench.kernels.triton import INTERPRETED, UNAVAILABLE, available, launch, split, triton, value_pointer

__all__ = ["INTERPRETED", "UNAVAILABLE", "available", "varifocal_triton_forward"]

BLOCK = 1024

if triton is not None:
    import triton.language as tl

    from focalbench.kernels.triton import INF, NAN, exp, log

    @triton.jit
    def _varifocal_kernel(
        x_ptr, t_ptr, alpha_ptr, gamma_ptr, loss_ptr, grad_ptr, n,
        alpha_hi, alpha_lo, gamma_hi, gamma_lo, scale_hi, scale_lo,  # float64 values as float32 pairs
        GAMMA_KIND: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, GAMMA_FROM_PTR: tl.constexpr,
        IOU_WEIGHTED: tl.constexpr, DETACH_WEIGHT: tl.constexpr, WRITE_LOSS: tl.constexpr, NEED_GRAD: tl.constexpr,
        F64: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        if F64:
            ACC: tl.constexpr = tl.float64
        else:
            ACC: tl.constexpr = tl.float32
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < n
        x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(ACC)
        t = tl.load(t_ptr + offsets, mask=inside, other=0.0).to(ACC)
        if GAMMA_FROM_PTR:
            gamma = tl.load(gamma_ptr).to(tl.float64)
        else:
            gamma = tl.cast(gamma_hi, tl.float64) + tl.cast(gamma_lo, tl.float64)
        if ALPHA_FROM_PTR:
            alpha64 = tl.load(alpha_ptr).to(tl.float64)
        else:
            alpha64 = tl.cast(alpha_hi, tl.float64) + tl.cast(alpha_lo, tl.float64)
        # 0. the values checked here, not on the host: a target outside [0, 1] (NaN included), a negative or
        #    non-finite alpha or gamma
        gamma_block = tl.zeros([BLOCK], tl.float64) + gamma  # * 0 below: NaN at inf and NaN
        alpha_block = tl.zeros([BLOCK], tl.float64) + alpha64
        wrong = (gamma_block < 0.0) | (gamma_block * 0.0 != 0.0) | (alpha_block < 0.0) | (alpha_block * 0.0 != 0.0)
        bad = ~((t >= 0.0) & (t <= 1.0)) | wrong
        alpha = alpha64.to(ACC)

        # 1. exponential, log(1 + e), p and q', softplus of x and -x, CE
        ax = tl.abs(x)
        e = exp(-ax)
        u = 1.0 + e
        r = 1.0 / u
        log1p_e = log(u) + (e - (u - 1.0)) * r
        er = e * r
        positive_x = x >= 0.0
        p = tl.where(positive_x, r, er)
        q = tl.where(positive_x, er, r)
        softplus_x = tl.where(x > 0.0, x, 0.0) + log1p_e
        softplus_minus_x = tl.where(x < 0.0, -x, 0.0) + log1p_e
        ce = tl.where(t < 1.0, (1.0 - t) * softplus_x, 0.0) + tl.where(t > 0.0, t * softplus_minus_x, 0.0)

        # 2. a positive's weight and gradient
        if IOU_WEIGHTED:
            w_pos = t
        else:
            w_pos = tl.zeros([BLOCK], ACC) + 1.0
        g_pos = w_pos * (p * (1.0 - t) - q * t)

        # 3. a negative's: alpha p^gamma, and the derivative of p^gamma unless the weight is held constant
        q_softplus = tl.where(q > 0.0, q * softplus_x, 0.0)
        if GAMMA_KIND == 1:
            power = exp(-gamma * softplus_minus_x.to(tl.float64))
            w_neg = alpha.to(tl.float64) * power
            if DETACH_WEIGHT:
                g_neg = w_neg * p.to(tl.float64)
            else:
                g_neg = w_neg * (p.to(tl.float64) + gamma * q_softplus.to(tl.float64))
            negative_loss = w_neg * ce.to(tl.float64)
            w_neg = w_neg.to(ACC)
            g_neg = g_neg.to(ACC)
            negative_loss = negative_loss.to(ACC)
        else:
            if GAMMA_KIND == 2:
                power = p * p
            else:
                power = tl.zeros([BLOCK], ACC) + 1.0
            w_neg = alpha * power
            if DETACH_WEIGHT:
                g_neg = w_neg * p
            else:
                g_neg = w_neg * (p + gamma.to(ACC) * q_softplus)
            negative_loss = w_neg * ce
        is_positive = t > 0.0
        grad = tl.where(is_positive, g_pos, g_neg)
        w = tl.where(is_positive, w_pos, w_neg)
        weighted = tl.where(is_positive, w_pos * ce, negative_loss)
        # weight 0 gives 0 at any logit (p = 0 at a negative: x = -inf); CE = +inf gives +inf
        loss = tl.where((w == 0.0) & (x == x), 0.0, tl.where(ce == INF, INF, weighted))
        loss = tl.where(bad, NAN, loss)
        if WRITE_LOSS:
            tl.store(loss_ptr + offsets, loss.to(loss_ptr.dtype.element_ty), mask=inside)
        else:
            tl.store(loss_ptr + tl.program_id(0), tl.sum(tl.where(inside, loss.to(tl.float64), 0.0), axis=0))
        if NEED_GRAD:
            scale = tl.cast(scale_hi, tl.float64) + tl.cast(scale_lo, tl.float64)
            grad = tl.where(bad, NAN, grad * scale.to(ACC))
            tl.store(grad_ptr + offsets, grad.to(ACC).to(grad_ptr.dtype.element_ty), mask=inside)

    def varifocal_triton_forward(args: VarifocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype per element for ``"none"``) and the
        gradient of that loss (logits' dtype), from one launch, reading no value on the host."""
        logits = args.logits
        x = logits.reshape(-1).contiguous()
        t = args.target.to(args.compute_dtype).reshape(-1).contiguous()
        n = x.numel()
        programs = triton.cdiv(n, BLOCK)
        per_element = args.reduction == "none"
        loss = x.new_empty(n if per_element else programs, dtype=args.compute_dtype if per_element else torch.float64)
        grad = torch.empty_like(x) if need_grad else loss
        alpha_hi, alpha_lo, alpha_ptr, alpha_from_ptr = value_pointer(args.alpha, loss)
        gamma_hi, gamma_lo, gamma_ptr, gamma_from_ptr = value_pointer(args.gamma, loss)
        kind = 1 if gamma_from_ptr else 0 if args.gamma == 0 else 2 if args.gamma == 2 else 1
        if n:
            launch(
                _varifocal_kernel, (programs,),
                x, t, alpha_ptr, gamma_ptr, loss, grad, n,
                alpha_hi, alpha_lo, gamma_hi, gamma_lo, *split(float(args.reduction_scale)),
                GAMMA_KIND=kind, ALPHA_FROM_PTR=alpha_from_ptr, GAMMA_FROM_PTR=gamma_from_ptr,
                IOU_WEIGHTED=bool(args.iou_weighted), DETACH_WEIGHT=bool(args.detach_weight),
                WRITE_LOSS=per_element, NEED_GRAD=need_grad, F64=logits.dtype == torch.float64, BLOCK=BLOCK,
            )  # fmt: skip
        result = loss.reshape(logits.shape) if per_element else args.reduce(loss)
        return result, (grad.reshape(logits.shape) if need_grad else None)
