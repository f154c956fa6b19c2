"""``quality_focal_loss`` and ``QualityFocalLoss``: Generalized Focal Loss's quality branch, accurate at every logit.

The loss of mmdet's ``QualityFocalLoss`` with a plain soft target (the arguments, and how the reductions map onto
mmdet's per-anchor sum with ``avg_factor``: :mod:`focalbench.losses.quality.semantics`), computed in closed form with
the gradient written in the forward (:mod:`focalbench.kernels.quality_eager`, float64 PyTorch operations on every
device). While ``torch.compile`` or ``torch.export`` traces a call, the same kernel runs as one custom operator
(:mod:`focalbench.losses.quality.op`); half-precision logits are computed in float32 (under ``torch.autocast``
returned in float32). Nothing is imported or built before the first call.
"""

from __future__ import annotations

import torch
from torch import nn

from focalbench.kernels import choose  # imports no kernel: it does, at the first call
from focalbench.losses.common import front_door
from focalbench.losses.quality.closed_form import CLOSED_FORM
from focalbench.losses.quality.kernels import FAMILY  # declares the family's kernels
from focalbench.losses.quality.semantics import DEFAULTS, validate
from focalbench.losses.schedule import InPlaceScalar
from focalbench.losses.softmax.api import NO_TORCHSCRIPT

__all__ = [
    "RECOMMENDED_QUALITY",
    "QualityFocalLoss",
    "quality_focal_loss",
    "quality_focal_loss_on",
    "quality_implementation_for",
]

#: The registered implementation that computes what :func:`quality_focal_loss` runs.
RECOMMENDED_QUALITY = "quality_fused"


def quality_implementation_for(device_type: str) -> str:
    """Name of the registered implementation that computes what :func:`quality_focal_loss` computes there."""
    return choose(FAMILY, device_type).implementation


def quality_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, *, beta: float | torch.Tensor = 2.0, reduction: str = "mean"
) -> torch.Tensor:
    r"""Quality Focal Loss ``|y - s|^beta BCE(x, y)`` per element, ``s = sigmoid(x)`` (Li et al., 2020).

    Args:
        logits: any shape, float16/bfloat16/float32/float64 (a detection head's ``(anchors, C)``).
        target: the logits' shape, floating, values in ``[0, 1]``: the IoU-aware quality at a positive's class, 0
            elsewhere (:func:`~focalbench.losses.quality.semantics.label_score_targets` builds it from mmdet's
            ``(label, score)``).
        beta: ``>= 0``, a float or a 0-dim tensor; 0 gives binary cross-entropy with soft targets. Default: 2.0.
        reduction: ``"mean"`` over every element, ``"sum"``, or ``"none"`` (the logits' shape). Default: ``"mean"``.
            mmdet's ``"mean"`` without ``avg_factor`` is ``"sum"`` divided by the number of anchors; with
            ``avg_factor`` (GFL: the positives), ``"sum"`` divided by ``avg_factor + eps``.

    Shape:
        Output: the logits' shape for ``"none"``, else a scalar; dtype of ``logits`` (float32 for half-precision
        logits under ``torch.autocast``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, -3.0], [0.0, 25.0]], requires_grad=True)
        >>> target = torch.tensor([[0.8, 0.0], [0.5, 0.0]])
        >>> loss = quality_focal_loss(logits, target, reduction="sum")
        >>> round(loss.item(), 4)
        25.0035
        >>> loss.backward()
        >>> [round(v, 4) for v in logits.grad.flatten().tolist()]
        [0.0095, 0.0003, 0.0, 1.0]
    """
    return _quality_focal_loss(logits, target, {"beta": beta, "reduction": reduction}, None)


def _quality_focal_loss(logits, target, arguments, path: str | None) -> torch.Tensor:
    if torch.jit.is_tracing():  # a trace would record the kernel's tensors as constants
        raise RuntimeError(NO_TORCHSCRIPT.format("quality_focal_loss"))
    return front_door(logits, target, arguments, family=FAMILY, path=path, validate=validate, traced=_traced,
                      closed_form=CLOSED_FORM)  # fmt: skip


def quality_focal_loss_on(path: str):
    """:func:`quality_focal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors are on
    (the CUDA path on CPU tensors runs in Triton's interpreter: how the suite checks it without a GPU)."""

    def loss(logits, target, *, beta=DEFAULTS["beta"], reduction=DEFAULTS["reduction"]):
        return _quality_focal_loss(logits, target, {"beta": beta, "reduction": reduction}, path)

    loss.__name__ = loss.__qualname__ = f"quality_focal_loss_on_{path}"
    return loss


def _traced(logits, target, *, path, beta, reduction) -> torch.Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator."""
    from focalbench.losses.quality.op import operator_for

    args = validate(logits, target, beta=beta, reduction=reduction, read_values=False)
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = operator_for(path)(args.logits, args.target, args.beta, args.reduction, need_grad)
    return loss


class QualityFocalLoss(nn.Module):
    """Module form of :func:`quality_focal_loss`: stores the arguments (checked here) and calls it.

    ``beta`` is held as a 0-dim float64 tensor (:class:`~focalbench.losses.schedule.InPlaceScalar`): assigning a
    number fills it in place, so a compiled step takes every new value through one graph. mmdet's ``loss_weight``,
    ``weight`` and ``avg_factor`` are not arguments: multiply and divide the ``"sum"`` or ``"none"`` loss (see
    :mod:`focalbench.losses.quality.semantics`). TorchScript is not supported: use ``torch.compile`` or
    ``torch.export``.

    Example:
        >>> import torch
        >>> criterion = QualityFocalLoss(reduction="sum")
        >>> round(criterion(torch.zeros(2, 3), torch.tensor([[0.9, 0, 0], [0, 0, 0.5]])).item(), 6)
        0.804051
        >>> criterion.beta = 1
        >>> criterion
        QualityFocalLoss(beta=1.0, reduction='sum')
    """

    beta = InPlaceScalar("a real number >= 0")

    def __init__(self, beta: float | torch.Tensor = DEFAULTS["beta"], reduction: str = DEFAULTS["reduction"]):
        super().__init__()
        validate(torch.zeros(1), torch.zeros(1), beta=beta, reduction=reduction)
        self.beta = beta
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))
        return quality_focal_loss(logits, target, beta=self.beta, reduction=self.reduction)

    def __prepare_scriptable__(self):  # torch.jit.script calls it first: refuse before it reads the annotations
        raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))

    def extra_repr(self) -> str:
        return f"beta={QualityFocalLoss.beta.repr_of(self)}, reduction={self.reduction!r}"
