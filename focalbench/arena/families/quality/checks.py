"""The quality family's own checks (Quality Focal Loss: :mod:`focalbench.losses.quality.semantics`) and its table of
checks, named ``quality_*``: each :class:`~focalbench.arena.core.Check` with its cases
(:mod:`focalbench.arena.families.quality.cases`); the generic check functions are :mod:`focalbench.arena.checks`."""

from __future__ import annotations

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
from focalbench.arena.core import Check, CheckFn, loss_and_grad, upstream_for
from focalbench.arena.families.quality import cases as quality_cases
from focalbench.arena.registry import Implementation, get_implementation
from focalbench.arena.tolerances import compare

__all__ = ["CHECKS"]


def _bce_at_beta_zero(impl: Implementation, case, device: str) -> str | None:
    """beta = 0 equals ``F.binary_cross_entropy_with_logits`` with the same soft targets, loss and gradient."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)

    def bce(x, t, **kw):  # in float64: the tolerance is the case dtype's, the float32 BCE of x = 30 loses digits
        return F.binary_cross_entropy_with_logits(x.double(), t.double(), reduction=kw["reduction"]).to(x.dtype)

    bce_loss, bce_grad = loss_and_grad(bce, logits, target, kwargs, upstream)
    return compare(loss, bce_loss, case.dtype, "loss vs F.binary_cross_entropy_with_logits") or compare(
        grad, bce_grad, case.dtype, "gradient vs F.binary_cross_entropy_with_logits"
    )


def _sigmoid_focal_at_hard_targets(impl: Implementation, case, device: str) -> str | None:
    """Targets in {0, 1}: the sigmoid family's reference (RetinaNet's loss) without alpha and with gamma = beta,
    loss and gradient."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    sigmoid = get_implementation("sigmoid_reference")
    kwargs = {"alpha": -1.0, "gamma": case.beta, "reduction": case.reduction}
    ref_loss, ref_grad = loss_and_grad(sigmoid, logits.double(), target.double(), kwargs, upstream)
    return compare(loss, ref_loss, case.dtype, "loss vs sigmoid focal loss (alpha none, gamma = beta)") or compare(
        grad, ref_grad, case.dtype, "gradient vs sigmoid focal loss (alpha none, gamma = beta)"
    )


def _zero_where_s_equals_y(impl: Implementation, case, device: str) -> str | None:
    """Every loss element is >= 0, exactly 0 (beta > 0) where ``sigmoid(x) = y`` exactly; the gradient is finite and
    equals the reference's (0 where ``s = y``: the limit for beta > 1, the symmetric choice for beta <= 1)."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    if bool((loss < 0).any()):
        return f"negative loss {loss[loss < 0].flatten()[0].item():.9g}"
    if case.reduction == "none" and case.beta > 0:
        x, t = logits.double(), target.double()
        equal = torch.sigmoid(x) == t
        if bool((loss.double()[equal] != 0).any()):
            return f"loss {loss.double()[equal].abs().max().item():.9g} where sigmoid(x) = y: expected 0"
    ref_loss, ref_grad = reference_loss_and_grad(case, logits, target, upstream)
    return compare(loss, ref_loss, case.dtype, "loss") or compare(grad, ref_grad, case.dtype, "gradient")


def _propagates_nan(impl: Implementation, case, device: str) -> str | None:
    """A NaN logit makes its loss NaN (never a finite number); the other elements are the reference's."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    poisoned = torch.isnan(logits)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    if bool(torch.isfinite(hit).any()):
        return f"loss {hit[torch.isfinite(hit)][0].item():.9g} where a logit is NaN: expected NaN"
    clean = ~poisoned
    stand_in = torch.where(poisoned, 0.0, logits)
    ref_loss, ref_grad = reference_loss_and_grad(case, stand_in, target, upstream)
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(grad[clean], ref_grad[clean], case.dtype, "gradient elsewhere")


def _quality_check(name: str, description: str, fn: CheckFn, cases: Callable[[], list], **options) -> Check:
    return Check(f"quality_{name}", description, fn, cases, family="quality", **options)


#: The quality family's checks, each with its cases.
CHECKS: tuple[Check, ...] = (
    _quality_check(
        "matches_reference",
        "loss and gradient equal quality_reference within the dtype's tolerance",
        matches_reference,
        quality_cases.random_cases,
        skip_reference=True,
    ),
    _quality_check(
        "bce_at_beta_zero",
        "beta=0 equals F.binary_cross_entropy_with_logits with the same soft targets (loss and gradient)",
        _bce_at_beta_zero,
        quality_cases.bce_cases,
    ),
    _quality_check(
        "sigmoid_focal_at_hard_targets",
        "targets in {0, 1}: equals the sigmoid focal loss without alpha, gamma = beta (loss and gradient)",
        _sigmoid_focal_at_hard_targets,
        quality_cases.hard_target_cases,
    ),
    _quality_check(
        "zero_where_s_equals_y",
        "loss >= 0, exactly 0 where sigmoid(x) = y; a finite gradient equal to the reference's there",
        _zero_where_s_equals_y,
        quality_cases.equal_cases,
    ),
    _quality_check("gradcheck", "torch.autograd.gradcheck in float64", gradcheck, quality_cases.gradcheck_cases),
    _quality_check(
        "gradgradcheck",
        "torch.autograd.gradgradcheck in float64",
        gradgradcheck,
        quality_cases.gradcheck_cases,
        needs=frozenset({"double_backward"}),
    ),
    _quality_check(
        "create_graph",
        "create_graph=True: a gradient penalty's gradient equals quality_autograd's, or a RuntimeError at that call "
        "(where double backward is not declared)",
        create_graph,
        quality_cases.create_graph_cases,
    ),
    _quality_check(
        "compiles_fullgraph",
        "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
        compiles_fullgraph,
        quality_cases.compile_cases,
        needs=frozenset({"compile"}),
    ),
    _quality_check(
        "finite_at_saturation",
        "finite loss and gradient at logits +-1e4 to +-1e20, confident and hopeless, betas 0 to 5",
        finite_at_extremes,
        quality_cases.saturated_cases,
    ),
    _quality_check(
        "saturated_values",
        "loss and gradient equal quality_reference at logits +-1e4 to +-1e20 (sums of losses up to 1e21)",
        matches_reference,
        quality_cases.saturated_cases,
    ),
    _quality_check(
        "accurate_at_saturation",
        "every loss and gradient element within 2e-6 (fp32) / 1e-12 (fp64) relative of quality_reference at logits "
        "+-3 to +-1e20",
        accurate_at_extremes,
        quality_cases.accuracy_cases,
        skip_reference=True,
    ),
    _quality_check(
        "half_precision",
        "float16/bfloat16 logits computed in float32: no overflow (mmdet#5090's fp16 explosion), the reference's "
        "values within the half dtype's tolerance",
        matches_reference,
        quality_cases.half_cases,
    ),
    _quality_check(
        "soft_targets",
        "targets at the ends of [0, 1] (1e-30, 1e-7, 1 - 2^-24) and uniform: loss and gradient equal quality_reference",
        matches_reference,
        quality_cases.soft_target_cases,
    ),
    _quality_check(
        "propagates_nan",
        "a NaN logit gives a NaN loss, never a finite one; other elements unaffected",
        _propagates_nan,
        quality_cases.nan_cases,
    ),
    _quality_check(
        "empty_batch",
        "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
        empty_batch,
        quality_cases.empty_cases,
    ),
    _quality_check(
        "rejects_bad_input",
        "bad arguments raise ValueError/TypeError naming the argument",
        rejects_bad_input,
        quality_cases.bad_inputs,
    ),
)
