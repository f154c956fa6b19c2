"""The varifocal loss at arbitrary precision (mpmath, :data:`focalbench.arena.oracle.DIGITS` digits): the oracle the
float64 reference (``varifocal_reference``) and the accuracy sweep are judged against.

It evaluates the definitions (:mod:`focalbench.losses.varifocal.semantics`), not the kernels' rearrangements:
``p = 1 / (1 + e^-x)``, ``1 - p = 1 / (1 + e^x)`` (so nothing is one minus a number close to 1, and ``|x| = 1e20`` is
exact in mpmath's unbounded exponent range), ``BCE = -q log p - (1 - q) log(1 - p)`` with the logs as
``-log1p(e^-+x)`` (``log(1 - 1e-131)`` would need more than 60 digits), the weight ``q`` (or 1) at a
positive and ``alpha p^gamma`` at a negative; the gradient by the chain rule, which :func:`varifocal_numerical_gradient`
confirms independently by high-precision numerical differentiation (where the gradient is the loss's derivative).
"""

from __future__ import annotations

import mpmath

from focalbench.arena.oracle import DIGITS

__all__ = ["varifocal_element", "varifocal_numerical_gradient"]


def _terms(x, q, gamma, alpha, iou_weighted: bool):
    """``(p, 1 - p, BCE, weight, d weight / dx)`` at mpmath precision."""
    x, q, gamma, alpha = (mpmath.mpf(v) for v in (x, q, gamma, alpha))
    p, s = 1 / (1 + mpmath.exp(-x)), 1 / (1 + mpmath.exp(x))
    log_p, log_s = -mpmath.log1p(mpmath.exp(-x)), -mpmath.log1p(mpmath.exp(x))  # log(1 + 1e-131) is not 0
    bce = -(q * log_p if q else 0) - ((1 - q) * log_s if q != 1 else 0)
    if q > 0:
        return p, s, bce, (q if iou_weighted else mpmath.mpf(1)), mpmath.mpf(0)
    focal = p**gamma if gamma else mpmath.mpf(1)
    return p, s, bce, alpha * focal, alpha * gamma * focal * s  # d p^gamma / dx = gamma p^gamma (1 - p)


def varifocal_element(
    x: float, q: float, gamma: float, alpha: float = 0.75, iou_weighted: bool = True, detach_weight: bool = False
) -> tuple[float, float]:
    """Exact (to float64 rounding) varifocal loss of one element (finite logit ``x``, target ``q`` in [0, 1]) and its
    gradient: ``w' BCE + w (p - q)``, with ``w'`` dropped when ``detach_weight`` (the weight a constant) and ``p - q``
    taken as ``p (1 - q) - (1 - p) q``."""
    with mpmath.workdps(DIGITS):
        p, s, bce, weight, d_weight = _terms(x, q, gamma, alpha, iou_weighted)
        q = mpmath.mpf(q)
        grad = weight * (p * (1 - q) - s * q) + (0 if detach_weight else d_weight * bce)
        return float(weight * bce), float(grad)


def varifocal_numerical_gradient(
    x: float, q: float, gamma: float, alpha: float = 0.75, iou_weighted: bool = True
) -> float:
    """d loss / d x by mpmath's numerical differentiation (independent of the chain rule above; the weight's
    derivative included: the undetached loss's)."""
    with mpmath.workdps(DIGITS):

        def loss(z):
            _, _, bce, weight, _ = _terms(z, q, gamma, alpha, iou_weighted)
            return weight * bce

        return float(mpmath.diff(loss, mpmath.mpf(x)))
