r"""``fused``: closed-form forward and backward in one pass over the logits, accurate at every finite logit gap.

Derivation. Let ``p = softmax(z)``, ``t`` the target, ``a = alpha_t`` and ``FL = -a (1 - p_t)^gamma log p_t``.
With ``dp_t/dz_j = p_t (delta_jt - p_j)``:

.. math::

    \frac{\partial \mathrm{FL}}{\partial z_j}
      = a \left[\gamma p_t (1 - p_t)^{\gamma - 1} \log p_t - (1 - p_t)^\gamma\right] (\delta_{jt} - p_j)

Write ``p_j = (1 - p_t) q_j`` for ``j != t``, where ``q`` is the softmax over the non-target classes; then no power
of ``(1 - p_t)`` below ``gamma`` is left and, with

.. math::

    G = a (1 - p_t)^\gamma \left[(1 - p_t) - \gamma \, p_t \log p_t\right] \;\ge 0,

the gradient is ``-G`` at the target and ``G q_j`` elsewhere (it sums to 0, and ``G ~ a (1 + gamma) (1 - p_t)^(gamma+1)
-> 0`` as ``p_t -> 1`` for every ``gamma >= 0``: no ``0 * inf``).

Every per-row quantity comes from one number, ``d = log((1 - p_t) / p_t) = log sum_{j != t} e^{z_j - z_t}``:
``-log p_t = softplus(d)``, ``log(1 - p_t) = -softplus(-d)``. ``d`` is formed from max-subtracted exponentials and a
difference of two logits taken in float64, never as ``1 - exp(log p_t)`` nor as a difference of two large
log-sum-exps, so float32 inputs give a loss within a few ulp of the exact one for gaps from 0 to 1e30 and under large
shifts of all logits. Per-row scalars are float64 (they cost O(rows), not O(rows x classes)).

Steps (each over the ``(N, C, ...)`` logits along dim 1, dense inputs included without a permute-copy):

1. ``m = max_j z_j``; ``e_j = exp(z_j - m)`` in place; ``e_t := 0``; ``S = sum_j e_j`` (the non-target mass).
2. ``d = log S + (m - z_t)`` in float64, then the loss and ``G`` per row, with the reduction's scale folded into ``G``.
3. When a gradient will be needed, ``e`` becomes the gradient in place: ``e_j * G / S`` and ``-G`` at the target.
   The backward is then a multiplication by the upstream gradient (skipped when that is 1), as in Liger-Kernel's
   cross-entropy, so the logits are read three times and the gradient written once.
"""

from __future__ import annotations

import math

import torch

from focalbench.registry import register
from focalbench.semantics import FocalArgs, compute_dtype, mean_scale


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))


def _refine_confident_rows(x: torch.Tensor, target: torch.Tensor, rows: torch.Tensor):
    """Exact float64 per-row terms and non-target softmax ``q`` for the selected rows.

    In float32, ``z_j - max`` rounds by up to ``|z_j - max| * 2**-24``; at a confident row every non-target class sits
    a whole gap below the target, so ``1 - p_t`` (and the loss, as ``(1 - p_t)^(gamma + 1)``) would carry a relative
    error of ``(gamma + 1) * gap * 6e-8``. These rows take the differences in float64, where they are exact.

    Returns ``(one_minus_p_t, p_t, neg_log_p_t, q)``: three ``(K,)`` float64 tensors and ``q`` (K, C) float64.
    """
    z = x.movedim(1, -1)[rows].double()  # (K, C): the selected rows, class dim last
    t = target.squeeze(1)[rows].unsqueeze(1)
    logit_t = z.gather(1, t)
    others = z.scatter(1, t, float("-inf"))
    others_max = others.amax(dim=1, keepdim=True)
    exp_others = torch.exp(others - others_max)
    sum_others = exp_others.sum(dim=1, keepdim=True)
    d = (others_max - logit_t) + sum_others.log()  # log((1 - p_t) / p_t), exact to float64 rounding
    neg_log_p_t = _softplus(d)
    one_minus_p_t = torch.exp(-_softplus(-d))
    return one_minus_p_t.squeeze(1), torch.exp(-neg_log_p_t).squeeze(1), neg_log_p_t.squeeze(1), exp_others / sum_others


#: Relative error the float32 pass may leave before a row is recomputed exactly: half the 2e-6 bound.
REFINE_TOLERANCE = 1e-6


