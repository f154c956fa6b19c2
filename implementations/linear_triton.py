"""``linear_triton``: what :func:`focalbench.fused_linear_focal_loss` runs on CUDA — the chunks' logits from the
device's matrix product and the softmax family's Triton kernel on each chunk (:mod:`focalbench.kernels.triton`), its
validation without a host read (the mean's count stays on the device); CPU tensors through Triton's interpreter when
``TRITON_INTERPRET=1``.

The product's function itself (:func:`focalbench.losses.linear.api.fused_linear_focal_loss_on`). A target outside
``[0, V)`` gives NaN at its rows there unless :func:`focalbench.check_values` asks for the host check.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import triton as kernel
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.linear.api import fused_linear_focal_loss_on

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("linear_triton", kernel.UNAVAILABLE, family="linear")
else:
    add(Implementation(
        name="linear_triton",
        fn=fused_linear_focal_loss_on("cuda"),
        description="fused_linear_focal_loss's CUDA path: chunks' logits by the matrix product, the softmax Triton "
                    "kernel on each, no host read",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("linear").capabilities - {"double_backward", "compile"},
        family="linear",
        extra={"interpreted": INTERPRETED, "device_checks": True},
    ))  # fmt: skip
