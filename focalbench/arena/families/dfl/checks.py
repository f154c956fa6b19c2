"""The dfl family's own checks (Distribution Focal Loss: :mod:`focalbench.losses.dfl.semantics`) and its table of
checks, named ``dfl_*``: each :class:`~focalbench.arena.core.Check` with its cases
(:mod:`focalbench.arena.families.dfl.cases`); the generic check functions are :mod:`focalbench.arena.checks`.

Besides agreement with ``dfl_reference``, the checks test identities that need no reference: an integer target ``k``
gives ``F.cross_entropy`` of bin ``k``; the loss is GFL's two cross-entropies; the gradient is ``softmax - weights``
and sums to 0 over the bins; the loss is at least the weights' entropy (cross-entropy >= entropy) and equals it where
the softmax is the weights; adding a constant to every logit changes nothing.
"""

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
from focalbench.arena.core import Check, CheckFn, checked_output, loss_and_grad, upstream_for
from focalbench.arena.families.dfl import cases as dfl_cases
from focalbench.arena.families.dfl.cases import target_bins
from focalbench.arena.registry import Implementation
from focalbench.arena.tolerances import TOLERANCES, compare

__all__ = ["CHECKS"]


def _reduced(per_element: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_element
    total = per_element.sum()
    return total if reduction == "sum" else total / max(per_element.numel(), 1)


def _two_cross_entropies(x: torch.Tensor, t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """GFL's definition in float64 ``F.cross_entropy``: ``CE(z, y_l) w_l + CE(z, y_r) w_r`` (no clamp: ``y_l`` is
    ``n - 2`` at ``y = n - 1``)."""
    n = x.shape[-1]
    z, y = x.double().reshape(-1, n), t.double().reshape(-1)
    left, right, w_left, w_right = target_bins(y, n)
    per_element = F.cross_entropy(z, left, reduction="none") * w_left + F.cross_entropy(
        z, right, reduction="none") * w_right  # fmt: skip
    return _reduced(per_element.reshape(t.shape), reduction).to(x.dtype)


def _cross_entropy_at_integer_targets(impl: Implementation, case, device: str) -> str | None:
    """An integer target ``k`` (``n - 1`` included) gives ``F.cross_entropy`` of bin ``k`` in float64, loss and
    gradient."""
    logits, target = case.make(device)
    if bool((target != target.floor()).any()):
        return f"{case.id} has fractional targets: not a case of this check"
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)

    def cross_entropy(x, t, reduction):
        n = x.shape[-1]
        per_element = F.cross_entropy(x.double().reshape(-1, n), t.reshape(-1).long(), reduction="none")
        return _reduced(per_element.reshape(t.shape), reduction).to(x.dtype)

    ce_loss, ce_grad = loss_and_grad(cross_entropy, logits.double(), target, kwargs, upstream)
    return compare(loss, ce_loss, case.dtype, "loss vs F.cross_entropy of the target bin") or compare(
        grad, ce_grad, case.dtype, "gradient vs F.cross_entropy of the target bin"
    )


def _is_two_cross_entropies(impl: Implementation, case, device: str) -> str | None:
    """The loss is ``w_l CE(z, y_l) + w_r CE(z, y_r)`` (``F.cross_entropy`` in float64), loss and gradient."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    ce_loss, ce_grad = loss_and_grad(_two_cross_entropies, logits.double(), target, kwargs, upstream)
    return compare(loss, ce_loss, case.dtype, "loss vs w_l CE(y_l) + w_r CE(y_r)") or compare(
        grad, ce_grad, case.dtype, "gradient vs w_l CE(y_l) + w_r CE(y_r)"
    )


def _weights(target: torch.Tensor, bins: int) -> torch.Tensor:
    """The target's weights spread over the bins, float64 ``(..., n)``: ``w_l`` at ``y_l``, ``w_r`` at ``y_r``."""
    y = target.double()
    left, right, w_left, w_right = target_bins(y, bins)
    weights = torch.zeros((*y.shape, bins), dtype=torch.float64, device=y.device)
    return weights.scatter(-1, left.unsqueeze(-1), w_left.unsqueeze(-1)).scatter(
        -1, right.unsqueeze(-1), w_right.unsqueeze(-1)
    )


def _gradient_is_softmax_minus_weights(impl: Implementation, case, device: str) -> str | None:
    """The gradient is ``softmax(z) - w`` (``w`` the target's two weights over the bins) times the upstream gradient
    and the reduction's scale, and each element's gradient sums to 0 over the bins."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    _, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    n = logits.shape[-1]
    scale = 1.0 / max(target.numel(), 1) if case.reduction == "mean" else 1.0
    per_element = upstream.unsqueeze(-1) if case.reduction == "none" else upstream
    expected = (torch.softmax(logits.double(), dim=-1) - _weights(target.to(logits.dtype), n)) * per_element * scale
    failure = compare(grad, expected, case.dtype, "gradient vs softmax(z) - w")
    if failure:
        return failure
    sums = grad.double().sum(dim=-1)
    # each sum is judged on its element's scale, upstream x reduction scale (softmax and weights each sum to 1): n
    # roundings of a number of that size at most
    element_scale = (upstream.double() * scale).abs().expand(sums.shape)
    bound = (n * torch.finfo(case.dtype).eps + TOLERANCES[case.dtype].atol) * element_scale
    if bool((sums.abs() > bound).any()):
        i = int((sums.abs() - bound).flatten().argmax())
        return f"the gradient over the bins sums to {sums.flatten()[i].item():.3g}, not 0, at element {i}"
    return None


def _at_least_the_entropy(impl: Implementation, case, device: str) -> str | None:
    """Every element's loss is at least the entropy of the target's weights, ``-w_l log w_l - w_r log w_r``
    (cross-entropy >= entropy), and never negative; where the softmax is the weights (``"matched"`` targets) it is
    that entropy, within the dtype's tolerance."""
    logits, target = case.make(device)
    loss = checked_output(impl(logits, target, reduction="none"), logits, target, "none").double()
    y = target.to(logits.dtype).double()
    _, _, w_left, w_right = target_bins(y, logits.shape[-1])
    entropy = -(torch.xlogy(w_left, w_left) + torch.xlogy(w_right, w_right))
    tolerance = TOLERANCES[case.dtype]
    slack = tolerance.atol * float(entropy.abs().max()) if entropy.numel() else 0.0
    below = ~(loss >= entropy - slack - tolerance.rtol * entropy) | ~(loss >= 0)
    if bool(below.any()):
        i = int(below.flatten().nonzero()[0])
        return (f"loss {loss.flatten()[i].item():.9g} below the weights' entropy {entropy.flatten()[i].item():.9g} "
                f"(or negative) at element {i}, target {y.flatten()[i].item()!r}")  # fmt: skip
    if case.targets == "matched":
        return compare(loss, entropy, case.dtype, "loss where softmax(z) = w vs the weights' entropy", scale_floor=1.0)
    return None


def _translation_invariant(impl: Implementation, case, device: str) -> str | None:
    """Adding a constant ``c`` to every logit (exactly: logits on a grid of 1/16) changes neither the loss nor the
    gradient: at ``z + c`` for each ``c`` of :data:`~focalbench.arena.families.dfl.cases.SHIFTS` they equal the
    reference's at ``z``."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    ref_loss, ref_grad = reference_loss_and_grad(case, logits, target, upstream)
    for shift in dfl_cases.SHIFTS:
        shifted = logits + shift
        if not torch.equal(shifted - shift, logits):
            return f"{case.id}: z + {shift:g} is not exact in {case.dtype} (a case for this check must be)"
        loss, grad = loss_and_grad(impl, shifted, target, case.kwargs(), upstream)
        failure = compare(loss, ref_loss, case.dtype, f"loss at z + {shift:g} vs at z") or compare(
            grad, ref_grad, case.dtype, f"gradient at z + {shift:g} vs at z"
        )
        if failure:
            return failure
    return None


def _reductions_agree(impl: Implementation, case, device: str) -> str | None:
    """``"sum"`` is the sum of the ``"none"`` elements and ``"mean"`` that sum over the number of elements (box
    sides, not boxes or rows), loss and gradient."""
    logits, target = case.make(device)
    results = {reduction: loss_and_grad(impl, logits, target, {"reduction": reduction}) for reduction in
               ("none", "sum", "mean")}  # fmt: skip
    count = max(target.numel(), 1)
    (none, none_grad), (total, total_grad), (mean, mean_grad) = (results[r] for r in ("none", "sum", "mean"))
    return (
        compare(total, none.double().sum(), case.dtype, "'sum' vs the sum of 'none'")
        or compare(total_grad, none_grad, case.dtype, "'sum' gradient vs 'none' gradient with upstream 1")
        or compare(mean, total.double() / count, case.dtype, "'mean' vs 'sum' / number of elements")
        or compare(mean_grad, total_grad.double() / count, case.dtype, "'mean' gradient vs 'sum' gradient / count")
    )


def _deterministic(impl: Implementation, case, device: str) -> str | None:
    """Two calls on the same inputs give the same loss and gradient, bit for bit (and leave the inputs unchanged)."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), upstream_for(case, device)
    first = loss_and_grad(impl, logits, target, kwargs, upstream)
    second = loss_and_grad(impl, logits, target, kwargs, upstream)
    for what, a, b in zip(("loss", "gradient"), first, second, strict=True):
        same = (a == b) | (a.isnan() & b.isnan())
        if not bool(same.all()):
            return f"a second call gave another {what}: {int((~same).sum())} element(s) differ"
    return None


def _inputs_unchanged(impl: Implementation, case, device: str) -> str | None:
    """The caller's logits and target are the same after the call and after the backward (ultralytics' ``DFLoss``
    clamps the caller's target in place), and the loss and gradient are the reference's."""
    return matches_reference(impl, case, device)  # loss_and_grad proves the inputs unchanged, then the values


def _propagates_nan(impl: Implementation, case, device: str) -> str | None:
    """A NaN or ``+inf`` logit makes its element's loss NaN (never a finite number); the other elements' losses and
    gradients are the reference's."""
    logits, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    bad = torch.isnan(logits) | torch.isposinf(logits)
    poisoned = bad.any(dim=-1)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    if bool(poisoned.any()) and bool(torch.isfinite(hit).any()):
        return f"loss {hit[torch.isfinite(hit)][0].item():.9g} where a logit is NaN or +inf: expected NaN"
    clean = ~poisoned
    stand_in = torch.where(bad, 0.0, logits)  # the same elements, so the same divisor of a mean
    ref_loss, ref_grad = reference_loss_and_grad(case, stand_in, target, upstream)
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(grad[clean], ref_grad[clean], case.dtype, "gradient elsewhere")


def _dfl_check(name: str, description: str, fn: CheckFn, cases: Callable[[], list], **options) -> Check:
    return Check(f"dfl_{name}", description, fn, cases, family="dfl", **options)


#: The dfl family's checks, each with its cases.
CHECKS: tuple[Check, ...] = (
    _dfl_check(
        "matches_reference",
        "loss and gradient equal dfl_reference within the dtype's tolerance (16, 17, 2 and 1000 bins, (N, 4, n) box "
        "sides, one distribution, strided bins and targets)",
        matches_reference,
        dfl_cases.random_cases,
        skip_reference=True,
    ),
    _dfl_check(
        "cross_entropy_at_integer_targets",
        "an integer target k (n - 1 included) gives F.cross_entropy of bin k (loss and gradient)",
        _cross_entropy_at_integer_targets,
        dfl_cases.integer_cases,
    ),
    _dfl_check(
        "two_cross_entropies",
        "the loss is w_l CE(z, y_l) + w_r CE(z, y_r) with y_l = min(floor(y), n - 2) (loss and gradient)",
        _is_two_cross_entropies,
        lambda: dfl_cases.random_cases()[:8] + dfl_cases.end_cases(),
    ),
    _dfl_check(
        "gradient_is_softmax_minus_weights",
        "the gradient is softmax(z) - w (the target's weights over the bins) and sums to 0 over the bins",
        _gradient_is_softmax_minus_weights,
        lambda: dfl_cases.random_cases()[:10] + dfl_cases.end_cases()[:3],
    ),
    _dfl_check(
        "at_least_the_entropy",
        "every element's loss >= the weights' entropy -w_l log w_l - w_r log w_r (>= 0), equal to it where "
        "softmax(z) = w",
        _at_least_the_entropy,
        dfl_cases.entropy_cases,
    ),
    _dfl_check(
        "translation_invariant",
        "z + c for c = 88, -300, 1e4, 1e6 gives the loss and gradient at z",
        _translation_invariant,
        dfl_cases.shift_cases,
    ),
    _dfl_check(
        "ends_of_the_range",
        "targets 0 and n - 1 (the last bin at weight 1), beside them, and in (n - 1.01, n - 1]: the reference's loss "
        "and gradient",
        matches_reference,
        dfl_cases.end_cases,
    ),
    _dfl_check(
        "reductions",
        "'sum' is the sum of 'none', 'mean' that sum over the number of elements (box sides), loss and gradient",
        _reductions_agree,
        dfl_cases.reduction_cases,
    ),
    _dfl_check("gradcheck", "torch.autograd.gradcheck in float64", gradcheck, dfl_cases.gradcheck_cases),
    _dfl_check(
        "gradgradcheck",
        "torch.autograd.gradgradcheck in float64",
        gradgradcheck,
        dfl_cases.gradcheck_cases,
        needs=frozenset({"double_backward"}),
    ),
    _dfl_check(
        "create_graph",
        "create_graph=True: a gradient penalty's gradient equals dfl_autograd's, or a RuntimeError at that call "
        "(where double backward is not declared)",
        create_graph,
        dfl_cases.create_graph_cases,
    ),
    _dfl_check(
        "compiles_fullgraph",
        "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
        compiles_fullgraph,
        dfl_cases.compile_cases,
        needs=frozenset({"compile"}),
    ),
    _dfl_check(
        "finite_at_saturation",
        "finite loss and gradient at logits +-1e4 to +-1e20, confident and hopeless elements",
        finite_at_extremes,
        dfl_cases.saturated_cases,
    ),
    _dfl_check(
        "saturated_values",
        "loss and gradient equal dfl_reference at logits +-1e4 to +-1e20 (a hopeless element's loss ~ the gap)",
        matches_reference,
        dfl_cases.saturated_cases,
    ),
    _dfl_check(
        "accurate_at_saturation",
        "every loss element and gradient row within 2e-6 (fp32) / 1e-12 (fp64) relative of dfl_reference at gaps 3 "
        "to 1e20 (a confident element's loss e^-gap keeps its digits)",
        accurate_at_extremes,
        dfl_cases.accuracy_cases,
        skip_reference=True,
    ),
    _dfl_check(
        "absent_bins",
        "bins at -inf: absent outside the target bins and at a target bin of weight 0 (finite loss); a target bin of "
        "positive weight at -inf gives +inf and a finite gradient",
        matches_reference,
        dfl_cases.absent_bin_cases,
    ),
    _dfl_check(
        "half_precision",
        "float16/bfloat16 logits computed in float32 (no float16 overflow of e^z or of a sum) and returned in their "
        "dtype",
        matches_reference,
        dfl_cases.half_cases,
    ),
    _dfl_check(
        "inputs_unchanged",
        "the caller's target and logits unchanged by the call and its backward (targets in ultralytics' clamp zone "
        "(n - 1.01, n - 1]), the reference's values",
        _inputs_unchanged,
        dfl_cases.unchanged_cases,
    ),
    _dfl_check(
        "deterministic",
        "two calls on the same inputs give the same loss and gradient bit for bit",
        _deterministic,
        lambda: dfl_cases.random_cases()[:4] + dfl_cases.unchanged_cases()[:1],
    ),
    _dfl_check(
        "propagates_nan",
        "a NaN or +inf logit gives a NaN loss for its element, never a finite one; other elements unaffected",
        _propagates_nan,
        dfl_cases.nan_cases,
    ),
    _dfl_check(
        "empty_batch",
        "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
        empty_batch,
        dfl_cases.empty_cases,
    ),
    _dfl_check(
        "rejects_bad_input",
        "bad arguments raise ValueError/TypeError naming the argument, before any work",
        rejects_bad_input,
        dfl_cases.bad_inputs,
    ),
)
