"""The kernels behind :func:`focalbench.focal_loss` and :func:`focalbench.sigmoid_focal_loss`: the product, apart
from the arena of contenders.

* :mod:`focalbench.kernels.cpu`: the C kernel (``focal_cpu.c``), built at first use, and its typed bridge;
* :mod:`focalbench.kernels.ops`: the same kernels as PyTorch custom operators, for ``torch.compile`` and
  ``torch.export``;
* the sigmoid family's: :mod:`~focalbench.kernels.sigmoid_cpu` (a function of the same C library),
  :mod:`~focalbench.kernels.sigmoid_eager`, :mod:`~focalbench.kernels.sigmoid_triton` and
  :mod:`~focalbench.kernels.sigmoid_ops`.

Nothing here is imported by ``import focalbench``; :mod:`focalbench.loss` imports what a call needs, at that call.
"""

from __future__ import annotations

import functools

__all__ = ["forward_kernel", "sigmoid_forward_kernel"]


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


@functools.cache
def sigmoid_forward_kernel(device_type: str):
    """The forward kernel ``sigmoid_focal_loss`` uses for logits on ``device_type``, as :func:`forward_kernel` chooses
    for the softmax family: the C kernel on the CPU where it can be built, else the float64 closed form."""
    if device_type == "cpu":
        from focalbench.kernels import sigmoid_cpu

        if sigmoid_cpu.available() is None:
            return sigmoid_cpu.forward_args
    from focalbench.kernels.sigmoid_eager import eager_forward

    return eager_forward
