r"""``sigmoid_reference``: NumPy float64 with its own closed-form gradient: the sigmoid family's oracle for the checks.

Per element (logit ``x``, target ``t``), with ``p = sigmoid(x)``, ``q = sigmoid(-x)`` and nothing computed as
``1 - (a number close to 1)``:

.. math::

    \mathrm{CE} = (1 - t)\,\mathrm{softplus}(x) + t\,\mathrm{softplus}(-x), \qquad m = 1 - p_t = p (1 - t) + q t,
    \qquad \mathrm{FL} = \alpha_t \, m^\gamma \, \mathrm{CE}

    \partial \mathrm{FL} / \partial x = \alpha_t m^\gamma \left[(p (1 - t) - q t) + \gamma (1 - 2t)\,\mathrm{CE}\,
    p q / m\right]

(derivation in :mod:`focalbench.losses.sigmoid.closed_form`), with ``log m = -softplus(+-x)`` taken exactly for hard
targets. It is
itself checked against the arbitrary-precision oracle (:func:`focalbench.arena.oracle.sigmoid_focal_element`, 60
digits).
Infinite logits take their limits (loss 0 or +inf, a finite gradient), an element whose ``alpha_t`` is 0 gives 0, NaN
propagates. It runs on the CPU in NumPy (inputs on another device are copied) and is differentiable once:
``create_graph=True`` raises a RuntimeError rather than return a gradient that silently does not depend on the logits.
"""

from __future__ import annotations

import numpy as np
import torch

from focalbench.arena.registry import register
from focalbench.losses.common import reduce_loss, reduction_scale
from focalbench.losses.sigmoid.semantics import SigmoidArgs


def reference_elements(x: np.ndarray, t: np.ndarray, alpha: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Float64 loss and gradient of every element of ``x`` (targets ``t``, same shape)."""
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    with np.errstate(all="ignore"):  # inf - inf and 0 * inf below are selected away
        softplus_x = np.logaddexp(0.0, x)  # -log q
        softplus_minus_x = np.logaddexp(0.0, -x)  # -log p
        p, q = np.exp(-softplus_minus_x), np.exp(-softplus_x)
        ce = np.where(t < 1, (1 - t) * softplus_x, 0.0) + np.where(t > 0, t * softplus_minus_x, 0.0)
        m = p * (1 - t) + q * t
        log_m = np.where(t == 1, -softplus_x, np.where(t == 0, -softplus_minus_x, np.log(m)))
        focal = np.exp(gamma * log_m) if gamma else np.ones_like(x)
        alpha_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else np.ones_like(t)
        weight = alpha_t * focal
        ratio = np.where(m > 0, p * q / m, 0.0)
        ce_ratio = np.where(ratio > 0, ce * ratio, 0.0)
        grad = weight * ((p * (1 - t) - q * t) + gamma * (1 - 2 * t) * ce_ratio)
        loss = np.where((weight == 0) & ~np.isnan(x), 0.0, weight * ce)
    return np.asarray(loss), np.asarray(grad)  # arrays also for a 0-dim input (NumPy returns scalars there)


class _ReferenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
        x = logits.detach().cpu().double().numpy()
        t = args.target.detach().cpu().double().numpy()
        loss, grad = reference_elements(x, t, args.alpha, float(args.gamma))
        ctx.args = args
        ctx.save_for_backward(torch.from_numpy(grad) * reduction_scale(args))
        return reduce_loss(torch.from_numpy(loss), args).to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "sigmoid_reference is differentiable once (its gradient is computed in NumPy): "
                "create_graph=True is not supported"
            )
        (grad,) = ctx.saved_tensors
        grad = grad * grad_output.detach().cpu().double()
        return grad.to(device=grad_output.device, dtype=ctx.args.logits.dtype), None


@register(
    "sigmoid_reference",
    family="sigmoid",
    description="NumPy float64 closed form with its own gradient (the sigmoid family's oracle)",
    capabilities={"any_shape"},
)
def sigmoid_reference(args: SigmoidArgs) -> torch.Tensor:
    """Float64 NumPy sigmoid focal loss with a closed-form gradient."""
    return _ReferenceFunction.apply(args.logits, args)
