"""``fused_linear_focal_loss`` and ``FusedLinearFocalLoss``: the softmax focal loss of a linear head's logits
``hidden @ weight.T + bias`` without holding them.

A large-vocabulary head (a language model's, an extreme classifier's) has logits of ``N x V``: 8192 tokens x 64k
classes are 2 GiB in float32, and their gradient as much again. Here the rows are taken a chunk at a time
(:func:`~focalbench.losses.linear.semantics.default_chunk_size`: from ``V`` alone): the chunk's logits come from
the device's matrix product, the softmax family's kernel (:func:`focalbench.kernels.choose`: the C kernel on the
CPU, the Triton one on CUDA) turns them into the chunk's losses and their gradient in one sweep, and two more matrix
products fold that gradient into the hidden states' gradient (``G W``) and the weight's (``G^T h``, accumulated over
the chunks in at least float32; the bias's is ``G``'s column sums). The memory a call needs beyond its inputs and
the gradients it returns is two chunks of logits, whatever ``N``.

With ``reduction="mean"`` or ``"sum"`` the gradients are computed in the forward sweep (the logits are computed once,
as the unfused form computes them) and the backward scales them by the upstream gradient. With ``"none"`` each row's
upstream weight is known only in the backward, which computes the chunks' logits again (one matrix product more than
the unfused form). Nothing of the caller's is written in place; no value is read on the host on CUDA (the mean's
count stays on the device). The gradient is not differentiable again (a double backward raises).

Under ``torch.autocast`` the matrix products run in autocast's dtype, as ``nn.Linear``'s do, and the loss is
float32, as :func:`focalbench.focal_loss`'s is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from focalbench.kernels import choose
from focalbench.losses.linear.chunks import scalar_sweep, sweep
from focalbench.losses.linear.semantics import LinearArgs, validate
from focalbench.losses.schedule import InPlaceScalar
from focalbench.losses.softmax.api import alpha_buffer
from focalbench.losses.softmax.kernels import FAMILY as SOFTMAX

__all__ = ["RECOMMENDED_LINEAR", "FusedLinearFocalLoss", "fused_linear_focal_loss", "fused_linear_focal_loss_on"]

#: The registered implementation that mirrors :func:`fused_linear_focal_loss` on the CPU.
RECOMMENDED_LINEAR = "linear_fused"


class _FusedLinearFocal(torch.autograd.Function):
    """Forward: the sweep (with the gradients, for a scalar reduction); backward: those gradients scaled by the
    upstream one, or (``"none"``) a second sweep with the upstream gradient as row factors."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, args: LinearArgs, kernel, wanted: tuple[bool, bool, bool], loss_dtype):
        scalar = args.reduction != "none"
        ctx.args, ctx.kernel, ctx.wanted, ctx.grads = args, kernel, wanted, None
        if scalar and any(wanted):
            result, ctx.grads = scalar_sweep(args, kernel, wanted)
        else:
            result = sweep(args, kernel, hidden=False, weight=False, bias=False)
        loss = args.softmax.reduce(result.loss)
        if not scalar:
            loss = loss.reshape(args.loss_shape)
        return loss.to(loss_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        args = ctx.args
        if args.reduction != "none":
            # the forward's gradients handed over, not kept: the engine then takes them as the parameters' .grad
            # without a copy (a V x H copy while ctx still held them); a second backward (retain_graph=True) sweeps
            # again, with the same arithmetic
            grads, ctx.grads = ctx.grads, None
            if grads is None:
                grads = scalar_sweep(args, ctx.kernel, ctx.wanted)[1]
            upstream = grad_output.detach()
            one = upstream.device.type == "cpu" and not args.softmax.device_checks and float(upstream) == 1.0
            if not one:
                grads = tuple(None if g is None else g.mul_(upstream.to(g.dtype)) for g in grads)
        else:
            accumulate = torch.float64 if args.hidden.dtype == torch.float64 else torch.float32
            rows = grad_output.detach().reshape(-1).to(accumulate)
            hidden, weight, bias = ctx.wanted
            result = sweep(args, ctx.kernel, hidden=hidden, weight=weight, bias=bias, rows=rows)
            grads = (result.hidden, result.weight, result.bias)
        dtypes = (args.hidden.dtype, args.weight.dtype, None if args.bias is None else args.bias.dtype)
        grad_h, grad_w, grad_b = (None if g is None else g.to(d) for g, d in zip(grads, dtypes, strict=True))
        return grad_h, grad_w, grad_b, None, None, None, None


def fused_linear_focal_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    gamma: float | torch.Tensor = 2.0,
    alpha: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""``focal_loss(hidden @ weight.T + bias, target)`` without the ``N x V`` logits: chunk by chunk.

    Args:
        hidden: ``(..., H)`` hidden states (one row per token), float16/bfloat16/float32/float64.
        weight: ``(V, H)`` the head's weight (``nn.Linear(H, V).weight``), same dtype and device.
        target: ``(...)`` (the hidden states' leading shape) class indices in ``[0, V)`` or ``ignore_index``.
        bias: ``None`` or ``(V,)``. Default: None.
        gamma, alpha, reduction, ignore_index: as :func:`focalbench.focal_loss`.
        chunk_size: rows per chunk; ``None`` chooses from ``V`` (about 2^24 logits a chunk). Default: None.

    Shape:
        Output: scalar, or the target's shape for ``reduction="none"``; the hidden states' dtype (float32 under
        ``torch.autocast``).

    Example:
        >>> import torch
        >>> hidden, head = torch.randn(6, 4), torch.nn.Linear(4, 10)
        >>> target = torch.tensor([1, 2, 3, -100, 9, 0])
        >>> loss = fused_linear_focal_loss(hidden, head.weight, target, head.bias)
        >>> from focalbench import focal_loss
        >>> bool(torch.allclose(loss, focal_loss(head(hidden), target)))
        True
    """
    arguments = {"weight": weight, "bias": bias, "gamma": gamma, "alpha": alpha, "reduction": reduction,
                 "ignore_index": ignore_index, "chunk_size": chunk_size}  # fmt: skip
    return _front_door(hidden, target, arguments, None)


def fused_linear_focal_loss_on(path: str):
    """:func:`fused_linear_focal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors
    are on (``"cuda"`` with CPU tensors: the Triton kernel in Triton's interpreter), with the registry's argument
    order ``(hidden, target, *, weight, ...)``."""

    def loss(hidden, target, *, weight=None, bias=None, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100,
             chunk_size=None):  # fmt: skip
        arguments = {"weight": weight, "bias": bias, "gamma": gamma, "alpha": alpha, "reduction": reduction,
                     "ignore_index": ignore_index, "chunk_size": chunk_size}  # fmt: skip
        return _front_door(hidden, target, arguments, path)

    loss.__name__ = loss.__qualname__ = f"fused_linear_focal_loss_on_{path}"
    return loss


def _front_door(hidden, target, arguments: dict[str, Any], path: str | None, loss_dtype=None) -> torch.Tensor:
    """``loss_dtype``: the loss's dtype (default the hidden states'; float32 under autocast, as focal_loss's)."""
    if torch.jit.is_tracing():
        raise RuntimeError("fused_linear_focal_loss does not support TorchScript (torch.jit.trace): use torch.compile "
                           "or torch.export")  # fmt: skip
    device_type = hidden.device.type if isinstance(hidden, torch.Tensor) else "cpu"
    if isinstance(hidden, torch.Tensor) and torch.is_autocast_enabled(device_type):
        # as nn.Linear under autocast: the products in autocast's dtype; the loss in float32, as focal_loss's
        dtype = torch.get_autocast_dtype(device_type)

        def cast(value):  # autocast casts float32 operands of a matrix product, and nothing else
            return value.to(dtype) if isinstance(value, torch.Tensor) and value.dtype == torch.float32 else value

        with torch.autocast(device_type, enabled=False):
            cast_arguments = {**arguments, "weight": cast(arguments["weight"]), "bias": cast(arguments["bias"])}
            loss = _front_door(cast(hidden), target, cast_arguments, path, torch.float32)
        return loss.float()
    path = path or device_type
    if torch.compiler.is_compiling():
        from focalbench.losses.linear.op import traced

        return traced(hidden, target, path=path, loss_dtype=loss_dtype, **arguments)
    choice = choose(SOFTMAX, path)
    args = validate(hidden, target, device_checks=choice.device_checks, **arguments)
    grad = torch.is_grad_enabled()
    wanted = (grad and args.hidden.requires_grad, grad and args.weight.requires_grad,
              grad and args.bias is not None and args.bias.requires_grad)  # fmt: skip
    return _FusedLinearFocal.apply(
        args.hidden, args.weight, args.bias, args, choice.forward, wanted, loss_dtype or args.hidden.dtype
    )


class FusedLinearFocalLoss(nn.Module):
    """Module form of :func:`fused_linear_focal_loss`: ``criterion(hidden, weight, target, bias=None)``, the head's
    parameters passed at each call (as Liger-Kernel's ``LigerFusedLinearCrossEntropyLoss`` takes them), the loss's
    arguments stored; ``gamma`` is held as :class:`focalbench.FocalLoss` holds it (a schedule fills it in place).

    Example:
        >>> import torch
        >>> head = torch.nn.Linear(8, 100, bias=False)
        >>> criterion = FusedLinearFocalLoss(gamma=2.0, ignore_index=-1)
        >>> loss = criterion(torch.randn(2, 5, 8), head.weight, torch.randint(0, 100, (2, 5)))
        >>> loss.backward()
        >>> head.weight.grad.shape
        torch.Size([100, 8])
    """

    gamma = InPlaceScalar("a real number >= 0")

    def __init__(self, gamma: float | torch.Tensor = 2.0, alpha: Any = None, reduction: str = "mean",
                 ignore_index: int = -100, chunk_size: int | None = None):  # fmt: skip
        super().__init__()
        buffer = alpha_buffer(alpha)
        classes = buffer.numel() if buffer is not None and buffer.dim() == 1 else 2
        validate(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), weight=torch.zeros(classes, 1), gamma=gamma,
                 alpha=buffer, reduction=reduction, ignore_index=ignore_index, chunk_size=chunk_size)  # fmt: skip
        self.gamma = gamma
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.chunk_size = chunk_size
        self.register_buffer("alpha", buffer)

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        return fused_linear_focal_loss(hidden, weight, target, bias, gamma=self.gamma, alpha=self.alpha,
                                       reduction=self.reduction, ignore_index=self.ignore_index,
                                       chunk_size=self.chunk_size)  # fmt: skip

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        gamma = FusedLinearFocalLoss.gamma.repr_of(self)
        return (f"gamma={gamma}, alpha={alpha}, reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
                f"chunk_size={self.chunk_size}")  # fmt: skip
