r"""``numpy_reference``: NumPy float64 with its own closed-form gradient: the oracle the others are checked against.

Per row (logits ``z``, target ``t``), with everything taken over the *non-target* classes so that nothing is computed
as ``1 - (a number close to 1)``:

.. math::

    d = \log \sum_{j \ne t} e^{z_j - z_t} = \log \frac{1 - p_t}{p_t}, \qquad
    -\log p_t = \mathrm{softplus}(d), \qquad \log(1 - p_t) = -\mathrm{softplus}(-d)

    \mathrm{FL} = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{softplus}(d)

The gradient (derived in :mod:`focalbench.implementations.fused`), with ``q_j = p_j / (1 - p_t)`` the softmax over
the non-target classes:

.. math::

    G = \alpha_t (1 - p_t)^\gamma \left[(1 - p_t) - \gamma \, p_t \log p_t\right], \qquad
    \partial \mathrm{FL} / \partial z_t = -G, \qquad \partial \mathrm{FL} / \partial z_j = G \, q_j \; (j \ne t)

It is itself checked against an arbitrary-precision oracle (:mod:`focalbench.arena.oracle`). It runs on the CPU in NumPy
(inputs on another device are copied); it is differentiable once: ``create_graph=True`` raises a RuntimeError
rather than return a gradient that silently does not depend on the logits.
"""

from __future__ import annotations

import numpy as np
import torch

from focalbench.arena.registry import register
from focalbench.losses.common import reduce_loss, reduction_scale
from focalbench.losses.softmax.semantics import FocalArgs


def _softplus(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def reference_rows(z: np.ndarray, t: np.ndarray, alpha_t: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss (M,) and gradient (M, C) of M rows ``z`` (M, C) float64 at targets ``t`` (M,), weighted by ``alpha_t``.

    Non-finite logits take their limits: a class at -inf is absent (gradient 0); with every other class absent the
    loss and gradient are 0; a target at -inf gives loss +inf and the finite limit of the gradient (``-alpha_t`` at the
    target, ``alpha_t q_j`` elsewhere); NaN or +inf off the target gives NaN.
    """
    rows = np.arange(z.shape[0])
    z_t = z[rows, t]
    others = z.copy()
    others[rows, t] = -np.inf
    others_max = others.max(axis=1)
    # no other class left (all at -inf): shift by 0, as -inf - (-inf) would be NaN
    shift = np.where(others_max == -np.inf, 0.0, others_max)
    with np.errstate(under="ignore", over="ignore", divide="ignore", invalid="ignore"):
        exp_others = np.exp(others - shift[:, None])  # 0 at the target and at absent classes
        sum_others = exp_others.sum(axis=1)  # in [1, C - 1], or 0 when no other class is left
        d = (shift - z_t) + np.log(sum_others)  # -inf when no other class is left, +inf for a target at -inf
        neg_log_p_t = _softplus(d)
        log_one_minus_p_t = -_softplus(-d)
        focal = np.exp(gamma * log_one_minus_p_t) if gamma else np.ones_like(d)
        # an element of weight 0 weighs nothing, even at a target of -inf (0 * inf); a NaN still propagates
        loss = np.where((alpha_t == 0) & (neg_log_p_t == np.inf), 0.0, alpha_t * focal * neg_log_p_t)
        p_t = np.exp(-neg_log_p_t)
        p_t_log_p_t = np.where(p_t > 0, p_t * neg_log_p_t, 0.0)  # x log x -> 0 as x -> 0 (a target at -inf)
        big_g = alpha_t * focal * (np.exp(log_one_minus_p_t) + gamma * p_t_log_p_t)
        q_scale = np.where(sum_others > 0, big_g / np.where(sum_others > 0, sum_others, 1.0), 0.0)
        grad = exp_others * q_scale[:, None]
    grad[rows, t] = -big_g
    return loss, grad


class _ReferenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: FocalArgs) -> torch.Tensor:
        num_classes = args.num_classes
        rows = logits.detach().movedim(1, -1).reshape(-1, num_classes).cpu().double().numpy().copy()
        target = args.safe_target.reshape(-1).cpu().numpy()
        if not args.all_counted:
            rows[~args.valid.reshape(-1).cpu().numpy()] = 0.0  # whatever ignored elements hold, they count for nothing
        alpha_t = args.alpha_t(torch.float64).reshape(-1).cpu().numpy()
        loss, grad = reference_rows(rows, target, alpha_t, args.gamma)
        per_element = torch.from_numpy(loss).reshape(args.target.shape)
        # grad back to the logits' layout: rows are (N, d1, ..., dk) flattened with the class dim last
        grad_t = torch.from_numpy(grad).reshape(*args.target.shape, num_classes).movedim(-1, 1)
        ctx.args = args
        ctx.save_for_backward(grad_t)
        return reduce_loss(per_element.to(logits.device), args).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "numpy_reference is differentiable once (its gradient is computed in NumPy): "
                "create_graph=True is not supported"
            )
        (grad,) = ctx.saved_tensors
        args: FocalArgs = ctx.args
        upstream = grad_output.detach().cpu().double()
        if args.reduction == "none":
            grad = grad * upstream.unsqueeze(1)
        else:
            scale = reduction_scale(args) if args.reduction == "mean" else 1.0
            grad = grad * (upstream * scale)
        return grad.to(device=grad_output.device, dtype=ctx.args.logits.dtype), None


@register(
    "numpy_reference",
    description="NumPy float64 closed form with its own gradient (the oracle)",
    capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class"},
    family="softmax",
)
def numpy_reference(args: FocalArgs) -> torch.Tensor:
    """Float64 NumPy focal loss with a closed-form gradient."""
    return _ReferenceFunction.apply(args.logits, args)
