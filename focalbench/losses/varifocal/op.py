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

from focalbench.kernels import varifocal_triton as triton_kernels
from focalbench.losses.common import device_operator, fake_outputs, operator_backward, operator_outputs
from focalbench.losses.varifocal.closed_form import CLOSED_FORM
from focalbench.losses.varifocal.kernels import forward_kernel
from focalbench.losses.varifocal.semantics import VarifocalArgs, validate

__all__ = ["cuda_body", "operator_for", "varifocal_loss", "varifocal_loss_cuda"]


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


def cuda_body(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor,
    gamma: Tensor,
    iou_weighted: bool,
    detach_weight: bool,
    reduction: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    """The CUDA operator's body: the arguments as the traced call checked them, the values left to the Triton
    kernel; reduced loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = VarifocalArgs(logits, target, alpha, gamma, iou_weighted, detach_weight, reduction, device_checks=True)
    return operator_outputs(args, triton_kernels.varifocal_triton_forward, CLOSED_FORM, need_grad)


#: The CUDA path's operator, a ``triton_op`` around the Triton kernel (None without triton).
varifocal_loss_cuda = None
if triton_kernels.UNAVAILABLE is None:
    varifocal_loss_cuda = device_operator(
        "focalbench::varifocal_loss_cuda", cuda_body, fake=_fake, backward=_backward, setup_context=_setup_context,
        interpreted=triton_kernels.INTERPRETED,
    )  # fmt: skip


def operator_for(path: str):
    """The operator a traced call on ``path`` runs: the Triton one on CUDA where triton is installed, else the
    operator over the device's eager kernel."""
    if path == "cuda" and varifocal_loss_cuda is not None:
        return varifocal_loss_cuda
    return varifocal_loss
