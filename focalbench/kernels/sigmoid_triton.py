"""The closed-form sigmoid focal loss (:mod:`focalbench.losses.sigmoid.closed_form`) as one Triton kernel for CUDA
(``sigmoid_triton``).

One launch reads the logits and targets and, per element, computes the loss and, when the logits require a gradient,
writes the gradient; the backward is then a scale (:class:`focalbench.losses.common.FusedLoss`). Each
program takes ``BLOCK`` contiguous elements:

1. in float64: ``e = exp(-|x|)``, ``log(1 + e)`` (Goldberg's accurate ``log1p``), ``p`` and ``q = 1 - p`` from
   ``1 / (1 + e)``, the softplus of ``x`` and ``-x``;
2. ``CE = (1 - t) softplus(x) + t softplus(-x)``, ``m = 1 - p_t = p (1 - t) + q t``, the focal factor ``m^gamma``
   (``m m`` for gamma = 2, ``exp(gamma log m)`` otherwise with ``log m = -softplus(+-x)`` for hard targets), the loss;
3. the gradient ``alpha_t m^gamma [(p (1 - t) - q t) + gamma (1 - 2t) CE p q / m]``, in the logits' dtype.

The loss is written per element (``reduction="none"``) or summed per program into a float64 partial (reduced by
PyTorch: no atomics, a total that does not depend on scheduling). Every per-element term is float64 — accurate at
every logit, at the cost of float64 throughput (ample on data-center GPUs; on a GPU with 1/64-rate float64 it may
decide the speed; not measured yet). Limits as in the C kernel: +-inf logits give 0 or +inf and the gradient's finite
limit, an element of weight 0 gives 0, NaN propagates.

With ``TRITON_INTERPRET=1`` (set by the test suite on a CPU run) the kernel runs in Triton's interpreter on CPU
tensors. Without triton installed, :data:`focalbench.kernels.triton.UNAVAILABLE` says why.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy
import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.sigmoid.semantics import SigmoidArgs

from focalbench.kernels.triton import INTERPRETED, UNAVAILABLE, triton

__all__ = ["UNAVAILABLE", "sigmoid_triton_forward"]

BLOCK = 1024

if triton is not None:
    import triton.language as tl

    from focalbench.kernels.triton import log1p

    @triton.jit
    def _sigmoid_focal_kernel(
        x_ptr, t_ptr, loss_ptr, grad_ptr, n, alpha, gamma, scale,
        GAMMA_KIND: tl.constexpr, WRITE_LOSS: tl.constexpr, NEED_GRAD: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < n
        x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(tl.float64)
        t = tl.load(t_ptr + offsets, mask=inside, other=0.0).to(tl.float64)

        # 1. exponential, log1p, p and q, softplus of x and -x
        e = tl.exp(-tl.abs(x))
        log1p_e = log1p(e)
        r = 1.0 / (1.0 + e)
        positive = x >= 0.0
        p = tl.where(positive, r, e * r)
        q = tl.where(positive, e * r, r)
        softplus_x = tl.where(x > 0.0, x, 0.0) + log1p_e
        softplus_minus_x = tl.where(x < 0.0, -x, 0.0) + log1p_e

        # 2. CE, 1 - p_t, the focal factor, the loss
        ce = tl.where(t < 1.0, (1.0 - t) * softplus_x, 0.0) + tl.where(t > 0.0, t * softplus_minus_x, 0.0)
        m = p * (1.0 - t) + q * t
        if GAMMA_KIND == 0:
            focal = tl.full(m.shape, 1.0, tl.float64)
        elif GAMMA_KIND == 2:
            focal = m * m
        else:
            soft_log_m = tl.log(tl.where((t == 0.0) | (t == 1.0), 1.0, m))
            log_m = tl.where(t == 1.0, -softplus_x, tl.where(t == 0.0, -softplus_minus_x, soft_log_m))
            focal = tl.exp(gamma * log_m)
        alpha_t = tl.where(alpha >= 0.0, alpha * t + (1.0 - alpha) * (1.0 - t), 1.0)
        weight = alpha_t * focal
        loss = tl.where((weight == 0.0) & (x == x), 0.0, weight * ce)
        if WRITE_LOSS:
            tl.store(loss_ptr + offsets, loss.to(loss_ptr.dtype.element_ty), mask=inside)
        else:
            tl.store(loss_ptr + tl.program_id(0), tl.sum(tl.where(inside, loss, 0.0), axis=0))

        # 3. gradient
        if NEED_GRAD:
            ratio = tl.where(m > 0.0, p * q / tl.where(m > 0.0, m, 1.0), 0.0)
            ce_ratio = tl.where(ratio > 0.0, ce * ratio, 0.0)
            grad = weight * ((p * (1.0 - t) - q * t) + gamma * (1.0 - 2.0 * t) * ce_ratio) * scale
            # float64 -> half precision through float32, which the interpreter converts (within one ulp of the dtype)
            dtype = grad_ptr.dtype.element_ty
            tl.store(grad_ptr + offsets, (grad if dtype == tl.float64 else grad.to(tl.float32)).to(dtype), mask=inside)

    def sigmoid_triton_forward(args: SigmoidArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The reduced loss (float64 for ``"mean"``/``"sum"``, float32 per element for ``"none"``) and the gradient
        of that loss (logits' dtype), from one launch."""
        logits = args.logits
        x = logits.reshape(-1).contiguous()
        t = args.target.to(args.compute_dtype).reshape(-1).contiguous()
        n = x.numel()
        programs = triton.cdiv(n, BLOCK)
        per_element = args.reduction == "none"
        loss_dtype = args.compute_dtype if per_element else torch.float64
        loss = torch.empty(n if per_element else programs, dtype=loss_dtype, device=x.device)
        grad = torch.empty_like(x) if need_grad else loss
        gamma = float(args.gamma)
        kind = 0 if gamma == 0 else 2 if gamma == 2 else 1
        if n:
            # the interpreter evaluates both sides of every tl.where in NumPy, masked lanes included
            quiet = numpy.errstate(all="ignore") if INTERPRETED else contextlib.nullcontext()
            with quiet:
                _sigmoid_focal_kernel[(programs,)](
                    x, t, loss, grad, n, args.alpha, gamma, args.reduction_scale,
                    GAMMA_KIND=kind, WRITE_LOSS=per_element, NEED_GRAD=need_grad, BLOCK=BLOCK,
                )  # fmt: skip
        result = loss.reshape(logits.shape) if per_element else args.reduce(loss)
        return result, (grad.reshape(logits.shape) if need_grad else None)
