"""The check functions every family shares, written once: each is ``(impl, case, device) -> None | str`` over the
generic case interface (:class:`focalbench.arena.core.SampleCase`) and the family's record (its reference, its
gradient-penalty reference). A family's own checks, and the table that pairs each check with its cases, live in its
package (:mod:`focalbench.arena.families`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from focalbench.arena.core import BadInput, checked_output, loss_and_grad, upstream_for
from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, get_implementation
from focalbench.arena.tolerances import ACCURACY_BOUND, compare
from focalbench.losses.common import check_values

__all__ = [
    "accuracy_errors",
    "accurate_at_extremes",
    "compiles_fullgraph",
    "create_graph",
    "empty_batch",
    "finite_at_extremes",
    "gradcheck",
    "gradgradcheck",
    "matches_reference",
    "reference_loss_and_grad",
    "reference_result",
    "rejects_bad_input",
]


def reference_loss_and_grad(case, logits: torch.Tensor, target: torch.Tensor, upstream=None):
    """The float64 reference of the case's family on these inputs (floating targets in float64 too)."""
    reference = get_implementation(get_family(case.family).reference)
    target = target.double() if target.is_floating_point() else target
    return loss_and_grad(reference, logits.double(), target, case.kwargs(), upstream)


def reference_result(case, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = case.make(device)
    return reference_loss_and_grad(case, logits, target, upstream_for(case, device))


def matches_reference(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream_for(case, device))
    if loss.dtype != case.dtype:
        return f"result dtype {loss.dtype} != logits dtype {case.dtype}"
    if grad.dtype != case.dtype:
        return f"gradient dtype {grad.dtype} != logits dtype {case.dtype}"
    ref_loss, ref_grad = reference_result(case, device)
    return compare(loss, ref_loss, case.dtype, "loss") or compare(grad, ref_grad, case.dtype, "gradient")


def gradcheck(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    x = logits.detach().clone().requires_grad_(True)
    ok = torch.autograd.gradcheck(lambda z: impl(z, target, **case.kwargs()), (x,), raise_exception=False)
    return None if ok else "torch.autograd.gradcheck failed (analytical != numerical gradient)"


def gradgradcheck(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    x = logits.detach().clone().requires_grad_(True)
    ok = torch.autograd.gradgradcheck(lambda z: impl(z, target, **case.kwargs()), (x,), raise_exception=False)
    return None if ok else "torch.autograd.gradgradcheck failed"


# finite differences of the loss: they judge only a call whose gradient is its loss's derivative (Family.
# gradient_is_derivative); any other call is not applicable to them (focalbench.arena.core.applicability)
gradcheck.compares_with_derivative = True
gradgradcheck.compares_with_derivative = True


def compiles_fullgraph(impl: Implementation, case, device: str) -> str | None:
    """``torch.compile(fullgraph=True)`` traces the call without a graph break and computes what eager mode does.

    The ``aot_eager`` backend traces forward and backward as Inductor would but skips code generation: the check is
    about tracing, and stays cheap."""
    import torch._dynamo

    logits, target = case.make(device)
    kwargs = case.kwargs()
    compiled = torch.compile(lambda z, t: impl(z, t, **kwargs), fullgraph=True, backend="aot_eager", dynamic=False)
    # every case compiles its own closure of one lambda: dynamo counts those as recompilations of the lambda, and
    # the limit (there to catch a model recompiling at every call) would stop the suite, not a bug
    limits = torch._dynamo.config.patch(recompile_limit=10_000, accumulated_recompile_limit=10_000)
    try:
        with limits:
            loss, grad = loss_and_grad(lambda z, t, **_: compiled(z, t), logits, target, {}, upstream_for(case, device))
    except torch._dynamo.exc.Unsupported as error:  # fullgraph=True: a graph break is an error
        return f"graph break under torch.compile(fullgraph=True): {str(error).splitlines()[0]}"
    eager_loss, eager_grad = loss_and_grad(impl, logits, target, kwargs, upstream_for(case, device))
    return compare(loss, eager_loss, case.dtype, "compiled loss vs eager") or compare(
        grad, eager_grad, case.dtype, "compiled gradient vs eager"
    )


def finite_at_extremes(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs())
    if not bool(torch.isfinite(loss).all()):
        return f"loss not finite: {loss.flatten()[:4].tolist()}"
    if not bool(torch.isfinite(grad).all()):
        return f"gradient has {int((~torch.isfinite(grad)).sum())} non-finite value(s)"
    return None


def empty_batch(impl: Implementation, case, device: str) -> str | None:
    """No element: 0 for ``"mean"``/``"sum"``, an empty tensor of the target's shape for ``"none"``, an empty
    gradient of the logits' shape; dtypes of the logits."""
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs(), upstream_for(case, device))
    shape = tuple(target.shape) if case.reduction == "none" else ()
    if tuple(loss.shape) != shape or loss.dtype != case.dtype:
        return f"loss of shape {tuple(loss.shape)} and {loss.dtype}; expected {shape} and {case.dtype}"
    if case.reduction != "none" and loss.item() != 0:
        return f"loss {loss.item()!r} for an empty batch; expected 0"
    if grad.shape != logits.shape or grad.dtype != case.dtype:
        return f"gradient of shape {tuple(grad.shape)} and {grad.dtype}; expected {tuple(logits.shape)}"
    return None


def create_graph(impl: Implementation, case, device: str) -> str | None:
    """``create_graph=True``: a gradient penalty's gradient equals gather's (autograd through log_softmax), or that
    call raises a RuntimeError (only where double backward is not declared); never a gradient that silently does not
    depend on the logits."""
    logits, target = case.make(device)
    g = torch.Generator().manual_seed(case.seed + 2)
    direction = torch.rand(logits.shape, generator=g, dtype=torch.float64).to(device=device, dtype=logits.dtype)

    def first_gradient(fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.detach().clone().requires_grad_(True)
        loss = checked_output(fn(x, target, **case.kwargs()), x, target, case.reduction)
        upstream = upstream_for(case, device).to(loss.dtype).expand_as(loss)
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
    expected_x, expected_grad = first_gradient(get_implementation(get_family(case.family).gradient_penalty_reference))
    penalty, expected_penalty = penalty_gradient(x, grad), penalty_gradient(expected_x, expected_grad)
    return compare(grad, expected_grad, case.dtype, "gradient") or compare(
        penalty, expected_penalty, case.dtype, "gradient penalty's gradient"
    )


def accuracy_errors(
    loss, grad, ref_loss, ref_grad, dtype: torch.dtype, class_axis: int | None = 1
) -> tuple[float, float]:
    """(max relative error of the loss elements, max per-row normwise relative error of the gradient; a row spans
    ``class_axis``, None: each gradient element is a row of its own).

    Exact values below the dtype's smallest normal number (``tiny``) may come out as anything within ``tiny`` of them,
    including 0: those are compared absolutely.
    """
    tiny = torch.finfo(dtype).tiny
    loss, ref_loss = loss.double().cpu().flatten(), ref_loss.double().cpu().flatten()
    if class_axis is None:
        grad, ref_grad = grad.double().cpu().reshape(-1, 1), ref_grad.double().cpu().reshape(-1, 1)
    else:
        grad = grad.double().cpu().movedim(class_axis, -1).reshape(-1, grad.shape[class_axis])
        ref_grad = ref_grad.double().cpu().movedim(class_axis, -1).reshape(-1, ref_grad.shape[class_axis])
    if not (bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())):
        return math.inf, math.inf

    def rel(abs_err: torch.Tensor, scale: torch.Tensor) -> float:
        err = torch.where(scale >= tiny, abs_err / scale.clamp_min(tiny), torch.where(abs_err <= tiny, 0.0, math.inf))
        return float(err.max()) if err.numel() else 0.0

    loss_err = rel((loss - ref_loss).abs(), ref_loss.abs())
    grad_err = rel((grad - ref_grad).abs().amax(dim=1), ref_grad.abs().amax(dim=1))
    return loss_err, grad_err


def accurate_at_extremes(impl: Implementation, case, device: str) -> str | None:
    logits, target = case.make(device)
    loss, grad = loss_and_grad(impl, logits, target, case.kwargs())
    ref_loss, ref_grad = reference_loss_and_grad(case, logits, target)
    class_axis = get_family(case.family).class_axis  # None: an elementwise loss, each gradient element judged alone
    loss_err, grad_err = accuracy_errors(loss, grad, ref_loss, ref_grad, case.dtype, class_axis)
    bound = ACCURACY_BOUND[case.dtype]
    if loss_err > bound or grad_err > bound:
        return f"relative error loss {loss_err:.3g}, gradient {grad_err:.3g} > {bound:g}"
    return None


def rejects_bad_input(impl: Implementation, bad: BadInput, device: str) -> str | None:
    """The bad call raises its error, naming the argument. On a path that checks values on the device
    (``device_checks``), a call wrong by a tensor's values must give a NaN loss (never a finite one), and raise the
    error inside :func:`focalbench.check_values`."""
    if bad.device_value and impl.extra.get("device_checks"):
        logits, target, kwargs = bad.call_args(device)
        loss = impl(logits, target, **{**kwargs, "reduction": "sum"})
        if not bool(torch.isnan(loss).all()):
            return f"a call wrong by {bad.argument}'s values gave the loss {loss.item()!r}, not NaN"
        with check_values():
            return _raises_naming(impl, bad, device)
    return _raises_naming(impl, bad, device)


def _raises_naming(impl: Implementation, bad: BadInput, device: str) -> str | None:
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
