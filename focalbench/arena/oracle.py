"""Arbitrary-precision focal losses (mpmath): the oracle the float64 references and the accuracy reports use.

It evaluates the definitions, not our rearrangements: ``p_j = e^{z_j} / sum_k e^{z_k}``, ``1 - p_t = sum_{j != t} p_j``
(an identity, so no cancellation has to be resolved by precision) and ``log p_t = -log1p(sum_{j != t} e^{z_j - z_t})``,
in ``DIGITS`` significant digits with mpmath's unbounded exponent range, so gaps of 1e30 are exact. The gradient is
the paper's closed form ``a [gamma p_t (1-p_t)^(gamma-1) log p_t - (1-p_t)^gamma] (delta_jt - p_j)``, which
:func:`numerical_gradient` confirms independently by high-precision numerical differentiation. The sigmoid
family's (:func:`sigmoid_focal_element`) likewise evaluates its definitions, with :func:`sigmoid_numerical_gradient`
beside the chain rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath

__all__ = [
    "DIGITS",
    "focal_row",
    "numerical_gradient",
    "row_numerical_gradient",
    "sigmoid_focal_element",
    "sigmoid_numerical_gradient",
]

DIGITS = 60


def _loss(row: Sequence, target: int, gamma, alpha) -> tuple:
    z = [mpmath.mpf(v) for v in row]
    z_t = z[target]
    rest = mpmath.fsum(mpmath.exp(z_j - z_t) for j, z_j in enumerate(z) if j != target)
    log_p_t = -mpmath.log1p(rest)
    p_t = mpmath.exp(log_p_t)
    total = 1 + rest  # = 1 / p_t
    p = [mpmath.exp(z_j - z_t) / total for z_j in z]
    one_minus_p_t = mpmath.fsum(p_j for j, p_j in enumerate(p) if j != target)
    gamma = mpmath.mpf(gamma)
    focal = one_minus_p_t**gamma if gamma else mpmath.mpf(1)
    return -mpmath.mpf(alpha) * focal * log_p_t, p, p_t, one_minus_p_t, log_p_t


def focal_row(row: Sequence[float], target: int, gamma: float, alpha: float = 1.0) -> tuple[float, list[float]]:
    """Exact (to float64 rounding) loss and gradient of one row of logits given as exactly representable floats."""
    with mpmath.workdps(DIGITS):
        loss, p, p_t, one_minus_p_t, log_p_t = _loss(row, target, gamma, alpha)
        g = mpmath.mpf(gamma)
        # gamma * (1-p_t)^(gamma-1) is 0 at gamma = 0 whatever 1-p_t is
        pow_gm1 = g * one_minus_p_t ** (g - 1) if gamma else mpmath.mpf(0)
        factor = mpmath.mpf(alpha) * (p_t * pow_gm1 * log_p_t - (one_minus_p_t**g if gamma else 1))
        # delta_jt - p_j, with 1 - p_t taken as the sum of the other classes (no cancellation at p_t -> 1)
        grad = [factor * (one_minus_p_t if j == target else -p_j) for j, p_j in enumerate(p)]
        return float(loss), [float(v) for v in grad]


def row_numerical_gradient(loss_of_row: Callable[[list], Any], row: Sequence[float]) -> list[float]:
    """d loss / d z_j of ``loss_of_row`` (a row's loss in mpmath numbers) by mpmath's high-precision numerical
    differentiation, one logit at a time (independent of any closed form)."""
    with mpmath.workdps(DIGITS):
        grads = []
        for j in range(len(row)):

            def f(x, j=j):
                shifted = list(row)
                shifted[j] = x
                return loss_of_row(shifted)

            grads.append(float(mpmath.diff(f, mpmath.mpf(row[j]))))
        return grads


def numerical_gradient(row: Sequence[float], target: int, gamma: float, alpha: float = 1.0) -> list[float]:
    """d loss / d z_j by mpmath's high-precision numerical differentiation (independent of the closed form)."""
    return row_numerical_gradient(lambda shifted: _loss(shifted, target, gamma, alpha)[0], row)


def _sigmoid_terms(x, t, gamma, alpha) -> tuple:
    """The sigmoid family's definitions at mpmath precision: ``p``, ``1 - p``, CE, ``1 - p_t`` and ``alpha_t``.

    ``1 - p`` is ``1 / (1 + e^x)`` and ``1 - p_t`` the identity ``p (1 - t) + (1 - p) t`` (not ``1 - p_t``, which would
    ask the precision to resolve a cancellation at ``|x| = 1e20``)."""
    x, t = mpmath.mpf(x), mpmath.mpf(t)
    p, q = 1 / (1 + mpmath.exp(-x)), 1 / (1 + mpmath.exp(x))
    ce = -(t * mpmath.log(p) if t else 0) - ((1 - t) * mpmath.log(q) if t != 1 else 0)
    alpha_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else mpmath.mpf(1)
    return p, q, ce, p * (1 - t) + q * t, alpha_t


def sigmoid_focal_element(x: float, t: float, gamma: float, alpha: float = -1.0) -> tuple[float, float]:
    """Exact (to float64 rounding) sigmoid focal loss ``alpha_t (1 - p_t)^gamma CE`` of one element and its derivative
    by the chain rule, ``alpha_t [(p - t)(1 - p_t)^gamma + gamma (1 - p_t)^(gamma - 1) CE p (1 - p)(1 - 2t)]``, with
    ``p - t`` as ``p (1 - t) - (1 - p) t``. Finite ``x`` (any magnitude) and ``t`` in [0, 1]; ``alpha < 0``: none."""
    with mpmath.workdps(DIGITS):
        p, q, ce, m, alpha_t = _sigmoid_terms(x, t, gamma, alpha)
        g, t = mpmath.mpf(gamma), mpmath.mpf(t)
        focal = m**g if gamma else mpmath.mpf(1)
        d_focal = g * m ** (g - 1) * p * q * (1 - 2 * t) if gamma else mpmath.mpf(0)
        grad = alpha_t * ((p * (1 - t) - q * t) * focal + ce * d_focal)
        return float(alpha_t * focal * ce), float(grad)


def sigmoid_numerical_gradient(x: float, t: float, gamma: float, alpha: float = -1.0) -> float:
    """d loss / d x by mpmath's numerical differentiation (independent of the chain rule above)."""
    with mpmath.workdps(DIGITS):

        def loss(z):
            _, _, ce, m, alpha_t = _sigmoid_terms(z, t, gamma, alpha)
            return alpha_t * (m ** mpmath.mpf(gamma) if gamma else 1) * ce

        return float(mpmath.diff(loss, mpmath.mpf(x)))
