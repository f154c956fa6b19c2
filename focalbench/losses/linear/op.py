"""The fused linear focal loss as PyTorch custom operators: what ``torch.compile`` and ``torch.export`` see.

``focalbench::fused_linear_focal_loss(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index,
reduction, chunk_size, want_hidden, want_weight, want_bias) -> (loss, grad_hidden, grad_weight, grad_bias)`` runs the
eager sweep (:func:`focalbench.losses.linear.api.sweep`) on its device's softmax kernel: for a scalar reduction the
gradients come with the loss (empty tensors where not wanted) and the autograd formula scales them;
``reduction="none"`` returns the per-row loss alone and its autograd formula calls
``focalbench::fused_linear_focal_loss_backward(..., rows)``, the second sweep with the upstream gradient as row
factors. The operators are opaque to Inductor (their bodies validate values on the real tensors, with the eager
path's errors); their fake implementations give shapes and dtypes without reading a value, so tracing never breaks
the graph, and a gamma given as a tensor (a schedule's) is a graph input: a new value each step, no recompilation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalbench.kernels import choose
from focalbench.losses.common import compute_dtype
from focalbench.losses.linear.chunks import scalar_sweep, sweep
from focalbench.losses.linear.semantics import LinearArgs, validate
from focalbench.losses.softmax.kernels import FAMILY as SOFTMAX

__all__ = ["fused_linear_focal_loss_backward_op", "fused_linear_focal_loss_op", "traced"]


def _arguments(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, reduction, chunk_size):
    alpha_value = alpha if alpha is not None else alpha_scalar
    return validate(hidden, target, weight=weight, bias=bias, gamma=gamma, alpha=alpha_value, reduction=reduction,
                    ignore_index=ignore_index, chunk_size=chunk_size)  # fmt: skip


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


@torch.library.custom_op("focalbench::fused_linear_focal_loss", mutates_args=())
def fused_linear_focal_loss_op(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    alpha: Tensor | None,
    alpha_scalar: float | None,
    gamma: Tensor,
    ignore_index: int,
    reduction: str,
    chunk_size: int,
    want_hidden: bool,
    want_weight: bool,
    want_bias: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Reduced loss (the ``(N,)`` rows for ``"none"``; in the compute dtype, float32 for half precision) and, for a
    scalar reduction, the gradients wanted."""
    args = _arguments(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, reduction, chunk_size)
    kernel = choose(SOFTMAX, hidden.device.type).forward
    if reduction != "none":  # the gradients of the reduced loss, as the eager path computes them
        result, grads = scalar_sweep(args, kernel, (want_hidden, want_weight, want_bias and bias is not None))
    else:
        result, grads = sweep(args, kernel, hidden=False, weight=False, bias=False), (None, None, None)
    grads = [_empty(hidden) if g is None else g for g in grads]
    return args.softmax.reduce(result.loss).to(compute_dtype(hidden.dtype)), *grads


@fused_linear_focal_loss_op.register_fake
def _fake(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, reduction, chunk_size, want_hidden,
          want_weight, want_bias):  # fmt: skip
    scalar = reduction != "none"
    loss = hidden.new_empty(() if scalar else (hidden.shape[0],), dtype=compute_dtype(hidden.dtype))
    grad_h = hidden.new_empty(hidden.shape) if scalar and want_hidden else _empty(hidden)
    grad_w = weight.new_empty(weight.shape) if scalar and want_weight else _empty(hidden)
    grad_b = bias.new_empty(bias.shape) if scalar and want_bias and bias is not None else _empty(hidden)
    return loss, grad_h, grad_w, grad_b


