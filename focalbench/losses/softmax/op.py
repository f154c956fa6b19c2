"""The fused focal loss as PyTorch custom operators: what ``torch.compile`` and ``torch.export`` see.

Two operators. On CUDA, ``focalbench::softmax_focal_loss_cuda`` (same schema) is a ``torch.library.triton_op``
around the Triton kernel (:mod:`focalbench.kernels.triton`): its body reads no value on the host (the kernel checks
the target's range, alpha's weights and gamma: NaN where they are wrong), so Inductor traces it and sees the kernel
as one node among the model's (in Triton's interpreter, an opaque operator over the same body). Everywhere else:

``focalbench::softmax_focal_loss(logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction, need_grad)
-> (loss, grad)`` runs the kernel :func:`focalbench.focal_loss` runs in eager mode on the logits' device — the C
kernel on the CPU (the closed form in PyTorch operations where it cannot be built), the closed form in PyTorch
operations on CUDA and elsewhere — and returns the reduced loss with the gradient of that loss, computed in the same
sweep. One operator with a CPU kernel, a CUDA kernel and a default; opaque to Inductor, since its body validates
values on the real tensors, which a traced body (a ``torch.library.triton_op``'s) could not. Its fake
implementation gives shapes and dtypes without reading values, so tracing never breaks the graph; the values
(target range, alpha's weights, gamma) are validated when the operator runs, by
:func:`focalbench.losses.softmax.semantics.validate` on the real tensors, with the same errors as in eager mode. Its
autograd
formula multiplies the saved gradient by the upstream one.

:func:`focalbench.focal_loss` calls the operator only while it is being traced. In eager mode it calls the same
kernels through a plain ``autograd.Function`` (:class:`focalbench.losses.common.FusedLoss`): the operator's Python
dispatch costs about
60 us per call more (measured here on a 2-core x86-64 VM: 90 us for a forward+backward of a trivial custom operator
against 31 us for the same ``autograd.Function``) and its first call imports ``torch._dynamo`` (1.5 s).
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.kernels import triton as triton_kernels
from focalbench.losses.common import device_operator, fake_outputs, operator_backward, operator_outputs
from focalbench.losses.softmax.closed_form import CLOSED_FORM
from focalbench.losses.softmax.kernels import forward_kernel
from focalbench.losses.softmax.semantics import FocalArgs, validate

__all__ = ["cuda_body", "operator_for", "softmax_focal_loss", "softmax_focal_loss_cuda"]


def _arguments(logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction):
    alpha = alpha if alpha is not None else alpha_scalar
    return validate(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index)


def _device_kernel(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor | None,
    alpha_scalar: float | None,
    gamma: Tensor,
    ignore_index: int,
    reduction: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    """Reduced softmax focal loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = _arguments(logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction)
    return operator_outputs(args, forward_kernel(logits.device.type), CLOSED_FORM, need_grad)


softmax_focal_loss = torch.library.custom_op("focalbench::softmax_focal_loss", mutates_args=())(_device_kernel)
# the devices focalbench has kernels for, registered explicitly (the default serves any other)
softmax_focal_loss.register_kernel("cpu")(_device_kernel)
softmax_focal_loss.register_kernel("cuda")(_device_kernel)


@softmax_focal_loss.register_fake
def _fake(logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction, need_grad):
    return fake_outputs(logits, tuple(target.shape) if reduction == "none" else (), need_grad)


def _setup_context(ctx, inputs, output):
    logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction, _ = inputs
    ctx.arguments = (alpha_scalar, ignore_index, reduction)
    ctx.logits_dtype = logits.dtype
    ctx.save_for_backward(output[1], logits, target, alpha, gamma)


def _backward(ctx, grad_loss, _grad_of_grad):
    grad, logits, target, alpha, gamma = ctx.saved_tensors
    alpha_scalar, ignore_index, reduction = ctx.arguments

    def arguments():
        return _arguments(logits, target, alpha, alpha_scalar, gamma, ignore_index, reduction)

    result = operator_backward(grad, grad_loss, logits, reduction, arguments, CLOSED_FORM)
    return result.to(ctx.logits_dtype), None, None, None, None, None, None, None


softmax_focal_loss.register_autograd(_backward, setup_context=_setup_context)


def cuda_body(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor | None,
    alpha_scalar: float | None,
    gamma: Tensor,
    ignore_index: int,
    reduction: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    """The CUDA operator's body: the arguments as the traced call checked them (types, shapes, devices), the values
    left to the Triton kernel; reduced loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    alpha_value = alpha if alpha is not None else alpha_scalar
    args = FocalArgs(logits, target, gamma, alpha_value, reduction, ignore_index, device_checks=True)
    return operator_outputs(args, triton_kernels.triton_forward, CLOSED_FORM, need_grad)


#: The CUDA path's operator (None without triton).
softmax_focal_loss_cuda = None
if triton_kernels.UNAVAILABLE is None:
    softmax_focal_loss_cuda = device_operator(
        "focalbench::softmax_focal_loss_cuda", cuda_body, fake=_fake, backward=_backward, setup_context=_setup_context,
        interpreted=triton_kernels.INTERPRETED,
    )  # fmt: skip


def operator_for(path: str):
    """The operator a traced call on ``path`` (a device type) runs: the Triton one on CUDA where triton is installed,
    else the operator over the device's eager kernel."""
    if path == "cuda" and softmax_focal_loss_cuda is not None:
        return softmax_focal_loss_cuda
    return softmax_focal_loss
