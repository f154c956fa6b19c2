"""The quality family's kernels, declared for :func:`focalbench.kernels.choose`: the C kernel on the CPU
(``quality_cpu.c``), the closed form in float64 PyTorch operations anywhere else (or where the C kernel cannot be
built); no Triton kernel yet, so CUDA runs the closed form. Declaring imports no kernel:
:func:`~focalbench.kernels.choose` does, at the first call of a device."""

from __future__ import annotations

from focalbench.kernels import KernelTable, choose, declare_kernels

__all__ = ["FAMILY", "KERNELS", "forward_kernel"]

FAMILY = "quality"

KERNELS = declare_kernels(
    FAMILY,
    KernelTable(
        devices={"cpu": (("focalbench.kernels.quality_cpu", "forward_args", "quality_fused"),)},
        fallback=("focalbench.kernels.quality_eager", "eager_forward", "quality_fused_eager"),
        range_checked=frozenset({"focalbench.kernels.quality_cpu"}),
    ),
)


def forward_kernel(device_type: str):
    """The forward kernel the Quality Focal Loss runs for logits on ``device_type``."""
    return choose(FAMILY, device_type).forward