@torch.library.custom_op("focalbench::fused_linear_focal_loss_backward", mutates_args=())
def fused_linear_focal_loss_backward_op(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    alpha: Tensor | None,
    alpha_scalar: float | None,
    gamma: Tensor,
    ignore_index: int,
    chunk_size: int,
    rows: Tensor,
    want_hidden: bool,
    want_weight: bool,
    want_bias: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of ``sum(rows * loss)`` (a ``"none"`` loss's backward), empty where not wanted."""
    args = _arguments(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, "none", chunk_size)
    factors = rows.to(torch.float64 if hidden.dtype == torch.float64 else torch.float32)
    result = sweep(args, choose(SOFTMAX, hidden.device.type).forward, hidden=want_hidden, weight=want_weight,
                   bias=want_bias and bias is not None, rows=factors)  # fmt: skip
    out = []
    for gradient, like in ((result.hidden, hidden), (result.weight, weight), (result.bias, bias)):
        out.append(_empty(hidden) if gradient is None else gradient.to(like.dtype))
    return tuple(out)


@fused_linear_focal_loss_backward_op.register_fake
def _fake_backward(hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, chunk_size, rows,
                   want_hidden, want_weight, want_bias):  # fmt: skip
    grad_h = hidden.new_empty(hidden.shape) if want_hidden else _empty(hidden)
    grad_w = weight.new_empty(weight.shape) if want_weight else _empty(hidden)
    grad_b = bias.new_empty(bias.shape) if want_bias and bias is not None else _empty(hidden)
    return grad_h, grad_w, grad_b


def _setup_context(ctx, inputs, output):
    (hidden, weight, target, bias, alpha, alpha_scalar, gamma, ignore_index, reduction, chunk_size, want_hidden,
     want_weight, want_bias) = inputs  # fmt: skip
    ctx.arguments = (alpha_scalar, ignore_index, reduction, chunk_size, want_hidden, want_weight, want_bias)
    ctx.has_bias = bias is not None
    if reduction == "none":
        ctx.save_for_backward(hidden, weight, target, bias, alpha, gamma)
    else:
        ctx.save_for_backward(*output[1:])


def _backward(ctx, grad_loss, *_):
    alpha_scalar, ignore_index, reduction, chunk_size, want_hidden, want_weight, want_bias = ctx.arguments
    if reduction == "none":
        hidden, weight, target, bias, alpha, gamma = ctx.saved_tensors
        grads = fused_linear_focal_loss_backward_op(hidden, weight, target, bias, alpha, alpha_scalar, gamma,
                                                    ignore_index, chunk_size, grad_loss, want_hidden, want_weight,
                                                    want_bias)  # fmt: skip
    else:
        grads = tuple(g * grad_loss.to(g.dtype) for g in ctx.saved_tensors)
    wanted = (want_hidden, want_weight, want_bias and ctx.has_bias)
    grad_h, grad_w, grad_b = (g if w else None for g, w in zip(grads, wanted, strict=True))
    return grad_h, grad_w, None, grad_b, None, None, None, None, None, None, None, None, None


fused_linear_focal_loss_op.register_autograd(_backward, setup_context=_setup_context)


def traced(
    hidden, target, *, path, weight, bias, gamma, alpha, reduction, ignore_index, chunk_size, loss_dtype=None
) -> Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator
    (the loss in ``loss_dtype``, default the hidden states')."""
    args: LinearArgs = validate(hidden, target, weight=weight, bias=bias, gamma=gamma, alpha=alpha,
                                reduction=reduction, ignore_index=ignore_index, chunk_size=chunk_size,
                                read_values=False)  # fmt: skip
    softmax = args.softmax
    alpha_tensor = softmax.alpha if isinstance(softmax.alpha, torch.Tensor) else None
    alpha_scalar = softmax.alpha if isinstance(softmax.alpha, float) else None
    grad = torch.is_grad_enabled()
    loss, *_ = fused_linear_focal_loss_op(
        args.hidden, args.weight, args.target, args.bias, alpha_tensor, alpha_scalar, softmax.gamma,
        softmax.ignore_index, softmax.reduction, args.chunk_size, grad and args.hidden.requires_grad,
        grad and args.weight.requires_grad, grad and args.bias is not None and args.bias.requires_grad,
    )  # fmt: skip
    loss = loss.to(loss_dtype or hidden.dtype)
    return loss if softmax.reduction != "none" else loss.reshape(args.loss_shape)
