"""``varifocal_loss`` and ``VarifocalLoss``: VarifocalNet's IoU-aware classification loss, accurate at every logit.

The arguments and their meaning: :mod:`focalbench.losses.varifocal.semantics` (mmdet's defaults: alpha 0.75, gamma 2,
``iou_weighted``, reduction ``"mean"``; RT-DETR's detached weight as ``detach_weight=True``). Computed in closed form,
loss and gradient in one sweep, in float64 PyTorch operations (:mod:`focalbench.kernels.varifocal_eager`); the backward
scales the saved gradient. While ``torch.compile`` or ``torch.export`` traces a call, the same kernel runs as one custom
operator (:mod:`focalbench.losses.varifocal.op`); under ``torch.autocast`` half-precision logits are computed and
returned in float32. Nothing is imported before the first call.
"""

from __future__ import annotations

import torch
from torch import nn

from focalbench.kernels import choose  # imports no kernel: it does, at the first call
from focalbench.losses.common import front_door
from focalbench.losses.schedule import InPlaceScalar
from focalbench.losses.softmax.api import NO_TORCHSCRIPT
from focalbench.losses.varifocal.closed_form import CLOSED_FORM
from focalbench.losses.varifocal.kernels import FAMILY  # declares the family's kernels
from focalbench.losses.varifocal.semantics import DEFAULTS, validate

__all__ = ["RECOMMENDED_VARIFOCAL", "VarifocalLoss", "varifocal_implementation_for", "varifocal_loss"]

#: The registered implementation that computes what :func:`varifocal_loss` computes.
RECOMMENDED_VARIFOCAL = "varifocal_fused"


def varifocal_implementation_for(device_type: str) -> str:
    """Name of the registered implementation that computes what :func:`varifocal_loss` computes there."""
    return choose(FAMILY, device_type).implementation


