"""``linear_unfused``: the unfused form users write today — ``nn.Linear``'s logits, then :func:`focalbench.focal_loss`.

It holds the ``N x V`` logits (and the focal loss's gradient of them: as much again), which the fused form does not;
it is the form the fused one must equal, and the linear family's gradient-penalty reference (``focal_loss`` and
``F.linear`` are differentiable any number of times).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench import focal_loss
from focalbench.arena.registry import register
from focalbench.losses.linear.semantics import LinearArgs

__all__ = ["unfused"]


def unfused(hidden, target, *, weight, bias=None, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100,
            chunk_size=None) -> torch.Tensor:  # fmt: skip
    """``focal_loss(F.linear(hidden, weight, bias), target)`` over the rows (``chunk_size`` has no effect)."""
    logits = F.linear(hidden.reshape(-1, hidden.shape[-1]), weight, bias)
    loss = focal_loss(logits, target.reshape(-1), gamma=gamma, alpha=alpha, reduction=reduction,
                      ignore_index=ignore_index)  # fmt: skip
    return loss.reshape(target.shape) if reduction == "none" else loss


@register(
    "linear_unfused",
    family="linear",
    description="F.linear, then focal_loss on the N x V logits (what users write without a fused loss)",
    capabilities={"any_shape", "double_backward"},
    traced=unfused,
)
def linear_unfused(args: LinearArgs) -> torch.Tensor:
    soft = args.softmax
    return unfused(args.hidden, args.target.reshape(args.loss_shape), weight=args.weight, bias=args.bias,
                   gamma=soft.gamma, alpha=soft.alpha, reduction=soft.reduction,
                   ignore_index=soft.ignore_index).to(args.hidden.dtype)  # fmt: skip
