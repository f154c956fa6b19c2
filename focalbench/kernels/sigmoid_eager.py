"""The sigmoid focal loss's closed form in float64 PyTorch operations: any device, no compiler.

It is what :func:`focalbench.sigmoid_focal_loss` runs on devices without a faster kernel and on the CPU where the C
kernel cannot be built (``sigmoid_fused_eager``), and, being made of differentiable operations, what gives the fused
implementations their double backward (:mod:`focalbench.losses.sigmoid.closed_form`). The steps are those of the C
kernel (the comment above ``sigmoid_focal_forward`` in ``sigmoid_cpu.c``), elementwise on tensors: every per-element
term in float64, so float32 (and half-precision) logits keep their digits at every logit; the price is float64
temporaries.

``torch.where`` is taken on safe operands on both sides (the "double where"), so that no ``0 * inf`` or ``0 / 0`` of a
branch that is not selected reaches a gradient, the second derivative included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.sigmoid.semantics import SigmoidArgs


__all__ = ["closed_form", "eager_forward"]


def closed_form(x: torch.Tensor, t: torch.Tensor, alpha: float, gamma) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element loss and d loss / d x of float64 logits ``x`` and targets ``t`` (same shape).

    ``gamma`` is a float or a 0-dim tensor; ``alpha < 0`` means no weighting. Limits as in the C kernel: +-inf logits
    give 0 where the target agrees and +inf where it does not, with the gradient's finite limit; an element whose
    ``alpha_t`` is 0 gives 0 at any logit; NaN propagates.

    Example:
        >>> import torch
        >>> loss, grad = closed_form(torch.tensor([0.0, 40.0], dtype=torch.float64),
        ...                          torch.tensor([1.0, 1.0], dtype=torch.float64), 0.25, 2.0)
        >>> [f"{v:.3e}" for v in loss.tolist()], [f"{v:.3e}" for v in grad.tolist()]
        (['4.332e-02', '1.917e-53'], ['-7.457e-02', '-5.751e-53'])
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    e = torch.exp(-x.abs())
    log1p_e = torch.log1p(e)
    r = 1 / (1 + e)
    positive = x >= 0
    p, q = torch.where(positive, r, e * r), torch.where(positive, e * r, r)  # sigmoid(x), sigmoid(-x)
    softplus_x, softplus_minus_x = x.clamp_min(0) + log1p_e, (-x).clamp_min(0) + log1p_e  # -log q, -log p
    ce = torch.where(t < 1, (1 - t) * torch.where(t < 1, softplus_x, zero), zero) + torch.where(
        t > 0, t * torch.where(t > 0, softplus_minus_x, zero), zero
    )
    m = p * (1 - t) + q * t  # 1 - p_t, a sum of non-negative terms
    if isinstance(gamma, torch.Tensor) or gamma not in (0.0, 2.0):
        hard = (t == 0) | (t == 1)
        soft_log_m = torch.log(torch.where(hard, 1.0, m))
        log_m = torch.where(t == 1, -softplus_x, torch.where(t == 0, -softplus_minus_x, soft_log_m))
        focal = torch.exp(gamma * log_m)
    else:
        focal = m * m if gamma == 2.0 else torch.ones_like(m)
    alpha_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else torch.ones_like(t)
    weight = alpha_t * focal
    ratio = torch.where(m > 0, p * q / torch.where(m > 0, m, 1.0), zero)  # p at t = 1, q at t = 0
    ce_ratio = torch.where(ratio > 0, torch.where(ratio > 0, ce, zero) * ratio, zero)
    grad = weight * ((p * (1 - t) - q * t) + gamma * (1 - 2 * t) * ce_ratio)
    inert = (weight == 0) & ~torch.isnan(x)
    loss = torch.where(inert, zero, weight * torch.where(inert, zero, ce))
    return loss, grad


def eager_forward(args: SigmoidArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64) and, when ``need_grad``, the gradient of that loss in the compute dtype."""
    x = args.logits.detach().to(torch.float64)
    per_element, grad = closed_form(x, args.target.to(torch.float64), args.alpha, args.gamma)
    if not need_grad:
        return args.reduce(per_element), None
    return args.reduce(per_element), (grad * args.reduction_scale).to(args.compute_dtype)
