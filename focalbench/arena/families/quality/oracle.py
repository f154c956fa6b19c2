r"""The Quality Focal Loss at arbitrary precision (mpmath, :data:`focalbench.arena.oracle.DIGITS` digits): the oracle
``quality_reference`` and the accuracy sweep are judged against.

It evaluates the definitions, not the kernels' rearrangements: ``s = 1 / (1 + e^{-x})``, ``1 - s = 1 / (1 + e^x)``
(an identity, so no cancellation has to be resolved by precision), ``log s = -log1p(e^{-x})``,
``BCE = -y log s - (1 - y) log(1 - s)``, ``QFL = |y - s|^beta BCE`` with ``y - s = y (1 - s) - (1 - y) s``, and the
derivative by the chain rule, ``|d|^beta (s - y) + beta |d|^(beta - 1) sign(s - y) s (1 - s) BCE`` (the second term
0 where ``s = y``: the definition the family documents), which :func:`quality_numerical_gradient` confirms by
high-precision numerical differentiation.
"""

from __future__ import annotations

import mpmath

from focalbench.arena.oracle import DIGITS

__all__ = ["quality_element", "quality_numerical_gradient"]


def _terms(x, y):
    x, y = mpmath.mpf(x), mpmath.mpf(y)
    s, q = 1 / (1 + mpmath.exp(-x)), 1 / (1 + mpmath.exp(x))
    log_s, log_q = -mpmath.log1p(mpmath.exp(-x)), -mpmath.log1p(mpmath.exp(x))
    bce = -(y * log_s if y else 0) - ((1 - y) * log_q if y != 1 else 0)
    return s, q, bce, s * (1 - y) - q * y  # the last: s - y


def quality_element(x: float, y: float, beta: float) -> tuple[float, float]:
    """Exact (to float64 rounding) Quality Focal Loss of one element and its derivative; finite ``x`` (any
    magnitude), ``y`` in [0, 1], ``beta >= 0``."""
    with mpmath.workdps(DIGITS):
        s, q, bce, d = _terms(x, y)
        b = mpmath.mpf(beta)
        weight = abs(d) ** b if beta else mpmath.mpf(1)
        second = b * abs(d) ** (b - 1) * mpmath.sign(d) * s * q * bce if (beta and d != 0) else mpmath.mpf(0)
        return float(weight * bce), float(weight * d + second)


def quality_numerical_gradient(x: float, y: float, beta: float) -> float:
    """d loss / d x by mpmath's numerical differentiation (independent of the chain rule above)."""
    with mpmath.workdps(DIGITS):

        def loss(z):
            _, _, bce, d = _terms(z, y)
            return (abs(d) ** mpmath.mpf(beta) if beta else 1) * bce

        return float(mpmath.diff(loss, mpmath.mpf(x)))
