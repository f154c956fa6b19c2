"""The sigmoid family's accuracy sweep, by logit magnitude: every element is its own binary problem, so the question
is how far from 0 its logit may lie. Each magnitude is taken with both signs and both targets (confident and hopeless
elements), over gammas and alphas, against the mpmath oracle (:func:`focalbench.arena.oracle.sigmoid_focal_element`);
every loss element and every gradient element is judged alone.
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import GAMMAS, loss_and_grad
from focalbench.arena.oracle import sigmoid_focal_element

__all__ = ["ALPHAS", "MAGNITUDES", "errors"]

#: Logit magnitudes of the sigmoid family's sweep (the ``gap`` of its rows): every element is its own binary problem,
#: so the question is how far from 0 its logit may lie.
MAGNITUDES = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 80.0, 88.0, 95.0, 100.0, 110.0, 1e3, 1e5, 1e10, 1e20)
ALPHAS = (0.25, -1.0)


def _elements(magnitude: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight elements at ``+-magnitude`` (two sizes apart by a few percent), each sign with target 1 and 0: confident
    and hopeless elements, positive and negative; shaped (2, 4), as (N, C) logits (some implementations take no
    other)."""
    sizes = torch.tensor([1.0, 1.0371], dtype=torch.float64) * magnitude if magnitude else torch.tensor([0.0, 0.4])
    logits = torch.cat([sizes, -sizes, sizes, -sizes]).to(dtype).reshape(2, 4)
    target = torch.tensor([1.0] * 4 + [0.0] * 4, dtype=dtype).reshape(2, 4)
    return logits, target


@functools.cache
def _exact(elements: tuple, targets: tuple, gamma: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    results = [sigmoid_focal_element(x, t, gamma, alpha) for x, t in zip(elements, targets, strict=True)]
    return tuple(torch.tensor([r[i] for r in results], dtype=torch.float64) for i in (0, 1))


def errors(impls, magnitude: float, dtype: torch.dtype, device: str, gammas=GAMMAS, alphas=ALPHAS):
    """``{implementation: [(loss error, gradient error, where), ...]}`` at one logit magnitude."""
    logits, target = _elements(magnitude, dtype)
    elements = tuple(float(v) for v in logits.double().flatten())
    targets = tuple(float(v) for v in target.double().flatten())
    found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
    for gamma in gammas:
        for alpha in alphas:
            exact_loss, exact_grad = _exact(elements, targets, gamma, alpha)
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
    return found
