"""``linear_fused``: what ``fused_linear_focal_loss`` runs on the CPU — chunks of rows, each chunk's logits from the
matrix product and the softmax family's C kernel on them (:mod:`focalbench.losses.linear.api`).

The implementation is the product's own function on its CPU path
(:func:`focalbench.losses.linear.api.fused_linear_focal_loss_on`), validation included: what is timed and checked is
what users run. Its memory beyond the inputs and gradients is two chunks of logits, whatever the number of rows (the
``chunked`` capability, checked by ``linear_memory``). Its gradient is not differentiable again: ``create_graph=True``
gives a gradient whose own backward raises.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import cpu
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.linear.api import fused_linear_focal_loss_on

_UNAVAILABLE = cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("linear_fused", f"the softmax C kernel could not be built: {_UNAVAILABLE}", family="linear")
else:
    add(Implementation(
        name="linear_fused",
        fn=fused_linear_focal_loss_on("cpu"),
        description="chunks of rows: each chunk's logits by the matrix product, loss and logits-gradient by the C "
                    "kernel, the gradients of h, W, b accumulated chunk by chunk",
        devices=("cpu",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("linear").capabilities - {"double_backward"},
        family="linear",
    ))  # fmt: skip
