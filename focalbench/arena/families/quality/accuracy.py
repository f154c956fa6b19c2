"""The quality family's accuracy sweep, by logit magnitude: each magnitude is taken with both signs and four targets
(0 and 1: confident and hopeless elements; 0.25 and 0.9: IoU-like soft scores), over betas, against the mpmath oracle
(:func:`focalbench.arena.families.quality.oracle.quality_element`); every loss element and every gradient element is
judged alone (relative error; absolute below the dtype's smallest normal number).
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import loss_and_grad
from focalbench.arena.families.quality.cases import BETAS
from focalbench.arena.families.quality.oracle import quality_element

__all__ = ["MAGNITUDES", "TARGETS", "errors"]

#: Logit magnitudes of the sweep (the ``gap`` of its rows).
MAGNITUDES = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 88.0, 100.0, 110.0, 1e3, 1e4, 1e10, 1e20)
#: The targets every magnitude is taken with.
TARGETS = (1.0, 0.0, 0.25, 0.9)


def _elements(magnitude: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Sixteen elements: ``+-magnitude`` (two sizes a few percent apart) with each target; shaped (4, 4)."""
    sizes = torch.tensor([1.0, 1.0371], dtype=torch.float64) * magnitude if magnitude else torch.tensor([0.0, 0.4])
    signed = torch.cat([sizes, -sizes])
    logits = signed.repeat(len(TARGETS)).to(dtype).reshape(len(TARGETS), 4)
    target = torch.tensor(TARGETS, dtype=torch.float64).repeat_interleave(4).to(dtype).reshape(len(TARGETS), 4)
    return logits, target


@functools.cache
def _exact(elements: tuple, targets: tuple, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    results = [quality_element(x, y, beta) for x, y in zip(elements, targets, strict=True)]
    return tuple(torch.tensor([r[i] for r in results], dtype=torch.float64) for i in (0, 1))


def errors(impls, magnitude: float, dtype: torch.dtype, device: str, betas=BETAS):
    """``{implementation: [(loss error, gradient error, where), ...]}`` at one logit magnitude."""
    logits, target = _elements(magnitude, dtype)
    elements = tuple(float(v) for v in logits.double().flatten())
    targets = tuple(float(v) for v in target.double().flatten())
    found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
    for beta in betas:
        exact_loss, exact_grad = _exact(elements, targets, beta)
        where = f"|x|={magnitude:g} beta={beta:g}"
        for impl in impls:
            try:
                kwargs = {"beta": beta, "reduction": "none"}
                loss, grad = loss_and_grad(impl, logits.to(device), target.to(device), kwargs)
                result = accuracy_errors(loss.flatten(), grad.reshape(-1, 1), exact_loss, exact_grad.reshape(-1, 1),
                                         dtype)  # fmt: skip
            except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
                result = (float("inf"), float("inf"))
            found[impl.name].append((*result, where))
    return found
