r"""The Quality Focal Loss's closed form in float64 PyTorch operations: any device, no compiler; loss and gradient
in one sweep (``quality_fused_eager``, and what :func:`focalbench.quality_focal_loss` runs everywhere for now).

Derivation. Per element, logit ``x``, target ``y`` in ``[0, 1]``, ``s = sigmoid(x)``, ``q = 1 - s = sigmoid(-x)``
(each from ``e = exp(-|x|)``, never as one minus the other), ``BCE = (1 - y) softplus(x) + y softplus(-x)`` (a sum of
non-negative terms: ``-log q = softplus(x)``, ``-log s = softplus(-x)``), ``d = s - y = s (1 - y) - q y`` (exactly
``s`` at ``y = 0`` and ``-q`` at ``y = 1``: no cancellation for hard targets), ``w = |d|^beta``. With ``ds/dx = s q``
and ``dBCE/dx = s - y = d``:

.. math::

    \frac{\partial\,\mathrm{QFL}}{\partial x} = w\,d + \beta\,\mathrm{sign}(d)\, w\, \frac{s q}{|d|}\,\mathrm{BCE}

``s q / |d|`` is ``q`` at ``y = 0`` and ``s`` at ``y = 1`` (both in ``[0, 1]``, taken so), so a confident element
(``|d| -> 0``) never forms ``|d|^(beta - 1)`` and the gradient is finite for every ``beta >= 0``. For a soft target
``w s q / |d| = |d|^(beta - 1) s q`` is the true derivative; where ``s = y`` exactly (``d = 0``) the second term is
taken as 0: its limit for ``beta > 1``, the derivative of ``|d|`` at its minimum for ``beta = 1`` (sign(0) = 0) and,
for ``0 < beta < 1`` (a cusp: the one-sided derivatives are -inf and +inf), the symmetric choice 0, which is also what
makes the loss's minimum a stationary point. ``|d|^0 = 1`` (``beta = 0``: binary cross-entropy, also where ``d = 0``).

Saturated logits (``|x|`` up to 1e20 and beyond, +-inf): ``e`` underflows to 0, ``s`` and ``q`` are 0 and 1, BCE is
``(1 - y) x`` or ``-y x`` to the last bit, and ``s q BCE`` is 0 (never ``0 * inf``: the second term is selected away by
a "double where" where ``s q / |d|`` is 0). An infinite logit that disagrees with its target gives a loss of +inf and
the gradient's finite limit ``(1 - y)^(beta + 1)`` (``+inf``) or ``-y^(beta + 1)`` (``-inf``); NaN propagates.

Steps (elementwise, float64):

1. ``e = exp(-|x|)``, ``r = 1 / (1 + e)``; ``s, q`` = ``(r, e r)`` for ``x >= 0``, ``(e r, r)`` otherwise;
   ``softplus(+-x) = max(+-x, 0) + log1p(e)``.
2. ``BCE``, taking each term only where its weight (``1 - y``, ``y``) is not 0; ``d``; ``w = |d|^beta``.
3. ``ratio = s q / |d|`` (``q``, ``s`` for hard targets; 0 where ``|d| = 0``); the gradient as above; loss ``w BCE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.quality.semantics import QualityArgs


__all__ = ["closed_form", "eager_forward"]


def closed_form(x: torch.Tensor, y: torch.Tensor, beta) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element Quality Focal Loss and d loss / d x of float64 logits ``x`` and targets ``y`` (same shape);
    ``beta`` a float or a 0-dim tensor. Differentiable (a double backward differentiates the gradient returned).

    Example:
        >>> import torch
        >>> loss, grad = closed_form(torch.tensor([0.0, 40.0, -1e20], dtype=torch.float64),
        ...                          torch.tensor([0.5, 0.9, 0.0], dtype=torch.float64), 2.0)
        >>> [f"{v:.4e}" for v in loss.tolist()], [f"{v:.4e}" for v in grad.tolist()]
        (['0.0000e+00', '4.0000e-02', '0.0000e+00'], ['0.0000e+00', '1.0000e-03', '0.0000e+00'])
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    # 1. s, q and the two softplus terms from one exponential
    e = torch.exp(-x.abs())
    log1p_e = torch.log1p(e)
    r = 1 / (1 + e)
    positive = x >= 0
    s, q = torch.where(positive, r, e * r), torch.where(positive, e * r, r)
    softplus_x, softplus_minus_x = x.clamp_min(0) + log1p_e, (-x).clamp_min(0) + log1p_e  # -log q, -log s
    # 2. BCE (a term whose weight is 0 is not formed: softplus is +inf at an infinite logit), d = s - y, w = |d|^beta
    bce = torch.where(y < 1, (1 - y) * torch.where(y < 1, softplus_x, zero), zero) + torch.where(
        y > 0, y * torch.where(y > 0, softplus_minus_x, zero), zero
    )
    d = s * (1 - y) - q * y
    magnitude = d.abs()
    w = magnitude.pow(beta)  # 0^0 = 1: beta = 0 is BCE everywhere
    # 3. s q / |d|: q at y = 0, s at y = 1, 0 where d = 0 (the symmetric subgradient: see the module's docstring)
    nonzero = magnitude > 0
    soft_ratio = torch.where(nonzero, s * q / torch.where(nonzero, magnitude, 1.0), zero)
    ratio = torch.where(y == 0, q, torch.where(y == 1, s, soft_ratio))
    ratio = torch.where(nonzero, ratio, zero)
    bce_ratio = torch.where(ratio > 0, torch.where(ratio > 0, bce, zero) * ratio, zero)  # s q BCE / |d|, never 0 * inf
    grad = w * d + beta * torch.sign(d) * w * bce_ratio
    loss = w * bce
    return loss, grad


def eager_forward(args: QualityArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64) and, when ``need_grad``, the gradient of that loss in the compute dtype."""
    x = args.logits.detach().to(torch.float64)
    per_element, grad = closed_form(x, args.target.to(torch.float64), args.beta)
    if not need_grad:
        return args.reduce(per_element), None
    return args.reduce(per_element), (grad * args.reduction_scale).to(args.compute_dtype)
