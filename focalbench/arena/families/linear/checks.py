"""The linear family's checks (the fused linear focal loss: :mod:`focalbench.losses.linear.semantics`), named
``linear_*``, each with its cases (:mod:`focalbench.arena.families.linear.cases`).

A call is judged on its loss and on the gradients of all three differentiable inputs — the hidden states, the
weight and the bias — against ``linear_reference`` (float64) and, in float64, against the unfused form
``focal_loss(F.linear(h, W, b))``; besides, the gradients must be finite differences' (gradcheck over all three),
independent of the chunk size, untouched by ignored rows however large their hidden states, the same at a second
backward (``retain_graph=True``), and the memory a chunked implementation needs beyond its inputs and gradients must
not grow with the number of rows.
"""

from __future__ import annotations

import torch

from focalbench.arena.checks import rejects_bad_input
from focalbench.arena.core import Check, WrongOutput, checked_output, unchanged_inputs, upstream_for
from focalbench.arena.families.linear import cases as linear_cases
from focalbench.arena.registry import Implementation, get_implementation
from focalbench.arena.tolerances import ACCURACY_BOUND, compare

__all__ = ["CHECKS", "loss_and_grads", "witness_judge"]

NAMES = ("hidden", "weight", "bias")


def loss_and_grads(fn, hidden: torch.Tensor, target: torch.Tensor, kwargs: dict, upstream: torch.Tensor | None = None,
                   retain_graph: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """The loss and the gradients of ``sum(upstream * loss)`` with respect to the hidden states, the weight and the
    bias (when given), on fresh leaves; the returned object and the caller's tensors are checked as
    :func:`focalbench.arena.core.loss_and_grad` checks them."""
    leaves = {"hidden": hidden.detach().clone().requires_grad_(True)}
    for name in ("weight", "bias"):
        if isinstance(kwargs.get(name), torch.Tensor) and kwargs[name].is_floating_point():
            leaves[name] = kwargs[name].detach().clone().requires_grad_(True)
    snapshots = {name: (tensor.detach().clone(), tensor) for name, tensor in leaves.items()}
    snapshots["target"] = (target.clone(), target)
    loss = fn(leaves["hidden"], target, **{**kwargs, **{k: v for k, v in leaves.items() if k != "hidden"}})
    unchanged_inputs(**snapshots)
    checked_output(loss, leaves["hidden"], target, kwargs.get("reduction", "mean"))
    if not loss.requires_grad:
        raise WrongOutput("returned a loss that does not require grad: no gradient reaches the hidden states")
    upstream = torch.ones_like(loss) if upstream is None else upstream.to(loss.dtype)
    grads = torch.autograd.grad(loss, list(leaves.values()), upstream, retain_graph=retain_graph)
    unchanged_inputs(**snapshots)
    result = dict(zip(leaves, grads, strict=True))
    for name, grad in result.items():
        if grad.dtype != leaves[name].dtype or grad.shape != leaves[name].shape:
            raise WrongOutput(f"the {name} gradient is {grad.dtype} {tuple(grad.shape)}; expected "
                             f"{leaves[name].dtype} {tuple(leaves[name].shape)}")  # fmt: skip
    if retain_graph:
        result["_again"] = torch.autograd.grad(loss, list(leaves.values()), upstream)
    return loss.detach(), result


def witness_judge(fn, reference, hidden, target, kwargs: dict, upstream) -> str | None:
    """A mutant's witness judged as the checks judge a call: the loss and the three gradients against the
    reference's, and a second backward (``retain_graph=True``) against the first."""
    loss, grads = loss_and_grads(fn, hidden, target, kwargs, upstream, retain_graph=True)
    again = dict(zip([n for n in NAMES if n in grads], grads.pop("_again"), strict=False))
    ref_loss, ref_grads = loss_and_grads(reference, hidden, target, kwargs, upstream)
    failure = _compare_all(loss, grads, ref_loss, ref_grads, hidden.dtype, "the reference")
    for name, grad in grads.items():
        failure = failure or compare(again[name], grad, hidden.dtype, f"second backward's {name} gradient")
    return failure


def _reference(case, device: str, upstream) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    hidden, target = case.make(device)
    return loss_and_grads(get_implementation("linear_reference"), hidden, target, case.kwargs(), upstream)


def _compare_all(loss, grads, ref_loss, ref_grads, dtype, against: str) -> str | None:
    failure = compare(loss, ref_loss, dtype, f"loss vs {against}")
    for name in NAMES:
        if failure or name not in ref_grads:
            break
        failure = compare(grads.get(name, torch.zeros(0)), ref_grads[name], dtype, f"{name} gradient vs {against}")
    return failure


def _matches_reference(impl: Implementation, case, device: str) -> str | None:
    """Loss and the three gradients equal ``linear_reference``'s within the dtype's tolerance."""
    hidden, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grads = loss_and_grads(impl, hidden, target, case.kwargs(), upstream)
    ref_loss, ref_grads = _reference(case, device, upstream)
    return _compare_all(loss, grads, ref_loss, ref_grads, case.dtype, "linear_reference")


def _is_unfused(impl: Implementation, case, device: str) -> str | None:
    """In float64, loss and gradients equal ``focal_loss(F.linear(h, W, b))`` (the unfused form) within float64's
    tolerance."""
    from focalbench.implementations.linear_unfused import unfused

    hidden, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grads = loss_and_grads(impl, hidden, target, case.kwargs(), upstream)
    ref_loss, ref_grads = loss_and_grads(unfused, hidden, target, case.kwargs(), upstream)
    return _compare_all(loss, grads, ref_loss, ref_grads, case.dtype, "the unfused form")


def _gradcheck(impl: Implementation, case, device: str) -> str | None:
    """``torch.autograd.gradcheck`` over the hidden states, the weight and the bias together."""
    hidden, target = case.make(device)
    kwargs = case.kwargs()
    inputs = [hidden.detach().clone().requires_grad_(True), kwargs["weight"].detach().clone().requires_grad_(True)]
    has_bias = kwargs["bias"] is not None
    if has_bias:
        inputs.append(kwargs["bias"].detach().clone().requires_grad_(True))

    def fn(h, w, b=None):
        return impl(h, target, **{**kwargs, "weight": w, "bias": b})

    ok = torch.autograd.gradcheck(fn, tuple(inputs), raise_exception=False)
    return None if ok else "torch.autograd.gradcheck failed over (hidden, weight, bias)"


_gradcheck.compares_with_derivative = True


def _chunks_agree(impl: Implementation, case, device: str) -> str | None:
    """The result does not depend on ``chunk_size``: equal to the same call in one chunk of every row."""
    hidden, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grads = loss_and_grads(impl, hidden, target, case.kwargs(), upstream)
    whole = {**case.kwargs(), "chunk_size": max(target.numel(), 1)}
    ref_loss, ref_grads = loss_and_grads(impl, hidden, target, whole, upstream)
    return _compare_all(loss, grads, ref_loss, ref_grads, case.dtype, "one chunk")


def _ignored_rows(impl: Implementation, case, device: str) -> str | None:
    """Ignored rows (hidden states 1e30: garbage in padding) reach no loss and no gradient: their hidden states'
    gradient is exactly 0 and the rest equals the reference's on the same call without them."""
    hidden, target = case.make(device)
    upstream = upstream_for(case, device)
    loss, grads = loss_and_grads(impl, hidden, target, case.kwargs(), upstream)
    ignored = target == -100
    if bool(grads["hidden"][ignored].ne(0).any()):
        return "an ignored row's hidden states got a nonzero gradient"
    kept = ~ignored
    kwargs = case.kwargs()
    sub_upstream = upstream[kept] if case.reduction == "none" else upstream
    ref_loss, ref_grads = loss_and_grads(get_implementation("linear_reference"), hidden[kept], target[kept], kwargs,
                                         sub_upstream)  # fmt: skip
    grads = {**grads, "hidden": grads["hidden"][kept]}
    return _compare_all(loss[kept] if case.reduction == "none" else loss, grads, ref_loss, ref_grads, case.dtype,
                        "linear_reference without the ignored rows")  # fmt: skip


def _accurate_at_extremes(impl: Implementation, case, device: str) -> str | None:
    """Saturated logits: finite, each row's loss within the accuracy bound of the reference's (relative), and the
    hidden states' gradient within that bound of the reference's relative to ``|G| |W|`` (``G`` the reference's
    logits-gradient): the error a matrix product of an accurate ``G`` may have, whatever its cancellation; the
    weight's and bias's gradients within the dtype's tolerance."""
    import torch.nn.functional as F

    from focalbench.arena.core import loss_and_grad

    hidden, target = case.make(device)
    kwargs = case.kwargs()
    loss, grads = loss_and_grads(impl, hidden, target, kwargs)
    ref_loss, ref_grads = _reference(case, device, None)
    for name, grad in grads.items():
        if not bool(torch.isfinite(grad).all()):
            return f"the {name} gradient has non-finite values"
    bound = ACCURACY_BOUND[case.dtype]
    tiny = torch.finfo(case.dtype).tiny
    scale = ref_loss.double().abs()
    loss_err = ((loss.double() - ref_loss.double()).abs() / scale.clamp_min(tiny)).where(scale >= tiny, 0.0).max()
    features = hidden.shape[-1]
    logits = F.linear(hidden.reshape(-1, features), kwargs["weight"], kwargs["bias"]).double()
    softmax = {k: kwargs[k] for k in ("gamma", "alpha", "reduction", "ignore_index")}
    _, g_ref = loss_and_grad(get_implementation("numpy_reference"), logits, target.reshape(-1), softmax)
    magnitude = (g_ref.abs() @ kwargs["weight"].double().abs()).reshape(hidden.shape)
    grad_err = ((grads["hidden"].double() - ref_grads["hidden"].double()).abs() / magnitude.clamp_min(tiny)).max()
    if float(loss_err) > bound or float(grad_err) > bound:
        return (f"relative error loss {float(loss_err):.3g}, hidden gradient {float(grad_err):.3g} (of |G| |W|) > "
                f"{bound:g}")  # fmt: skip
    return _compare_all(loss, grads, ref_loss, ref_grads, case.dtype, "linear_reference")


def _second_backward(impl: Implementation, case, device: str) -> str | None:
    """A second backward of the same loss (``retain_graph=True``) gives the same gradients as the first (an
    implementation that scales the gradients it saved in place would give them scaled twice)."""
    hidden, target = case.make(device)
    upstream = upstream_for(case, device)
    _, grads = loss_and_grads(impl, hidden, target, case.kwargs(), upstream, retain_graph=True)
    again = dict(zip([n for n in NAMES if n in grads], grads.pop("_again"), strict=False))
    for name, grad in grads.items():
        failure = compare(again[name], grad, case.dtype, f"second backward's {name} gradient vs the first's")
        if failure:
            return failure
    return None


def _peak_bytes(impl: Implementation, case, rows: int, device: str) -> int:
    from focalbench.bench.timing import peak_memory

    case = case.with_(lead=(rows,))
    hidden, target = case.make(device)
    kwargs = case.kwargs()
    h = hidden.requires_grad_(True)
    w = kwargs["weight"].requires_grad_(True)

    def step():
        h.grad = w.grad = None
        impl(h, target, **{**kwargs, "weight": w}).sum().backward()

    step()
    h.grad = w.grad = None
    return peak_memory(step, device)


def _memory(impl: Implementation, case, device: str) -> str | None:
    """Memory beyond the inputs and the gradients does not grow with the rows: from N to 8 N rows, the peak of one
    forward+backward grows by at most the gradients' growth (``7 N x H``), 256 bytes a row of per-row scalars and a
    quarter of one chunk's logits — holding the logits of every row would add ``7 N x V`` (16 KiB a row here)."""
    small, large = case.lead[0], 8 * case.lead[0]
    grown = _peak_bytes(impl, case, large, device) - _peak_bytes(impl, case, small, device)
    element = torch.empty((), dtype=case.dtype).element_size()
    # per added row: its hidden states' gradient, and 256 bytes of per-row scalars (loss, mask, weight, index)
    allowed = (large - small) * (case.features * element + 256) + case.chunk_size * case.vocabulary * element // 4
    if grown > allowed:
        logits = (large - small) * case.vocabulary * element
        return (f"the peak memory grew by {grown / 2**20:.2f} MiB from {small} to {large} rows (allowed "
                f"{allowed / 2**20:.2f} MiB; the added rows' logits are {logits / 2**20:.2f} MiB)")  # fmt: skip
    return None


def _compiles(impl: Implementation, case, device: str) -> str | None:
    """``torch.compile(fullgraph=True)`` (``aot_eager``) traces the call without a graph break, gamma a tensor (a
    schedule's: changed between two calls of one graph), and computes what eager mode does."""
    import torch._dynamo

    hidden, target = case.make(device)
    kwargs = case.kwargs()
    gamma = torch.tensor(kwargs.pop("gamma"), dtype=torch.float64)

    def call(h, t, weight, bias):
        return impl(h, t, **{**kwargs, "weight": weight, "bias": bias, "gamma": gamma})

    compiled = torch.compile(call, fullgraph=True, backend="aot_eager", dynamic=False)
    limits = torch._dynamo.config.patch(recompile_limit=10_000, accumulated_recompile_limit=10_000)
    upstream = upstream_for(case, device)
    for value in (float(gamma), 0.5):
        gamma.fill_(value)
        try:
            with limits:
                loss, grads = loss_and_grads(lambda h, t, weight, bias, **_: compiled(h, t, weight, bias), hidden,
                                             target, kwargs, upstream)  # fmt: skip
        except torch._dynamo.exc.Unsupported as error:
            return f"graph break under torch.compile(fullgraph=True): {str(error).splitlines()[0]}"
        eager_loss, eager_grads = loss_and_grads(impl, hidden, target, {**kwargs, "gamma": value}, upstream)
        failure = _compare_all(loss, grads, eager_loss, eager_grads, case.dtype, f"eager (gamma {value:g})")
        if failure:
            return failure
    return None


def _create_graph(impl: Implementation, case, device: str) -> str | None:
    """``create_graph=True``: with ``double_backward`` declared, a gradient penalty's gradient equals the unfused
    form's; without, differentiating the gradient raises a RuntimeError — never a penalty that silently adds
    nothing."""
    from focalbench.implementations.linear_unfused import unfused

    hidden, target = case.make(device)
    kwargs = case.kwargs()

    def penalty(fn):
        h = hidden.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(h, target, **kwargs).sum(), h, create_graph=True)
        return torch.autograd.grad(grad.pow(2).sum(), h)[0]

    try:
        result = penalty(impl)
    except RuntimeError as error:
        if "double_backward" in impl.capabilities:
            return f"declares double backward, but differentiating its gradient raised: {error}"
        return None
    if "double_backward" not in impl.capabilities:
        return "a gradient penalty went through without double backward declared: its value is not checked"
    return compare(result, penalty(unfused), case.dtype, "gradient penalty's gradient vs the unfused form")


