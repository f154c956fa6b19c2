"""``distribution_focal_loss`` and ``DistributionFocalLoss``: Generalized Focal Loss's box-side distributions, accurate
at every logit.

The loss of ultralytics' ``DFLoss`` and mmdet's ``DistributionFocalLoss`` (the arguments, and how the reductions map
onto the peers': :mod:`focalbench.losses.dfl.semantics`), computed in closed form with the gradient written in the
forward: one C kernel on the CPU (:mod:`focalbench.kernels.dfl_cpu`, which also counts the targets outside the bins'
range as it goes), one Triton kernel on CUDA (:mod:`focalbench.kernels.dfl_triton`), float64 PyTorch operations
elsewhere (:mod:`focalbench.kernels.dfl_eager`). While ``torch.compile`` or ``torch.export`` traces a call, the same
kernel runs as one custom operator (:mod:`focalbench.losses.dfl.op`); half-precision logits are computed in float32
(under ``torch.autocast`` returned in float32). Nothing is imported or built before the first call.
"""

from __future__ import annotations

import torch
from torch import nn

from focalbench.kernels import choose  # imports no kernel: it does, at the first call
from focalbench.losses.common import front_door
from focalbench.losses.dfl.closed_form import CLOSED_FORM
from focalbench.losses.dfl.kernels import FAMILY  # declares the family's kernels
from focalbench.losses.dfl.semantics import DEFAULTS, validate
from focalbench.losses.softmax.api import NO_TORCHSCRIPT

__all__ = [
    "RECOMMENDED_DFL",
    "DistributionFocalLoss",
    "dfl_implementation_for",
    "distribution_focal_loss",
    "distribution_focal_loss_on",
]

#: The registered implementation that computes what :func:`distribution_focal_loss` runs on the CPU.
RECOMMENDED_DFL = "dfl_fused"


def dfl_implementation_for(device_type: str) -> str:
    """Name of the registered implementation that computes what :func:`distribution_focal_loss` computes there."""
    return choose(FAMILY, device_type).implementation


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Distribution Focal Loss ``w_l (-log S_{y_l}) + w_r (-log S_{y_r})`` per row, ``S = softmax(logits)`` over the
    bins (Li et al., 2020): the cross-entropy against the two bins around the continuous target ``y``, weighted by
    how near each is (``y_l = min(floor(y), n - 2)``, ``y_r = y_l + 1``, ``w_l = y_r - y``, ``w_r = y - y_l``).

    Args:
        logits: ``(..., n)``, ``n >= 2`` bins along the last axis, float16/bfloat16/float32/float64 (ultralytics'
            ``pred_dist.view(-1, reg_max)``, mmdet's ``(N, reg_max + 1)``).
        target: the logits' shape without the bin axis, ``(...)``, floating, values in ``[0, n - 1]`` (a distance
            in bins; ``n - 1`` included). A value outside is a ``ValueError``, never clamped: ultralytics clamps to
            ``[0, n - 1 - 0.01]`` first, mmdet does not.
        reduction: ``"mean"`` over the target's elements (the box sides), ``"sum"``, or ``"none"`` (the target's
            shape). Default: ``"mean"``. ultralytics' per-box value is ``reduction="none"`` then ``.mean(-1)`` over
            the 4 sides; mmdet's is ``reduction="none"`` with its ``weight``, ``avg_factor`` and ``loss_weight``
            applied after.

    Shape:
        Output: the target's shape for ``"none"``, else a scalar; dtype of ``logits`` (float32 for half-precision
        logits under ``torch.autocast``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [4.0, 0.0, -2.0, 1.0]], requires_grad=True)
        >>> loss = distribution_focal_loss(logits, torch.tensor([1.5, 0.0]), reduction="none")
        >>> [round(v, 4) for v in loss.tolist()]
        [1.3863, 0.0682]
        >>> loss.sum().backward()
        >>> [round(v, 4) for v in logits.grad[0].tolist()]
        [0.25, -0.25, -0.25, 0.25]
    """
    return _distribution_focal_loss(logits, target, {"reduction": reduction}, None)


def _distribution_focal_loss(logits, target, arguments, path: str | None) -> torch.Tensor:
    if torch.jit.is_tracing():  # a trace would record the kernel's tensors as constants
        raise RuntimeError(NO_TORCHSCRIPT.format("distribution_focal_loss"))
    return front_door(logits, target, arguments, family=FAMILY, path=path, validate=validate, traced=_traced,
                      closed_form=CLOSED_FORM)  # fmt: skip


def distribution_focal_loss_on(path: str):
    """:func:`distribution_focal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors are
    on (the CUDA path on CPU tensors runs in Triton's interpreter: how the suite checks it without a GPU)."""

    def loss(logits, target, *, reduction=DEFAULTS["reduction"]):
        return _distribution_focal_loss(logits, target, {"reduction": reduction}, path)

    loss.__name__ = loss.__qualname__ = f"distribution_focal_loss_on_{path}"
    return loss


def _traced(logits, target, *, path, reduction) -> torch.Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator."""
    from focalbench.losses.dfl.op import operator_for

    args = validate(logits, target, reduction=reduction, read_values=False)
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = operator_for(path)(args.logits, args.target, args.reduction, need_grad)
    return loss


class DistributionFocalLoss(nn.Module):
    """Module form of :func:`distribution_focal_loss`: stores the reduction (checked here) and calls it.

    ultralytics' ``reg_max`` is the logits' last dimension, not an argument; mmdet's ``loss_weight``, ``weight`` and
    ``avg_factor`` are not arguments either: multiply and divide the ``"sum"`` or ``"none"`` loss (see
    :mod:`focalbench.losses.dfl.semantics`). TorchScript is not supported: use ``torch.compile`` or
    ``torch.export``.

    Example:
        >>> import torch
        >>> criterion = DistributionFocalLoss(reduction="sum")
        >>> criterion
        DistributionFocalLoss(reduction='sum')
        >>> round(criterion(torch.zeros(3, 4, 16), torch.full((3, 4), 7.25)).item(), 4)
        33.2711
    """

    def __init__(self, reduction: str = DEFAULTS["reduction"]):
        super().__init__()
        validate(torch.zeros(1, 2), torch.zeros(1), reduction=reduction)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))
        return distribution_focal_loss(logits, target, reduction=self.reduction)

    def __prepare_scriptable__(self):  # torch.jit.script calls it first: refuse before it reads the annotations
        raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
