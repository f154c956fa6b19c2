"""The softmax family's kernels, declared for :func:`focalbench.kernels.choose`: the C kernel on the CPU, the Triton
one on CUDA, the closed form in PyTorch operations anywhere else (or where the device's kernel cannot run).
Declaring imports no kernel: :func:`~focalbench.kernels.choose` does, at the first call of a device."""

from __future__ import annotations

from focalbench.kernels import KernelTable, choose, declare_kernels

__all__ = ["FAMILY", "KERNELS", "forward_kernel"]

FAMILY = "softmax"

KERNELS = declare_kernels(
    FAMILY,
    KernelTable(
        devices={
            "cpu": (("focalbench.kernels.cpu", "forward_args", "fused"),),
            "cuda": (("focalbench.kernels.triton", "triton_forward", "triton"),),
        },
        fallback=("focalbench.kernels.eager", "eager_forward", "fused_eager"),
        device_checked=frozenset({"focalbench.kernels.triton"}),
    ),
)


def forward_kernel(device_type: str):
    """The forward kernel the softmax loss runs for logits on ``device_type``."""
    return choose(FAMILY, device_type).forward