def _check(name: str, description: str, fn, cases, **extra) -> Check:
    return Check(name, description, fn, cases, family="linear", **extra)


CHECKS = [
    _check("linear_matches_reference", "loss and hidden, weight, bias gradients vs linear_reference (float64)",
           _matches_reference, linear_cases.random_cases, skip_reference=True),
    _check("linear_is_unfused", "float64: equal to focal_loss(F.linear(h, W, b)) within float64's tolerance",
           _is_unfused, linear_cases.unfused_cases),
    _check("linear_gradcheck", "gradcheck over hidden, weight and bias (float64)", _gradcheck,
           linear_cases.gradcheck_cases),
    _check("linear_chunks_agree", "the result does not depend on chunk_size", _chunks_agree, linear_cases.chunk_cases),
    _check("linear_ignored_rows", "ignored rows (hidden 1e30) reach no loss and no gradient", _ignored_rows,
           linear_cases.ignore_cases),
    _check("linear_extremes", "logit gaps 1e2-1e8: finite, within the accuracy bound of the reference",
           _accurate_at_extremes, linear_cases.extreme_cases, skip_reference=True),
    _check("linear_half", "bfloat16/float16 heads over 16 chunks vs the reference", _matches_reference,
           linear_cases.half_cases, skip_reference=True),
    _check("linear_second_backward", "retain_graph=True: a second backward gives the same gradients",
           _second_backward, linear_cases.random_cases),
    _check("linear_memory", "memory beyond inputs and gradients does not grow with the rows", _memory,
           linear_cases.memory_cases, needs=frozenset({"chunked"})),
    _check("linear_compiles", "torch.compile(fullgraph=True) with a gamma tensor changed between calls: as eager",
           _compiles, linear_cases.compile_cases, needs=frozenset({"compile"})),
    _check("linear_create_graph", "create_graph=True: the unfused form's penalty, or a RuntimeError",
           _create_graph, linear_cases.compile_cases),
    _check("linear_bad_inputs", "bad input: TypeError/ValueError naming the argument", rejects_bad_input,
           linear_cases.bad_inputs),
]  # fmt: skip
