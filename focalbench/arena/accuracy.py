"""Accuracy sweep: each implementation's worst relative error against its family's arbitrary-precision oracle, by
the family's sweep axis (:class:`focalbench.arena.family.Sweep`: logit gap for the softmax family, logit magnitude
for the sigmoid family), so the table shows where an implementation stops being right. Exact values below the
dtype's smallest normal number are compared absolutely (:func:`focalbench.arena.checks.accuracy_errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from focalbench.arena.family import Family, get_family
from focalbench.arena.registry import Implementation

__all__ = ["AccuracyRow", "sweep"]


@dataclass(frozen=True)
class AccuracyRow:
    implementation: str
    dtype: str
    gap: float  # the value of the family's sweep axis
    max_loss_error: float
    max_grad_error: float
    worst: str  # which point of the family's grid gave the larger of the two

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def sweep(
    impls: Sequence[Implementation],
    family: str | Family,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    values: Sequence[float] | None = None,
    progress=None,
    **grid,
) -> list[AccuracyRow]:
    """One :class:`AccuracyRow` per (implementation, value of the family's axis), in axis order; ``values`` default
    to the family's, ``grid`` narrows the family's grid (e.g. ``gammas=(0.0,)``)."""
    kind = get_family(family) if isinstance(family, str) else family
    out = []
    for value in kind.sweep.values if values is None else values:
        found = kind.sweep.errors(list(impls), value, dtype, device, **grid)
        out += _worst(found, dtype, value)
        if progress is not None:
            progress(value)
    return out


def _worst(found: dict[str, list[tuple[float, float, str]]], dtype: torch.dtype, gap: float) -> list[AccuracyRow]:
    """One row per implementation: the largest loss and gradient errors of its ``(loss, gradient, where)`` entries."""
    rows = []
    for name, entries in found.items():
        worst = max(entries, key=lambda e: max(e[0], e[1]))
        loss_error, grad_error = max(e[0] for e in entries), max(e[1] for e in entries)
        rows.append(AccuracyRow(name, str(dtype).replace("torch.", ""), gap, loss_error, grad_error, worst[2]))
    return rows
