"""``triton``: the closed-form focal loss as one Triton kernel for CUDA (CPU tensors through Triton's interpreter
when ``TRITON_INTERPRET=1``); the kernel and its steps are in :mod:`focalbench.kernels.triton`.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import triton as kernel
from focalbench.losses.softmax.closed_form import fused_loss
from focalbench.losses.softmax.semantics import FocalArgs

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("triton", kernel.UNAVAILABLE)
else:

    @register(
        "triton",
        description="one Triton launch: online softmax, float64 row terms, gradient in the forward",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=(torch.float16, torch.bfloat16, torch.float32),
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class", "double_backward"},
        interpreted=INTERPRETED,
    )
    def triton_focal_loss(args: FocalArgs) -> torch.Tensor:
        """Fused Triton focal loss (CUDA; CPU through the Triton interpreter)."""
        return fused_loss(args, kernel.triton_forward)
