"""``sigmoid_triton``: the closed-form sigmoid focal loss as one Triton kernel for CUDA (CPU tensors through Triton's
interpreter when ``TRITON_INTERPRET=1``); the kernel and its steps are in :mod:`focalbench.kernels.sigmoid_triton`.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import sigmoid_triton as kernel
from focalbench.losses.sigmoid.closed_form import fused_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("sigmoid_triton", kernel.UNAVAILABLE)
else:

    @register(
        "sigmoid_triton",
        family="sigmoid",
        description="one Triton launch: float64 per-element terms, gradient in the forward",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        interpreted=INTERPRETED,
    )
    def sigmoid_triton(args: SigmoidArgs) -> torch.Tensor:
        """Fused Triton sigmoid focal loss (CUDA; CPU through the Triton interpreter)."""
        return fused_loss(args, kernel.sigmoid_triton_forward)
