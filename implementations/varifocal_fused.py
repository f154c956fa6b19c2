"""``varifocal_fused``: the closed-form Varifocal Loss as one C kernel (CPU) — what ``varifocal_loss`` runs there.

The kernel is in the product's C library of the family (:mod:`focalbench.kernels.varifocal_cpu`; its steps and limits in
the comment at the top of ``varifocal_cpu.c``): one sweep over the logits and targets computes every element's terms,
sums the loss (or writes it, for ``reduction="none"``) and writes the gradient, so the backward is a scale. Where the
C library cannot be built the implementation is unavailable and ``focalbench list`` says why.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import varifocal_cpu
from focalbench.losses.varifocal.api import varifocal_loss
from focalbench.losses.varifocal.closed_form import fused_loss
from focalbench.losses.varifocal.semantics import VarifocalArgs

_UNAVAILABLE = varifocal_cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("varifocal_fused", f"its C kernel could not be built: {_UNAVAILABLE}", family="varifocal")
else:

    @register(
        "varifocal_fused",
        family="varifocal",
        description="closed form as one C kernel: float32 per-element terms, gradient in the forward",
        devices=("cpu",),
        traced=varifocal_loss,  # under torch.compile/export: the custom operator over the same kernel
    )
    def varifocal_fused(args: VarifocalArgs) -> torch.Tensor:
        """Fused closed-form Varifocal Loss (C kernel), accurate at every logit."""
        return fused_loss(args, varifocal_cpu.forward_args)
