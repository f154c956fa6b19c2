"""The varifocal family's kernels, declared for :func:`focalbench.kernels.choose`: the C kernel on the CPU
(``varifocal_cpu.c``), the closed form in float64 PyTorch operations anywhere else (or where the C kernel cannot be
built), the Triton kernel on CUDA (``varifocal_triton``). Declaring imports no kernel:
:func:`~focalbench.kernels.choose` does, at the first call of a device."""

from __future__ import annotations

from focalbench.kernels import KernelTable, choose, declare_kernels

__all__ = ["FAMILY", "KERNELS", "forward_kernel"]

FAMILY = "varifocal"

KERNELS = declare_kernels(
    FAMILY,
    KernelTable(
        devices={
            "cpu": (("focalbench.kernels.varifocal_cpu", "forward_args", "varifocal_fused"),),
            "cuda": (("focalbench.kernels.varifocal_triton", "varifocal_triton_forward", "varifocal_triton"),),
        },
        fallback=("focalbench.kernels.varifocal_eager", "eager_forward", "varifocal_fused_eager"),
        device_checked=frozenset({"focalbench.kernels.varifocal_triton"}),
        range_checked=frozenset({"focalbench.kernels.varifocal_cpu"}),
    ),
)


def forward_kernel(device_type: str):
    """The forward kernel the varifocal loss runs for logits on ``device_type``."""
    return choose(FAMILY, device_type).forward
