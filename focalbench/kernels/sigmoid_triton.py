"""The closed-form sigmoid focal loss (:mod:`focalbench.losses.sigmoid.closed_form`) as one Triton kernel: what
:func:`focalbench.sigmoid_focal_loss` runs on CUDA (``sigmoid_triton``).

One launch reads the logits and targets and, per element, computes the loss and, when the logits require a gradient,
writes the gradient; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each program takes
``BLOCK`` contiguous elements; the steps are the C kernel's (``sigmoid_cpu.c``, ``sigmoid_element_f32``), in float32
for float16/bfloat16/float32 logits and float64 for float64 ones:

1. ``e = exp(-|x|)``, ``u = 1 + e``, ``log(1 + e) = log u + (e - (u - 1)) / u`` (log u corrected by u's rounding
   error), ``p`` and ``q = 1 - p`` from ``1 / u``, the softplus of ``x`` and ``-x``;
2. ``CE = (1 - t) softplus(x) + t softplus(-x)``, ``m = 1 - p_t = p (1 - t) + q t``, the focal factor: ``m m`` for
   gamma = 2, 1 for gamma = 0, and otherwise ``exp(gamma log m)`` in float64 with ``log m = -softplus(+-x)`` for hard
   targets (the one place float64 is needed: ``m^gamma`` of a float32 ``m`` near 0 loses its digits through the
   float32 log and exp);
3. the gradient ``alpha_t m^gamma [(p (1 - t) - q t) + gamma (1 - 2t) CE p q / m]``, in the logits' dtype.

It reads no value on the host: a target outside ``[0, 1]`` (or a gamma from a device tensor that is negative or not
finite) gives a NaN loss and gradient there. The loss is written per element (``reduction="none"``) or summed per
program into a float64 partial (reduced by PyTorch: no atomics, a total that does not depend on scheduling). Limits
as in the C kernel: +-inf logits give 0 or +inf and the gradient's finite limit, an element of weight 0 gives 0, NaN
propagates. The exponential and logarithm are libdevice's on a GPU (see :mod:`focalbench.kernels.triton`).

With ``TRITON_INTERPRET=1`` (set by the test suite on a CPU run) the kernel runs in Triton's interpreter on CPU
tensors. Without triton installed, :data:`focalbench.kernels.triton.UNAVAILABLE` says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.sigmoid.semantics import SigmoidArgs

from focalbench.kernels.triton import INTERPRETED, UNAVAILABLE, available, launch, split, triton, value_pointer

__all__ = ["INTERPRETED", "UNAVAILABLE", "available", "sigmoid_triton_forward"]

BLOCK = 1024

if triton is not None:
    import triton.language as tl

    from focalbench.kernels.triton import INF, NAN, exp, log

    @triton.jit
    def _sigmoid_focal_kernel(
        x_ptr, t_ptr, alpha_ptr, gamma_ptr, loss_ptr, grad_ptr, n,
        alpha_hi, alpha_lo, gamma_hi, gamma_lo, scale_hi, scale_lo,  # float64 values as float32 pairs
        GAMMA_KIND: tl.constexpr, ALPHA_FROM_PTR: tl.constexpr, GAMMA_FROM_PTR: tl.constexpr,
        WRITE_LOSS: tl.constexpr, NEED_GRAD: tl.constexpr,
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
            alpha = tl.load(alpha_ptr).to(ACC)
        else:
            alpha = (tl.cast(alpha_hi, tl.float64) + tl.cast(alpha_lo, tl.float64)).to(ACC)
        # 0. the values checked here, not on the host: a target outside [0, 1] (NaN included), a negative or
        #    non-finite gamma, an alpha above 1 or NaN
        gamma_block = tl.zeros([BLOCK], tl.float64) + gamma  # gamma * 0 below: NaN at inf and NaN
        alpha_block = tl.zeros([BLOCK], ACC) + alpha
        wrong = (gamma_block < 0.0) | (gamma_block * 0.0 != 0.0) | (alpha_block > 1.0) | (alpha_block != alpha_block)
        bad = ~((t >= 0.0) & (t <= 1.0)) | wrong

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
        relu_x = tl.where(x > 0.0, x, 0.0)
        relu_minus_x = tl.where(x < 0.0, -x, 0.0)
        softplus_x = relu_x + log1p_e
        softplus_minus_x = relu_minus_x + log1p_e

        # 2. CE (a term whose weight is 0 is 0: (1 - t) inf at t = 1 would be NaN), 1 - p_t, the focal factor
        ce = tl.where(t < 1.0, (1.0 - t) * softplus_x, 0.0) + tl.where(t > 0.0, t * softplus_minus_x, 0.0)
        m = p * (1.0 - t) + q * t
        alpha_t = tl.where(alpha >= 0.0, alpha * t + (1.0 - alpha) * (1.0 - t), 1.0).to(ACC)
        pq = p * q
        direct = p * (1.0 - t) - q * t  # p - t
        one_minus_2t = 1.0 - 2.0 * t
        if GAMMA_KIND == 1:
            # gamma log m in float64 from exact pieces: -(|x| or 0) - log(1 + e) for hard targets, log m for soft ones
            soft_log_m = log(tl.where(m > 0.0, m, 1.0).to(tl.float64))
            soft_log_m = tl.where(m > 0.0, soft_log_m, -INF)
            hard_log_m = tl.where(t == 1.0, -(relu_x.to(tl.float64) + log1p_e.to(tl.float64)),
                                  -(relu_minus_x.to(tl.float64) + log1p_e.to(tl.float64)))  # fmt: skip
            log_m = tl.where((t == 1.0) | (t == 0.0), hard_log_m, soft_log_m)
            focal = tl.where(gamma == 0.0, 1.0, exp(gamma * log_m))
            w = alpha_t.to(tl.float64) * focal
            ratio = tl.where(m > 0.0, pq / tl.where(m > 0.0, m, 1.0), 0.0)
            ce_ratio = tl.where(ratio > 0.0, ce.to(tl.float64) * ratio.to(tl.float64), 0.0)
            grad = w * (direct.to(tl.float64) + gamma * one_minus_2t.to(tl.float64) * ce_ratio)
            weighted = w * ce.to(tl.float64)
        elif GAMMA_KIND == 2:
            focal = m * m
            # CE focal p q / m = CE m p q (-> 0 where p q underflows, CE = +inf included)
            ce_m_pq = tl.where(pq > 0.0, ce * m * pq, 0.0)
            grad = alpha_t * (focal * direct + 2.0 * one_minus_2t * ce_m_pq)
            weighted = alpha_t * focal * ce
        else:
            grad = alpha_t * direct
            weighted = alpha_t * ce
        # weight 0 gives 0 at any logit (NaN stays NaN); CE = +inf gives +inf however small the focal factor
        loss = tl.where((alpha_t == 0.0) & (x == x), 0.0, tl.where(ce == INF, INF, weighted))
        loss = tl.where(bad, NAN, loss)
        if WRITE_LOSS:
            tl.store(loss_ptr + offsets, loss.to(loss_ptr.dtype.element_ty), mask=inside)
        else:
            tl.store(loss_ptr + tl.program_id(0), tl.sum(tl.where(inside, loss.to(tl.float64), 0.0), axis=0))

        # 3. gradient
        if NEED_GRAD:
            scale = tl.cast(scale_hi, tl.float64) + tl.cast(scale_lo, tl.float64)
            grad = tl.where(bad, NAN, grad * scale.to(ACC))
            tl.store(grad_ptr + offsets, grad.to(ACC).to(grad_ptr.dtype.element_ty), mask=inside)

    def sigmoid_triton_forward(args: SigmoidArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
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
                _sigmoid_focal_kernel, (programs,),
                x, t, alpha_ptr, gamma_ptr, loss, grad, n,
                alpha_hi, alpha_lo, gamma_hi, gamma_lo, *split(float(args.reduction_scale)),
                GAMMA_KIND=kind, ALPHA_FROM_PTR=alpha_from_ptr, GAMMA_FROM_PTR=gamma_from_ptr,
                WRITE_LOSS=per_element, NEED_GRAD=need_grad,
                F64=logits.dtype == torch.float64, BLOCK=BLOCK,
            )  # fmt: skip
        result = loss.reshape(logits.shape) if per_element else args.reduce(loss)
        return result, (grad.reshape(logits.shape) if need_grad else None)
