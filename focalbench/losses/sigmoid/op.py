"""The fused sigmoid focal loss as PyTorch custom operators: what ``torch.compile`` and ``torch.export`` see.

On CUDA, ``focalbench::sigmoid_focal_loss_cuda`` (same schema) is a ``torch.library.triton_op`` around the Triton
kernel (:mod:`focalbench.kernels.sigmoid_triton`), whose body reads no value on the host (the kernel checks target,
alpha and gamma: NaN where they are wrong), so Inductor sees the kernel; in Triton's interpreter an opaque operator
over the same body. Everywhere else:

``focalbench::sigmoid_focal_loss(logits, target, alpha, gamma, reduction, need_grad) -> (loss, grad)`` (alpha and gamma
0-dim float64 tensors: a new value is a new input, not a recompilation) runs the kernel
:func:`focalbench.sigmoid_focal_loss` runs in eager mode on the logits' device (the C kernel on the CPU, the float64
closed form elsewhere) and returns the reduced loss with the gradient of that loss, computed in the same sweep. As
:mod:`focalbench.losses.softmax.op` does for the softmax family: a fake implementation that reads no values (tracing
never
breaks the graph), the values (the target's range, a gamma tensor's value) validated by
:func:`focalbench.losses.sigmoid.semantics.validate` when the operator runs, with the same errors as in eager mode,
and an
autograd formula that multiplies the saved gradient by the upstream one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.kernels import sigmoid_triton as triton_kernels
from focalbench.losses.common import device_operator, fake_outputs, operator_backward, operator_outputs
from focalbench.losses.sigmoid.closed_form import CLOSED_FORM
from focalbench.losses.sigmoid.kernels import forward_kernel
from focalbench.losses.sigmoid.semantics import SigmoidArgs, validate

__all__ = ["cuda_body", "operator_for", "sigmoid_focal_loss", "sigmoid_focal_loss_cuda"]


def _device_kernel(
    logits: Tensor, target: Tensor, alpha: Tensor, gamma: Tensor, reduction: str, need_grad: bool
) -> tuple[Tensor, Tensor]:
    """Reduced sigmoid focal loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = validate(logits, target, alpha=alpha, gamma=gamma, reduction=reduction)
    return operator_outputs(args, forward_kernel(logits.device.type), CLOSED_FORM, need_grad)


sigmoid_focal_loss = torch.library.custom_op("focalbench::sigmoid_focal_loss", mutates_args=())(_device_kernel)
sigmoid_focal_loss.register_kernel("cpu")(_device_kernel)
sigmoid_focal_loss.register_kernel("cuda")(_device_kernel)


@sigmoid_focal_loss.register_fake
def _fake(logits, target, alpha, gamma, reduction, need_grad):
    return fake_outputs(logits, tuple(logits.shape) if reduction == "none" else (), need_grad)


def _setup_context(ctx, inputs, output):
    logits, target, alpha, gamma, reduction, _ = inputs
    ctx.reduction = reduction
    ctx.logits_dtype = logits.dtype
    ctx.save_for_backward(output[1], logits, target, alpha, gamma)


def _backward(ctx, grad_loss, _grad_of_grad):
    grad, logits, target, alpha, gamma = ctx.saved_tensors

    def arguments():
        return validate(logits, target, alpha=alpha, gamma=gamma, reduction=ctx.reduction)

    result = operator_backward(grad, grad_loss, logits, ctx.reduction, arguments, CLOSED_FORM)
    return result.to(ctx.logits_dtype), None, None, None, None, None


sigmoid_focal_loss.register_autograd(_backward, setup_context=_setup_context)


def cuda_body(
    logits: Tensor, target: Tensor, alpha: Tensor, gamma: Tensor, reduction: str, need_grad: bool
) -> tuple[Tensor, Tensor]:
    """The CUDA operator's body: the arguments as the traced call checked them, the values left to the Triton
    kernel; reduced loss and, if ``need_grad``, its gradient (else an empty tensor)."""
    args = SigmoidArgs(logits, target, alpha, gamma, reduction, device_checks=True)
    return operator_outputs(args, triton_kernels.sigmoid_triton_forward, CLOSED_FORM, need_grad)


#: The CUDA path's operator (None without triton).
sigmoid_focal_loss_cuda = None
if triton_kernels.UNAVAILABLE is None:
    sigmoid_focal_loss_cuda = device_operator(
        "focalbench::sigmoid_focal_loss_cuda", cuda_body, fake=_fake, backward=_backward, setup_context=_setup_context,
        interpreted=triton_kernels.INTERPRETED,
    )  # fmt: skip


def operator_for(path: str):
    """The operator a traced call on ``path`` runs: the Triton one on CUDA where triton is installed, else the
    operator over the device's eager kernel."""
    if path == "cuda" and sigmoid_focal_loss_cuda is not None:
        return sigmoid_focal_loss_cuda
    return sigmoid_focal_loss
