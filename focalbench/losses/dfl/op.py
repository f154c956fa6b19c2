"""The fused Distribution Focal Loss as a PyTorch custom operator: what ``torch.compile`` and ``torch.export`` see.

``focalbench::distribution_focal_loss(logits, target, reduction, need_grad) -> (loss, grad)`` runs the kernel
:func:`focalbench.distribution_focal_loss` runs in eager mode on the logits' device and returns the reduced loss with
the gradient of that loss, computed in the same pass. As :mod:`focalbench.losses.quality.op` does for the quality
family: a fake implementation that reads no values (tracing never breaks the graph), the target's range validated by
:func:`focalbench.losses.dfl.semantics.validate` when the operator runs, with the same error as in eager mode, and an
autograd formula that multiplies the saved gradient by the upstream one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.kernels import dfl_triton as triton_kernels
from focalbench.losses.common import device_operator, fake_outputs, operator_backward, operator_outputs
from focalbench.losses.dfl.closed_form import CLOSED_FORM
from focalbench.losses.dfl.kernels import forward_kernel
from focalbench.losses.dfl.semantics import DflArgs, validate

__all__ = ["cuda_body", "distribution_focal_loss", "distribution_focal_loss_cuda", "operator_for"]


def _device_kernel(logits: Tensor, target: Tensor, reduction: str, need_grad: bool) -> tuple[Tensor, Tensor]:
    """Reduced Distribution Focal Loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = validate(logits, target, reduction=reduction)
    return operator_outputs(args, forward_kernel(logits.device.type), CLOSED_FORM, need_grad)


distribution_focal_loss = torch.library.custom_op("focalbench::distribution_focal_loss", mutates_args=())(
    _device_kernel
)


@distribution_focal_loss.register_fake
def _fake(logits, target, reduction, need_grad):
    return fake_outputs(logits, tuple(target.shape) if reduction == "none" else (), need_grad)


def _setup_context(ctx, inputs, output):
    logits, target, reduction, _ = inputs
    ctx.reduction = reduction
    ctx.logits_dtype = logits.dtype
    ctx.save_for_backward(output[1], logits, target)


def _backward(ctx, grad_loss, _grad_of_grad):
    grad, logits, target = ctx.saved_tensors

    def arguments():
        return validate(logits, target, reduction=ctx.reduction)

    result = operator_backward(grad, grad_loss, logits, ctx.reduction, arguments, CLOSED_FORM)
    return result.to(ctx.logits_dtype), None, None, None


distribution_focal_loss.register_autograd(_backward, setup_context=_setup_context)


def cuda_body(logits: Tensor, target: Tensor, reduction: str, need_grad: bool) -> tuple[Tensor, Tensor]:
    """The CUDA operator's body: the arguments as the traced call checked them, the target's range left to the Triton
    kernel; reduced loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = DflArgs(logits, target, reduction, device_checks=True)
    return operator_outputs(args, triton_kernels.dfl_triton_forward, CLOSED_FORM, need_grad)


#: The CUDA path's operator, a ``triton_op`` around the Triton kernel (None without triton).
distribution_focal_loss_cuda = None
if triton_kernels.UNAVAILABLE is None:
    distribution_focal_loss_cuda = device_operator(
        "focalbench::distribution_focal_loss_cuda", cuda_body, fake=_fake, backward=_backward,
        setup_context=_setup_context, interpreted=triton_kernels.INTERPRETED,
    )  # fmt: skip


def operator_for(path: str):
    """The operator a traced call on ``path`` runs: the Triton one on CUDA where triton is installed, else the
    operator over the device's eager kernel."""
    if path == "cuda" and distribution_focal_loss_cuda is not None:
        return distribution_focal_loss_cuda
    return distribution_focal_loss
