r"""``quality_reference``: NumPy float64 with its own closed-form gradient: the quality family's reference for the
checks.

Per element (logit ``x``, target ``y``), with ``softplus`` as ``logaddexp(0, .)``, ``s = exp(-softplus(-x))``,
``q = exp(-softplus(x))`` and nothing computed as one minus a number close to 1:

.. math::

    \mathrm{BCE} = (1 - y)\,\mathrm{softplus}(x) + y\,\mathrm{softplus}(-x), \qquad d = s (1 - y) - q y, \qquad
    \mathrm{QFL} = |d|^\beta\, \mathrm{BCE}

    \partial \mathrm{QFL} / \partial x = |d|^\beta \left[d + \beta\,\mathrm{sign}(d)\,\mathrm{BCE}\, s q / |d|\right]

(derivation in :mod:`focalbench.kernels.quality_eager`), ``s q / |d|`` taken as ``q`` at ``y = 0`` and ``s`` at
``y = 1``, the second term 0 where ``d = 0``. It is itself checked against the arbitrary-precision oracle
(:func:`focalbench.arena.families.quality.oracle.quality_element`, 60 digits). Infinite logits take their limits
(loss 0 or +inf, a finite gradient); NaN propagates. It runs on the CPU in NumPy (inputs on another device are copied)
and is differentiable once: ``create_graph=True`` raises a RuntimeError.
"""

from __future__ import annotations

import numpy as np
import torch

from focalbench.arena.registry import register
from focalbench.losses.common import reduce_loss, reduction_scale
from focalbench.losses.quality.semantics import QualityArgs


def reference_elements(x: np.ndarray, y: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Float64 loss and gradient of every element of ``x`` (targets ``y``, same shape)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):  # inf - inf, 0 * inf and 0 / 0 below are selected away
        softplus_x = np.logaddexp(0.0, x)  # -log q
        softplus_minus_x = np.logaddexp(0.0, -x)  # -log s
        s, q = np.exp(-softplus_minus_x), np.exp(-softplus_x)
        bce = np.where(y < 1, (1 - y) * softplus_x, 0.0) + np.where(y > 0, y * softplus_minus_x, 0.0)
        d = s * (1 - y) - q * y
        weight = np.abs(d) ** beta  # 0 ** 0 = 1
        ratio = np.where(y == 0, q, np.where(y == 1, s, s * q / np.abs(d)))
        second = np.where((d != 0) & (ratio > 0), beta * np.sign(d) * weight * ratio * bce, 0.0)
        grad = weight * d + second
        loss = weight * bce
    return np.asarray(loss), np.asarray(grad)  # arrays also for a 0-dim input


class _ReferenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: QualityArgs) -> torch.Tensor:
        x = logits.detach().cpu().double().numpy()
        y = args.target.detach().cpu().double().numpy()
        loss, grad = reference_elements(x, y, float(args.beta))
        ctx.args = args
        ctx.save_for_backward(torch.from_numpy(grad) * reduction_scale(args))
        return reduce_loss(torch.from_numpy(loss), args).to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "quality_reference is differentiable once (its gradient is computed in NumPy): create_graph=True is "
                "not supported"
            )
        (grad,) = ctx.saved_tensors
        grad = grad * grad_output.detach().cpu().double()
        return grad.to(device=grad_output.device, dtype=ctx.args.logits.dtype), None


@register(
    "quality_reference",
    family="quality",
    description="NumPy float64 closed form with its own gradient (the quality family's reference)",
    capabilities={"any_shape", "elementwise_none"},
)
def quality_reference(args: QualityArgs) -> torch.Tensor:
    """Float64 NumPy Quality Focal Loss with a closed-form gradient."""
    return _ReferenceFunction.apply(args.logits, args)
