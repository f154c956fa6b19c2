"""The dfl family's kernels, declared for :func:`focalbench.kernels.choose`: the C kernel on the CPU (``dfl_cpu.c``),
the closed form in float64 PyTorch operations anywhere else (or where the C kernel cannot be built), the Triton kernel
on CUDA (``dfl_triton``). Declaring imports no kernel: :func:`~focalbench.kernels.choose` does, at the first call of a
device."""

from __future__ import annotations

from focalbench.kernels import KernelTable, choose, declare_kernels

__all__ = ["FAMILY", "KERNELS", "forward_kernel"]

FAMILY = "dfl"

KERNELS = declare_kernels(
    FAMILY,
    KernelTable(
        devices={
            "cpu": (("focalbench.kernels.dfl_cpu", "forward_args", "dfl_fused"),),
            "cuda": (("focalbench.kernels.dfl_triton", "dfl_triton_forward", "dfl_triton"),),
        },
        fallback=("focalbench.kernels.dfl_eager", "eager_forward", "dfl_fused_eager"),
        device_checked=frozenset({"focalbench.kernels.dfl_triton"}),
        range_checked=frozenset({"focalbench.kernels.dfl_cpu"}),
    ),
)


def forward_kernel(device_type: str):
    """The forward kernel the Distribution Focal Loss runs for logits on ``device_type``."""
    return choose(FAMILY, device_type).forward
