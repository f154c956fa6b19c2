"""``quality_fused_eager``: the closed form in float64 PyTorch operations (any device, no compiler), loss and gradient
in one sweep; the steps are in :mod:`focalbench.kernels.quality_eager`. It is what ``quality_focal_loss`` runs.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register
from focalbench.kernels.quality_eager import eager_forward
from focalbench.losses.quality.api import quality_focal_loss
from focalbench.losses.quality.closed_form import fused_loss
from focalbench.losses.quality.semantics import QualityArgs


@register(
    "quality_fused_eager",
    family="quality",
    description="closed form in float64 PyTorch ops, gradient in the forward (the product)",
    traced=quality_focal_loss,  # under torch.compile/export: the custom operator over the same kernel
)
def quality_fused_eager(args: QualityArgs) -> torch.Tensor:
    """Closed-form Quality Focal Loss in PyTorch operations, accurate at every logit."""
    return fused_loss(args, eager_forward)
