"""The sigmoid family's own checks (RetinaNet's loss: :mod:`focalbench.losses.sigmoid.semantics`) and its table of
checks, named ``sigmoid_*``: each :class:`~focalbench.arena.core.Check` with its cases
(:mod:`focalbench.arena.families.sigmoid.cases`); the generic check functions are :mod:`focalbench.arena.checks`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from focalbench.arena.checks import (
    accurate_at_extremes,
    compiles_fullgraph,
    create_graph,
    empty_batch,
    finite_at_extremes,
    gradcheck,
    gradgradcheck,
    matches_reference,
    reference_loss_and_grad,
    rejects_bad_input,
)
from focalbench.arena.core import Check, CheckFn, checked_output, loss_and_grad, upstream_for
from focalbench.arena.families.sigmoid import cases as sigmoid_cases
from focalbench.arena.registry import Implementation
from focalbench.arena.tolerances import compare

__all__ = ["CHECKS", "checks_reached", "limits_reference", "matches_limits"]


def _bce_at_gamma_zero(impl: Implementation, case, device: str) -> str | None:
    """gamma = 0 without weighting equals ``F.binary_cross_entropy_with_logits``, loss and gradient."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)

    def bce(x, t, **kw):
        return F.binary_cross_entropy_with_logits(x, t, reduction=kw["reduction"])

    bce_loss, bce_grad = loss_and_grad(bce, logits, target, kwargs, upstream)
    return compare(loss, bce_loss, case.dtype, "loss vs F.binary_cross_entropy_with_logits") or compare(
        grad, bce_grad, case.dtype, "gradient vs F.binary_cross_entropy_with_logits"
    )


