r"""The closed-form sigmoid focal loss shared by ``sigmoid_fused``, ``sigmoid_fused_eager``, ``sigmoid_triton`` and
``sigmoid_reference``: derivation and autograd wiring.

Derivation. Per element, ``p = sigmoid(x)``, ``q = 1 - p = sigmoid(-x)``, target ``t`` in ``[0, 1]``,
``CE = (1 - t) softplus(x) + t softplus(-x)`` (binary cross-entropy with logits: ``-log q = softplus(x)``,
``-log p = softplus(-x)``), ``m = 1 - p_t = p (1 - t) + q t`` and ``FL = alpha_t m^gamma CE``. With ``dp/dx = p q``,
``dCE/dx = p - t`` and ``dm/dx = p q (1 - 2t)``:

.. math::

    \frac{\partial \mathrm{FL}}{\partial x} = \alpha_t m^\gamma
        \left[(p - t) + \gamma \, (1 - 2t) \, \mathrm{CE} \, \frac{p q}{m}\right]

No power of ``m`` below ``gamma`` is left: ``p q / m`` lies in ``[0, 1]`` (it is ``p`` at ``t = 1`` and ``q`` at
``t = 0``), so at a confident element (``m -> 0``) nothing is ``0 * inf``, for any ``gamma >= 0``. At ``t = 1`` this is
the softmax family's ``-G`` with two classes: ``-alpha_t q^gamma [q + gamma p softplus(-x)]``. Every term is a sum of
non-negative numbers or a product, never ``1 - (a number close to 1)``: ``m`` as ``p (1 - t) + q t`` and ``p - t`` as
``p (1 - t) - q t`` (exact for hard targets; for a soft target the two terms cancel only where the gradient's first
term is itself near 0). torchvision computes ``1 - p_t`` as ``1 - (p t + (1 - p)(1 - t))`` instead, which is 0 in
float32 once ``|x|`` passes ~17.

Each implementation built on it supplies a *forward kernel* ``kernel(args, need_grad) -> (loss, grad)``: the loss
already reduced as ``args.reduction`` says (the C kernel sums without writing per-element losses) and, when
``need_grad``, the gradient of that loss. :class:`SigmoidFusedFocalLoss` makes the backward a multiplication by the
upstream gradient (skipped when it is 1). As for the softmax family (:mod:`focalbench.fused`), ``need_grad`` is decided
before the autograd function runs, and under ``create_graph=True`` the backward adds the closed form in
differentiable float64 operations (:func:`focalbench.kernels.sigmoid_eager.closed_form`) as ``y - y.detach()``: the
same values, with a second derivative.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from focalbench.sigmoid_semantics import SigmoidArgs, mean_scale

__all__ = ["SigmoidForwardKernel", "SigmoidFusedFocalLoss", "scaled_gradient", "sigmoid_fused_loss"]

SigmoidForwardKernel = Callable[[SigmoidArgs, bool], "tuple[torch.Tensor, torch.Tensor | None]"]


class SigmoidFusedFocalLoss(torch.autograd.Function):
    """Forward runs the kernel (gradient included when ``need_grad``); backward scales that gradient."""

    @staticmethod
    def forward(
        ctx, logits: torch.Tensor, args: SigmoidArgs, kernel: SigmoidForwardKernel, need_grad: bool
    ) -> torch.Tensor:
        loss, grad = kernel(args, need_grad)
        ctx.args = args
        if grad is not None:
            ctx.save_for_backward(grad, logits)  # the logits only for a double backward (an input: no extra memory)
        return loss.to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad, logits = ctx.saved_tensors
        return scaled_gradient(grad, grad_output, ctx.args, logits).to(logits.dtype), None, None, None


def scaled_gradient(grad: torch.Tensor, grad_output: torch.Tensor, args: SigmoidArgs, logits: torch.Tensor):
    """The backward: the kernel's gradient of the reduced loss times the upstream gradient; differentiable (through the
    float64 closed form) when grad mode is on, i.e. under ``create_graph=True``."""
    upstream = grad_output.detach()
    if args.reduction == "none" or upstream.device.type != "cpu" or float(upstream) != 1.0:
        grad = grad * upstream.to(grad.dtype)  # on CUDA a multiplication rather than a host sync
    if torch.is_grad_enabled():  # create_graph=True: the same values, differentiable
        from focalbench.kernels.sigmoid_eager import closed_form

        _, exact = closed_form(logits.to(torch.float64), args.target.to(torch.float64), args.alpha, args.gamma)
        exact = exact * mean_scale(args) * grad_output.to(torch.float64)
        exact = torch.where(torch.isfinite(exact), exact, 0.0)  # a non-finite value must not reach the sum
        grad = grad + (exact - exact.detach()).to(grad.dtype)
    return grad


def sigmoid_fused_loss(args: SigmoidArgs, kernel: SigmoidForwardKernel) -> torch.Tensor:
    """The sigmoid focal loss of ``args`` through ``kernel``, differentiable twice; no gradient work when none is
    needed (``torch.no_grad()``, ``torch.inference_mode()``, logits that do not require grad)."""
    need_grad = torch.is_grad_enabled() and args.logits.requires_grad
    return SigmoidFusedFocalLoss.apply(args.logits, args, kernel, need_grad)
