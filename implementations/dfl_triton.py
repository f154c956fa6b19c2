"""``dfl_triton``: what :func:`focalbench.distribution_focal_loss` runs on CUDA — its validation without a host read
and one Triton launch (the kernel and its steps: :mod:`focalbench.kernels.dfl_triton`); CPU tensors through Triton's
interpreter when ``TRITON_INTERPRET=1``.

The product's function itself (:func:`focalbench.losses.dfl.api.distribution_focal_loss_on`). A target outside
``[0, n - 1]`` gives NaN there unless :func:`focalbench.check_values` asks for the host check.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import dfl_triton as kernel
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.dfl.api import distribution_focal_loss_on

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("dfl_triton", kernel.UNAVAILABLE, family="dfl")
else:
    add(Implementation(
        name="dfl_triton",
        fn=distribution_focal_loss_on("cuda"),
        description="distribution_focal_loss's CUDA path: no host read, one Triton launch (a row of bins a program, "
                    "gradient in the forward)",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("dfl").capabilities,
        family="dfl",
        extra={"interpreted": INTERPRETED, "device_checks": True},
    ))  # fmt: skip
