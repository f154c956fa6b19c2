"""The softmax family's own checks and its table of checks: each :class:`~focalbench.arena.core.Check` with the
cases it runs on (the generic check functions are :mod:`focalbench.arena.checks`, the cases
:mod:`focalbench.arena.families.softmax.cases`)."""

from __future__ import annotations

import functools
import math

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
    rejects_bad_input,
)
from focalbench.arena.core import Check, checked_output, loss_and_grad, upstream_for
from focalbench.arena.families.softmax.cases import (
    Case,
    absent_class_cases,
    bad_inputs,
    beyond_range_cases,
    compile_cases,
    create_graph_cases,
    empty_cases,
    extreme_cases,
    garbage_cases,
    impossible_target_cases,
    poisoned_cases,
    random_cases,
)
from focalbench.arena.registry import Implementation, get_implementation
from focalbench.arena.tolerances import TOLERANCES, compare

__all__ = ["CHECKS", "REFERENCE", "checks_reached", "matches_limits"]

REFERENCE = "numpy_reference"


def _cross_entropy_at_gamma_zero(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    kwargs = case.kwargs()
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream_for(case, device))

    def ce(x, t, **kw):
        return F.cross_entropy(x, t, reduction=kw["reduction"], ignore_index=kw["ignore_index"])

    ce_loss, ce_grad = loss_and_grad(ce, logits, target, kwargs, upstream_for(case, device))
    if case.reduction == "mean" and not bool((target != case.ignore_index).any()):
        ce_loss = torch.zeros_like(ce_loss)  # F.cross_entropy gives NaN here; our semantics says 0
        ce_grad = torch.zeros_like(ce_grad)
    return compare(loss, ce_loss, case.dtype, "loss vs F.cross_entropy") or compare(
        grad, ce_grad, case.dtype, "gradient vs F.cross_entropy"
    )


def _finite_stand_in(logits: torch.Tensor) -> torch.Tensor:
    """Float64 ``logits`` with every -inf replaced by a finite number 1e4 below the smallest finite logit.

    ``exp`` of a difference of 1e4 is exactly 0 in float64, so the reference computes on finite numbers what the
    limit is: a class at -inf absent, a target at -inf with ``p_t = 0`` (gradient ``-alpha_t`` there, ``alpha_t q_j``
    elsewhere) and a loss that is large where the limit is +inf.
    """
    x = logits.detach().double()
    finite = x[torch.isfinite(x)]
    low = (float(finite.min()) if finite.numel() else 0.0) - 1e4
    return torch.where(torch.isneginf(x), low, x)


def matches_limits(impl: Implementation, case: Case, device: str, scale_floor: float = 0.0) -> str | None:
    """Loss and gradient equal the reference's on the finite stand-in (the limits), with a loss of +inf wherever a
    target is impossible, and a gradient of exactly 0 at every non-target class whose logit is -inf.

    ``scale_floor``: see :func:`focalbench.arena.tolerances.compare`."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    if loss.dtype != case.dtype or grad.dtype != case.dtype:
        return f"result/gradient dtype {loss.dtype}/{grad.dtype} != logits dtype {case.dtype}"
    reference = get_implementation(REFERENCE)
    ref_loss, ref_grad = loss_and_grad(reference, _finite_stand_in(logits), target, kwargs, upstream)
    counted = target != case.ignore_index
    at_target = torch.where(counted, target, 0).long().unsqueeze(1)
    impossible = counted & torch.isneginf(logits.gather(1, at_target).squeeze(1))
    impossible &= _alpha_t(case, at_target.squeeze(1)) > 0  # an element of weight 0 weighs nothing, even there
    if case.reduction == "none":
        ref_loss = ref_loss.masked_fill(impossible, math.inf)
    elif bool(impossible.any()):
        ref_loss = torch.full_like(ref_loss, math.inf)
    failure = compare(loss, ref_loss, case.dtype, "loss", scale_floor) or compare(
        grad, ref_grad, case.dtype, "gradient", scale_floor
    )
    if failure:
        return failure
    absent = torch.isneginf(logits).scatter_(1, at_target, False)
    if bool((grad[absent] != 0).any()):
        return f"gradient at {int((grad[absent] != 0).sum())} class(es) whose logit is -inf is not exactly 0"
    return None


def _alpha_t(case: Case, target: torch.Tensor) -> torch.Tensor:
    """The case's float64 weight of each element (at class ``target``): 1 without alpha."""
    alpha = case.alpha()
    if alpha is None or isinstance(alpha, float):
        return torch.full(target.shape, 1.0 if alpha is None else alpha, dtype=torch.float64, device=target.device)
    return torch.as_tensor(alpha, dtype=torch.float64, device=target.device)[target.long()]


