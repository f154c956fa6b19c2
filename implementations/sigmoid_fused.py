"""``sigmoid_fused``: the closed-form sigmoid focal loss as one C kernel (CPU) — what ``sigmoid_focal_loss`` runs there.

The kernel is ``sigmoid_focal_forward`` in the product's C library (:mod:`focalbench.kernels.sigmoid_cpu`; the
derivation in :mod:`focalbench.losses.sigmoid.closed_form`): one sweep over the logits and targets computes every
element's terms
in double, sums the loss (or writes it, for ``reduction="none"``) and writes the gradient, so the backward is a
scale. Where the C library cannot be built the implementation is unavailable and ``focalbench list`` says why.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.kernels import sigmoid_cpu
from focalbench.losses.sigmoid.api import sigmoid_focal_loss
from focalbench.losses.sigmoid.closed_form import fused_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs

_UNAVAILABLE = sigmoid_cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("sigmoid_fused", f"its C kernel could not be built: {_UNAVAILABLE}", family="sigmoid")
else:

    @register(
        "sigmoid_fused",
        family="sigmoid",
        description="closed form as one C kernel: double per-element terms, gradient in the forward",
        devices=("cpu",),
        traced=sigmoid_focal_loss,  # under torch.compile/export: the custom operator over the same kernel
    )
    def sigmoid_fused(args: SigmoidArgs) -> torch.Tensor:
        """Fused closed-form sigmoid focal loss (C kernel), accurate at every logit."""
        return fused_loss(args, sigmoid_cpu.forward_args)
