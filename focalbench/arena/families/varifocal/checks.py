"""The varifocal family's own checks (:mod:`focalbench.losses.varifocal.semantics`) and its table of checks, named
``varifocal_*``: each :class:`~focalbench.arena.core.Check` with its cases
(:mod:`focalbench.arena.families.varifocal.cases`); the generic check functions are :mod:`focalbench.arena.checks`.

The gradient of a ``detach_weight=True`` call is not the derivative of its loss (RT-DETR holds the weight constant).
The checks that compare a gradient with finite differences of the loss (``varifocal_gradcheck``,
``varifocal_gradgradcheck``) therefore take only cases whose :attr:`~.cases.VarifocalCase.gradient_is_derivative`
is true; a detached case given to them would be not applicable, by the record's ``gradient_is_derivative``
(:func:`focalbench.arena.core.applicability`), never a silent pass. The detached gradient is judged against the
reference, which holds the weight constant too (``varifocal_matches_reference``, ``varifocal_detached_gradient``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import focalbench.arena.checks as generic
from focalbench.arena.checks import (
    accurate_at_extremes,
    compiles_fullgraph,
    create_graph,
    empty_batch,
    finite_at_extremes,
    matches_reference,
    reference_loss_and_grad,
    rejects_bad_input,
)
from focalbench.arena.core import Check, CheckFn, checked_output, loss_and_grad, upstream_for
from focalbench.arena.families.varifocal import cases as varifocal_cases
from focalbench.arena.registry import Implementation
from focalbench.arena.tolerances import compare

__all__ = ["CHECKS", "definition_terms"]


def definition_terms(logits: torch.Tensor, target: torch.Tensor, case) -> dict[str, torch.Tensor]:
    """Float64 ``p``, ``BCE(x, q)`` and the weight ``w`` per element, from the definitions in plain PyTorch operations
    (``BCE = (1 - q) softplus(x) + q softplus(-x)`` with ``softplus(x) = logaddexp(x, 0)``, exact at every logit)."""
    x, q = logits.detach().double(), target.detach().double()
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    p = torch.sigmoid(x)
    bce = (1 - q) * torch.logaddexp(x, zero) + q * torch.logaddexp(-x, zero)
    positive_weight = q if case.iou_weighted else torch.ones_like(q)
    weight = torch.where(q > 0, positive_weight, case.alpha * torch.exp(-case.gamma * torch.logaddexp(-x, zero)))
    return {"p": p, "bce": bce, "weight": weight, "q": q}


def _negatives_are_sigmoid_focal(impl: Implementation, case, device: str) -> str | None:
    """At ``q = 0`` the loss is the sigmoid focal loss's negative term: ``alpha p^gamma BCE(x, 0)`` is
    ``sigmoid_focal_loss(x, 0, alpha=1 - alpha, gamma)`` (whose negatives weigh ``1 - alpha``) for ``alpha <= 1``, and
    ``alpha`` times the unweighted one (``alpha=-1``) beyond; loss and gradient."""
    from focalbench import sigmoid_focal_loss

    logits, target = case.make(device)
    if bool((target != 0).any()):
        return f"{case.id} has positives: not a case of this check"
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    scale, sigmoid_alpha = (1.0, 1.0 - case.alpha) if case.alpha <= 1 else (case.alpha, -1.0)

    def focal(x, t, **kw):
        return scale * sigmoid_focal_loss(x, t, alpha=sigmoid_alpha, gamma=case.gamma, reduction=kw["reduction"])

    focal_loss, focal_grad = loss_and_grad(focal, logits.double(), target.double(), kwargs, upstream)
    return compare(loss, focal_loss, case.dtype, "loss vs sigmoid_focal_loss at q = 0") or compare(
        grad, focal_grad, case.dtype, "gradient vs sigmoid_focal_loss at q = 0"
    )


def _positives_are_weighted_bce(impl: Implementation, case, device: str) -> str | None:
    """At ``q > 0`` the loss is ``q BCE(x, q)`` (``BCE`` without ``iou_weighted``), and stays so with alpha and gamma
    changed (they weigh the negatives alone)."""
    logits, target = case.make(device)
    terms = definition_terms(logits, target, case)
    positive = terms["q"] > 0
    expected = (terms["q"] if case.iou_weighted else 1.0) * terms["bce"]
    for alpha, gamma in ((case.alpha, case.gamma), (case.alpha + 0.5, case.gamma + 1.5)):
        kwargs = {**case.kwargs(), "alpha": alpha, "gamma": gamma, "reduction": "none"}
        loss = checked_output(impl(logits, target, **kwargs), logits, target, "none")
        failure = compare(loss[positive], expected[positive], case.dtype,
                          f"positives' loss vs q BCE(x, q) at alpha={alpha:g}, gamma={gamma:g}")  # fmt: skip
        if failure:
            return failure
    return None


def _nonnegative(impl: Implementation, case, device: str) -> str | None:
    """Every element's loss is >= 0 (BCE and the weights are), NaN only where a logit is NaN."""
    logits, target = case.make(device)
    loss = checked_output(impl(logits, target, **{**case.kwargs(), "reduction": "none"}), logits, target, "none")
    wrong = ~(loss >= 0)
    if bool(wrong.any()):
        i = int(wrong.flatten().nonzero()[0])
        return f"loss {loss.flatten()[i].item():.9g} < 0 (or NaN) at flat index {i}, target {target.flatten()[i]}"
    return None


