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
``need_grad``, the gradient of that loss. :class:`focalbench.losses.common.FusedLoss` makes the backward a
multiplication by the
upstream gradient (skipped when it is 1). As for the softmax family (:mod:`focalbench.losses.softmax.closed_form`),
``need_grad`` is decided
before the autograd function runs, and under ``create_graph=True`` the backward adds the closed form in
differentiable float64 operations (:func:`focalbench.kernels.sigmoid_eager.closed_form`) as ``y - y.detach()``: the
same values, with a second derivative.
"""

from __future__ import annotations

import torch

from focalbench.losses import common
from focalbench.losses.common import ClosedForm, ForwardKernel, reduction_scale
from focalbench.losses.sigmoid.semantics import SigmoidArgs

__all__ = ["CLOSED_FORM", "differentiable_gradient", "fused_loss"]


def differentiable_gradient(logits: torch.Tensor, args: SigmoidArgs, grad_output: torch.Tensor) -> torch.Tensor:
    """d(reduced loss)/d logits times ``grad_output``, in float64 PyTorch operations that autograd can differentiate
    (the closed form of :func:`focalbench.kernels.sigmoid_eager.closed_form`, imported at the first double
    backward: importing the loss imports no kernel)."""
    from focalbench.kernels.sigmoid_eager import closed_form

    _, exact = closed_form(logits.to(torch.float64), args.target.to(torch.float64), args.alpha, args.gamma)
    return exact * reduction_scale(args) * grad_output.to(torch.float64)


def _reduced(loss: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The family's kernels reduce as they go (the C kernel sums without writing per-element losses)."""
    return loss


def _same_shape(upstream: torch.Tensor) -> torch.Tensor:
    """The ``reduction="none"`` loss has the logits' shape: the upstream gradient lines up as it is."""
    return upstream


#: The sigmoid family's closed form for the fused path (:class:`focalbench.losses.common.FusedLoss`).
CLOSED_FORM = ClosedForm(reduce=_reduced, broadcast=_same_shape, exact_gradient=differentiable_gradient)


def fused_loss(args, kernel: ForwardKernel) -> torch.Tensor:
    """The loss of the validated ``args`` through the forward ``kernel``, by the fused path of
    :func:`focalbench.losses.common.fused_loss`: differentiable twice, no gradient work when none is needed."""
    return common.fused_loss(args, kernel, CLOSED_FORM)