def _focal_terms(case: Case, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact-ish float64 ``(p_t, alpha_t, ce)`` per element for a case without ignored elements."""
    logits, target = case.make(device)
    log_p = torch.log_softmax(logits.double(), dim=1)
    target = target.long()
    log_p_t = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    return log_p_t.exp(), _alpha_t(case, target), -log_p_t


def _focal_below_cross_entropy(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    fl = checked_output(impl(logits, target, **case.kwargs()), logits, target, case.reduction).double()
    _, alpha_t, ce = _focal_terms(case, device)
    ce = alpha_t * ce  # FL <= alpha_t CE: the focal factor (1 - p_t)^gamma is at most 1
    slack = TOLERANCES[case.dtype].rtol * ce + TOLERANCES[case.dtype].atol * float(ce.max())
    above = fl > ce + slack
    if bool(above.any()):
        i = int(above.flatten().nonzero()[0])
        return f"FL > CE at element {i}: {fl.flatten()[i].item():.9g} > {ce.flatten()[i].item():.9g}"
    return None


def _focal_to_cross_entropy_ratio(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    fl = checked_output(impl(logits, target, **case.kwargs()), logits, target, case.reduction).double()
    p_t, alpha_t, ce = _focal_terms(case, device)
    expected = alpha_t * (1 - p_t) ** case.gamma
    counted = ce > 1e-6  # the ratio is 0/0 where CE vanishes
    return compare((fl / ce)[counted], expected[counted], case.dtype, "FL / CE vs alpha_t (1 - p_t)^gamma")


def _paper_figure_1(impl: Implementation, case: Case, device: str) -> str | None:
    """Lin et al. (2017), Fig. 1, gamma = 2: FL is 100x below CE at p_t = 0.9, 1000x at p_t = 1 - 1/sqrt(1000)."""
    failures = []
    for p_t, factor in ((0.9, 100.0), (1 - 1 / math.sqrt(1000), 1000.0)):
        logits = torch.tensor([[math.log(p_t / (1 - p_t)), 0.0]], dtype=torch.float64, device=device)
        target = torch.zeros(1, dtype=torch.long, device=device)
        loss = impl(logits, target, gamma=2.0, alpha=None, reduction="sum", ignore_index=-100)
        fl = float(checked_output(loss, logits, target, "sum"))
        ce = -math.log(p_t)
        if not math.isclose(fl * factor, ce, rel_tol=1e-9):
            failures.append(f"p_t={p_t:.6f}: CE/FL = {ce / fl:.9g}, expected {factor:g}")
    return "; ".join(failures) or None


def _propagates_non_finite(impl: Implementation, case: Case, device: str) -> str | None:
    """+inf or NaN in a counted element: its loss is NaN or +inf, never a finite number (``"inf-target"``, +inf at the
    target alone, may also give its limit 0; its cases are ``reduction="none"``); the other elements' losses and
    gradients stay the reference's."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    ref_loss, ref_grad = loss_and_grad(get_implementation(REFERENCE), logits.double(), target, kwargs, upstream)
    poisoned = (torch.isnan(logits) | torch.isposinf(logits)).any(dim=1)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    limit = (hit == 0) if case.poison == "inf-target" else torch.zeros_like(hit, dtype=torch.bool)
    wrong = torch.isfinite(hit) & ~limit
    if bool(wrong.any()):
        return f"loss {hit[wrong][0].item():.9g} where a logit is {case.poison}: expected NaN or +inf"
    clean = ~poisoned
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(
        grad.movedim(1, -1)[clean], ref_grad.movedim(1, -1)[clean], case.dtype, "gradient elsewhere"
    )


def _ignored_are_inert(impl: Implementation, case: Case, device: str) -> str | None:
    """Ignored elements holding -inf, NaN or +inf change nothing: loss and gradient as with finite logits there, and
    their own gradient exactly 0."""
    logits, target = case.make(device)
    clean, _ = case.with_(garbage=False).make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    clean_loss, clean_grad = loss_and_grad(impl, clean, target, kwargs, upstream)
    nonzero = grad.movedim(1, -1)[target == case.ignore_index]
    nonzero = nonzero[nonzero != 0]  # NaN included
    if nonzero.numel():
        return f"gradient of ignored elements not exactly 0 at {nonzero.numel()} place(s): {nonzero[:3].tolist()}"
    return compare(loss, clean_loss, case.dtype, "loss vs finite ignored logits") or compare(
        grad, clean_grad, case.dtype, "gradient vs finite ignored logits"
    )


def _ce_cases() -> list[Case]:
    return [
        Case(shape=(16, 7), gamma=0.0, ignore_fraction=0.2, seed=200),
        Case(shape=(16, 7), gamma=0.0, seed=201),
        Case(shape=(4, 21, 5, 7), gamma=0.0, ignore_fraction=0.2, reduction="none", seed=202, label="seg"),
        Case(shape=(2, 5, 3, 4, 5), gamma=0.0, ignore_fraction=0.2, reduction="sum", seed=203, label="vol"),
        Case(shape=(8, 1000), gamma=0.0, dtype=torch.float64, seed=204),
        Case(shape=(16, 7), gamma=0.0, ignore_fraction=1.0, seed=205, label="all-ignored"),
        # where F.cross_entropy is defined on non-finite logits: absent classes, impossible targets, huge gaps
        Case(shape=(16, 7), gamma=0.0, masked=0.3, reduction="none", seed=206),
        Case(shape=(16, 7), gamma=0.0, masked=1.0, seed=207),
        Case(shape=(5, 200), gamma=0.0, masked=0.5, seed=208),
        Case(shape=(16, 7), gamma=0.0, impossible=0.25, reduction="none", seed=209),
        Case(shape=(16, 7), gamma=0.0, impossible=0.25, seed=210),
        Case(shape=(3, 7, 4, 5), gamma=0.0, masked=0.4, ignore_fraction=0.2, reduction="none", seed=211, label="seg"),
        Case(shape=(8, 5), gamma=0.0, beyond_range=True, reduction="none", seed=212),
    ]


def _identity_cases() -> list[Case]:
    return [
        Case(shape=(32, 7), gamma=g, alpha_kind=a, reduction="none", scale=1.0, dtype=dt, seed=300 + i)
        for i, (g, a, dt) in enumerate(
            (g, a, dt) for g in (0.5, 2.0, 5.0) for a in ("none", "per_class") for dt in (torch.float32, torch.float64)
        )
    ]


def _gradcheck_cases() -> list[Case]:
    return [
        Case(shape=(3, 4), dtype=torch.float64, gamma=g, alpha_kind="per_class", scale=1.0, seed=400 + i)
        for i, g in enumerate((0.0, 0.5, 2.0))
    ] + [
        Case(shape=(3, 4), dtype=torch.float64, gamma=1.5, reduction="sum", scale=1.0, seed=410),
        Case(shape=(2, 3, 2, 2), dtype=torch.float64, gamma=1.5, reduction="none", ignore_fraction=0.25, seed=411),
    ]


def _accuracy_cases() -> list[Case]:
    return extreme_cases(reduction="none", margins=(3.0, 30.0), gammas=(0.0, 0.5, 1.0))


def _figure_cases() -> list[Case]:
    return [Case(shape=(1, 2), dtype=torch.float64, label="figure-1")]


def checks_reached(case: Case) -> list[str]:
    """The named checks whose cases ``case`` resembles: a declared defect of one of them may explain its failure.

    ``finite_at_extremes`` always: a random case may hold a confident or hopeless element without saying so (defects
    declared there decide from the case's values).
    """
    names = ["matches_reference", "finite_at_extremes"]
    names += ["absent_classes"] if case.masked else []
    names += ["impossible_target"] if case.impossible else []
    names += ["ignored_are_inert"] if case.garbage else []
    names += ["empty_batch"] if case.shape[0] == 0 else []
    return names


#: The softmax family's checks, each with its cases.
CHECKS: tuple[Check, ...] = (
    Check(
        "matches_reference",
        "loss and gradient equal numpy_reference within the dtype's tolerance",
        matches_reference,
        random_cases,
        skip_reference=True,
        family="softmax",
    ),
    Check(
        "cross_entropy_at_gamma_zero",
        "gamma=0, alpha=None equals F.cross_entropy (loss and gradient)",
        _cross_entropy_at_gamma_zero,
        _ce_cases,
        family="softmax",
    ),
    Check(
        "focal_below_cross_entropy",
        "FL <= alpha_t CE elementwise",
        _focal_below_cross_entropy,
        _identity_cases,
        family="softmax",
    ),
    Check(
        "focal_to_cross_entropy_ratio",
        "FL / CE = alpha_t (1 - p_t)^gamma elementwise",
        _focal_to_cross_entropy_ratio,
        _identity_cases,
        family="softmax",
    ),
    Check(
        "paper_figure_1",
        "gamma=2: CE/FL = 100 at p_t=0.9 and 1000 at p_t=1-1/sqrt(1000)",
        _paper_figure_1,
        _figure_cases,
        family="softmax",
    ),
    Check("gradcheck", "torch.autograd.gradcheck in float64", gradcheck, _gradcheck_cases, family="softmax"),
    Check(
        "gradgradcheck",
        "torch.autograd.gradgradcheck in float64",
        gradgradcheck,
        _gradcheck_cases,
        needs=frozenset({"double_backward"}),
        family="softmax",
    ),
    Check(
        "create_graph",
        "create_graph=True: a gradient penalty's gradient equals gather's, or a RuntimeError at that call "
        "(where double backward is not declared); never a silently constant gradient",
        create_graph,
        create_graph_cases,
        family="softmax",
    ),
    Check(
        "compiles_fullgraph",
        "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
        compiles_fullgraph,
        compile_cases,
        needs=frozenset({"compile"}),
        family="softmax",
    ),
    Check(
        "finite_at_extremes",
        "finite loss and gradient for logit gaps up to 1e30, shifts +-1e3, every gamma",
        finite_at_extremes,
        functools.partial(extreme_cases, "sum"),
        family="softmax",
    ),
    Check(
        "absent_classes",
        "-inf logits off the target are absent: loss and gradient are the limits the reference computes, "
        "the gradient exactly 0 there, also with every non-target class at -inf",
        matches_limits,
        absent_class_cases,
        family="softmax",
    ),
    Check(
        "impossible_target",
        "a target logit of -inf: loss +inf and the gradient's finite limit (-alpha_t at the target, "
        "alpha_t q_j elsewhere)",
        matches_limits,
        impossible_target_cases,
        family="softmax",
    ),
    Check(
        "beyond_range",
        "gaps beyond the dtype's range (logits at +-3/4 of its largest number) give the limits: "
        "loss 0 or its (possibly overflowing) value, finite gradient",
        matches_limits,
        beyond_range_cases,
        family="softmax",
    ),
    Check(
        "propagates_non_finite",
        "NaN or +inf in a counted element gives a NaN or +inf loss, never a finite one; other elements unaffected",
        _propagates_non_finite,
        poisoned_cases,
        family="softmax",
    ),
    Check(
        "ignored_are_inert",
        "ignored elements holding -inf, NaN or +inf change no loss or gradient; their own gradient is exactly 0",
        _ignored_are_inert,
        garbage_cases,
        family="softmax",
    ),
    Check(
        "empty_batch",
        "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
        empty_batch,
        empty_cases,
        family="softmax",
    ),
    Check(
        "accurate_at_extremes",
        "loss and gradient within 2e-6 (fp32) / 1e-12 (fp64) relative of float64 "
        "reference at gaps 3 and 30, shifts +-1e3",
        accurate_at_extremes,
        _accuracy_cases,
        skip_reference=True,
        family="softmax",
    ),
    Check(
        "rejects_bad_input",
        "bad arguments raise ValueError/TypeError naming the argument",
        rejects_bad_input,
        bad_inputs,
        family="softmax",
    ),
)
