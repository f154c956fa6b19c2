"""``quality_triton``: what :func:`focalbench.quality_focal_loss` runs on CUDA — its validation without a host read
and one Triton launch (the kernel and its steps: :mod:`focalbench.kernels.quality_triton`); CPU tensors through
Triton's interpreter when ``TRITON_INTERPRET=1``.

The product's function itself (:func:`focalbench.losses.quality.api.quality_focal_loss_on`): eager calls through
:class:`focalbench.losses.common.FusedLoss`, traced ones through the ``triton_op``
``focalbench::quality_focal_loss_cuda``. A target outside ``[0, 1]`` gives NaN there unless
:func:`focalbench.check_values` asks for the host check.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import quality_triton as kernel
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.quality.api import quality_focal_loss_on

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("quality_triton", kernel.UNAVAILABLE, family="quality")
else:
    add(Implementation(
        name="quality_triton",
        fn=quality_focal_loss_on("cuda"),
        description="quality_focal_loss's CUDA path: no host read, one Triton launch (float32 terms, float64 where a "
                    "general exponent needs it, gradient in the forward)",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("quality").capabilities,
        family="quality",
        extra={"interpreted": INTERPRETED, "device_checks": True},
    ))  # fmt: skip
