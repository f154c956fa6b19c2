r"""The Distribution Focal Loss's closed form in float64 PyTorch operations: any device, no compiler; loss and gradient
in one sweep (``dfl_fused_eager``, what :func:`focalbench.distribution_focal_loss` runs where no kernel of its own
serves the device).

Derivation. Per row of ``n`` logits ``z`` (bins last) and target ``y``, with ``y_l = min(floor(y), n - 2)``,
``y_r = y_l + 1``, ``w_l = y_r - y``, ``w_r = y - y_l`` (:mod:`focalbench.losses.dfl.semantics`), ``a`` the first
index of the maximum ``m = z_a``, ``e_j = exp(z_j - m)`` and ``R = sum_{j != a} e_j`` (so ``T = sum_j e_j = 1 + R``,
never formed as ``T - 1``):

.. math::

    -\log S_k = (m - z_k) + \log T, \qquad
    \mathrm{DFL} = w_l (m - z_{y_l}) + w_r (m - z_{y_r}) + \mathrm{log1p}(R),

    \partial \mathrm{DFL} / \partial z_j = e_j / T - w_j \;(j \ne a), \qquad
    \partial \mathrm{DFL} / \partial z_a = (1 - w_a) - R / T,

with ``w_j`` the two-hot target (``w_l`` at ``y_l``, ``w_r`` at ``y_r``, 0 elsewhere) and ``1 - w_a`` taken exactly
(``w_r`` at ``y_l``, ``w_l`` at ``y_r``, 1 elsewhere). The loss is a sum of three non-negative terms and
``log1p(R)`` keeps a confident row's digits (``R`` far below 1); ``p_a = 1 / T = 1 - R / T``, so the gradient at the
maximum has no ``1 - p`` cancellation either.

Limits, as ``F.cross_entropy`` with the same two-hot target takes them: a ``-inf`` bin has probability 0 (``e_j =
0``; a target bin at ``-inf`` gives a loss of ``+inf`` and the gradient ``-w_j`` there); a ``+inf`` logit (``z_a - m
= inf - inf``) or a NaN makes the row's loss and gradient NaN. A term whose weight is 0 is 0, even at a bin of
``-inf`` (``F.cross_entropy``'s soft-label form gives NaN there, ``0 * inf``; its hard-label form, what an integer
target means, the finite value). The formula is differentiable (``m`` gathered at ``a``: the loss and the gradient are
invariant to the shift, so its derivative cancels): a double backward differentiates the gradient returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.dfl.semantics import DflArgs


__all__ = ["closed_form", "eager_forward"]


def closed_form(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row Distribution Focal Loss (the target's shape) and d loss / d logits (the logits' shape) of float64
    logits ``(..., n)`` and targets ``(...)`` in ``[0, n - 1]``. Differentiable.

    Example:
        >>> import torch
        >>> loss, grad = closed_form(torch.tensor([[0.0, 0.0, 0.0], [1e20, 0.0, -1e20]], dtype=torch.float64),
        ...                          torch.tensor([0.5, 1.0], dtype=torch.float64))
        >>> [f"{v:.6g}" for v in loss.tolist()], [[round(v, 6) for v in row] for row in grad.tolist()]
        (['1.09861', '1e+20'], [[-0.166667, -0.166667, 0.333333], [1.0, -1.0, 0.0]])
    """
    bins = logits.shape[-1]
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
    # the two bins and their weights (exact: y - floor(y) is, and so is y_r - y but for y < 1, where it rounds once)
    y = target.unsqueeze(-1)
    low = y.floor().clamp(max=bins - 2)
    weight_r = y - low
    weight_l = (low + 1) - y
    low = low.long()
    high = low + 1
    # 1. the first maximum's index, e_j and R = sum_{j != a} e_j (plus e_a - 1: exactly 0, NaN at a +inf maximum)
    top = logits.argmax(dim=-1, keepdim=True)
    m = logits.gather(-1, top)
    e = torch.exp(logits - m)
    at_top = torch.zeros_like(e, dtype=torch.bool).scatter(-1, top, True)
    rest = torch.where(at_top, zero, e).sum(dim=-1, keepdim=True) + (e.gather(-1, top) - 1)
    total = 1 + rest
    # 2. loss: three non-negative terms, a term of weight 0 is 0 (even at a -inf bin)
    loss_l = torch.where(weight_l > 0, weight_l * torch.where(weight_l > 0, m - logits.gather(-1, low), zero), zero)
    loss_r = torch.where(weight_r > 0, weight_r * torch.where(weight_r > 0, m - logits.gather(-1, high), zero), zero)
    loss = (loss_l + loss_r + torch.log1p(rest)).squeeze(-1)
    # 3. gradient: e_j / T - w_j off the maximum, (1 - w_a) - R / T at it
    two_hot = torch.zeros_like(e).scatter(-1, low, weight_l).scatter(-1, high, weight_r)
    one_minus = torch.ones_like(e).scatter(-1, low, weight_r).scatter(-1, high, weight_l)
    grad = torch.where(at_top, one_minus - rest / total, e / total - two_hot)
    return loss, grad


def eager_forward(args: DflArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype per element for ``"none"``) and, when
    ``need_grad``, the gradient of that loss in the compute dtype."""
    x = args.logits.detach().to(torch.float64)
    per_row, grad = closed_form(x, args.target.to(torch.float64))
    loss = per_row.to(args.compute_dtype) if args.reduction == "none" else args.reduce(per_row)
    if not need_grad:
        return loss, None
    return loss, (grad * args.reduction_scale).to(args.compute_dtype)
