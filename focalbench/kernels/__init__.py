"""The kernels behind the product's losses (:func:`focalbench.focal_loss`, :func:`focalbench.sigmoid_focal_loss`, and
any family's): the product, apart from the arena of contenders.

* :mod:`~focalbench.kernels.cpu` and :mod:`~focalbench.kernels.sigmoid_cpu`: the C kernels (``focal_cpu.c`` and
  ``sigmoid_cpu.c``, a library each), built at first use by :mod:`~focalbench.kernels.build` for the target
  :mod:`~focalbench.kernels.cpu_facts` allows, with their typed bridge;
* :mod:`~focalbench.kernels.eager` and :mod:`~focalbench.kernels.sigmoid_eager`: the closed forms in PyTorch
  operations (any device);
* :mod:`~focalbench.kernels.triton`, :mod:`~focalbench.kernels.sigmoid_triton`, ``quality_triton``,
  ``varifocal_triton``, ``dfl_triton``: the Triton kernels, the CUDA path (they check the arguments' values on the
  device: a call reads nothing back to the host);
* ``quality_cpu`` and ``varifocal_cpu`` (``quality_cpu.c``, ``varifocal_cpu.c``, sharing ``sigmoid_math.h``): the
  detectors' soft-target losses' C kernels; ``dfl_cpu`` (``dfl_cpu.c``) the box loss's, with ``dfl_eager`` and
  ``dfl_triton``.

Each family's product declares its own table (:func:`declare_kernels`, in ``focalbench/losses/<family>/``): which
kernel modules serve a device, in order of preference, and the closed form that runs anywhere. :func:`choose` is the
one place that decides, from that table, which kernel a family's loss runs on a device. This module names no family;
nothing here is imported by ``import focalbench`` but this table; a loss imports what a call needs, at that call.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KERNELS", "KernelChoice", "KernelTable", "choose", "declare_kernels"]


@dataclass(frozen=True)
class KernelTable:
    """A family's kernels: ``devices`` maps a device type to its candidates in order of preference, each
    ``(module, forward kernel's name, the registered implementation that mirrors it)`` (a module whose
    ``available()`` returns a reason is skipped); ``fallback`` is the closed form in PyTorch operations, which runs on
    any device: what is left when no candidate of the device can run; ``device_checked`` the kernel modules that check
    the arguments' values themselves, on the device (validation then reads none)."""

    devices: Mapping[str, Sequence[tuple[str, str, str]]]
    fallback: tuple[str, str, str]
    device_checked: frozenset[str] = frozenset()
    # the kernel modules that count the targets outside [0, 1] as they compute and raise the validation's error
    # through the arguments (validation then skips that pass: the family's validate takes kernel_checks_range=True)
    range_checked: frozenset[str] = frozenset()


#: family -> its :class:`KernelTable`, as each family's product declared it (:func:`declare_kernels`).
KERNELS: dict[str, KernelTable] = {}


def declare_kernels(family: str, table: KernelTable) -> KernelTable:
    """Declare ``family``'s kernels (called by the family's product module when it is imported); returns ``table``.

    Raises:
        TypeError: ``table`` is not a :class:`KernelTable`.
        ValueError: another table is already declared for ``family``.
    """
    if not isinstance(table, KernelTable):
        raise TypeError(f"table must be a focalbench KernelTable. Got: {type(table).__name__}")
    if KERNELS.get(family, table) != table:
        raise ValueError(f"family {family!r} already has a kernel table")
    KERNELS[family] = table
    choose.cache_clear()
    return table


@dataclass(frozen=True)
class KernelChoice:
    """The forward kernel a loss runs, ``forward(args, need_grad) -> (loss, grad)``, the registered implementation
    (``focalbench.get_implementation``) that computes the same thing, and whether the kernel checks the values
    itself (``device_checks``: the arguments are then validated without reading a value on the host)."""

    implementation: str
    forward: Any
    device_checks: bool = False
    range_checked: bool = False


@functools.cache
def choose(family: str, device_type: str) -> KernelChoice:
    """The kernel ``family``'s loss uses for logits on ``device_type`` (imported, and built, at first use): the
    device's own kernel where it can be built, else the closed form in PyTorch operations."""
    if family not in KERNELS:
        raise ValueError(f"family must be one of those with declared kernels, {', '.join(KERNELS)}. Got: {family!r}")
    table = KERNELS[family]
    reasons = []
    for module_name, attribute, implementation in table.devices.get(device_type, ()):
        module = importlib.import_module(module_name)
        reason = module.available()
        if reason is None:
            return KernelChoice(implementation, getattr(module, attribute), module_name in table.device_checked,
                                module_name in table.range_checked)  # fmt: skip
        reasons.append(f"{implementation}: {reason}")
    module_name, attribute, implementation = table.fallback
    if reasons:  # once per family and device (choose is cached): a typo in a setting must not pass unnoticed
        warnings.warn(
            f"focalbench: the {family} loss on {device_type} runs {implementation} (PyTorch operations, slower), "
            f"because {'; '.join(reasons)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return KernelChoice(implementation, getattr(importlib.import_module(module_name), attribute))
