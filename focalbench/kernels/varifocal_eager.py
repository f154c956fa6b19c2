r"""The varifocal loss's closed form in float64 PyTorch operations: loss and gradient in one sweep, on any device.

It is what :func:`focalbench.varifocal_loss` runs (``varifocal_fused_eager``) and, being made of differentiable
operations, what gives it a double backward (:mod:`focalbench.losses.varifocal.closed_form`). Every per-element term
is float64, so float32 (and half-precision) logits keep their digits at every logit; the price is float64 temporaries.

Steps, per element (logit ``x``, target ``q``; the derivation is in :mod:`focalbench.losses.varifocal.semantics`):

1. ``e = exp(-|x|)``: ``p = sigmoid(x)`` and ``s = 1 - p = sigmoid(-x)`` as ``1 / (1 + e)`` and ``e / (1 + e)``
   (whichever is the large one is ``1 / (1 + e)``), so neither is one minus a number close to 1;
   ``softplus(+-x) = max(+-x, 0) + log1p(e)`` are ``-log(1 - p)`` and ``-log p``.
2. ``BCE = (1 - q) softplus(x) + q softplus(-x)``: a sum of non-negative terms (``max(x, 0) - x q + log1p(e)``
   rearranged), each taken only where its weight is not 0 (``0 * inf`` at an infinite logit is selected away).
3. The negatives' focal factor ``p^gamma = exp(-gamma softplus(-x))`` (log space: ``p`` may underflow while its power
   is still a normal number, and ``p = 0`` gives ``0^gamma``, 1 at ``gamma = 0``); ``p * p`` at ``gamma = 2``.
4. Weight ``w = alpha p^gamma`` at ``q = 0``, ``q`` (or 1 without ``iou_weighted``) at ``q > 0``; loss ``w BCE``, 0
   where ``w`` is 0 (an infinite BCE weighs nothing there), NaN kept.
5. Gradient: ``w (p - q)`` with ``p - q = p (1 - q) - s q`` (exact at hard targets), plus, at negatives and unless
   ``detach_weight``, the weight's own derivative ``alpha gamma p^gamma s BCE(x, 0)``, with ``s softplus(x)`` taken as
   0 where ``s`` is 0 (``x = +inf``: its limit).

At ``|x| = 1e20`` nothing overflows: ``BCE`` is ``|x|`` times a weight at most 1, ``s softplus(x)`` is 0, and the
gradient is ``w (p - q)`` plus a term in ``[0, alpha gamma / e]``. ``torch.where`` is taken on safe operands on both
sides (the "double where"), so that no ``0 * inf`` of a branch that is not selected reaches a gradient, the second
derivative included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.varifocal.semantics import VarifocalArgs


__all__ = ["closed_form", "eager_forward"]


def closed_form(
    x: torch.Tensor,
    q: torch.Tensor,
    alpha: float,
    gamma: float,
    iou_weighted: bool = True,
    detach_weight: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element loss and gradient of float64 logits ``x`` and targets ``q`` (same shape): d loss / d x, or with
    ``detach_weight`` the weight-held-constant gradient ``w (p - q)``.

    Example:
        >>> import torch
        >>> loss, grad = closed_form(torch.tensor([2.0, -1e20, 1e20], dtype=torch.float64),
        ...                          torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), 0.75, 2.0)
        >>> [f"{v:.6g}" for v in loss.tolist()], [f"{v:.6g}" for v in grad.tolist()]
        (['1.23756', '0', '7.5e+19'], ['0.807535', '0', '0.75'])
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    # 1. p, s = 1 - p, softplus(x) = -log s, softplus(-x) = -log p
    e = torch.exp(-x.abs())
    log1p_e = torch.log1p(e)
    r = 1 / (1 + e)
    x_positive = x >= 0
    p, s = torch.where(x_positive, r, e * r), torch.where(x_positive, e * r, r)
    softplus_x, softplus_minus_x = x.clamp_min(0) + log1p_e, (-x).clamp_min(0) + log1p_e
    # 2. BCE(x, q) as a sum of non-negative terms, each only where its weight is not 0
    bce = torch.where(q < 1, (1 - q) * torch.where(q < 1, softplus_x, zero), zero) + torch.where(
        q > 0, q * torch.where(q > 0, softplus_minus_x, zero), zero
    )
    # 3. p^gamma in log space (p = 0: 0^gamma)
    if gamma == 2.0:
        focal = p * p
    elif gamma == 0.0:
        focal = torch.ones_like(p)
    else:
        certain = softplus_minus_x == torch.inf
        focal = torch.where(certain, zero, torch.exp(-gamma * torch.where(certain, zero, softplus_minus_x)))
    # 4. the weight and the loss
    negative = q == 0
    positive_weight = q if iou_weighted else torch.ones_like(q)
    weight = torch.where(negative, alpha * focal, positive_weight)
    inert = (weight == 0) & ~torch.isnan(x)
    loss = torch.where(inert, zero, weight * torch.where(inert, zero, bce))
    # 5. the gradient: w (p - q), plus the weight's own derivative at the negatives
    constant_weight = weight.detach() if detach_weight else weight
    grad = constant_weight * (p * (1 - q) - s * q)
    if not detach_weight and gamma != 0.0:
        s_softplus = torch.where(s > 0, s * torch.where(s > 0, softplus_x, zero), zero)  # -> 0 at x = +inf
        grad = grad + torch.where(negative, alpha * gamma * focal * s_softplus, zero)
    return loss, grad


def eager_forward(args: VarifocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64) and, when ``need_grad``, the gradient of that loss in the compute dtype."""
    x = args.logits.detach().to(torch.float64)
    per_element, grad = closed_form(x, args.target.to(torch.float64), args.alpha, args.gamma, args.iou_weighted,
                                    args.detach_weight)  # fmt: skip
    if not need_grad:
        return args.reduce(per_element), None
    return args.reduce(per_element), (grad * args.reduction_scale).to(args.compute_dtype)
