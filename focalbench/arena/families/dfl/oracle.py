r"""The Distribution Focal Loss at arbitrary precision (mpmath, :data:`focalbench.arena.oracle.DIGITS` digits): the
oracle the float64 reference (``dfl_reference``) and the accuracy sweep are judged against.

It evaluates the definitions (:mod:`focalbench.losses.dfl.semantics`), not the kernels' rearrangements: per element
(logits ``z`` over ``n`` bins, target ``y``), ``y_l = min(floor(y), n - 2)``, ``y_r = y_l + 1``, ``w_l = y_r - y``,
``w_r = y - y_l``, ``-log S_k = log1p(sum_{j != k} e^{z_j - z_k})`` (nothing is one minus a number close to 1, and a
gap of 1e20 is exact in mpmath's unbounded exponent range), the loss ``w_l (-log S_{y_l}) + w_r (-log S_{y_r})`` with
a weight of exactly 0 taking its term away, and the gradient ``S_j - w_l [j = y_l] - w_r [j = y_r]`` with
``S_k - w_k`` written as ``(1 - w_k) - sum_{j != k} S_j`` where ``S_k > 1/2``. :func:`dfl_numerical_gradient`
confirms the gradient independently by high-precision numerical differentiation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mpmath

from focalbench.arena.oracle import DIGITS, row_numerical_gradient

__all__ = ["dfl_numerical_gradient", "dfl_row", "target_bins"]


def target_bins(y: float, n: int) -> tuple[int, int, float, float]:
    """``(y_l, y_r, w_l, w_r)`` of a target ``y`` in ``[0, n - 1]`` (the weights exact: mpmath numbers)."""
    left = min(math.floor(y), n - 2)
    exact = mpmath.mpf(y)
    return left, left + 1, (left + 1) - exact, exact - left


def _terms(row: Sequence, y: float):
    z = [mpmath.mpf(v) for v in row]
    n = len(z)
    left, right, w_left, w_right = target_bins(y, n)

    def neg_log_s(k: int):  # -log S_k = log1p(sum_{j != k} e^{z_j - z_k})
        return mpmath.log1p(mpmath.fsum(mpmath.exp(z_j - z[k]) for j, z_j in enumerate(z) if j != k))

    loss = mpmath.fsum(w * neg_log_s(k) for k, w in ((left, w_left), (right, w_right)) if w != 0)
    return z, left, right, w_left, w_right, loss


def dfl_row(row: Sequence[float], y: float) -> tuple[float, list[float]]:
    """Exact (to float64 rounding) loss and gradient of one element: ``row`` the logits over the bins (exactly
    representable floats, finite), ``y`` the target in ``[0, n - 1]``."""
    with mpmath.workdps(DIGITS):
        z, left, right, w_left, w_right, loss = _terms(row, y)
        top = max(z)
        total = mpmath.fsum(mpmath.exp(z_j - top) for z_j in z)
        s = [mpmath.exp(z_j - top) / total for z_j in z]
        grad = list(s)
        for k, w in ((left, w_left), (right, w_right)):
            if s[k] > mpmath.mpf(1) / 2:  # S_k - w_k = (1 - w_k) - (1 - S_k), 1 - S_k as the other bins' sum
                grad[k] = (1 - w) - mpmath.fsum(s_j for j, s_j in enumerate(s) if j != k)
            else:
                grad[k] = s[k] - w
        return float(loss), [float(v) for v in grad]


def dfl_numerical_gradient(row: Sequence[float], y: float) -> list[float]:
    """d loss / d z_j by mpmath's numerical differentiation (independent of the closed form above)."""
    return row_numerical_gradient(lambda shifted: _terms(shifted, y)[-1], row)
