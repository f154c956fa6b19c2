"""Host synchronizations a call would cost on CUDA, found on any device.

On CUDA an operator whose result the host must read (``.item()``, ``int(t)``, ``bool(t)``, ``nonzero``, a boolean
mask index, ...) waits until the GPU has finished everything queued before it: inside a loss it stalls the training
step's launches. :class:`HostSyncs` is a ``TorchDispatchMode`` that records every such operator applied to a tensor
that lives on the device, or is computed from one: it runs on CPU tensors too, where it stands in for
``torch.cuda.set_sync_debug_mode("error")`` (which :func:`no_host_syncs` uses as well when the tensors are on CUDA).
So the CUDA path (``focal_loss_on("cuda")``, Triton's interpreter on the CPU) is checked for synchronizations on a
machine without a GPU, by the same code that runs on one.

Which tensors are "on the device" is said by the caller (:class:`HostSyncs`'s ``device_tensors``): on CPU tensors the
simulation cannot tell a host-resident gamma schedule tensor from a device one. Every output of an operator with a
device input is on the device too (views included), as is anything built from it; factory functions (``torch.tensor``
of a Python list) are host tensors.

Example:
    >>> import torch
    >>> x = torch.ones(3)
    >>> with HostSyncs([x]) as syncs:
    ...     _ = float(x.sum())
    >>> [name for name, _ in syncs.caught]
    ['aten._local_scalar_dense.default']
"""

from __future__ import annotations

import contextlib
import traceback
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["SYNCING", "HostSyncs", "no_host_syncs"]

_aten = torch.ops.aten

#: Operators that read a device tensor's values on the host, or whose output size depends on them (the host must
#: read it to allocate), so that the host waits for the device.
SYNCING = frozenset({
    _aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t)
    _aten.is_nonzero.default,
    _aten.equal.default,
    _aten.nonzero.default,
    _aten.argwhere.default,
    _aten.masked_select.default,
    _aten._unique2.default,
    _aten.unique_consecutive.default,
    _aten.unique_dim.default,
    _aten.repeat_interleave.Tensor,
})  # fmt: skip

#: Operators that sync only when given a boolean mask (its count of True decides the output's size).
_MASK_INDEXED = frozenset({_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default})


def _syncs(func: Any, args: tuple, kwargs: dict) -> bool:
    if func in SYNCING:
        return not (func is _aten.repeat_interleave.Tensor and kwargs.get("output_size") is not None)
    if func in _MASK_INDEXED:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())
    return False


def _caller() -> str:
    """The innermost frame outside torch and this module: where the synchronizing operator was asked for."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/torch/" not in frame.filename and not frame.filename.endswith("sync.py"):
            return f"{frame.filename}:{frame.lineno} {frame.name}: {(frame.line or '').strip()}"
    return "?"


class HostSyncs(TorchDispatchMode):
    """Records ``(operator, caller)`` in :attr:`caught` for every operator of :data:`SYNCING` (and every boolean
    mask index) applied to a device tensor: one of ``device_tensors`` or an output computed from one."""

    def __init__(self, device_tensors: Iterable[torch.Tensor]):
        super().__init__()
        self._device: dict[int, weakref.ref] = {}
        self.caught: list[tuple[str, str]] = []
        for tensor in device_tensors:
            self._mark(tensor)

    def _mark(self, tensor: torch.Tensor) -> None:
        key = id(tensor)
        self._device[key] = weakref.ref(tensor, lambda _, key=key: self._device.pop(key, None))

    def on_device(self, tensor: object) -> bool:
        if not isinstance(tensor, torch.Tensor):
            return False
        ref = self._device.get(id(tensor))
        return ref is not None and ref() is tensor

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        from_device = any(self.on_device(leaf) for leaf in tree_leaves((args, kwargs)))
        if from_device and _syncs(func, args, kwargs):
            self.caught.append((str(func), _caller()))
        out = func(*args, **kwargs)
        if from_device:
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    self._mark(leaf)
        return out

    def report(self) -> str:
        """One line per synchronization: the operator and where it was asked for."""
        return "\n".join(f"{name} at {where}" for name, where in self.caught)


@contextlib.contextmanager
def no_host_syncs(device_tensors: Iterable[torch.Tensor]) -> Iterator[HostSyncs]:
    """Within the block, record host synchronizations (:class:`HostSyncs`) and, where the tensors are on CUDA, make
    CUDA's own detector raise on one (``torch.cuda.set_sync_debug_mode("error")``); on leaving, raise
    ``AssertionError`` listing the synchronizations recorded."""
    tensors = list(device_tensors)
    cuda = any(t.is_cuda for t in tensors)
    previous = torch.cuda.get_sync_debug_mode() if cuda else None
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        with HostSyncs(tensors) as syncs:
            yield syncs
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(previous)
    if syncs.caught:
        raise AssertionError(f"{len(syncs.caught)} host synchronization(s):\n{syncs.report()}")
