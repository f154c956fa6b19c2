"""Correctness checks as plain functions: used by ``tests/`` and by ``focalbench check``, never written twice.

A check is a function ``(impl, case, device) -> None | str`` (``None``: it holds; a string: what went wrong) with the
cases it runs on and the loss family it checks (the softmax family's cases are :mod:`focalbench.cases`, the sigmoid
family's :mod:`focalbench.sigmoid_cases`; the generic functions below take either). :func:`evaluate` turns one
(implementation, check, case) into an :class:`Outcome`:

* ``n/a``   the implementation is of another family, or does not declare what the case needs (device, dtype,
  capability);
* ``pass`` / ``fail``;
* ``xfail`` a failure covered by one of the implementation's declared known defects;
* ``xpass`` a known defect that no longer reproduces (an error: the declaration is stale).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from focalbench import sigmoid_cases
from focalbench.cases import (
    BadInput,
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
from focalbench.registry import Implementation, KnownDefect, get_implementation
from focalbench.tolerances import ACCURACY_BOUND, TOLERANCES, compare

__all__ = [
    "CHECKS",
    "REFERENCE",
    "Check",
    "Outcome",
    "checks_reached",
    "differential",
    "evaluate",
    "loss_and_grad",
    "run_matrix",
    "summarize",
]

REFERENCE = "numpy_reference"
GRADIENT_PENALTY_REFERENCE = "gather"  # plain autograd through log_softmax: differentiable any number of times
#: Per family: the float64 reference the checks compare with, and the plain-autograd implementation a gradient
#: penalty is compared with.
REFERENCES = {"softmax": REFERENCE, "sigmoid": "sigmoid_reference"}
GRADIENT_PENALTY_REFERENCES = {"softmax": GRADIENT_PENALTY_REFERENCE, "sigmoid": "sigmoid_logspace"}

CheckFn = Callable[[Implementation, object, str], "str | None"]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    fn: CheckFn
    cases: Callable[[], list]
    needs: frozenset[str] = frozenset()
    skip_reference: bool = False  # the reference is judged against the arbitrary-precision oracle instead
    family: str = "softmax"  # the loss family it checks: it applies to that family's implementations only


@dataclass(frozen=True)
class Outcome:
    status: str  # pass | fail | xfail | xpass | n/a
    detail: str = ""

    @property
    def unexpected(self) -> bool:
        return self.status in ("fail", "xpass")


def loss_and_grad(
    impl: Callable, logits: torch.Tensor, target: torch.Tensor, kwargs: dict, upstream: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and d(sum of upstream * loss)/d logits, on a fresh leaf that keeps the logits' strides."""
    x = logits.detach().clone().requires_grad_(True)
    loss = impl(x, target, **kwargs)
    if upstream is None:
        upstream = torch.ones_like(loss)
    (grad,) = torch.autograd.grad(loss, x, upstream.to(loss.dtype))
    return loss.detach(), grad


def _upstream(case: Case, device: str) -> torch.Tensor | None:
    """Upstream gradient: seeded weights for ``none``, 0.5 for ``sum`` (exercises scaling), 1 for ``mean``."""
    if case.reduction == "none":
        g = torch.Generator().manual_seed(case.seed + 1)
        return torch.rand(case.loss_shape, generator=g, dtype=torch.float64).to(device)
    return torch.tensor(0.5 if case.reduction == "sum" else 1.0, dtype=torch.float64, device=device)


def _reference_loss_and_grad(case, logits: torch.Tensor, target: torch.Tensor, upstream=None):
    """The float64 reference of the case's family on these inputs (floating targets in float64 too)."""
    reference = get_implementation(REFERENCES[case.family])
    target = target.double() if target.is_floating_point() else target
    return loss_and_grad(reference, logits.double(), target, case.kwargs(), upstream)


@functools.lru_cache(maxsize=512)
def _reference_result(case: Case, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = case.make(device)
    return _reference_loss_and_grad(case, logits, target, _upstream(case, device))


def _matches_reference(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), _upstream(case, device))
    if loss.dtype != case.dtype:
        return f"result dtype {loss.dtype} != logits dtype {case.dtype}"
    if grad.dtype != case.dtype:
        return f"gradient dtype {grad.dtype} != logits dtype {case.dtype}"
    ref_loss, ref_grad = _reference_result(case, device)
    return compare(loss, ref_loss, case.dtype, "loss") or compare(grad, ref_grad, case.dtype, "gradient")


