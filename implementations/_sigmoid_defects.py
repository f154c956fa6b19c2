"""What the sigmoid family's implementations with known defects share: the cases a defect applies to, decided from the
case's own values (``SigmoidCase.make``), and the defects several of them have.

This module registers nothing (its name starts with ``_``, so discovery skips it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from focalbench.arena.registry import KnownDefect
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations.sigmoid_reference import reference_elements

__all__ = [
    "EMPTY_MEAN",
    "OVERFLOW_AT_THE_LARGEST_LOGIT",
    "disagreeing_infinity",
    "exceeds_accuracy_bound",
    "infinite_logit",
    "near_the_largest_logit",
    "one_minus_p_t_rounds_to_zero",
    "saturated_fractional_gamma",
    "soft_targets",
]


def one_minus_p_t_rounds_to_zero(case) -> bool:
    """``1 - (p t + (1 - p)(1 - t))`` is exactly 0 somewhere, computed in the case's dtype."""
    logits, target = case.make()
    p = torch.sigmoid(logits)
    return bool(((1 - (p * target + (1 - p) * (1 - target))) == 0).any())


def saturated_fractional_gamma(case) -> bool:
    """0 < gamma < 1 where ``1 - p_t`` (computed as one minus p_t) is 0: pow's backward there is ``inf * 0``."""
    return 0 < case.gamma < 1 and one_minus_p_t_rounds_to_zero(case)


def near_the_largest_logit(case) -> bool:
    """Logits at +-3/4 of the dtype's largest number with gamma > 1 (where autograd's product overflows)."""
    return case.magnitude == "max" and case.gamma > 1


def disagreeing_infinity(case) -> bool:
    """An infinite logit that disagrees with its target (``+inf`` with ``t < 1``, ``-inf`` with ``t > 0``: CE is +inf)
    at an element that weighs something (``alpha_t > 0``)."""
    logits, target = case.make()
    t = target.double()
    alpha_t = case.alpha * t + (1 - case.alpha) * (1 - t) if case.alpha >= 0 else torch.ones_like(t)
    disagrees = (torch.isposinf(logits) & (t < 1)) | (torch.isneginf(logits) & (t > 0))
    return bool((disagrees & (alpha_t > 0)).any())


OVERFLOW_AT_THE_LARGEST_LOGIT = KnownDefect(
    "sigmoid_finite_at_extremes",
    "near the dtype's largest logit autograd multiplies CE (~x) by the focal factor's derivative terms: the product "
    "overflows to inf and meets the sigmoid's derivative 0, a NaN gradient (gamma > 1) where the loss is finite",
    when=near_the_largest_logit,
)

EMPTY_MEAN = KnownDefect(
    "sigmoid_empty_batch", "the mean of no element is 0 / 0 = NaN", when=lambda case: case.reduction == "mean"
)


def infinite_logit(case) -> bool:
    """Some logit is +-inf."""
    logits, _ = case.make()
    return bool(torch.isinf(logits).any())


def soft_targets(case) -> bool:
    """Targets drawn uniformly in [0, 1] (``targets="soft"``; the ``"edge"`` ones sit within 1e-7 of 0, 0.5 or 1)."""
    return case.targets == "soft"


def exceeds_accuracy_bound(per_element: Callable) -> Callable:
    """A ``when`` for an accuracy defect: ``per_element(logits, target, case)`` (a loss computed the way the
    implementation computes it, differentiable) gives, at some element, a loss or gradient off by more than the
    accuracy bound from the exact one (where that is a normal number of the dtype), or NaN."""

    def when(case) -> bool:
        if case.dtype not in ACCURACY_BOUND:  # no accuracy is claimed there (half precision): nothing to explain
            return False
        logits, target = case.make()
        x = logits.clone().requires_grad_(True)
        loss = per_element(x, target, case)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        exact = reference_elements(logits.double().numpy(), target.double().numpy(), case.alpha, case.gamma)
        tiny, bound = torch.finfo(case.dtype).smallest_normal, ACCURACY_BOUND[case.dtype]
        for value, exact_value in zip((loss, grad), map(torch.from_numpy, exact), strict=True):
            normal = exact_value.abs() >= tiny
            error = (value.double() - exact_value).abs() / exact_value.abs().clamp_min(tiny)
            if bool((error[normal] > bound).any()) or bool(value.isnan().any()):
                return True
        return False

    return when
