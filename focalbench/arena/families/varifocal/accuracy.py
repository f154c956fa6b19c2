"""The varifocal family's accuracy sweep, by logit magnitude: every element is its own binary problem, so the question
is how far from 0 its logit may lie. Each magnitude is taken with both signs and three targets (a negative, a hard
positive, an IoU-like 0.3), over gammas, alphas and the three weightings (IoU-weighted, unweighted positives, the
detached weight), against the mpmath oracle (:func:`focalbench.arena.families.varifocal.oracle.varifocal_element`);
every loss element and every gradient element is judged alone.
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import loss_and_grad
from focalbench.arena.families.varifocal.oracle import varifocal_element

__all__ = ["ALPHAS", "GAMMAS", "MAGNITUDES", "TARGETS", "WEIGHTINGS", "errors"]

#: Logit magnitudes of the sweep, up to 1e20.
MAGNITUDES = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 80.0, 88.0, 95.0, 100.0, 110.0, 1e3, 1e5, 1e10, 1e20)
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
ALPHAS = (0.75, 0.25)
#: A negative, a hard positive and an IoU-like positive (0.3 rounded to the dtype is what the oracle gets).
TARGETS = (0.0, 1.0, 0.3)
#: (iou_weighted, detach_weight)
WEIGHTINGS = ((True, False), (False, False), (True, True))


def _elements(magnitude: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Four logits a target, ``+-magnitude`` at two sizes a few percent apart, as (3, 4) rows."""
    sizes = torch.tensor([1.0, 1.0371], dtype=torch.float64) * magnitude if magnitude else torch.tensor([0.0, 0.4])
    row = torch.cat([sizes, -sizes])
    logits = row.repeat(len(TARGETS)).to(dtype).reshape(len(TARGETS), 4)
    target = torch.tensor(TARGETS, dtype=torch.float64).repeat_interleave(4).to(dtype).reshape(len(TARGETS), 4)
    return logits, target


@functools.cache
def _exact(elements: tuple, targets: tuple, gamma: float, alpha: float, weighting: tuple[bool, bool]):
    results = [varifocal_element(x, q, gamma, alpha, *weighting) for x, q in zip(elements, targets, strict=True)]
    return tuple(torch.tensor([r[i] for r in results], dtype=torch.float64) for i in (0, 1))


def errors(impls, magnitude: float, dtype: torch.dtype, device: str, gammas=GAMMAS, alphas=ALPHAS,
           weightings=WEIGHTINGS):  # fmt: skip
    """``{implementation: [(loss error, gradient error, where), ...]}`` at one logit magnitude."""
    logits, target = _elements(magnitude, dtype)
    elements = tuple(float(v) for v in logits.double().flatten())
    targets = tuple(float(v) for v in target.double().flatten())
    found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
    for gamma in gammas:
        for alpha in alphas:
            for iou_weighted, detach_weight in weightings:
                exact_loss, exact_grad = _exact(elements, targets, gamma, alpha, (iou_weighted, detach_weight))
                where = (f"|x|={magnitude:g} gamma={gamma:g} alpha={alpha:g} iou_weighted={iou_weighted} "
                         f"detach_weight={detach_weight}")  # fmt: skip
                kwargs = {"gamma": gamma, "alpha": alpha, "iou_weighted": iou_weighted,
                          "detach_weight": detach_weight, "reduction": "none"}  # fmt: skip
                for impl in impls:
                    try:
                        loss, grad = loss_and_grad(impl, logits.to(device), target.to(device), kwargs)
                        errors = accuracy_errors(loss.flatten(), grad.reshape(-1, 1), exact_loss,
                                                 exact_grad.reshape(-1, 1), dtype)  # fmt: skip
                    except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
                        errors = (float("inf"), float("inf"))
                    found[impl.name].append((*errors, where))
    return found
