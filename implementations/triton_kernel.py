"""``triton``: what :func:`focalbench.focal_loss` runs on CUDA — its validation without a host read and one Triton
launch (the kernel and its steps: :mod:`focalbench.kernels.triton`); CPU tensors through Triton's interpreter when
``TRITON_INTERPRET=1``, which is how every check reaches the CUDA path without a GPU.

It is the product's function itself (:func:`focalbench.losses.softmax.api.focal_loss_on`), not a copy: eager calls go
through :class:`focalbench.losses.common.FusedLoss`, traced ones through the ``triton_op``
``focalbench::softmax_focal_loss_cuda``. The target's range is checked by the kernel (NaN rows) unless
:func:`focalbench.check_values` asks for the host check.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import triton as kernel
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.softmax.api import focal_loss_on

INTERPRETED = kernel.INTERPRETED

if kernel.UNAVAILABLE is not None:
    register_unavailable("triton", kernel.UNAVAILABLE, family="softmax")
else:
    add(Implementation(
        name="triton",
        fn=focal_loss_on("cuda"),
        description="focal_loss's CUDA path: no host read, one Triton launch (online softmax, float64 row terms, "
                    "gradient in the forward)",
        devices=("cpu",) if INTERPRETED else ("cuda",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("softmax").capabilities,
        extra={"interpreted": INTERPRETED, "device_checks": True},
        family="softmax",
    ))  # fmt: skip