def varifocal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float | torch.Tensor = 0.75,
    gamma: float | torch.Tensor = 2.0,
    iou_weighted: bool = True,
    detach_weight: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Varifocal loss (Zhang et al., 2021): ``q BCE(x, q)`` at positives, ``alpha p^gamma BCE(x, 0)`` at negatives.

    ``p = sigmoid(logits)``; ``q = target``, the IoU-aware score of a positive (its box's IoU with the ground truth,
    at the ground truth's class) and 0 at a negative.

    Args:
        logits: any shape, float16/bfloat16/float32/float64.
        target: the logits' shape, floating, values in ``[0, 1]``.
        alpha: the negatives' weight, ``>= 0``, a float or a 0-dim tensor. Default: 0.75.
        gamma: the negatives' focusing exponent, ``>= 0``, a float or a 0-dim tensor. Default: 2.0.
        iou_weighted: weight a positive by ``q`` (True, default) or by 1 (False). Default: True.
        detach_weight: hold the weight constant in the gradient (RT-DETR's ``sigmoid(x).detach()``): the gradient
            is then ``w (p - q)``, not the loss's derivative. Default: False.
        reduction: ``"none"`` (the logits' shape), ``"mean"`` over every element or ``"sum"``. Default: ``"mean"``.
            mmdet's ``avg_factor=A`` is ``reduction="sum"`` divided by ``A + torch.finfo(torch.float32).eps``;
            ultralytics' ``.mean(1).sum()`` of ``(batch, queries, classes)`` scores is ``"sum"`` divided by the
            number of queries.

    Shape:
        Output: the logits' shape for ``"none"``, else a scalar; dtype of ``logits`` (float32 for half-precision
        logits under ``torch.autocast``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[3.0, -2.0], [0.5, 20.0]], requires_grad=True)
        >>> target = torch.tensor([[0.9, 0.0], [0.0, 0.0]])
        >>> loss = varifocal_loss(logits, target, reduction="sum")
        >>> round(loss.item(), 4)
        15.5981
        >>> loss.backward()
    """
    arguments = {"alpha": alpha, "gamma": gamma, "iou_weighted": iou_weighted, "detach_weight": detach_weight,
                 "reduction": reduction}  # fmt: skip
    return _varifocal_loss(logits, target, arguments, None)


def _varifocal_loss(logits, target, arguments, path: str | None) -> torch.Tensor:
    if torch.jit.is_tracing():  # a trace would record the kernel's tensors as constants
        raise RuntimeError(NO_TORCHSCRIPT.format("varifocal_loss"))
    return front_door(logits, target, arguments, family=FAMILY, path=path, validate=validate, traced=_traced,
                      closed_form=CLOSED_FORM)  # fmt: skip


def varifocal_loss_on(path: str):
    """:func:`varifocal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors are on
    (the CUDA path on CPU tensors runs in Triton's interpreter: how the suite checks it without a GPU)."""

    def loss(logits, target, *, alpha=0.75, gamma=2.0, iou_weighted=True, detach_weight=False, reduction="mean"):
        arguments = {"alpha": alpha, "gamma": gamma, "iou_weighted": iou_weighted, "detach_weight": detach_weight,
                     "reduction": reduction}  # fmt: skip
        return _varifocal_loss(logits, target, arguments, path)

    loss.__name__ = loss.__qualname__ = f"varifocal_loss_on_{path}"
    return loss


def _traced(logits, target, *, path, alpha, gamma, iou_weighted, detach_weight, reduction) -> torch.Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator."""
    from focalbench.losses.varifocal.op import operator_for

    args = validate(logits, target, alpha=alpha, gamma=gamma, iou_weighted=iou_weighted, detach_weight=detach_weight,
                    reduction=reduction, read_values=False)  # fmt: skip
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = operator_for(path)(args.logits, args.target, args.alpha, args.gamma, args.iou_weighted,
                                 args.detach_weight, args.reduction, need_grad)  # fmt: skip
    return loss


class VarifocalLoss(nn.Module):
    """Module form of :func:`varifocal_loss`: stores the arguments (checked here) and calls it.

    ``alpha`` and ``gamma`` are held as 0-dim float64 tensors (:class:`~focalbench.losses.schedule.InPlaceScalar`):
    assigning a number fills them in place, so a compiled step takes every new value through one graph. TorchScript
    is not supported: use ``torch.compile`` or ``torch.export``.

    Example:
        >>> import torch
        >>> criterion = VarifocalLoss(reduction="sum")
        >>> round(criterion(torch.zeros(2, 3), torch.tensor([[0.5, 0, 0], [0, 0, 1.0]])).item(), 6)
        1.559581
        >>> criterion
        VarifocalLoss(alpha=0.75, gamma=2.0, iou_weighted=True, detach_weight=False, reduction='sum')
    """

    alpha = InPlaceScalar("a real number >= 0")
    gamma = InPlaceScalar("a real number >= 0")

    def __init__(
        self,
        alpha: float | torch.Tensor = DEFAULTS["alpha"],
        gamma: float | torch.Tensor = DEFAULTS["gamma"],
        iou_weighted: bool = DEFAULTS["iou_weighted"],
        detach_weight: bool = DEFAULTS["detach_weight"],
        reduction: str = DEFAULTS["reduction"],
    ):
        super().__init__()
        validate(torch.zeros(1), torch.zeros(1), alpha=alpha, gamma=gamma, iou_weighted=iou_weighted,
                 detach_weight=detach_weight, reduction=reduction)  # fmt: skip
        self.alpha = alpha
        self.gamma = gamma
        self.iou_weighted = iou_weighted
        self.detach_weight = detach_weight
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))
        return varifocal_loss(logits, target, alpha=self.alpha, gamma=self.gamma, iou_weighted=self.iou_weighted,
                              detach_weight=self.detach_weight, reduction=self.reduction)  # fmt: skip

    def __prepare_scriptable__(self):  # torch.jit.script calls it first: refuse before it reads the annotations
        raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))

    def extra_repr(self) -> str:
        alpha, gamma = VarifocalLoss.alpha.repr_of(self), VarifocalLoss.gamma.repr_of(self)
        return (f"alpha={alpha}, gamma={gamma}, iou_weighted={self.iou_weighted}, "
                f"detach_weight={self.detach_weight}, reduction={self.reduction!r}")  # fmt: skip
