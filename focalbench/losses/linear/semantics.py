r"""The one definition of the fused linear focal loss's arguments and of their validation.

.. math::

    \mathrm{FLL}(h, W, b, t) = \mathrm{FL}(h W^\top + b, t)

the softmax focal loss (:mod:`focalbench.losses.softmax.semantics`: gamma, alpha, reduction, ignore_index as there)
of the logits a linear head computes from the hidden states, without holding those logits: they are computed a chunk
of rows at a time.

Args (of every implementation):
    hidden: float16, bfloat16, float32 or float64 tensor ``(..., H)``: one row of ``H`` features per token.
    target: integer tensor of the hidden states' leading shape ``(...)``, values in ``[0, V)`` or ``ignore_index``.
    weight: ``(V, H)``, the head's weight (``nn.Linear(H, V).weight``), the hidden states' dtype and device, ``V >= 2``.
    bias: ``None`` or ``(V,)``, the hidden states' dtype and device.
    gamma, alpha, reduction, ignore_index: as :func:`focalbench.focal_loss` (alpha: ``V`` per-class weights or one).
    chunk_size: rows per chunk (``None``: :func:`default_chunk_size`, from ``V`` alone, so the memory a call needs
        beyond its inputs and gradients does not grow with the number of rows).

The logits of a chunk are computed in the hidden states' dtype by the device's matrix product (as ``nn.Linear``
computes them); the loss in at least float32 (the softmax family's kernels); the weight's and bias's gradients are
accumulated over the chunks in at least float32 and returned in their dtype.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from focalbench.losses.common import FLOAT_DTYPES, shape_of
from focalbench.losses.softmax.semantics import FocalArgs
from focalbench.losses.softmax.semantics import validate as validate_softmax

__all__ = ["CHUNK_ELEMENTS", "DEFAULTS", "LinearArgs", "default_chunk_size", "validate"]

#: The keyword arguments every implementation shares, with their defaults (weight has none: it is required).
DEFAULTS = {"weight": None, "bias": None, "gamma": 2.0, "alpha": None, "reduction": "mean", "ignore_index": -100,
            "chunk_size": None}  # fmt: skip

#: Logits a chunk holds by default: 2^24 (64 MiB in float32; the chunk's gradient as much again). Each chunk adds
#: its rank-``chunk`` product into the weight's whole gradient (``V x H`` read and written): fewer, larger chunks
#: spend less of the call there.
CHUNK_ELEMENTS = 1 << 24


def default_chunk_size(vocabulary: int) -> int:
    """Rows per chunk: :data:`CHUNK_ELEMENTS` logits, at least 64 rows (a matrix product keeps its speed from about
    64 rows), a power of two; from ``V`` alone, never from the number of rows."""
    rows = max(64, CHUNK_ELEMENTS // max(vocabulary, 1))
    return 1 << (rows.bit_length() - 1)


@dataclass(frozen=True)
class LinearArgs:
    """Validated, normalized arguments of one fused linear focal-loss call.

    ``hidden`` is ``(N, H)`` (the leading dimensions flattened), ``target`` int64 ``(N,)``; ``softmax`` holds the
    softmax family's validated arguments (gamma, alpha, reduction, ignore_index, the counted rows) for logits of shape
    ``(N, V)``, whose ``logits`` are a zero-stride placeholder (no memory: the logits are never held); ``loss_shape``
    is the ``reduction="none"`` loss's shape (the target's as given)."""

    hidden: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    target: torch.Tensor
    softmax: FocalArgs
    chunk_size: int
    loss_shape: tuple[int, ...]

    @property
    def logits(self) -> torch.Tensor:
        """The first input, where the other families have their logits (its device and dtype are the call's)."""
        return self.hidden

    @property
    def reduction(self) -> str:
        return self.softmax.reduction

    @property
    def vocabulary(self) -> int:
        return self.weight.shape[0]


def validate(
    hidden: object,
    target: object,
    *,
    weight: object = None,
    bias: object = None,
    gamma: object = 2.0,
    alpha: object = None,
    reduction: object = "mean",
    ignore_index: object = -100,
    chunk_size: object = None,
    read_values: bool = True,
    device_checks: bool = False,
) -> LinearArgs:
    """Check every argument before any computation and return them normalized (``read_values`` and
    ``device_checks`` as in :func:`focalbench.losses.softmax.semantics.validate`).

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(2, 3, 8), torch.tensor([[0, 1, 2], [3, -100, 4]]), weight=torch.zeros(5, 8))
        >>> tuple(args.hidden.shape), args.vocabulary, args.loss_shape, args.softmax.count
        ((6, 8), 5, (2, 3), 5)
    """
    for name, value in (("hidden", hidden), ("weight", weight), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor. Got: {type(value).__name__}")
    if hidden.dtype not in FLOAT_DTYPES:
        raise TypeError(f"hidden must be float16, bfloat16, float32 or float64. Got: {hidden.dtype}")
    if hidden.dim() < 1:
        raise ValueError(
            f"hidden must have shape (..., H), one row of H features per token. Got: shape {shape_of(hidden)}"
        )
    features = hidden.shape[-1]
    if weight.dtype != hidden.dtype:
        raise TypeError(f"weight must have the hidden states' dtype ({hidden.dtype}). Got: {weight.dtype}")
    if weight.dim() != 2 or weight.shape[1] != features:
        raise ValueError(
            f"weight must have shape (V, {features}) for hidden of shape {shape_of(hidden)}. "
            f"Got: shape {shape_of(weight)}"
        )
    if weight.shape[0] < 2:
        raise ValueError(f"weight must have at least 2 rows (classes). Got: shape {shape_of(weight)}")
    if weight.device != hidden.device:
        raise ValueError(
            f"weight must be on the hidden states' device ({hidden.device}). Got: weight on {weight.device}"
        )
    vocabulary = weight.shape[0]
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be None or a torch.Tensor. Got: {type(bias).__name__}")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"bias must have the hidden states' dtype ({hidden.dtype}). Got: {bias.dtype}")
        if shape_of(bias) != (vocabulary,):
            raise ValueError(
                f"bias must have shape ({vocabulary},), one per row of weight. Got: shape {shape_of(bias)}"
            )
        if bias.device != hidden.device:
            raise ValueError(f"bias must be on the hidden states' device ({hidden.device}). Got: bias on {bias.device}")
    if chunk_size is None:
        chunk = default_chunk_size(vocabulary)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be None or an int >= 1. Got: {type(chunk_size).__name__} {chunk_size!r}")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be None or an int >= 1. Got: {chunk_size}")
    else:
        chunk = int(chunk_size)
    if isinstance(target, torch.Tensor) and shape_of(target) != shape_of(hidden)[:-1]:
        raise ValueError(
            f"target must have shape {shape_of(hidden)[:-1]} for hidden of shape {shape_of(hidden)}. "
            f"Got: shape {shape_of(target)}"
        )
    rows = hidden.reshape(-1, features)
    # the softmax family's checks of target, gamma, alpha, reduction and ignore_index, on (N, V) logits that hold no
    # memory (a zero-stride view of one element: only their shape, dtype and device are read)
    placeholder = hidden.new_zeros(()).expand(rows.shape[0], vocabulary)
    softmax = validate_softmax(placeholder, target.reshape(-1), gamma=gamma, alpha=alpha, reduction=reduction,
                               ignore_index=ignore_index, read_values=read_values,
                               device_checks=device_checks)  # fmt: skip
    return LinearArgs(rows, weight, bias, softmax.target, softmax, chunk, tuple(target.shape))
