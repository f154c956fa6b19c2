"""``focal_loss`` and ``FocalLoss``: the recommended implementation behind the public API."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from focalbench.registry import get_implementation

#: The implementation behind :func:`focal_loss`: the fastest one that passes every check on the CPU
#: (the measurement behind the choice is in the README).
RECOMMENDED = "fused"


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    r"""Softmax focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al., 2017), ``p = softmax(logits, dim=1)``.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ..., dk)``, float16/bfloat16/float32/float64.
        target: ``(N,)`` or ``(N, d1, ..., dk)`` class indices in ``[0, C)`` or ``ignore_index``.
        gamma: focusing parameter ``>= 0``; 0 gives cross-entropy. Default: 2.0.
        alpha: ``None`` (all ones), a float applied to every class, or ``C`` per-class weights. Default: None.
        reduction: ``"mean"`` over non-ignored elements, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        ignore_index: target value that contributes no loss and no gradient. Default: -100.

    Shape:
        Output: scalar, or the target's shape for ``reduction="none"``; dtype of ``logits``.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
        >>> loss = focal_loss(logits, torch.tensor([0, 2]), gamma=2.0)
        >>> round(loss.item(), 4)
        0.2505
        >>> loss.backward()
    """
    return get_implementation(RECOMMENDED)(
        logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index
    )


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: stores the arguments and calls it.

    Example:
        >>> import torch
        >>> criterion = FocalLoss(gamma=2.0, alpha=[0.25, 0.75], ignore_index=-1)
        >>> criterion(torch.zeros(3, 2), torch.tensor([0, 1, -1])).item()
        0.17328679561614990
    """

    def __init__(self, gamma: float = 2.0, alpha: Any = None, reduction: str = "mean", ignore_index: int = -100):
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction, ignore_index=self.ignore_index
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"