def _sigmoid_terms(case, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 ``(1 - p_t, alpha_t)`` per element, from the definitions (``1 - p_t = p (1 - t) + (1 - p) t``)."""
    x, t = logits.double(), target.double()
    one_minus_p_t = torch.sigmoid(x) * (1 - t) + torch.sigmoid(-x) * t
    alpha_t = case.alpha * t + (1 - case.alpha) * (1 - t) if case.alpha >= 0 else torch.ones_like(t)
    return one_minus_p_t, alpha_t


def _focal_to_bce_ratio(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    fl = checked_output(impl(logits, target, **case.kwargs()), logits, target, case.reduction).double()
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="none")
    one_minus_p_t, alpha_t = _sigmoid_terms(case, logits, target)
    counted = bce > 1e-6  # the ratio is 0/0 where BCE vanishes
    expected = alpha_t * one_minus_p_t**case.gamma
    return compare((fl / bce)[counted], expected[counted], case.dtype, "FL / BCE vs alpha_t (1 - p_t)^gamma")


def limits_reference(case, logits: torch.Tensor, target: torch.Tensor, upstream):
    """The reference's loss and gradient at the limits: +-inf logits replaced by +-1e4 (``exp(-1e4)`` is exactly 0 in
    float64: p and 1 - p are 0 and 1 as at the limit) and NaN by 0, with a loss of +inf wherever an infinite logit
    disagrees with its target (CE is infinite there) and the element weighs something (``alpha_t > 0``)."""
    x = logits.detach().double()
    stand_in = torch.where(torch.isinf(x), torch.sign(x) * 1e4, torch.nan_to_num(x, nan=0.0))
    ref_loss, ref_grad = reference_loss_and_grad(case, stand_in, target, upstream)
    t = target.double()
    _, alpha_t = _sigmoid_terms(case, stand_in, target)
    infinite = ((torch.isposinf(x) & (t < 1)) | (torch.isneginf(x) & (t > 0))) & (alpha_t > 0)
    if case.reduction == "none":
        ref_loss = ref_loss.masked_fill(infinite, math.inf)
    elif bool(infinite.any()):
        ref_loss = torch.full_like(ref_loss, math.inf)
    return ref_loss, ref_grad


def matches_limits(impl: Implementation, case, device: str, scale_floor: float = 0.0) -> str | None:
    """+-inf logits take their limits: loss 0 where the target agrees, +inf where it does not, the gradient's finite
    limit; the other elements unaffected (the reference's values). ``scale_floor``: see
    :func:`focalbench.arena.tolerances.compare`."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    if loss.dtype != case.dtype or grad.dtype != case.dtype:
        return f"result/gradient dtype {loss.dtype}/{grad.dtype} != logits dtype {case.dtype}"
    ref_loss, ref_grad = limits_reference(case, logits, target, upstream)
    return compare(loss, ref_loss, case.dtype, "loss", scale_floor) or compare(
        grad, ref_grad, case.dtype, "gradient", scale_floor
    )


def checks_reached(case) -> list[str]:
    """The named checks whose cases ``case`` resembles: a declared defect of one of them may explain its failure."""
    names = ["sigmoid_matches_reference", "sigmoid_finite_at_extremes"]
    names += ["sigmoid_accurate_at_extremes"] if case.magnitude is not None else []
    names += ["sigmoid_infinite_logits"] if case.infinite else []
    names += ["sigmoid_soft_targets"] if case.targets != "hard" else []
    names += ["sigmoid_empty_batch"] if 0 in case.shape else []
    return names


def _propagates_nan(impl: Implementation, case, device: str) -> str | None:
    """A NaN logit makes its loss NaN (never a finite number, whatever its weight); the other elements' losses and
    gradients are the limits the reference computes."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    poisoned = torch.isnan(logits)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    if bool(torch.isfinite(hit).any()):
        return f"loss {hit[torch.isfinite(hit)][0].item():.9g} where a logit is NaN: expected NaN"
    ref_loss, ref_grad = limits_reference(case, logits, target, upstream)
    clean = ~poisoned
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(grad[clean], ref_grad[clean], case.dtype, "gradient elsewhere")


def _sigmoid_check(name: str, description: str, fn: CheckFn, cases: Callable[[], list], **options) -> Check:
    return Check(f"sigmoid_{name}", description, fn, cases, family="sigmoid", **options)


#: The sigmoid family's checks (RetinaNet's loss: :mod:`focalbench.losses.sigmoid.semantics`), named ``sigmoid_*``.

#: The sigmoid family's checks, each with its cases.
CHECKS: tuple[Check, ...] = (
    _sigmoid_check(
        "matches_reference",
        "loss and gradient equal sigmoid_reference within the dtype's tolerance",
        matches_reference,
        sigmoid_cases.random_cases,
        skip_reference=True,
    ),
    _sigmoid_check(
        "bce_at_gamma_zero",
        "gamma=0 without alpha equals F.binary_cross_entropy_with_logits (loss and gradient)",
        _bce_at_gamma_zero,
        sigmoid_cases.bce_cases,
    ),
    _sigmoid_check(
        "focal_to_bce_ratio",
        "FL / BCE = alpha_t (1 - p_t)^gamma elementwise",
        _focal_to_bce_ratio,
        sigmoid_cases.identity_cases,
    ),
    _sigmoid_check("gradcheck", "torch.autograd.gradcheck in float64", gradcheck, sigmoid_cases.gradcheck_cases),
    _sigmoid_check(
        "gradgradcheck",
        "torch.autograd.gradgradcheck in float64",
        gradgradcheck,
        sigmoid_cases.gradcheck_cases,
        needs=frozenset({"double_backward"}),
    ),
    _sigmoid_check(
        "create_graph",
        "create_graph=True: a gradient penalty's gradient equals sigmoid_logspace's, or a RuntimeError at that "
        "call (where double backward is not declared)",
        create_graph,
        sigmoid_cases.create_graph_cases,
    ),
    _sigmoid_check(
        "compiles_fullgraph",
        "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
        compiles_fullgraph,
        sigmoid_cases.compile_cases,
        needs=frozenset({"compile"}),
    ),
    _sigmoid_check(
        "finite_at_extremes",
        "finite loss and gradient for logits up to +-1e30 and +-3/4 of the dtype's largest number, gammas 0 to 5",
        finite_at_extremes,
        sigmoid_cases.extreme_cases,
    ),
    _sigmoid_check(
        "accurate_at_extremes",
        "every loss and gradient element within 2e-6 (fp32) / 1e-12 (fp64) relative of sigmoid_reference at "
        "logits +-3 to +-100, gammas 0 to 5",
        accurate_at_extremes,
        sigmoid_cases.accuracy_cases,
        skip_reference=True,
    ),
    _sigmoid_check(
        "infinite_logits",
        "+-inf logits take their limits: loss 0 (target agrees) or +inf, the gradient's finite limit; an "
        "element of weight 0 gives 0",
        matches_limits,
        sigmoid_cases.infinite_cases,
    ),
    _sigmoid_check(
        "propagates_nan",
        "a NaN logit gives a NaN loss, never a finite one; other elements unaffected",
        _propagates_nan,
        sigmoid_cases.nan_cases,
    ),
    _sigmoid_check(
        "soft_targets",
        "targets in (0, 1), down to 1e-30 and up to 1 - 2^-24: loss and gradient equal sigmoid_reference",
        matches_reference,
        sigmoid_cases.soft_target_cases,
    ),
    _sigmoid_check(
        "empty_batch",
        "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
        empty_batch,
        sigmoid_cases.empty_cases,
    ),
    _sigmoid_check(
        "rejects_bad_input",
        "bad arguments raise ValueError/TypeError naming the argument",
        rejects_bad_input,
        sigmoid_cases.bad_inputs,
    ),
)
