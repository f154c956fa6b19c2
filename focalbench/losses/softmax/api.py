"""``focal_loss`` and ``FocalLoss``: the product, as usable as ``F.cross_entropy``.

Eager mode validates the arguments (:func:`focalbench.losses.softmax.semantics.validate`) and runs the kernel of the
logits'
device through :class:`focalbench.losses.common.FusedLoss`: the C kernel on the CPU (:mod:`focalbench.kernels.cpu`,
built at the first call; the closed form in PyTorch operations, :mod:`focalbench.kernels.eager`, where it cannot be
built) and the closed form in PyTorch operations on CUDA and other devices. While ``torch.compile`` or
``torch.export`` traces a call, the same kernels run as one custom operator (:mod:`focalbench.losses.softmax.op`) and
the
arguments' values are checked when it runs: no graph break, the same errors. Under ``torch.autocast`` half-precision
logits are computed and returned in float32, as autocast does for ``F.cross_entropy``.

Nothing is imported or built before the first call, and then only what that call's device needs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy
import torch
from torch import nn

from focalbench.kernels import choose  # imports no kernel: it does, at the first call
from focalbench.losses.common import HALF_DTYPES, front_door
from focalbench.losses.schedule import InPlaceScalar
from focalbench.losses.softmax.closed_form import CLOSED_FORM
from focalbench.losses.softmax.kernels import FAMILY  # declares the family's kernels
from focalbench.losses.softmax.semantics import validate

__all__ = ["RECOMMENDED", "NO_TORCHSCRIPT", "FocalLoss", "alpha_buffer", "focal_loss", "focal_loss_on",
           "implementation_for"]

#: The registered implementation (``focalbench.get_implementation``) that mirrors what :func:`focal_loss` runs, per
#: device; the measurement behind the CPU choice is in the README. ``fused_eager`` where the C kernel is unavailable.
RECOMMENDED = "fused"


#: What ``torch.jit.script`` of a loss module and ``torch.jit.trace`` of a loss raise (a ``RuntimeError``), with the
#: loss's name: the losses dispatch on Python values and types (a custom operator while traced by dynamo), which
#: TorchScript cannot represent.
NO_TORCHSCRIPT = (
    "{} does not support TorchScript (torch.jit.script, torch.jit.trace): use torch.compile or torch.export"
)


def implementation_for(device_type: str) -> str:
    """Name of the registered implementation that computes what :func:`focal_loss` computes on ``device_type``."""
    return choose(FAMILY, device_type).implementation


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float | torch.Tensor = 2.0,
    alpha: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    r"""Softmax focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al., 2017), ``p = softmax(logits, dim=1)``.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ..., dk)``, float16/bfloat16/float32/float64.
        target: ``(N,)`` or ``(N, d1, ..., dk)`` class indices in ``[0, C)`` or ``ignore_index``.
        gamma: focusing parameter ``>= 0``, a float or a 0-dim tensor (a schedule's ``gamma_tensor``: compiled code
            then takes a new gamma without recompiling); 0 gives cross-entropy. Default: 2.0.
        alpha: ``None`` (all ones), a float applied to every class, or ``C`` per-class weights. Default: None.
        reduction: ``"mean"`` over non-ignored elements, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        ignore_index: target value that contributes no loss and no gradient. Default: -100.

    Shape:
        Output: scalar, or the target's shape for ``reduction="none"``; dtype of ``logits`` (float32 for
        half-precision logits under ``torch.autocast``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
        >>> loss = focal_loss(logits, torch.tensor([0, 2]), gamma=2.0)
        >>> round(loss.item(), 4)
        0.2462
        >>> loss.backward()
    """
    arguments = {"gamma": gamma, "alpha": alpha, "reduction": reduction, "ignore_index": ignore_index}
    return _focal_loss(logits, target, arguments, None)


def _focal_loss(logits, target, arguments: dict[str, Any], path: str | None) -> torch.Tensor:
    if torch.jit.is_tracing():  # a trace would record the kernel's tensors as constants, or fail deep inside it
        raise RuntimeError(NO_TORCHSCRIPT.format("focal_loss"))
    return front_door(logits, target, arguments, family=FAMILY, path=path, validate=validate, traced=_traced,
                      closed_form=CLOSED_FORM)  # fmt: skip


def focal_loss_on(path: str):
    """:func:`focal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors are on: with
    ``"cuda"`` and CPU tensors, the CUDA path (validation and Triton kernel) in Triton's interpreter
    (``TRITON_INTERPRET=1``), which is how the suite checks the CUDA path without a GPU."""

    def loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        arguments = {"gamma": gamma, "alpha": alpha, "reduction": reduction, "ignore_index": ignore_index}
        return _focal_loss(logits, target, arguments, path)

    loss.__name__ = loss.__qualname__ = f"focal_loss_on_{path}"
    return loss


def _traced(logits, target, *, path, gamma, alpha, reduction, ignore_index) -> torch.Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator."""
    from focalbench.losses.softmax.op import operator_for

    args = validate(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index,
                    read_values=False)  # fmt: skip
    alpha_tensor = args.alpha if isinstance(args.alpha, torch.Tensor) else None  # 0-dim: a module's scalar buffer
    alpha_scalar = args.alpha if isinstance(args.alpha, float) else None
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = operator_for(path)(
        args.logits, args.target, alpha_tensor, alpha_scalar, args.gamma, args.ignore_index, args.reduction, need_grad
    )
    return loss


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: stores the arguments and calls it.

    ``alpha`` is a registered buffer, as ``nn.CrossEntropyLoss``'s ``weight``: it is in ``state_dict()``, moves with
    ``.to()`` and round-trips through ``load_state_dict``; a scalar alpha is kept as a 0-dim buffer. Unlike
    ``weight``, a cast to half precision (``model.half()``, ``.to(torch.bfloat16)``) leaves alpha's dtype as it was
    (float64 unless given as a tensor) while moving it with the model: the loss computes in at least float32, and a
    float16 alpha would change it (0.5472 becomes 0.5470). Casts to float32 or float64 apply as to any buffer.

    ``gamma`` is held as a 0-dim float64 tensor (:class:`~focalbench.losses.schedule.InPlaceScalar`):
    ``criterion.gamma = 0.5`` (what a gamma schedule does) fills it in place, so a compiled step takes every new
    value through one graph; ``FocalLoss(gamma=tensor)`` holds that tensor itself (a schedule's ``gamma_tensor``).

    TorchScript is not supported (``torch.jit.script``/``torch.jit.trace`` raise :data:`NO_TORCHSCRIPT`): use
    ``torch.compile`` or ``torch.export``.

    Example:
        >>> import torch
        >>> criterion = FocalLoss(gamma=2.0, alpha=[0.25, 0.75], ignore_index=-1)
        >>> round(criterion(torch.zeros(3, 2), torch.tensor([0, 1, -1])).item(), 4)
        0.0866
        >>> sorted(criterion.state_dict())
        ['alpha']
        >>> criterion.gamma = 0.5
        >>> criterion
        FocalLoss(gamma=0.5, alpha=[0.25, 0.75], reduction='mean', ignore_index=-1)
    """

    alpha: torch.Tensor | None
    gamma = InPlaceScalar("a real number >= 0")

    def __init__(
        self, gamma: float | torch.Tensor = 2.0, alpha: Any = None, reduction: str = "mean", ignore_index: int = -100
    ):
        super().__init__()
        buffer = alpha_buffer(alpha)
        # every argument checked now, as a call would check it, rather than at the first call
        classes = buffer.numel() if buffer is not None and buffer.dim() == 1 else 2
        validate(torch.zeros(1, classes), torch.zeros(1, dtype=torch.long), gamma=gamma, alpha=buffer,
                 reduction=reduction, ignore_index=ignore_index)  # fmt: skip
        self.gamma = gamma
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.register_buffer("alpha", buffer)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))
        return focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction, ignore_index=self.ignore_index
        )

    def _apply(self, fn, recurse: bool = True):
        # every move and cast of the module (.to, .cuda, .half, ...) goes through here; alpha keeps its precision
        alpha = self.alpha
        super()._apply(fn, recurse)
        if alpha is not None and self.alpha is not None and self.alpha.dtype in HALF_DTYPES:
            if alpha.dtype not in HALF_DTYPES:
                self.alpha = alpha.to(self.alpha.device)
        return self

    def __prepare_scriptable__(self):  # torch.jit.script calls it first: refuse before it reads the annotations
        raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        gamma = FocalLoss.gamma.repr_of(self)
        return f"gamma={gamma}, alpha={alpha}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"


def alpha_buffer(alpha: Any) -> torch.Tensor | None:
    """alpha as a tensor to register (float64 unless given as a tensor), checked as far as it can be without C."""
    if alpha is None:
        return None
    if isinstance(alpha, torch.Tensor):
        if alpha.requires_grad:
            raise ValueError("alpha must not require grad: the focal loss is not differentiable with respect to alpha")
        return alpha.detach().clone()
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return torch.tensor(float(alpha), dtype=torch.float64)
    try:
        return torch.as_tensor(numpy.asarray(alpha, dtype=numpy.float64))
    except (TypeError, ValueError) as error:
        raise TypeError(f"alpha must be None, a float >= 0 or per-class weights. Got: {alpha!r}") from error
