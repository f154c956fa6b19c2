"""``varifocal_triton``: what :func:`focalbench.varifocal_loss` runs on CUDA — its validation without a host read
and one Triton launch (the kernel and its steps: :mod:`focalbench.kernels.varifocal_triton`); CPU tensors through
Triton's interpreter when ``TRITON_INTERPRET=1``.

The product's function itself (:func:`focalbench.losses.varifocal.api.varifocal_loss_on`): eager calls through
:class:`focalbench.losses.common.FusedLoss`, traced ones through the ``triton_op``
``focalbench::varifocal_loss_cuda``. A target outside ``[0, 1]`` gives NaN there unless
:func:`focalbench.check_values` asks for the host check.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import varifocal_triton as kernel
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.varifocal.api import varifocal_loss_on

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("varifocal_triton", kernel.UNAVAILABLE, family="varifocal")
else:
    add(Implementation(
        name="varifocal_triton",
        fn=varifocal_loss_on("cuda"),
        description="varifocal_loss's CUDA path: no host read, one Triton launch (float32 terms, float64 where a "
                    "general exponent needs it, gradient in the forward)",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("varifocal").capabilities,
        family="varifocal",
        extra={"interpreted": INTERPRETED, "device_checks": True},
    ))  # fmt: skip
