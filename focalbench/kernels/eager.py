"""The closed form of :mod:`focalbench.losses.softmax.closed_form` in PyTorch operations: any device, no compiler
(``fused_eager``).

Steps, each along dim 1 of the ``(N, C, ...)`` logits (dense inputs without a permute-copy):

1. ``p = softmax(z)`` (one fused ATen kernel: ``exp(z_j - max) / S``, each ``p_j`` within a few ulp of its value for
   the rounded difference); ``p_t``; ``p_t := 0``; ``r = sum_j p_j / p_t = (1 - p_t) / p_t``, a sum of positives in
   which the common ``1 / S`` cancels. Every per-row term follows from ``r`` in float64.
2. Rows this cannot serve to the accuracy bound are recomputed exactly in float64: confident rows, where the float32
   differences ``z_j - max`` carry a relative error that the loss multiplies by ``gamma + 1``, and rows whose ``p_t``
   underflowed.
3. Loss and ``G`` per row; the gradient overwrites ``p``: ``G q_j`` off the target, ``-G`` at it.

Non-finite logits take their limits: a -inf class has ``p_j = 0`` (absent); with every other class absent ``d = -inf``
and loss and ``G`` are 0; a target at -inf (``p_t = 0``, recomputed in step 2) has ``d = +inf``, loss +inf and
``G = alpha_t`` (``p_t log p_t`` taken as its limit 0); NaN and +inf propagate. Ignored elements are computed on zero
logits, so nothing they hold reaches the result.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.softmax.semantics import FocalArgs


__all__ = ["REFINE_TOLERANCE", "eager_forward"]


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
    shift = others_max.masked_fill(others_max == float("-inf"), 0.0)  # no other class left: -inf - -inf is NaN
    exp_others = torch.exp(others - shift)
    sum_others = exp_others.sum(dim=1, keepdim=True)  # 0 when every other class is at -inf
    d = (shift - logit_t) + sum_others.log()  # log((1 - p_t) / p_t), exact to float64 rounding; -inf: p_t = 1
    neg_log_p_t = _softplus(d)
    one_minus_p_t = torch.exp(-_softplus(-d))
    q = torch.where(sum_others > 0, exp_others / sum_others, 0.0)
    return one_minus_p_t.squeeze(1), torch.exp(-neg_log_p_t).squeeze(1), neg_log_p_t.squeeze(1), q


#: Relative error the float32 pass may leave before a row is recomputed exactly: half the 2e-6 bound.
REFINE_TOLERANCE = 1e-6


def eager_forward(args: FocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element loss (target's shape, float64) and, if ``need_grad``, the reduction-scaled gradient."""
    logits = args.logits
    dtype = args.compute_dtype
    x = logits.to(dtype)
    if not args.all_counted:
        # ignored elements count for nothing whatever their logits hold (-inf at class 0, NaN, +inf): compute them
        # on zeros, where alpha_t = 0 makes loss and gradient exactly 0
        x = x.masked_fill(~args.valid.unsqueeze(1), 0.0)
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
        for tensor, value in zip((one_minus_p_t, p_t, neg_log_p_t), exact[:3], strict=True):
            tensor.squeeze(1)[rows] = value
        q_scale.squeeze(1)[rows] = 1.0
        probs.movedim(1, -1)[rows] = exact[3].to(dtype)  # q itself for these rows

    # 3. per-row scalars in float64
    gamma = args.gamma
    weighted = args.alpha_t(torch.float64).unsqueeze(1) * one_minus_p_t.pow(gamma)
    # an element of weight 0 weighs nothing, even at a target of -inf (0 * inf); a NaN still propagates
    inert = (weighted == 0) & (neg_log_p_t == math.inf)
    per_element = torch.where(inert, 0.0, weighted * neg_log_p_t).squeeze(1)
    if not need_grad:
        return per_element, None

    # 4. the gradient, written over the probabilities: G q_j off the target, -G at it
    p_t_log_p_t = torch.where(p_t > 0, p_t * neg_log_p_t, 0.0)  # x log x -> 0 as x -> 0: a target at -inf
    big_g = weighted * (one_minus_p_t + gamma * p_t_log_p_t)
    if args.reduction == "mean":
        big_g = big_g * args.reduction_scale
    # no non-target mass (every other class underflowed) means G = 0 too
    coef = torch.where(sum_others > 0, big_g * q_scale, torch.zeros((), dtype=torch.float64, device=x.device))
    grad = probs.mul_(coef.to(dtype))
    grad.scatter_(1, target, big_g.neg().to(dtype))
    return per_element, grad
