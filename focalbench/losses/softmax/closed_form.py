r"""The closed-form focal loss shared by ``fused``, ``fused_eager`` and ``triton``: derivation and autograd wiring.

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

Every implementation built on it supplies a *forward kernel* ``kernel(args, need_grad) -> (per_element, grad)``:
the per-element loss (target's shape) and, when ``need_grad``, the gradient of the *reduced* loss (the reduction's
scale folded in), computed in the same sweep. :class:`focalbench.losses.common.FusedLoss` then makes the backward a
multiplication by the
upstream gradient (skipped when that is 1), as in Liger-Kernel's cross-entropy. ``need_grad`` is decided before the
autograd function runs (inside its forward, grad mode is always off): no gradient is computed under
``torch.no_grad()`` / ``torch.inference_mode()`` or for logits that do not require one.

Double backward (``create_graph=True``, e.g. a gradient penalty): the backward then adds the closed-form gradient
written in differentiable PyTorch operations (:func:`differentiable_gradient`, float64) as ``y - y.detach()``: its
value is exactly 0, so the gradient keeps the kernel's values, and autograd differentiates ``y`` for the second
derivative. The closed form is smooth in the logits (``log(1 - p_t)`` as ``-softplus(-d)``, no power of ``1 - p_t``
below ``gamma``), so the second derivative has no ``0 * inf`` either.
"""

from __future__ import annotations

import torch

from focalbench.losses import common
from focalbench.losses.common import ClosedForm, ForwardKernel, reduce_loss, reduction_scale
from focalbench.losses.softmax.semantics import FocalArgs

__all__ = ["CLOSED_FORM", "differentiable_gradient", "fused_loss"]



def differentiable_gradient(logits: torch.Tensor, args: FocalArgs, upstream: torch.Tensor) -> torch.Tensor:
    """d(reduced loss)/d logits times ``upstream``, in float64 PyTorch operations that autograd can differentiate.

    The derivation above: ``-G`` at the target, ``G q_j`` elsewhere, scaled by the upstream gradient (per element for
    ``"none"``) and by 1 / count for ``"mean"``. Ignored elements' logits are replaced by 0 first, so whatever they
    hold contributes nothing, to the value or to its derivative.
    """
    x = logits.to(torch.float64)
    if not args.all_counted:
        x = torch.where(args.valid.unsqueeze(1), x, 0.0)
    target = args.safe_target.unsqueeze(1)
    others = x.scatter(1, target, float("-inf"))
    # a row whose other classes are all at -inf has G = 0: computed on zeros there, so that no NaN of a 0/0 softmax
    # reaches the second derivative
    has_rest = (others > float("-inf")).any(dim=1, keepdim=True)
    others = torch.where(has_rest, others, 0.0)
    d = torch.logsumexp(others, dim=1, keepdim=True) - x.gather(1, target)  # log((1 - p_t) / p_t)
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    neg_log_p_t = torch.logaddexp(d, zero)  # softplus(d)
    log_one_minus_p_t = -torch.logaddexp(-d, zero)
    one_minus_p_t, p_t = log_one_minus_p_t.exp(), (-neg_log_p_t).exp()
    weight = torch.where(has_rest, args.alpha_t(torch.float64).unsqueeze(1), 0.0)
    if args.gamma:
        weight = weight * (args.gamma * log_one_minus_p_t).exp()
    big_g = weight * (one_minus_p_t + args.gamma * p_t * neg_log_p_t)
    grad = big_g * (torch.softmax(others, dim=1) - torch.zeros_like(x).scatter(1, target, 1.0))
    upstream = upstream.to(torch.float64)
    if args.reduction == "none":
        return grad * upstream.unsqueeze(1)
    return grad * (upstream * reduction_scale(args))


def _unsqueeze_classes(upstream: torch.Tensor) -> torch.Tensor:
    """A per-element upstream gradient (the target's shape) lined up with the gradient's class dimension."""
    return upstream.unsqueeze(1)


#: The softmax family's closed form for the fused path (:class:`focalbench.losses.common.FusedLoss`): its kernels return
#: the per-element loss, reduced here.
CLOSED_FORM = ClosedForm(reduce=reduce_loss, broadcast=_unsqueeze_classes, exact_gradient=differentiable_gradient)


def fused_loss(args, kernel: ForwardKernel) -> torch.Tensor:
    """The loss of the validated ``args`` through the forward ``kernel``, by the fused path of
    :func:`focalbench.losses.common.fused_loss`: differentiable twice, no gradient work when none is needed."""
    return common.fused_loss(args, kernel, CLOSED_FORM)
