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
the per-element loss (target's shape) and, when the logits require a gradient, the gradient of the *reduced* loss
(the reduction's scale folded in), computed in the same sweep. :class:`FusedFocalLoss` then makes the backward a
multiplication by the upstream gradient (skipped when that is 1), as in Liger-Kernel's cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from focalbench.semantics import FocalArgs, reduce_loss

__all__ = ["ForwardKernel", "FusedFocalLoss", "fused_loss"]

ForwardKernel = Callable[[FocalArgs, bool], "tuple[torch.Tensor, torch.Tensor | None]"]


class FusedFocalLoss(torch.autograd.Function):
    """Forward runs the kernel (gradient included when the logits require it); backward scales that gradient."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: FocalArgs, kernel: ForwardKernel) -> torch.Tensor:
        per_element, grad = kernel(args, ctx.needs_input_grad[0])
        ctx.reduction = args.reduction
        if grad is not None:
            ctx.save_for_backward(grad)
        return reduce_loss(per_element, args).to(logits.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad = grad * grad_output.unsqueeze(1)
        elif grad_output.device.type != "cpu" or float(grad_output) != 1.0:
            # on CUDA, multiply rather than read the value back (a host sync)
            grad = grad * grad_output
        return grad.to(grad_output.dtype), None, None


def fused_loss(args: FocalArgs, kernel: ForwardKernel) -> torch.Tensor:
    """The focal loss of ``args`` through ``kernel``, differentiable once."""
    return FusedFocalLoss.apply(args.logits, args, kernel)
