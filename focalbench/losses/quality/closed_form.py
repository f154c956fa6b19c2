r"""The closed-form Quality Focal Loss shared by ``quality_fused_eager`` and ``quality_reference``: autograd wiring.

The derivation is :mod:`focalbench.kernels.quality_eager`'s (``dQFL/dx = w d + beta sign(d) w (s q / |d|) BCE``).
Each implementation built on it supplies a *forward kernel* ``kernel(args, need_grad) -> (loss, grad)``: the loss
already reduced as ``args.reduction`` says and, when ``need_grad``, the gradient of that loss, computed in the same
sweep. :class:`focalbench.losses.common.FusedLoss` makes the backward a multiplication by the upstream gradient;
under ``create_graph=True`` it adds the closed form in differentiable float64 operations
(:func:`focalbench.kernels.quality_eager.closed_form`) as ``y - y.detach()``: the same values, with a second
derivative.
"""

from __future__ import annotations

import torch

from focalbench.losses import common
from focalbench.losses.common import ClosedForm, ForwardKernel, reduction_scale
from focalbench.losses.quality.semantics import QualityArgs

__all__ = ["CLOSED_FORM", "differentiable_gradient", "fused_loss"]


def differentiable_gradient(logits: torch.Tensor, args: QualityArgs, grad_output: torch.Tensor) -> torch.Tensor:
    """d(reduced loss)/d logits times ``grad_output`` in float64 PyTorch operations autograd can differentiate
    (imported at the first double backward: importing the loss imports no kernel)."""
    from focalbench.kernels.quality_eager import closed_form

    _, exact = closed_form(logits.to(torch.float64), args.target.to(torch.float64), args.beta)
    return exact * reduction_scale(args) * grad_output.to(torch.float64)


def _reduced(loss: torch.Tensor, args: QualityArgs) -> torch.Tensor:
    """The family's kernels reduce as they go."""
    return loss


def _same_shape(upstream: torch.Tensor) -> torch.Tensor:
    """The ``reduction="none"`` loss has the logits' shape: the upstream gradient lines up as it is."""
    return upstream


#: The quality family's closed form for the fused path (:class:`focalbench.losses.common.FusedLoss`).
CLOSED_FORM = ClosedForm(reduce=_reduced, broadcast=_same_shape, exact_gradient=differentiable_gradient)


def fused_loss(args: QualityArgs, kernel: ForwardKernel) -> torch.Tensor:
    """The loss of the validated ``args`` through the forward ``kernel`` (:func:`focalbench.losses.common.fused_loss`):
    differentiable twice, no gradient work when none is needed."""
    return common.fused_loss(args, kernel, CLOSED_FORM)
