"""The kernels behind :func:`focalbench.focal_loss`: the product, apart from the arena of contenders.

* :mod:`focalbench.kernels.cpu`: the C kernel (``focal_cpu.c``), built at first use, and its typed bridge;
* :mod:`focalbench.kernels.ops`: the same kernels as PyTorch custom operators, for ``torch.compile`` and
  ``torch.export``.

Nothing here is imported by ``import focalbench``; :mod:`focalbench.loss` imports what a call needs, at that call.
"""

from __future__ import annotations

import functools

__all__ = ["forward_kernel"]


@functools.cache
def forward_kernel(device_type: str):
    """The forward kernel ``focal_loss`` uses for logits on ``device_type`` (imported, and built, at first use):
    the C kernel on the CPU where it can be built, else the closed form in PyTorch operations."""
    if device_type == "cpu":
        from focalbench.kernels import cpu

        if cpu.available() is None:
            return cpu.forward_args
    from focalbench.kernels.eager import eager_forward

    return eager_forward
