"""The kernels behind :func:`focalbench.focal_loss` and :func:`focalbench.sigmoid_focal_loss`: the product, apart
from the arena of contenders.

* :mod:`~focalbench.kernels.cpu` and :mod:`~focalbench.kernels.sigmoid_cpu`: the C kernels (``focal_cpu.c`` and
  ``sigmoid_cpu.c``, a library each), built at first use by :mod:`~focalbench.kernels.build` for the target
  :mod:`~focalbench.kernels.cpu_facts` allows, with their typed bridge;
* :mod:`~focalbench.kernels.eager` and :mod:`~focalbench.kernels.sigmoid_eager`: the closed forms in PyTorch
  operations (any device);
* :mod:`~focalbench.kernels.triton` and :mod:`~focalbench.kernels.sigmoid_triton`: the Triton kernels, the CUDA
  path (they check the arguments' values on the device: a call reads nothing back to the host).

:func:`choose` is the one place that decides which kernel a family's loss runs on a device (:data:`KERNELS`).
Nothing here is imported by ``import focalbench``; a loss imports what a call needs, at that call.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["DEVICE_CHECKED", "KERNELS", "KernelChoice", "choose", "forward_kernel", "sigmoid_forward_kernel"]

#: family -> device type -> candidates in order of preference: (module, forward kernel's name, the registered
#: implementation that mirrors it); a module whose ``available()`` returns a reason is skipped. "*": the closed form in
#: PyTorch operations, which runs on any device: what is left when no candidate of the device can run.
KERNELS: dict[str, dict[str, Any]] = {
    "softmax": {
        "cpu": (("focalbench.kernels.cpu", "forward_args", "fused"),),
        "cuda": (("focalbench.kernels.triton", "triton_forward", "triton"),),
        "*": ("focalbench.kernels.eager", "eager_forward", "fused_eager"),
    },
    "sigmoid": {
        "cpu": (("focalbench.kernels.sigmoid_cpu", "forward_args", "sigmoid_fused"),),
        "cuda": (("focalbench.kernels.sigmoid_triton", "sigmoid_triton_forward", "sigmoid_triton"),),
        "*": ("focalbench.kernels.sigmoid_eager", "eager_forward", "sigmoid_fused_eager"),
    },
}

#: The kernel modules that check the arguments' values themselves, on the device (validation then reads none).
DEVICE_CHECKED = frozenset({"focalbench.kernels.triton", "focalbench.kernels.sigmoid_triton"})


@dataclass(frozen=True)
class KernelChoice:
    """The forward kernel a loss runs, ``forward(args, need_grad) -> (loss, grad)``, the registered implementation
    (``focalbench.get_implementation``) that computes the same thing, and whether the kernel checks the values
    itself (``device_checks``: the arguments are then validated without reading a value on the host)."""

    implementation: str
    forward: Any
    device_checks: bool = False


@functools.cache
def choose(family: str, device_type: str) -> KernelChoice:
    """The kernel ``family``'s loss uses for logits on ``device_type`` (imported, and built, at first use): the
    device's own kernel where it can be built, else the closed form in PyTorch operations."""
    if family not in KERNELS:
        raise ValueError(f"family must be one of {', '.join(KERNELS)}. Got: {family!r}")
    table = KERNELS[family]
    reasons = []
    for module_name, attribute, implementation in table.get(device_type, ()):
        module = importlib.import_module(module_name)
        reason = module.available()
        if reason is None:
            return KernelChoice(implementation, getattr(module, attribute), module_name in DEVICE_CHECKED)
        reasons.append(f"{implementation}: {reason}")
    module_name, attribute, implementation = table["*"]
    if reasons:  # once per family and device (choose is cached): a typo in a setting must not pass unnoticed
        warnings.warn(
            f"focalbench: the {family} loss on {device_type} runs {implementation} (PyTorch operations, slower), "
            f"because {'; '.join(reasons)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return KernelChoice(implementation, getattr(importlib.import_module(module_name), attribute))


def forward_kernel(device_type: str):
    """The forward kernel :func:`focalbench.focal_loss` runs for logits on ``device_type``."""
    return choose("softmax", device_type).forward


def sigmoid_forward_kernel(device_type: str):
    """The forward kernel :func:`focalbench.sigmoid_focal_loss` runs for logits on ``device_type``."""
    return choose("sigmoid", device_type).forward
