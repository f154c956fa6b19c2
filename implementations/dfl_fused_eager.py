"""``dfl_fused_eager``: the closed form in float64 PyTorch operations (any device, no compiler), loss and gradient in
one sweep; the steps are in :mod:`focalbench.kernels.dfl_eager`. It is what ``distribution_focal_loss`` runs where no
faster kernel is.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register
from focalbench.kernels.dfl_eager import eager_forward
from focalbench.losses.dfl.api import distribution_focal_loss
from focalbench.losses.dfl.closed_form import fused_loss
from focalbench.losses.dfl.semantics import DflArgs


@register(
    "dfl_fused_eager",
    family="dfl",
    description="closed form in float64 PyTorch ops, gradient in the forward (the product)",
    traced=distribution_focal_loss,  # under torch.compile/export: the custom operator over the same kernel
)
def dfl_fused_eager(args: DflArgs) -> torch.Tensor:
    """Closed-form Distribution Focal Loss in PyTorch operations, accurate at every logit."""
    return fused_loss(args, eager_forward)
