"""The fused Quality Focal Loss as a PyTorch custom operator: what ``torch.compile`` and ``torch.export`` see.

``focalbench::quality_focal_loss(logits, target, beta, reduction, need_grad) -> (loss, grad)`` (beta a 0-dim float64
tensor: a new value is a new input, not a recompilation) runs the kernel :func:`focalbench.quality_focal_loss` runs in
eager mode on the logits' device and returns the reduced loss with the gradient of that loss, computed in the same
sweep. As :mod:`focalbench.losses.sigmoid.op` does for the sigmoid family: a fake implementation that reads no values
(tracing never breaks the graph), the values (the target's range, beta's) validated by
:func:`focalbench.losses.quality.semantics.validate` when the operator runs, with the same errors as in eager mode,
and an autograd formula that multiplies the saved gradient by the upstream one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.kernels import quality_triton as triton_kernels
from focalbench.losses.common import device_operator, fake_outputs, operator_backward, operator_outputs
from focalbench.losses.quality.closed_form import CLOSED_FORM
from focalbench.losses.quality.kernels import forward_kernel
from focalbench.losses.quality.semantics import QualityArgs, validate

__all__ = ["cuda_body", "operator_for", "quality_focal_loss", "quality_focal_loss_cuda"]


def _device_kernel(
    logits: Tensor, target: Tensor, beta: Tensor, reduction: str, need_grad: bool
) -> tuple[Tensor, Tensor]:
    """Reduced Quality Focal Loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = validate(logits, target, beta=beta, reduction=reduction)
    return operator_outputs(args, forward_kernel(logits.device.type), CLOSED_FORM, need_grad)


quality_focal_loss = torch.library.custom_op("focalbench::quality_focal_loss", mutates_args=())(_device_kernel)


@quality_focal_loss.register_fake
def _fake(logits, target, beta, reduction, need_grad):
    return fake_outputs(logits, tuple(logits.shape) if reduction == "none" else (), need_grad)


def _setup_context(ctx, inputs, output):
    logits, target, beta, reduction, _ = inputs
    ctx.reduction = reduction
    ctx.logits_dtype = logits.dtype
    ctx.save_for_backward(output[1], logits, target, beta)


def _backward(ctx, grad_loss, _grad_of_grad):
    grad, logits, target, beta = ctx.saved_tensors

    def arguments():
        return validate(logits, target, beta=beta, reduction=ctx.reduction)

    result = operator_backward(grad, grad_loss, logits, ctx.reduction, arguments, CLOSED_FORM)
    return result.to(ctx.logits_dtype), None, None, None, None


quality_focal_loss.register_autograd(_backward, setup_context=_setup_context)


def cuda_body(logits: Tensor, target: Tensor, beta: Tensor, reduction: str, need_grad: bool) -> tuple[Tensor, Tensor]:
    """The CUDA operator's body: the arguments as the traced call checked them, the values left to the Triton
    kernel; reduced loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = QualityArgs(logits, target, beta, reduction, device_checks=True)
    return operator_outputs(args, triton_kernels.quality_triton_forward, CLOSED_FORM, need_grad)


#: The CUDA path's operator, a ``triton_op`` around the Triton kernel (None without triton).
quality_focal_loss_cuda = None
if triton_kernels.UNAVAILABLE is None:
    quality_focal_loss_cuda = device_operator(
        "focalbench::quality_focal_loss_cuda", cuda_body, fake=_fake, backward=_backward, setup_context=_setup_context,
        interpreted=triton_kernels.INTERPRETED,
    )  # fmt: skip


def operator_for(path: str):
    """The operator a traced call on ``path`` runs: the Triton one on CUDA where triton is installed, else the
    operator over the device's eager kernel."""
    if path == "cuda" and quality_focal_loss_cuda is not None:
        return quality_focal_loss_cuda
    return quality_focal_loss
