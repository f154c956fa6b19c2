"""``fused_eager``: the closed form in PyTorch operations (any device, no compiler); the steps, the accuracy
argument and the non-finite limits are documented with the kernel in :mod:`focalbench.kernels.eager`. It is what
``focal_loss`` runs on devices without a faster kernel, and on the CPU where the C kernel cannot be built.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register
from focalbench.kernels.eager import eager_forward
from focalbench.losses.softmax.closed_form import fused_loss
from focalbench.losses.softmax.semantics import FocalArgs


@register(
    "fused_eager",
    description="closed form in PyTorch ops: softmax pass + exact float64 rows where float32 falls short",
    capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class", "double_backward"},
    family="softmax",
)
def fused_eager(args: FocalArgs) -> torch.Tensor:
    """Closed-form focal loss in PyTorch operations, accurate at every finite logit gap."""
    return fused_loss(args, eager_forward)