def _detached_gradient(impl: Implementation, case, device: str) -> str | None:
    """``detach_weight=True``: the gradient is ``w (p - q)`` (the weight a constant), the loss the same as without
    detaching; computed from the definitions in float64."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    attached = checked_output(impl(logits, target, **{**case.kwargs(), "detach_weight": False}), logits, target,
                              case.reduction)  # fmt: skip
    failure = compare(loss, attached, case.dtype, "loss with detach_weight vs without")
    if failure:
        return failure
    terms = definition_terms(logits, target, case)
    expected = terms["weight"] * (terms["p"] - terms["q"])
    scale = 1.0 / max(logits.numel(), 1) if case.reduction == "mean" else 1.0
    expected = expected * scale * upstream.double()
    return compare(grad, expected, case.dtype, "gradient vs w (p - q), the weight held constant")


def _reductions_agree(impl: Implementation, case, device: str) -> str | None:
    """``"sum"`` is the sum of the ``"none"`` elements and ``"mean"`` that sum over the number of elements (not of
    positives, rows or weights): mmdet's ``avg_factor`` and ultralytics' ``.mean(1).sum()`` are divisions of
    ``"sum"``."""
    logits, target = case.make(device)
    kwargs = case.kwargs()
    results = {}
    for reduction in ("none", "sum", "mean"):
        output = impl(logits, target, **{**kwargs, "reduction": reduction})
        results[reduction] = checked_output(output, logits, target, reduction).double()
    total = results["none"].sum()
    return compare(results["sum"], total, case.dtype, "'sum' vs the sum of 'none'") or compare(
        results["mean"], total / max(logits.numel(), 1), case.dtype, "'mean' vs sum / number of elements"
    )


def _propagates_nan(impl: Implementation, case, device: str) -> str | None:
    """A NaN logit makes its loss NaN (never a finite number, whatever its weight); the other elements' losses and
    gradients are the reference's."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    poisoned = torch.isnan(logits)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    if bool(torch.isfinite(hit).any()):
        return f"loss {hit[torch.isfinite(hit)][0].item():.9g} where a logit is NaN: expected NaN"
    clean = ~poisoned
    # the NaN logits replaced by 0 in the reference's call: the same elements, so the same divisor of a mean
    ref_loss, ref_grad = reference_loss_and_grad(case, torch.nan_to_num(logits, nan=0.0), target, upstream)
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(grad[clean], ref_grad[clean], case.dtype, "gradient elsewhere")


def _varifocal_check(name: str, description: str, fn: CheckFn, cases: Callable[[], list], **options) -> Check:
    return Check(f"varifocal_{name}", description, fn, cases, family="varifocal", **options)


