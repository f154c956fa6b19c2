r"""The closed-form varifocal loss shared by ``varifocal_fused_eager`` (what :func:`focalbench.varifocal_loss` runs)
and its custom operator: the autograd wiring.

The forward kernel (:func:`focalbench.kernels.varifocal_eager.eager_forward`) computes the per-element loss and its
gradient in one sweep (the derivation: :mod:`focalbench.losses.varifocal.semantics`);
:class:`focalbench.losses.common.FusedLoss` makes the backward a multiplication by the upstream gradient. Under
``create_graph=True`` the backward adds the closed form in differentiable float64 operations as ``y - y.detach()``: the
same values, with a second derivative. With ``detach_weight`` that second derivative is RT-DETR's (the weight a
constant: ``w p (1 - p)``), since the closed form holds the weight constant in the gradient it differentiates.
"""

from __future__ import annotations

import torch

from focalbench.losses import common
from focalbench.losses.common import ClosedForm, ForwardKernel, reduction_scale
from focalbench.losses.varifocal.semantics import VarifocalArgs

__all__ = ["CLOSED_FORM", "differentiable_gradient", "fused_loss"]


def differentiable_gradient(logits: torch.Tensor, args: VarifocalArgs, grad_output: torch.Tensor) -> torch.Tensor:
    """d(reduced loss)/d logits (the weight held constant with ``detach_weight``) times ``grad_output``, in float64
    PyTorch operations that autograd can differentiate (imported at the first double backward)."""
    from focalbench.kernels.varifocal_eager import closed_form

    _, exact = closed_form(logits.to(torch.float64), args.target.to(torch.float64), args.alpha, args.gamma,
                           args.iou_weighted, args.detach_weight)  # fmt: skip
    return exact * reduction_scale(args) * grad_output.to(torch.float64)


def _reduced(loss: torch.Tensor, args: VarifocalArgs) -> torch.Tensor:
    """The kernel reduces as it goes."""
    return loss


def _same_shape(upstream: torch.Tensor) -> torch.Tensor:
    """The ``reduction="none"`` loss has the logits' shape: the upstream gradient lines up as it is."""
    return upstream


#: The varifocal family's closed form for the fused path (:class:`focalbench.losses.common.FusedLoss`).
CLOSED_FORM = ClosedForm(reduce=_reduced, broadcast=_same_shape, exact_gradient=differentiable_gradient)


def fused_loss(args: VarifocalArgs, kernel: ForwardKernel) -> torch.Tensor:
    """The loss of the validated ``args`` through the forward ``kernel``: differentiable twice, no gradient work when
    none is needed."""
    return common.fused_loss(args, kernel, CLOSED_FORM)
