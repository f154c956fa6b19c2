"""``fused``: the closed-form focal loss as one C kernel over the logits (CPU) — what ``focal_loss`` runs on the CPU.

The kernel and its bridge live with the product (:mod:`focalbench.kernels.cpu`, ``focal_cpu.c``; the derivation in
:mod:`focalbench.losses.softmax.closed_form`); this file only enters it in the arena. For float32 logits each
difference ``z_j - max``
carries its own rounding error back into the float32 exponential (TwoSum), sums and per-row terms are double, so the
loss and gradient are within a few float32 ulp of the exact values at every logit gap (float64 logits are computed
in double throughout); the gradient is written in the same sweep, so the logits are read twice and the gradient
written once.

The kernel is compiled at first use with the system C compiler (cached, see :mod:`focalbench.kernels.build`); where it
cannot be built the implementation is unavailable and ``focalbench list`` says why.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import cpu
from focalbench.losses.softmax.api import focal_loss
from focalbench.losses.softmax.closed_form import fused_loss
from focalbench.losses.softmax.semantics import FocalArgs

_UNAVAILABLE = cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("fused", f"its C kernel could not be built: {_UNAVAILABLE}", family="softmax")
else:

    @register(
        "fused",
        description="closed form as one C kernel: corrected exponentials, double row terms, gradient in the forward",
        devices=("cpu",),
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class", "double_backward"},
        traced=focal_loss,  # under torch.compile/export: the custom operator over the same kernel
        family="softmax",
    )
    def fused(args: FocalArgs) -> torch.Tensor:
        """Fused closed-form focal loss (C kernel), accurate at every logit gap."""
        return fused_loss(args, cpu.forward_args)