#: The varifocal family's checks, each with its cases.
CHECKS: tuple[Check, ...] = (
    _varifocal_check(
        "matches_reference",
        "loss and gradient equal varifocal_reference within the dtype's tolerance (the detached weight's gradient "
        "included)",
        matches_reference,
        varifocal_cases.random_cases,
        skip_reference=True,
    ),
    _varifocal_check(
        "negatives_are_sigmoid_focal",
        "at q = 0 loss and gradient equal sigmoid_focal_loss(x, 0, alpha=1 - alpha, gamma) (alpha times the unweighted "
        "one for alpha > 1)",
        _negatives_are_sigmoid_focal,
        varifocal_cases.negative_cases,
    ),
    _varifocal_check(
        "positives_are_weighted_bce",
        "at q > 0 the loss is q BCE(x, q) (BCE without iou_weighted), the same at another alpha and gamma",
        _positives_are_weighted_bce,
        varifocal_cases.positive_cases,
    ),
    _varifocal_check(
        "nonnegative",
        "every element's loss is >= 0, at ordinary and saturated logits",
        _nonnegative,
        lambda: varifocal_cases.random_cases() + varifocal_cases.extreme_cases(),
        needs=frozenset({"reduction:none"}),  # judged element by element
    ),
    _varifocal_check(
        "reductions",
        "'sum' is the sum of 'none', 'mean' that sum over the number of elements",
        _reductions_agree,
        varifocal_cases.reduction_cases,
    ),
    _varifocal_check(
        "gradcheck",
        "torch.autograd.gradcheck in float64, on cases whose gradient is the loss's derivative (detach_weight=False)",
        generic.gradcheck,
        varifocal_cases.gradcheck_cases,
    ),
    _varifocal_check(
        "gradgradcheck",
        "torch.autograd.gradgradcheck in float64, on cases whose gradient is the loss's derivative",
        generic.gradgradcheck,
        varifocal_cases.gradcheck_cases,
        needs=frozenset({"double_backward"}),
    ),
    _varifocal_check(
        "detached_gradient",
        "detach_weight=True: the gradient is w (p - q), the weight a constant; the loss is the undetached one",
        _detached_gradient,
        varifocal_cases.detached_cases,
    ),
    _varifocal_check(
        "create_graph",
        "create_graph=True: a gradient penalty's gradient equals varifocal_autograd's, or a RuntimeError at that call "
        "(where double backward is not declared)",
        create_graph,
        varifocal_cases.create_graph_cases,
    ),
    _varifocal_check(
        "compiles_fullgraph",
        "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
        compiles_fullgraph,
        varifocal_cases.compile_cases,
        needs=frozenset({"compile"}),
    ),
    _varifocal_check(
        "finite_at_extremes",
        "finite loss and gradient for logits of both signs at 1e4, 1e10, 1e20 and 3/4 of the dtype's largest number, "
        "gammas 0 to 5",
        finite_at_extremes,
        varifocal_cases.extreme_cases,
    ),
    _varifocal_check(
        "accurate_at_extremes",
        "every loss and gradient element within 2e-6 (fp32) / 1e-12 (fp64) relative of varifocal_reference at "
        "logits +-3 to +-100, gammas 0.5 to 5",
        accurate_at_extremes,
        varifocal_cases.accuracy_cases,
        skip_reference=True,
    ),
    _varifocal_check(
        "half_precision",
        "float16/bfloat16 logits computed in float32 (no float16 overflow of a sum) and returned in their dtype",
        matches_reference,
        varifocal_cases.half_cases,
        skip_reference=True,
    ),
    _varifocal_check(
        "propagates_nan",
        "a NaN logit gives a NaN loss, never a finite one; other elements unaffected",
        _propagates_nan,
        varifocal_cases.nan_cases,
    ),
    _varifocal_check(
        "empty_batch",
        "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
        empty_batch,
        varifocal_cases.empty_cases,
    ),
    _varifocal_check(
        "rejects_bad_input",
        "bad arguments raise ValueError/TypeError naming the argument",
        rejects_bad_input,
        varifocal_cases.bad_inputs,
    ),
)