def fused_forward(args: FocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element loss (target's shape, float64) and, if ``need_grad``, the reduction-scaled gradient."""
    logits = args.logits
    dtype = compute_dtype(logits.dtype)
    x = logits.to(dtype)
    target = args.safe_target.unsqueeze(1)
    num_classes = x.shape[1]

    # 1. softmax (one fused ATen kernel: p_j = exp(z_j - max) / S, each within a few ulp), p_t, and the ratio
    #    r = (1 - p_t) / p_t = sum_{j != t} p_j / p_t: a sum of positives, and the shared 1 / S cancels
    probs = torch.softmax(x, dim=1)
    p_t = probs.gather(1, target).double()
    probs.scatter_(1, target, 0.0)
    sum_others = probs.sum(dim=1, keepdim=True).double()
    ratio = sum_others / p_t
    d = ratio.log()  # log((1 - p_t) / p_t)
    neg_log_p_t = torch.log1p(ratio)
    one_minus_p_t = ratio / (1 + ratio)
    p_t = (1 + ratio).reciprocal()
    q_scale = sum_others.reciprocal()  # probs * q_scale = q, the softmax over the non-target classes

    # 2. rows the pass above cannot serve to the accuracy bound, recomputed exactly (_refine_confident_rows):
    #    - confident rows: the float32 differences z_j - max round by |z_j - max| * eps, and the loss, as
    #      (1 - p_t)^(gamma + 1), multiplies the error by (gamma + 1); at a confident row
    #      sum_j q_j |z_j - z_t| <= -d + log(C - 1) bounds it;
    #    - rows whose p_t underflowed (log p_t would be inf).
    eps = torch.finfo(dtype).eps / 2
    error_bound = (args.gamma + 1) * (math.log(num_classes - 1 or 1) - d) * eps
    refine = ((d < 0) & (error_bound > REFINE_TOLERANCE)) | ~(p_t >= torch.finfo(dtype).tiny)
    if bool(refine.any()):
        rows = refine.squeeze(1)
        exact = _refine_confident_rows(x, target, rows)
        for tensor, value in zip((one_minus_p_t, p_t, neg_log_p_t), exact[:3]):
            tensor.squeeze(1)[rows] = value
        q_scale.squeeze(1)[rows] = 1.0
        probs.movedim(1, -1)[rows] = exact[3].to(dtype)  # q itself for these rows

    # 3. per-row scalars in float64
    gamma = args.gamma
    weighted = args.alpha_t(torch.float64).unsqueeze(1) * one_minus_p_t.pow(gamma)
    per_element = (weighted * neg_log_p_t).squeeze(1)
    if not need_grad:
        return per_element, None

    # 4. the gradient, written over the probabilities: G q_j off the target, -G at it
    big_g = weighted * (one_minus_p_t + gamma * p_t * neg_log_p_t)
    if args.reduction == "mean":
        big_g = big_g * mean_scale(args)
    # no non-target mass (every other class underflowed) means G = 0 too
    coef = torch.where(sum_others > 0, big_g * q_scale, torch.zeros((), dtype=torch.float64, device=x.device))
    grad = probs.mul_(coef.to(dtype))
    grad.scatter_(1, target, big_g.neg().to(dtype))
    return per_element, grad


class FusedFocalLoss(torch.autograd.Function):
    """Forward computes the gradient too when the logits require it; backward scales it."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: FocalArgs) -> torch.Tensor:
        per_element, grad = fused_forward(args, need_grad=ctx.needs_input_grad[0])
        ctx.reduction = args.reduction
        if grad is not None:
            ctx.save_for_backward(grad)
        if args.reduction == "none":
            out = per_element
        elif args.reduction == "sum":
            out = per_element.sum()
        else:
            out = per_element.sum() * mean_scale(args)
        return out.to(logits.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad = grad * grad_output.unsqueeze(1)
        elif grad_output.device.type != "cpu" or float(grad_output) != 1.0:
            # on CUDA, multiply rather than read the value back (a host sync)
            grad = grad * grad_output
        return grad.to(grad_output.dtype), None


@register(
    "fused",
    description="closed-form forward+backward, gradient computed in the forward, float64 row scalars",
    capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class"},
)
def fused(args: FocalArgs) -> torch.Tensor:
    """Fused closed-form focal loss, accurate at every finite logit gap."""
    return FusedFocalLoss.apply(args.logits, args)
