r"""``varifocal_reference``: NumPy float64 with its own closed-form gradient: the varifocal family's oracle (checks).

Per element (logit ``x``, target ``q``), with ``p = sigmoid(x) = exp(-softplus(-x))``, ``s = 1 - p =
exp(-softplus(x))`` and ``softplus(z) = logaddexp(0, z)``:

.. math::

    \mathrm{BCE} = (1 - q)\,\mathrm{softplus}(x) + q\,\mathrm{softplus}(-x), \qquad
    w = \begin{cases} q \text{ (or 1)} & q > 0 \\ \alpha\, e^{-\gamma\, \mathrm{softplus}(-x)} & q = 0 \end{cases}

    \mathrm{VFL} = w\, \mathrm{BCE}, \qquad
    \partial \mathrm{VFL} / \partial x = w\, (p (1 - q) - s q) + [q = 0]\; \alpha \gamma\, p^\gamma s\, \mathrm{BCE}

(the second term dropped with ``detach_weight``: RT-DETR's weight held constant). It is itself checked against the
arbitrary-precision oracle (:func:`focalbench.arena.families.varifocal.oracle.varifocal_element`, 60 digits). It runs
on the CPU in NumPy (inputs on another device are copied) and is differentiable once: ``create_graph=True`` raises a
RuntimeError rather than return a gradient that silently does not depend on the logits.
"""

from __future__ import annotations

import numpy as np
import torch

from focalbench.arena.registry import register
from focalbench.losses.common import reduce_loss, reduction_scale
from focalbench.losses.varifocal.semantics import VarifocalArgs


def reference_elements(
    x: np.ndarray,
    q: np.ndarray,
    alpha: float,
    gamma: float,
    iou_weighted: bool = True,
    detach_weight: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 loss and gradient of every element of ``x`` (targets ``q``, same shape)."""
    x, q = np.asarray(x, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(all="ignore"):  # 0 * inf at an infinite logit is selected away
        softplus_x = np.logaddexp(0.0, x)  # -log(1 - p)
        softplus_minus_x = np.logaddexp(0.0, -x)  # -log p
        p, s = np.exp(-softplus_minus_x), np.exp(-softplus_x)
        bce = np.where(q < 1, (1 - q) * softplus_x, 0.0) + np.where(q > 0, q * softplus_minus_x, 0.0)
        focal = np.exp(-gamma * softplus_minus_x) if gamma else np.ones_like(x)
        negative = q == 0
        weight = np.where(negative, alpha * focal, q if iou_weighted else 1.0)
        grad = weight * (p * (1 - q) - s * q)
        if not detach_weight:
            weight_slope = alpha * gamma * focal * np.where(s > 0, s * softplus_x, 0.0)  # d(alpha p^gamma)/dx BCE
            grad = grad + np.where(negative, weight_slope, 0.0)
        loss = np.where((weight == 0) & ~np.isnan(x), 0.0, weight * bce)
    return np.asarray(loss), np.asarray(grad)  # arrays also for a 0-dim input (NumPy returns scalars there)


class _ReferenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: VarifocalArgs) -> torch.Tensor:
        x = logits.detach().cpu().double().numpy()
        q = args.target.detach().cpu().double().numpy()
        loss, grad = reference_elements(x, q, args.alpha, float(args.gamma), args.iou_weighted, args.detach_weight)
        ctx.args = args
        ctx.save_for_backward(torch.from_numpy(grad) * reduction_scale(args))
        return reduce_loss(torch.from_numpy(loss), args).to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "varifocal_reference is differentiable once (its gradient is computed in NumPy): "
                "create_graph=True is not supported"
            )
        (grad,) = ctx.saved_tensors
        grad = grad * grad_output.detach().cpu().double()
        return grad.to(device=grad_output.device, dtype=ctx.args.logits.dtype), None


@register(
    "varifocal_reference",
    family="varifocal",
    description="NumPy float64 closed form with its own gradient (the varifocal family's oracle)",
    capabilities={"any_shape", "unweighted", "detached", "reduction:none"},
)
def varifocal_reference(args: VarifocalArgs) -> torch.Tensor:
    """Float64 NumPy varifocal loss with a closed-form gradient."""
    return _ReferenceFunction.apply(args.logits, args)
