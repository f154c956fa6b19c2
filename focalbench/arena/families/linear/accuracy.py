"""The linear family's oracle and accuracy sweep, by logit scale.

The oracle (:func:`linear_rows`) takes the hidden states, weight and bias as float64 numbers and computes in mpmath
(:data:`focalbench.arena.oracle.DIGITS` digits) the exact logits ``z = h W^T + b`` (each a sum of exact products),
the softmax focal loss of each row by the softmax family's oracle (:func:`focalbench.arena.oracle.focal_row`) and the
exact gradient of the hidden states ``G W``, ``G`` the rows' logits-gradients: nothing of the implementations'
arithmetic (no float matrix product) reaches it.

The sweep (``focalbench accuracy --family linear``) scales a small head (6 rows, 5 features, 7 classes: rows whose
target is ahead, behind, and mixed) so that the logit gaps span 0 to 1e8, and judges each row's loss alone and each
row's hidden-state gradient normwise against the oracle, at gamma 0, 2 and 5.
"""

from __future__ import annotations

import functools
import math

import mpmath
import torch

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.families.linear.checks import loss_and_grads
from focalbench.arena.oracle import DIGITS, focal_row

__all__ = ["GAMMAS", "SCALES", "errors", "head", "linear_rows"]

#: Logit scales of the sweep: 0 is the uniform distribution, 1e8 a gap far past float64's exponential.
SCALES = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e8)
GAMMAS = (0.0, 2.0, 5.0)
ROWS, FEATURES, CLASSES = 6, 5, 7


def linear_rows(hidden: list[list[float]], weight: list[list[float]], bias: list[float] | None, target: list[int],
                gamma: float) -> tuple[list[float], list[list[float]]]:  # fmt: skip
    """Per row: the exact loss and the exact gradient of the hidden states (float64 numbers in, float64 out)."""
    losses, grads = [], []
    with mpmath.workdps(DIGITS):
        w = [[mpmath.mpf(v) for v in row] for row in weight]
        for h_row, t in zip(hidden, target, strict=True):
            h = [mpmath.mpf(v) for v in h_row]
            z = [mpmath.fsum(a * b for a, b in zip(h, w_row, strict=True)) + (mpmath.mpf(bias[j]) if bias else 0)
                 for j, w_row in enumerate(w)]  # fmt: skip
            loss, g = _row(tuple(z), t, gamma)
            losses.append(loss)
            grads.append([float(mpmath.fsum(mpmath.mpf(g[j]) * w[j][k] for j in range(len(w))))
                          for k in range(len(h))])  # fmt: skip
    return losses, grads


def _row(z: tuple, target: int, gamma: float) -> tuple[float, list]:
    """The softmax oracle on exact logits (mpmath numbers: the oracle converts with ``mpf``, which keeps them)."""
    with mpmath.workdps(DIGITS):
        loss, grad = focal_row(z, target, gamma)
    return loss, grad


def head(scale: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(hidden, target, weight, bias)``: a fixed small head whose logits are about ``scale`` apart, rounded to
    ``dtype``. Rows 0-1: the target's class ahead; 2-3: behind; 4-5: seeded."""
    g = torch.Generator().manual_seed(31)
    hidden = torch.randn(ROWS, FEATURES, generator=g, dtype=torch.float64)
    weight = torch.randn(CLASSES, FEATURES, generator=g, dtype=torch.float64) * scale / math.sqrt(FEATURES)
    bias = torch.randn(CLASSES, generator=g, dtype=torch.float64) * min(scale, 1.0)
    logits = hidden @ weight.T + bias
    order = logits.argsort(dim=1)
    target = torch.cat([order[:2, -1], order[2:4, 0], torch.randint(0, CLASSES, (2,), generator=g)])
    return hidden.to(dtype), target, weight.to(dtype), bias.to(dtype)


@functools.cache
def _exact(scale: float, dtype: torch.dtype, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    hidden, target, weight, bias = (t.double() if t.is_floating_point() else t for t in head(scale, dtype))
    losses, grads = linear_rows(hidden.tolist(), weight.tolist(), bias.tolist(), target.tolist(), gamma)
    return torch.tensor(losses, dtype=torch.float64), torch.tensor(grads, dtype=torch.float64)


def errors(impls, scale: float, dtype: torch.dtype, device: str, gammas=GAMMAS):
    """``{implementation: [(loss error, hidden-gradient error, where), ...]}`` at one logit scale."""
    found: dict[str, list[tuple[float, float, str]]] = {impl.name: [] for impl in impls}
    hidden, target, weight, bias = head(scale, dtype)
    for gamma in gammas:
        exact_loss, exact_grad = _exact(scale, dtype, gamma)
        kwargs = {"weight": weight.to(device), "bias": bias.to(device), "gamma": gamma, "reduction": "none",
                  "chunk_size": 4}  # fmt: skip
        for impl in impls:
            try:
                loss, grads = loss_and_grads(impl, hidden.to(device), target.to(device), kwargs)
                result = accuracy_errors(loss, grads["hidden"], exact_loss, exact_grad, dtype, 1)
            except Exception:  # noqa: BLE001 - a crash is an infinite error in this table
                result = (math.inf, math.inf)
            found[impl.name].append((*result, f"scale={scale:g} gamma={gamma:g}"))
    return found
