"""``varifocal_fused_eager``: what :func:`focalbench.losses.varifocal.api.varifocal_loss` runs: the closed form in
float64 PyTorch operations (any device, no compiler), loss and gradient in one sweep; the steps are in
:mod:`focalbench.kernels.varifocal_eager`. Under ``torch.compile`` it runs as the custom operator
:mod:`focalbench.losses.varifocal.op`.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register
from focalbench.kernels.varifocal_eager import eager_forward
from focalbench.losses.varifocal.api import varifocal_loss
from focalbench.losses.varifocal.closed_form import fused_loss
from focalbench.losses.varifocal.semantics import VarifocalArgs


@register(
    "varifocal_fused_eager",
    family="varifocal",
    description="closed form in float64 PyTorch ops, gradient in the forward (the product)",
    traced=varifocal_loss,
)
def varifocal_fused_eager(args: VarifocalArgs) -> torch.Tensor:
    """Closed-form varifocal loss in PyTorch operations, accurate at every logit."""
    return fused_loss(args, eager_forward)
