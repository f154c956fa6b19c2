"""Accuracy sweep: each implementation's worst relative error against the arbitrary-precision oracle, by logit gap
(the softmax family) or by logit magnitude (the sigmoid family, :func:`sigmoid_sweep`).

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

__all__ = ["GAPS", "MAGNITUDES", "AccuracyRow", "sigmoid_sweep", "sweep"]

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
        out += _worst(found, dtype, gap)
        if progress is not None:
            progress(gap)
    return out


def _worst(found: dict[str, list[tuple[float, float, str]]], dtype: torch.dtype, gap: float) -> list[AccuracyRow]:
    """One row per implementation: the largest loss and gradient errors of its ``(loss, gradient, where)`` entries."""
    rows = []
    for name, entries in found.items():
        worst = max(entries, key=lambda e: max(e[0], e[1]))
        loss_error, grad_error = max(e[0] for e in entries), max(e[1] for e in entries)
        rows.append(AccuracyRow(name, str(dtype).replace("torch.", ""), gap, loss_error, grad_error, worst[2]))
    return rows


# --- the sigmoid family -----------------------------------------------------------------------------------------------

#: Logit magnitudes of the sigmoid family's sweep (the ``gap`` of its rows): every element is its own binary problem,
#: so the question is how far from 0 its logit may lie.
MAGNITUDES = GAPS
SIGMOID_ALPHAS = (0.25, -1.0)


def _sigmoid_elements(magnitude: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight elements at ``+-magnitude`` (two sizes apart by a few percent), each sign with target 1 and 0: confident
    and hopeless elements, positive and negative; shaped (2, 4), as (N, C) logits (some implementations take no
    other)."""
    sizes = torch.tensor([1.0, 1.0371], dtype=torch.float64) * magnitude if magnitude else torch.tensor([0.0, 0.4])
    logits = torch.cat([sizes, -sizes, sizes, -sizes]).to(dtype).reshape(2, 4)
    target = torch.tensor([1.0] * 4 + [0.0] * 4, dtype=dtype).reshape(2, 4)
    return logits, target


@functools.cache
def _sigmoid_exact(elements: tuple, targets: tuple, gamma: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    from focalbench.oracle import sigmoid_focal_element

    results = [sigmoid_focal_element(x, t, gamma, alpha) for x, t in zip(elements, targets, strict=True)]
    return tuple(torch.tensor([r[i] for r in results], dtype=torch.float64) for i in (0, 1))


def sigmoid_sweep(
    impls: list[Implementation],
    dtype: torch.dtype = torch.float32,
    magnitudes=MAGNITUDES,
    gammas=GAMMAS,
    alphas=SIGMOID_ALPHAS,
    device: str = "cpu",
    progress=None,
) -> list[AccuracyRow]:
    """One :class:`AccuracyRow` per (implementation, logit magnitude) of the sigmoid family: the worst relative error of
    every loss element and every gradient element against the oracle (:func:`focalbench.oracle.sigmoid_focal_element`),
    over gammas, alphas, both signs and both targets; ``gap`` holds the magnitude."""
    out = []
    for magnitude in magnitudes:
        logits, target = _sigmoid_elements(magnitude, dtype)
        rows = tuple(float(v) for v in logits.double().flatten())
        targets = tuple(float(v) for v in target.double().flatten())
        found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
        for gamma in gammas:
            for alpha in alphas:
                exact_loss, exact_grad = _sigmoid_exact(rows, targets, gamma, alpha)
                where = f"|x|={magnitude:g} gamma={gamma:g} alpha={alpha:g}"
                for impl in impls:
                    try:
                        kwargs = {"gamma": gamma, "alpha": alpha, "reduction": "none"}
                        loss, grad = loss_and_grad(impl, logits.to(device), target.to(device), kwargs)
                        errors = accuracy_errors(loss.flatten(), grad.reshape(-1, 1), exact_loss,
                                                 exact_grad.reshape(-1, 1), dtype)  # fmt: skip
                    except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
                        errors = (float("inf"), float("inf"))
                    found[impl.name].append((*errors, where))
        out += _worst(found, dtype, magnitude)
        if progress is not None:
            progress(magnitude)
    return out
