"""The quality family's kernels, declared for :func:`focalbench.kernels.choose`: the C kernel on the CPU
(``quality_cpu.c``), the closed form in float64 PyTorch operations anywhere else (or where the C kernel cannot be
built), the Triton kernel on CUDA (``quality_triton``). Declaring imports no kernel:
:func:`~focalbench.kernels.choose` does, at the first call of a device."""

from __future__ import annotations

from focalbench.kernels import KernelTable, choose, declare_kernels

__all__ = ["FAMILY", "KERNELS", "forward_kernel"]

FAMILY = "quality"

KERNELS = declare_kernels(
    FAMILY,
    KernelTable(
        devices={
            "cpu": (("focalbench.kernels.quality_cpu", "forward_args", "quality_fused"),),
            "cuda": (("focalbench.kernels.quality_triton", "quality_triton_forward", "quality_triton"),),
        },
        fallback=("focalbench.kernels.quality_eager", "eager_forward", "quality_fused_eager"),
        device_checked=frozenset({"focalbench.kernels.quality_triton"}),
        range_checked=frozenset({"focalbench.kernels.quality_cpu"}),
    ),
)


def forward_kernel(device_type: str):
    """The forward kernel the Quality Focal Loss runs for logits on ``device_type``."""
    return choose(FAMILY, device_type).forward