def _cross_entropy_at_gamma_zero(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    kwargs = case.kwargs()
    loss, grad = loss_and_grad(impl, logits, target, kwargs, _upstream(case, device))

    def ce(x, t, **kw):
        return F.cross_entropy(x, t, reduction=kw["reduction"], ignore_index=kw["ignore_index"])

    ce_loss, ce_grad = loss_and_grad(ce, logits, target, kwargs, _upstream(case, device))
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


def _matches_limits(impl: Implementation, case: Case, device: str, scale_floor: float = 0.0) -> str | None:
    """Loss and gradient equal the reference's on the finite stand-in (the limits), with a loss of +inf wherever a
    target is impossible, and a gradient of exactly 0 at every non-target class whose logit is -inf.

    ``scale_floor``: see :func:`focalbench.tolerances.compare`."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), _upstream(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    if loss.dtype != case.dtype or grad.dtype != case.dtype:
        return f"result/gradient dtype {loss.dtype}/{grad.dtype} != logits dtype {case.dtype}"
    reference = get_implementation(REFERENCE)
    ref_loss, ref_grad = loss_and_grad(reference, _finite_stand_in(logits), target, kwargs, upstream)
    counted = target != case.ignore_index
    at_target = torch.where(counted, target, 0).unsqueeze(1)
    impossible = counted & torch.isneginf(logits.gather(1, at_target).squeeze(1))
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


def _focal_terms(case: Case, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact-ish float64 ``(p_t, alpha_t, ce)`` per element for a case without ignored elements."""
    logits, target = case.make(device)
    log_p = torch.log_softmax(logits.double(), dim=1)
    log_p_t = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    alpha = case.alpha()
    if alpha is None:
        alpha_t = torch.ones_like(log_p_t)
    elif isinstance(alpha, float):
        alpha_t = torch.full_like(log_p_t, alpha)
    else:
        alpha_t = torch.tensor(alpha, dtype=torch.float64, device=device)[target]
    return log_p_t.exp(), alpha_t, -log_p_t


def _focal_below_cross_entropy(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    fl = impl(logits, target, **case.kwargs()).double()
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
    fl = impl(logits, target, **case.kwargs()).double()
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
        fl = float(impl(logits, target, gamma=2.0, alpha=None, reduction="sum", ignore_index=-100))
        ce = -math.log(p_t)
        if not math.isclose(fl * factor, ce, rel_tol=1e-9):
            failures.append(f"p_t={p_t:.6f}: CE/FL = {ce / fl:.9g}, expected {factor:g}")
    return "; ".join(failures) or None


def _gradcheck(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    x = logits.detach().clone().requires_grad_(True)
    ok = torch.autograd.gradcheck(lambda z: impl(z, target, **case.kwargs()), (x,), raise_exception=False)
    return None if ok else "torch.autograd.gradcheck failed (analytical != numerical gradient)"


def _gradgradcheck(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    x = logits.detach().clone().requires_grad_(True)
    ok = torch.autograd.gradgradcheck(lambda z: impl(z, target, **case.kwargs()), (x,), raise_exception=False)
    return None if ok else "torch.autograd.gradgradcheck failed"


def _compiles_fullgraph(impl: Implementation, case: Case, device: str) -> str | None:
    """``torch.compile(fullgraph=True)`` traces the call without a graph break and computes what eager mode does.

    The ``aot_eager`` backend traces forward and backward as Inductor would but skips code generation: the check is
    about tracing, and stays cheap."""
    import torch._dynamo

    logits, target = case.make(device)
    kwargs = case.kwargs()
    compiled = torch.compile(lambda z, t: impl(z, t, **kwargs), fullgraph=True, backend="aot_eager", dynamic=False)
    try:
        loss, grad = loss_and_grad(lambda z, t, **_: compiled(z, t), logits, target, {}, _upstream(case, device))
    except torch._dynamo.exc.Unsupported as error:  # fullgraph=True: a graph break is an error
        return f"graph break under torch.compile(fullgraph=True): {str(error).splitlines()[0]}"
    eager_loss, eager_grad = loss_and_grad(impl, logits, target, kwargs, _upstream(case, device))
    return compare(loss, eager_loss, case.dtype, "compiled loss vs eager") or compare(
        grad, eager_grad, case.dtype, "compiled gradient vs eager"
    )


def _finite_at_extremes(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs())
    if not bool(torch.isfinite(loss).all()):
        return f"loss not finite: {loss.flatten()[:4].tolist()}"
    if not bool(torch.isfinite(grad).all()):
        return f"gradient has {int((~torch.isfinite(grad)).sum())} non-finite value(s)"
    return None


def _propagates_non_finite(impl: Implementation, case: Case, device: str) -> str | None:
    """+inf or NaN in a counted element: its loss is NaN or +inf, never a finite number (``"inf-target"``, +inf at the
    target alone, may also give its limit 0; its cases are ``reduction="none"``); the other elements' losses and
    gradients stay the reference's."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), _upstream(case, device)
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
    kwargs, upstream = case.kwargs(), _upstream(case, device)
    loss, grad = loss_and_grad(impl, logits, target, kwargs, upstream)
    clean_loss, clean_grad = loss_and_grad(impl, clean, target, kwargs, upstream)
    nonzero = grad.movedim(1, -1)[target == case.ignore_index]
    nonzero = nonzero[nonzero != 0]  # NaN included
    if nonzero.numel():
        return f"gradient of ignored elements not exactly 0 at {nonzero.numel()} place(s): {nonzero[:3].tolist()}"
    return compare(loss, clean_loss, case.dtype, "loss vs finite ignored logits") or compare(
        grad, clean_grad, case.dtype, "gradient vs finite ignored logits"
    )


def _empty_batch(impl: Implementation, case: Case, device: str) -> str | None:
    """No element: 0 for ``"mean"``/``"sum"``, an empty tensor of the target's shape for ``"none"``, an empty
    gradient of the logits' shape; dtypes of the logits."""
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), _upstream(case, device))
    shape = tuple(target.shape) if case.reduction == "none" else ()
    if tuple(loss.shape) != shape or loss.dtype != case.dtype:
        return f"loss of shape {tuple(loss.shape)} and {loss.dtype}; expected {shape} and {case.dtype}"
    if case.reduction != "none" and loss.item() != 0:
        return f"loss {loss.item()!r} for an empty batch; expected 0"
    if grad.shape != logits.shape or grad.dtype != case.dtype:
        return f"gradient of shape {tuple(grad.shape)} and {grad.dtype}; expected {tuple(logits.shape)}"
    return None


def _create_graph(impl: Implementation, case: Case, device: str) -> str | None:
    """``create_graph=True``: a gradient penalty's gradient equals gather's (autograd through log_softmax), or that
    call raises a RuntimeError (only where double backward is not declared); never a gradient that silently does not
    depend on the logits."""
    logits, target = case.make(device)
    g = torch.Generator().manual_seed(case.seed + 2)
    direction = torch.rand(logits.shape, generator=g, dtype=torch.float64).to(device=device, dtype=logits.dtype)

    def first_gradient(fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.detach().clone().requires_grad_(True)
        loss = fn(x, target, **case.kwargs())
        upstream = _upstream(case, device).to(loss.dtype).expand_as(loss)
        (grad,) = torch.autograd.grad(loss, x, upstream, create_graph=True)
        return x, grad

    def penalty_gradient(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad((grad * direction).pow(2).sum(), x)[0]

    try:
        x, grad = first_gradient(impl)
    except RuntimeError as error:
        if "double_backward" in impl.capabilities:
            return f"declares double backward, but create_graph=True raised: {error}"
        return None  # a clear refusal at the create_graph call
    if not grad.requires_grad:
        return "create_graph=True gave a gradient that does not require grad: a gradient penalty would add nothing"
    expected_x, expected_grad = first_gradient(get_implementation(GRADIENT_PENALTY_REFERENCES[case.family]))
    penalty, expected_penalty = penalty_gradient(x, grad), penalty_gradient(expected_x, expected_grad)
    return compare(grad, expected_grad, case.dtype, "gradient") or compare(
        penalty, expected_penalty, case.dtype, "gradient penalty's gradient"
    )


def accuracy_errors(loss, grad, ref_loss, ref_grad, dtype: torch.dtype) -> tuple[float, float]:
    """(max relative error of the loss elements, max per-row normwise relative error of the gradient).

    Exact values below the dtype's smallest normal number (``tiny``) may come out as anything within ``tiny`` of them,
    including 0: those are compared absolutely.
    """
    tiny = torch.finfo(dtype).tiny
    loss, ref_loss = loss.double().cpu().flatten(), ref_loss.double().cpu().flatten()
    grad = grad.double().cpu().movedim(1, -1).reshape(-1, grad.shape[1])
    ref_grad = ref_grad.double().cpu().movedim(1, -1).reshape(-1, ref_grad.shape[1])
    if not (bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())):
        return math.inf, math.inf

    def rel(abs_err: torch.Tensor, scale: torch.Tensor) -> float:
        err = torch.where(scale >= tiny, abs_err / scale.clamp_min(tiny), torch.where(abs_err <= tiny, 0.0, math.inf))
        return float(err.max()) if err.numel() else 0.0

    loss_err = rel((loss - ref_loss).abs(), ref_loss.abs())
    grad_err = rel((grad - ref_grad).abs().amax(dim=1), ref_grad.abs().amax(dim=1))
    return loss_err, grad_err


def _accurate_at_extremes(impl: Implementation, case: Case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs())
    ref_loss, ref_grad = _reference_loss_and_grad(case, logits, target)
    if loss.shape == grad.shape:  # an elementwise loss (the sigmoid family): each gradient element judged alone
        grad, ref_grad = grad.reshape(-1, 1), ref_grad.reshape(-1, 1)
    loss_err, grad_err = accuracy_errors(loss, grad, ref_loss, ref_grad, case.dtype)
    bound = ACCURACY_BOUND[case.dtype]
    if loss_err > bound or grad_err > bound:
        return f"relative error loss {loss_err:.3g}, gradient {grad_err:.3g} > {bound:g}"
    return None


def _rejects_bad_input(impl: Implementation, bad: BadInput, device: str) -> str | None:
    logits, target, kwargs = bad.call_args(device)
    try:
        impl(logits, target, **kwargs)
    except bad.error as error:
        message = str(error)
        if bad.argument not in message:
            return f"{type(error).__name__} raised, but its message does not name {bad.argument!r}: {message!r}"
        return None
    except Exception as error:  # noqa: BLE001 - any other exception is the finding
        return f"expected {bad.error.__name__} naming {bad.argument!r}, got {type(error).__name__}: {error}"
    return f"expected {bad.error.__name__} naming {bad.argument!r}; no exception was raised"


# --- checks of the sigmoid family only ----------------------------------------------------------------------------


def _bce_at_gamma_zero(impl: Implementation, case, device: str) -> str | None:
    """gamma = 0 without weighting equals ``F.binary_cross_entropy_with_logits``, loss and gradient."""
    logits, target = case.make(device)
    kwargs, upstream = case.kwargs(), _upstream(case, device)
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
    fl = impl(logits, target, **case.kwargs()).double()
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="none")
    one_minus_p_t, alpha_t = _sigmoid_terms(case, logits, target)
    counted = bce > 1e-6  # the ratio is 0/0 where BCE vanishes
    expected = alpha_t * one_minus_p_t**case.gamma
    return compare((fl / bce)[counted], expected[counted], case.dtype, "FL / BCE vs alpha_t (1 - p_t)^gamma")


def _sigmoid_limits_reference(case, logits: torch.Tensor, target: torch.Tensor, upstream):
    """The reference's loss and gradient at the limits: +-inf logits replaced by +-1e4 (``exp(-1e4)`` is exactly 0 in
    float64: p and 1 - p are 0 and 1 as at the limit) and NaN by 0, with a loss of +inf wherever an infinite logit
    disagrees with its target (CE is infinite there) and the element weighs something (``alpha_t > 0``)."""
    x = logits.detach().double()
    stand_in = torch.where(torch.isinf(x), torch.sign(x) * 1e4, torch.nan_to_num(x, nan=0.0))
    ref_loss, ref_grad = _reference_loss_and_grad(case, stand_in, target, upstream)
    t = target.double()
    _, alpha_t = _sigmoid_terms(case, stand_in, target)
    infinite = ((torch.isposinf(x) & (t < 1)) | (torch.isneginf(x) & (t > 0))) & (alpha_t > 0)
    if case.reduction == "none":
        ref_loss = ref_loss.masked_fill(infinite, math.inf)
    elif bool(infinite.any()):
        ref_loss = torch.full_like(ref_loss, math.inf)
    return ref_loss, ref_grad


def _infinite_logits(impl: Implementation, case, device: str) -> str | None:
    """+-inf logits take their limits: loss 0 where the target agrees, +inf where it does not, the gradient's finite
    limit; the other elements unaffected."""
    logits, target = case.make(device)
    upstream = _upstream(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    ref_loss, ref_grad = _sigmoid_limits_reference(case, logits, target, upstream)
    return compare(loss, ref_loss, case.dtype, "loss") or compare(grad, ref_grad, case.dtype, "gradient")


def _propagates_nan(impl: Implementation, case, device: str) -> str | None:
    """A NaN logit makes its loss NaN (never a finite number, whatever its weight); the other elements' losses and
    gradients are the limits the reference computes."""
    logits, target = case.make(device)
    upstream = _upstream(case, device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream)
    poisoned = torch.isnan(logits)
    hit = loss[poisoned] if case.reduction == "none" else loss.reshape(1)
    if bool(torch.isfinite(hit).any()):
        return f"loss {hit[torch.isfinite(hit)][0].item():.9g} where a logit is NaN: expected NaN"
    ref_loss, ref_grad = _sigmoid_limits_reference(case, logits, target, upstream)
    clean = ~poisoned
    failure = compare(loss[clean], ref_loss[clean], case.dtype, "loss elsewhere") if case.reduction == "none" else None
    return failure or compare(grad[clean], ref_grad[clean], case.dtype, "gradient elsewhere")


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


CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        Check(
            "matches_reference",
            "loss and gradient equal numpy_reference within the dtype's tolerance",
            _matches_reference,
            random_cases,
            skip_reference=True,
        ),
        Check(
            "cross_entropy_at_gamma_zero",
            "gamma=0, alpha=None equals F.cross_entropy (loss and gradient)",
            _cross_entropy_at_gamma_zero,
            _ce_cases,
        ),
        Check("focal_below_cross_entropy", "FL <= alpha_t CE elementwise", _focal_below_cross_entropy, _identity_cases),
        Check(
            "focal_to_cross_entropy_ratio",
            "FL / CE = alpha_t (1 - p_t)^gamma elementwise",
            _focal_to_cross_entropy_ratio,
            _identity_cases,
        ),
        Check(
            "paper_figure_1",
            "gamma=2: CE/FL = 100 at p_t=0.9 and 1000 at p_t=1-1/sqrt(1000)",
            _paper_figure_1,
            _figure_cases,
        ),
        Check("gradcheck", "torch.autograd.gradcheck in float64", _gradcheck, _gradcheck_cases),
        Check(
            "gradgradcheck",
            "torch.autograd.gradgradcheck in float64",
            _gradgradcheck,
            _gradcheck_cases,
            needs=frozenset({"double_backward"}),
        ),
        Check(
            "create_graph",
            "create_graph=True: a gradient penalty's gradient equals gather's, or a RuntimeError at that call "
            "(where double backward is not declared); never a silently constant gradient",
            _create_graph,
            create_graph_cases,
        ),
        Check(
            "compiles_fullgraph",
            "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
            _compiles_fullgraph,
            compile_cases,
            needs=frozenset({"compile"}),
        ),
        Check(
            "finite_at_extremes",
            "finite loss and gradient for logit gaps up to 1e30, shifts +-1e3, every gamma",
            _finite_at_extremes,
            functools.partial(extreme_cases, "sum"),
        ),
        Check(
            "absent_classes",
            "-inf logits off the target are absent: loss and gradient are the limits the reference computes, "
            "the gradient exactly 0 there, also with every non-target class at -inf",
            _matches_limits,
            absent_class_cases,
        ),
        Check(
            "impossible_target",
            "a target logit of -inf: loss +inf and the gradient's finite limit (-alpha_t at the target, "
            "alpha_t q_j elsewhere)",
            _matches_limits,
            impossible_target_cases,
        ),
        Check(
            "beyond_range",
            "gaps beyond the dtype's range (logits at +-3/4 of its largest number) give the limits: "
            "loss 0 or its (possibly overflowing) value, finite gradient",
            _matches_limits,
            beyond_range_cases,
        ),
        Check(
            "propagates_non_finite",
            "NaN or +inf in a counted element gives a NaN or +inf loss, never a finite one; other elements unaffected",
            _propagates_non_finite,
            poisoned_cases,
        ),
        Check(
            "ignored_are_inert",
            "ignored elements holding -inf, NaN or +inf change no loss or gradient; their own gradient is exactly 0",
            _ignored_are_inert,
            garbage_cases,
        ),
        Check(
            "empty_batch",
            "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
            _empty_batch,
            empty_cases,
        ),
        Check(
            "accurate_at_extremes",
            "loss and gradient within 2e-6 (fp32) / 1e-12 (fp64) relative of float64 "
            "reference at gaps 3 and 30, shifts +-1e3",
            _accurate_at_extremes,
            _accuracy_cases,
            skip_reference=True,
        ),
        Check(
            "rejects_bad_input",
            "bad arguments raise ValueError/TypeError naming the argument",
            _rejects_bad_input,
            bad_inputs,
        ),
    )
}


def _sigmoid_check(name: str, description: str, fn: CheckFn, cases: Callable[[], list], **options) -> Check:
    return Check(f"sigmoid_{name}", description, fn, cases, family="sigmoid", **options)


#: The sigmoid family's checks (RetinaNet's loss: :mod:`focalbench.sigmoid_semantics`), named ``sigmoid_*``.
CHECKS.update(
    (check.name, check)
    for check in (
        _sigmoid_check(
            "matches_reference",
            "loss and gradient equal sigmoid_reference within the dtype's tolerance",
            _matches_reference,
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
        _sigmoid_check("gradcheck", "torch.autograd.gradcheck in float64", _gradcheck, sigmoid_cases.gradcheck_cases),
        _sigmoid_check(
            "gradgradcheck",
            "torch.autograd.gradgradcheck in float64",
            _gradgradcheck,
            sigmoid_cases.gradcheck_cases,
            needs=frozenset({"double_backward"}),
        ),
        _sigmoid_check(
            "create_graph",
            "create_graph=True: a gradient penalty's gradient equals sigmoid_logspace's, or a RuntimeError at that "
            "call (where double backward is not declared)",
            _create_graph,
            sigmoid_cases.create_graph_cases,
        ),
        _sigmoid_check(
            "compiles_fullgraph",
            "torch.compile(fullgraph=True) traces the call with no graph break and matches eager mode",
            _compiles_fullgraph,
            sigmoid_cases.compile_cases,
            needs=frozenset({"compile"}),
        ),
        _sigmoid_check(
            "finite_at_extremes",
            "finite loss and gradient for logits up to +-1e30 and +-3/4 of the dtype's largest number, gammas 0 to 5",
            _finite_at_extremes,
            sigmoid_cases.extreme_cases,
        ),
        _sigmoid_check(
            "accurate_at_extremes",
            "every loss and gradient element within 2e-6 (fp32) / 1e-12 (fp64) relative of sigmoid_reference at "
            "logits +-3 to +-100, gammas 0 to 5",
            _accurate_at_extremes,
            sigmoid_cases.accuracy_cases,
            skip_reference=True,
        ),
        _sigmoid_check(
            "infinite_logits",
            "+-inf logits take their limits: loss 0 (target agrees) or +inf, the gradient's finite limit; an "
            "element of weight 0 gives 0",
            _infinite_logits,
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
            _matches_reference,
            sigmoid_cases.soft_target_cases,
        ),
        _sigmoid_check(
            "empty_batch",
            "no element: 0 (mean, sum) or an empty tensor (none), an empty gradient",
            _empty_batch,
            sigmoid_cases.empty_cases,
        ),
        _sigmoid_check(
            "rejects_bad_input",
            "bad arguments raise ValueError/TypeError naming the argument",
            _rejects_bad_input,
            sigmoid_cases.bad_inputs,
        ),
    )
)


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


def differential(impl: Implementation, case: Case, device: str = "cpu") -> Outcome:
    """One random case (:func:`focalbench.cases.differential_cases`) against the reference's limits.

    Agreement is judged on the scale of a unit loss (a total of tiny losses may be off by ``atol``): the relative
    accuracy of confident elements is the accuracy checks' business; this test is after wrong values, wrong
    infinities and NaN. ``n/a`` by the implementation's declared devices, dtypes and capabilities; a failure is
    ``xfail`` when a defect declared for one of the checks the case reaches (:func:`checks_reached`) applies to it,
    else ``fail``.
    """
    reason = impl.supports(device=device, dtype=case.dtype, needs=case.needs(), family=case.family)
    if reason is not None:
        return Outcome("n/a", reason)
    failure = _failure(functools.partial(_matches_limits, scale_floor=1.0), impl, case, device)
    if not failure:
        return Outcome("pass")  # not "xpass": a random case may miss what a declared defect needs
    defect = next((d for name in checks_reached(case) if (d := impl.defect_for(name, case)) is not None), None)
    return _classified(failure, defect)


def applicability(impl: Implementation, check: Check, case, device: str) -> str | None:
    """``None`` when ``check`` applies to ``impl`` on ``case`` and ``device``, else why not (another family first)."""
    reference = REFERENCES[check.family]
    if check.skip_reference and impl.name == reference:
        return f"{reference} is the reference here; it is checked against the arbitrary-precision oracle"
    if isinstance(case, BadInput):
        if case.device == "cuda" and device != "cuda":
            return "needs a CUDA device (--device cuda)"
        return impl.supports(device=device, family=check.family)
    needs = set(case.needs()) | set(check.needs)
    return impl.supports(device=device, dtype=case.dtype, needs=needs, family=check.family)


def evaluate(impl: Implementation, check: Check, case, device: str = "cpu") -> Outcome:
    """Run one check on one case and classify the result against the implementation's declarations."""
    reason = applicability(impl, check, case, device)
    if reason is not None:
        return Outcome("n/a", reason)
    return _classified(_failure(check.fn, impl, case, device), impl.defect_for(check.name, case))


def _failure(fn: CheckFn, impl: Implementation, case, device: str) -> str | None:
    try:
        return fn(impl, case, device)
    except Exception as error:  # noqa: BLE001 - an exception from the implementation is a failed check
        return f"raised {type(error).__name__}: {error}"


def _classified(failure: str | None, defect: KnownDefect | None) -> Outcome:
    if defect is not None:
        if failure:
            return Outcome("xfail", f"known defect: {defect.reason} ({failure})")
        return Outcome("xpass", f"declared known defect did not reproduce: {defect.reason}")
    return Outcome("fail", failure) if failure else Outcome("pass")


def case_id(case) -> str:
    return case.name if isinstance(case, BadInput) else case.id


def run_matrix(
    impls: Iterable[Implementation], checks: Iterable[Check] | None = None, device: str = "cpu", progress=None
) -> dict[str, dict[str, list[tuple[str, Outcome]]]]:
    """Every applicable (check, case) for each implementation: ``{impl: {check: [(case id, outcome), ...]}}``."""
    checks = list(CHECKS.values()) if checks is None else list(checks)
    matrix: dict[str, dict[str, list[tuple[str, Outcome]]]] = {}
    for impl in impls:
        matrix[impl.name] = {}
        for check in checks:
            outcomes = [(case_id(case), evaluate(impl, check, case, device)) for case in check.cases()]
            matrix[impl.name][check.name] = outcomes
            if progress is not None:
                progress(impl.name, check.name, summarize(o for _, o in outcomes))
    return matrix


def summarize(outcomes: Iterable[Outcome]) -> str:
    """One verdict for a check over its cases: fail > xpass > xfail > pass > n/a."""
    statuses = {o.status for o in outcomes}
    for status in ("fail", "xpass", "xfail", "pass"):
        if status in statuses:
            return status
    return "n/a"
