"""The dfl family's accuracy sweep, by logit scale: the logits are ``scale`` times fixed patterns over 16 bins (a
ramp, a peak at the target's bin, a peak away from it, and seeded values in [-1, 1]), each with integer targets (0,
7, 14), fractional ones (3.25, 7.5, 14.9) and targets a hair from a bin (2^-20, 1 - 2^-20, 14.98), against the mpmath
oracle (:func:`focalbench.arena.families.dfl.oracle.dfl_row`); every loss element is judged alone and every element's
gradient over the bins normwise (relative error; absolute below the dtype's smallest normal number).

The targets stay below ``n - 1.01``: what happens at the top of the range (ultralytics' clamp, mmdet's bin ``n``) is
the checks' business (``dfl_ends_of_the_range``, ``dfl_inputs_unchanged``); here it would hide every other error of
those peers behind one infinite entry.
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import loss_and_grad
from focalbench.arena.families.dfl.oracle import dfl_row

__all__ = ["BINS", "SCALES", "TARGETS", "errors"]

#: Logit scales of the sweep (the ``gap`` of its rows): 0 is the uniform distribution, 1e20 a gap no exponent spans.
SCALES = (0.0, 1.0, 3.0, 10.0, 17.0, 30.0, 50.0, 88.0, 100.0, 1e3, 1e4, 1e10, 1e20)
#: The bins of the sweep's elements (ultralytics' reg_max).
BINS = 16
#: The targets every pattern is taken with, by kind.
TARGETS = {
    "integer": (0.0, 7.0, 14.0),
    "fractional": (3.25, 7.5, 14.9),
    "near_bins": (2.0**-20, 1 - 2.0**-20, 14.98),
}


def _patterns(y: float) -> torch.Tensor:
    """Four patterns over the bins for a target ``y``: a ramp, a peak at the target's nearer bin (confident), a peak
    half the bins away (hopeless), seeded values in [-1, 1]."""
    bins = torch.arange(BINS, dtype=torch.float64)
    nearer = round(y)
    ramp = bins / (BINS - 1) * 2 - 1
    peak = torch.where(bins == nearer, 1.0, -((bins - nearer).abs() / BINS))
    away = torch.where(bins == (nearer + BINS // 2) % BINS, 1.0, -1.0)
    seeded = torch.rand(BINS, generator=torch.Generator().manual_seed(int(y * 64)), dtype=torch.float64) * 2 - 1
    return torch.stack([ramp, peak, away, seeded])


def _elements(scale: float, kind: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(elements, 16)`` (the patterns times ``scale``, rounded to ``dtype``) and their targets."""
    targets = TARGETS[kind]
    logits = torch.cat([_patterns(y) for y in targets]) * scale
    target = torch.tensor(targets, dtype=torch.float64).repeat_interleave(4)
    return logits.to(dtype), target.to(dtype)


@functools.cache
def _exact(rows: tuple, targets: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    results = [dfl_row(row, y) for row, y in zip(rows, targets, strict=True)]
    return (torch.tensor([r[0] for r in results], dtype=torch.float64),
            torch.tensor([r[1] for r in results], dtype=torch.float64))  # fmt: skip


def errors(impls, scale: float, dtype: torch.dtype, device: str, kinds=tuple(TARGETS)):
    """``{implementation: [(loss error, gradient error, where), ...]}`` at one logit scale."""
    found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
    for kind in kinds:
        logits, target = _elements(scale, kind, dtype)
        rows = tuple(tuple(float(v) for v in row) for row in logits.double())
        exact_loss, exact_grad = _exact(rows, tuple(float(v) for v in target.double()))
        where = f"scale={scale:g} targets={kind}"
        for impl in impls:
            try:
                loss, grad = loss_and_grad(impl, logits.to(device), target.to(device), {"reduction": "none"})
                result = accuracy_errors(loss, grad, exact_loss, exact_grad, dtype, -1)
            except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
                result = (float("inf"), float("inf"))
            found[impl.name].append((*result, where))
    return found
