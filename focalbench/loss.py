"""``focal_loss`` and ``FocalLoss``: the recommended implementation behind the public API."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from focalbench.registry import Implementation, get_implementation, list_implementations

#: The implementation behind :func:`focal_loss` on the CPU: the fastest one that passes every check there (the
#: measurement behind the choice is in the README). Each device tries its list in order and takes the first that is
#: available and runs there; ``fused_eager`` (PyTorch operations, every device) closes every list.
RECOMMENDED = "fused"
PREFERENCE: dict[str, tuple[str, ...]] = {"cpu": (RECOMMENDED, "fused_eager"), "cuda": ("fused_eager",)}


@functools.cache
def recommended(device_type: str) -> Implementation:
    """The implementation :func:`focal_loss` uses for logits on ``device_type``."""
    available = set(list_implementations())
    for name in PREFERENCE.get(device_type, ("fused_eager",)):
        if name in available and device_type in get_implementation(name).devices:
            return get_implementation(name)
    return get_implementation("fused_eager")


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
        0.2462
        >>> loss.backward()
    """
    device_type = logits.device.type if isinstance(logits, torch.Tensor) else "cpu"
    return recommended(device_type)(
        logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index
    )


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: stores the arguments and calls it.

    Example:
        >>> import torch
        >>> criterion = FocalLoss(gamma=2.0, alpha=[0.25, 0.75], ignore_index=-1)
        >>> round(criterion(torch.zeros(3, 2), torch.tensor([0, 1, -1])).item(), 4)
        0.0866
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
