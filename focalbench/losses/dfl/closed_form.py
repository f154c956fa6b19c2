r"""The closed-form Distribution Focal Loss shared by its kernels: autograd wiring.

The derivation is :mod:`focalbench.kernels.dfl_eager`'s (``dDFL/dz_j = S_j - w_j``, the maximum's bin taken as
``(1 - w_a) - R / T``). Each kernel supplies a *forward kernel* ``kernel(args, need_grad) -> (loss, grad)``: the loss
already reduced as ``args.reduction`` says (the target's shape for ``"none"``) and, when ``need_grad``, the gradient
of that loss (the logits' shape), computed in the same pass. :class:`focalbench.losses.common.FusedLoss` makes the
backward a multiplication by the upstream gradient, a ``"none"`` upstream gradient lined up with the bins
(``unsqueeze(-1)``); under ``create_graph=True`` it adds the closed form in differentiable float64 operations
(:func:`focalbench.kernels.dfl_eager.closed_form`) as ``y - y.detach()``: the same values, with a second derivative.
"""

from __future__ import annotations

import torch

from focalbench.losses import common
from focalbench.losses.common import ClosedForm, ForwardKernel, reduction_scale
from focalbench.losses.dfl.semantics import DflArgs

__all__ = ["CLOSED_FORM", "differentiable_gradient", "fused_loss"]


def differentiable_gradient(logits: torch.Tensor, args: DflArgs, grad_output: torch.Tensor) -> torch.Tensor:
    """d(reduced loss)/d logits times ``grad_output`` in float64 PyTorch operations autograd can differentiate
    (imported at the first double backward: importing the loss imports no kernel)."""
    from focalbench.kernels.dfl_eager import closed_form

    _, exact = closed_form(logits.to(torch.float64), args.target.to(torch.float64))
    upstream = grad_output.to(torch.float64)
    if args.reduction == "none":
        return exact * _along_bins(upstream)
    return exact * (upstream * reduction_scale(args))


def _reduced(loss: torch.Tensor, args: DflArgs) -> torch.Tensor:
    """The family's kernels reduce as they go."""
    return loss


def _along_bins(upstream: torch.Tensor) -> torch.Tensor:
    """A ``reduction="none"`` upstream gradient (the target's shape, one per row) lined up with the gradient's bins."""
    return upstream.unsqueeze(-1)


#: The dfl family's closed form for the fused path (:class:`focalbench.losses.common.FusedLoss`).
CLOSED_FORM = ClosedForm(reduce=_reduced, broadcast=_along_bins, exact_gradient=differentiable_gradient)


def fused_loss(args: DflArgs, kernel: ForwardKernel) -> torch.Tensor:
    """The loss of the validated ``args`` through the forward ``kernel`` (:func:`focalbench.losses.common.fused_loss`):
    differentiable twice, no gradient work when none is needed."""
    return common.fused_loss(args, kernel, CLOSED_FORM)
