"""The softmax family's accuracy sweep, by logit gap.

Rows are ``shift + noise`` with one class raised by ``gap``; the target is that class (confident, ``p_t -> 1``) or
another one (hopeless, ``p_t -> 0``). For every gap the sweep crosses shifts, gammas and class counts; each row is
evaluated alone against the mpmath oracle (:func:`focalbench.arena.oracle.focal_row`), its error measured as in
:func:`focalbench.arena.checks.accuracy_errors`: per loss element, per gradient row (max-norm).
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import GAMMAS, loss_and_grad
from focalbench.arena.oracle import focal_row
from focalbench.arena.registry import Implementation

__all__ = ["CLASSES", "GAPS", "SHIFTS", "errors"]

GAPS = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 80.0, 88.0, 95.0, 100.0, 110.0, 1e3, 1e5, 1e10, 1e20)
SHIFTS = (0.0, 1e3, -3e3)
CLASSES = (2, 20, 1000)



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


def errors(impls, gap: float, dtype: torch.dtype, device: str, shifts=SHIFTS, gammas=GAMMAS, classes=CLASSES):
    """``{implementation: [(loss error, gradient error, where), ...]}`` at one gap, over shifts, class counts, gammas
    and the two row kinds."""
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
                        one = slice(r, r + 1)
                        errors = _errors(impl, logits[one], target[one], exact_loss[one], exact_grad[one], gamma,
                                         dtype, device)  # fmt: skip
                        found[impl.name].append((*errors, where))
    return found
