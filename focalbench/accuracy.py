"""Accuracy sweep: each implementation's worst relative error against the arbitrary-precision oracle, by logit gap.

Rows are ``shift + noise`` with one class raised by ``gap``; the target is that class (confident, ``p_t -> 1``) or
another one (hopeless, ``p_t -> 0``). For every gap the sweep crosses shifts, gammas and class counts and keeps the
maximum error, so the table shows at which gap an implementation stops being right. Errors are measured as in
:func:`focalbench.checks.accuracy_errors`: per loss element, per gradient row (max-norm), exact values below the dtype's
smallest normal number compared absolutely.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from focalbench.checks import accuracy_errors, loss_and_grad
from focalbench.oracle import focal_row
from focalbench.registry import Implementation

__all__ = ["GAPS", "AccuracyRow", "sweep"]

GAPS = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 80.0, 100.0, 1e3, 1e5, 1e10, 1e20)
SHIFTS = (0.0, 1e3, -3e3)
GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
CLASSES = (2, 20, 1000)


@dataclass(frozen=True)
class AccuracyRow:
    implementation: str
    dtype: str
    gap: float
    max_loss_error: float
    max_grad_error: float
    worst: str  # which (shift, gamma, classes, row kind) gave the larger of the two

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _logits(gap: float, shift: float, classes: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows (confident, hopeless) with the raised class at index 0."""
    g = torch.Generator().manual_seed(classes)
    noise = (torch.rand(2, classes, generator=g, dtype=torch.float64) * 2 - 1) * (1.0 if gap else 3.0)
    logits = noise + shift
    logits[:, 0] += gap
    target = torch.tensor([0, 1])
    return logits.to(dtype), target


@functools.cache
def _exact(rows: tuple, targets: tuple, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    results = [focal_row(row, t, gamma) for row, t in zip(rows, targets, strict=True)]
    loss = torch.tensor([r[0] for r in results], dtype=torch.float64)
    grad = torch.tensor([r[1] for r in results], dtype=torch.float64)
    return loss, grad


def _errors(impl: Implementation, logits, target, exact_loss, exact_grad, gamma, dtype, device) -> tuple[float, float]:
    """Errors of one row, evaluated alone (the loss of one row under reduction "sum" is that row's loss)."""
    try:
        loss, grad = loss_and_grad(impl, logits.to(device), target.to(device), {"gamma": gamma, "reduction": "sum"})
        return accuracy_errors(loss.reshape(1), grad, exact_loss, exact_grad, dtype)
    except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
        return float("inf"), float("inf")


def sweep(
    impls: list[Implementation],
    dtype: torch.dtype = torch.float32,
    gaps=GAPS,
    shifts=SHIFTS,
    gammas=GAMMAS,
    classes=CLASSES,
    device: str = "cpu",
    progress=None,
) -> list[AccuracyRow]:
    """One :class:`AccuracyRow` per (implementation, gap), in gap order."""
    out = []
    for gap in gaps:
        found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
        for shift in shifts:
            for c in classes:
                logits, target = _logits(gap, shift, c, dtype)
                rows = tuple(tuple(float(v) for v in row) for row in logits.double().tolist())
                for gamma in gammas:
                    exact_loss, exact_grad = _exact(rows, tuple(target.tolist()), gamma)
                    for r, kind in enumerate(("confident", "hopeless")):
                        where = f"shift={shift:g} gamma={gamma:g} C={c} {kind}"
                        for impl in impls:
                            errors = _errors(
                                impl,
                                logits[r : r + 1],
                                target[r : r + 1],
                                exact_loss[r : r + 1],
                                exact_grad[r : r + 1],
                                gamma,
                                dtype,
                                device,
                            )
                            found[impl.name].append((*errors, where))
        for impl in impls:
            entries = found[impl.name]
            worst = max(entries, key=lambda e: max(e[0], e[1]))
            out.append(
                AccuracyRow(
                    impl.name,
                    str(dtype).replace("torch.", ""),
                    gap,
                    max(e[0] for e in entries),
                    max(e[1] for e in entries),
                    worst[2],
                )
            )
        if progress is not None:
            progress(gap)
    return out
