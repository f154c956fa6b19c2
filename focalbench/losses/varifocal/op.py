"""The fused varifocal loss as a PyTorch custom operator: what ``torch.compile`` and ``torch.export`` see.

``focalbench::varifocal_loss(logits, target, alpha, gamma, iou_weighted, detach_weight, reduction, need_grad) ->
(loss, grad)`` (alpha and gamma 0-dim float64 tensors: a new value is a new input, not a recompilation) runs the kernel
:func:`focalbench.varifocal_loss` runs in eager mode on the logits' device and returns the reduced loss with its
gradient, computed in the same sweep. As :mod:`focalbench.losses.sigmoid.op` does for the sigmoid family: a fake
implementation that reads no values (tracing never breaks the graph), the values (the target's range, alpha's and
gamma's) validated by :func:`focalbench.losses.varifocal.semantics.validate` when the operator runs, with the same
errors as in eager mode, and an autograd formula that multiplies the saved gradient by the upstream one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.losses.common import fake_outputs, operator_backward, operator_outputs
from focalbench.losses.varifocal.closed_form import CLOSED_FORM
from focalbench.losses.varifocal.kernels import forward_kernel
from focalbench.losses.varifocal.semantics import validate

__all__ = ["varifocal_loss"]


def _device_kernel(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor,
    gamma: Tensor,
    iou_weighted: bool,
    detach_weight: bool,
    reduction: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    """Reduced varifocal loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = validate(logits, target, alpha=alpha, gamma=gamma, iou_weighted=iou_weighted, detach_weight=detach_weight,
                    reduction=reduction)  # fmt: skip
    return operator_outputs(args, forward_kernel(logits.device.type), CLOSED_FORM, need_grad)


varifocal_loss = torch.library.custom_op("focalbench::varifocal_loss", mutates_args=())(_device_kernel)


@varifocal_loss.register_fake
def _fake(logits, target, alpha, gamma, iou_weighted, detach_weight, reduction, need_grad):
    return fake_outputs(logits, tuple(logits.shape) if reduction == "none" else (), need_grad)


def _setup_context(ctx, inputs, output):
    logits, target, alpha, gamma, iou_weighted, detach_weight, reduction, _ = inputs
    ctx.flags = (iou_weighted, detach_weight, reduction)
    ctx.logits_dtype = logits.dtype
    ctx.save_for_backward(output[1], logits, target, alpha, gamma)


def _backward(ctx, grad_loss, _grad_of_grad):
    grad, logits, target, alpha, gamma = ctx.saved_tensors
    iou_weighted, detach_weight, reduction = ctx.flags

    def arguments():
        return validate(logits, target, alpha=alpha, gamma=gamma, iou_weighted=iou_weighted,
                        detach_weight=detach_weight, reduction=reduction)  # fmt: skip

    result = operator_backward(grad, grad_loss, logits, reduction, arguments, CLOSED_FORM)
    return result.to(ctx.logits_dtype), None, None, None, None, None, None, None


varifocal_loss.register_autograd(_backward, setup_context=_setup_context)
