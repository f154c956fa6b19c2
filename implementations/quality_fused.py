"""``quality_fused``: the closed-form Quality Focal Loss as one C kernel (CPU) — what ``quality_focal_loss`` runs there.

The kernel is in the product's C library of the family (:mod:`focalbench.kernels.quality_cpu`; its steps and limits in
the comment at the top of ``quality_cpu.c``): one sweep over the logits and targets computes every element's terms,
sums the loss (or writes it, for ``reduction="none"``) and writes the gradient, so the backward is a scale. Where the
C library cannot be built the implementation is unavailable and ``focalbench list`` says why.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import quality_cpu
from focalbench.losses.quality.api import quality_focal_loss
from focalbench.losses.quality.closed_form import fused_loss
from focalbench.losses.quality.semantics import QualityArgs

_UNAVAILABLE = quality_cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("quality_fused", f"its C kernel could not be built: {_UNAVAILABLE}", family="quality")
else:

    @register(
        "quality_fused",
        family="quality",
        description="closed form as one C kernel: float32 per-element terms, gradient in the forward",
        devices=("cpu",),
        traced=quality_focal_loss,  # under torch.compile/export: the custom operator over the same kernel
    )
    def quality_fused(args: QualityArgs) -> torch.Tensor:
        """Fused closed-form Quality Focal Loss (C kernel), accurate at every logit."""
        return fused_loss(args, quality_cpu.forward_args)
