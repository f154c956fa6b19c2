"""``sigmoid_fused_eager``: the closed form in float64 PyTorch operations (any device, no compiler); the steps are
in :mod:`focalbench.kernels.sigmoid_eager`. It is what ``sigmoid_focal_loss`` runs on devices without a faster kernel,
and on the CPU where the C kernel cannot be built.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register
from focalbench.kernels.sigmoid_eager import eager_forward
from focalbench.losses.sigmoid.closed_form import fused_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs


@register(
    "sigmoid_fused_eager",
    family="sigmoid",
    description="closed form in float64 PyTorch ops, gradient in the forward",
)
def sigmoid_fused_eager(args: SigmoidArgs) -> torch.Tensor:
    """Closed-form sigmoid focal loss in PyTorch operations, accurate at every logit."""
    return fused_loss(args, eager_forward)
