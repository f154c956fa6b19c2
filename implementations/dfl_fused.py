"""``dfl_fused``: what ``distribution_focal_loss`` runs on the CPU — the closed-form Distribution Focal Loss as one C
kernel.

The kernel is in the family's own C library (:mod:`focalbench.kernels.dfl_cpu`; its steps and limits in the comment
at the top of ``dfl_cpu.c``): one sweep over the rows computes each element's softmax terms, sums the loss (or writes
it, for ``reduction="none"``), writes the gradient, so the backward is a scale, and counts the targets outside
``[0, n - 1]``, so validation reads no target value beforehand (a bad one still raises its ``ValueError``). The
implementation is the product's own function on its CPU path
(:func:`focalbench.losses.dfl.api.distribution_focal_loss_on`), validation included: what is timed and checked is
what users run. Where the C library cannot be built the implementation is unavailable and ``focalbench list`` says
why.
"""

from __future__ import annotations

from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, add, register_unavailable
from focalbench.kernels import dfl_cpu
from focalbench.losses.common import FLOAT_DTYPES
from focalbench.losses.dfl.api import distribution_focal_loss_on

_UNAVAILABLE = dfl_cpu.available()
if _UNAVAILABLE is not None:
    register_unavailable("dfl_fused", f"its C kernel could not be built: {_UNAVAILABLE}", family="dfl")
else:
    add(Implementation(
        name="dfl_fused",
        fn=distribution_focal_loss_on("cpu"),
        description="closed form as one C kernel: per-row softmax terms, gradient in the forward, the targets' range "
                    "counted in the same sweep",
        devices=("cpu",),
        dtypes=FLOAT_DTYPES,
        capabilities=get_family("dfl").capabilities,
        family="dfl",
    ))  # fmt: skip
