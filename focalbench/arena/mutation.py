"""Mutation testing of the checks: how many realistic bugs the suite catches.

A family's *catalogue* (:class:`Catalogue`) is a careful baseline implementation written as a *mutant schema*: one
function whose ``fault`` keyword switches on one bug at a time (Untch et al.'s mutant schemata; mutmut and cosmic-ray
instead rewrite the source once per mutant, which costs an import per mutant), and the list of its :class:`Mutant`
records. Each mutant carries a *witness*, an input on which it is wrong by the suite's own comparison
(:func:`witness_failure`): that proves it is a bug, not an equivalent mutant, before the checks are asked to catch
it.

:func:`kill` runs every check of the family (what ``focalbench check`` runs) on a mutant, with nothing declared,
until one fails: the mutant is *killed* by that (check, case). The *mutation score* is the share killed;
``focalbench mutants`` prints it per family, ``pytest -m mutants`` asserts that it is 100 % and that the baseline
passes every check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from focalbench.arena.core import SampleCase, all_checks, case_id, evaluate, loss_and_grad
from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation, get_implementation
from focalbench.arena.tolerances import compare

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

__all__ = [
    "KINDS",
    "Catalogue",
    "UpstreamIgnored",
    "Kill",
    "Mutant",
    "Witness",
    "as_implementation",
    "baseline_failures",
    "failures",
    "call_witness",
    "contiguous_strides",
    "elements_witness",
    "guarded_tensors",
    "kill",
    "softplus",
    "witness_failure",
]

# --- what the families' catalogues share: their mutated implementations' arithmetic and their witnesses ------------


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), in the logits' dtype, without overflow (the catalogues' correct baseline arithmetic)."""
    return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))


class UpstreamIgnored(torch.autograd.Function):
    """The identity whose backward passes 1 whatever the upstream gradient is (a kernel that writes the gradient of
    the sum): the catalogues' ``gradient-ignores-upstream``-style mutants."""

    @staticmethod
    def forward(ctx, per_element: torch.Tensor) -> torch.Tensor:
        return per_element.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(grad_output)


def contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    """The strides of a contiguous tensor of ``shape`` (a mutant that assumes them is caught on a strided input)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def call_witness(bad_call: Callable[..., tuple[object, object, dict]], **changes) -> Witness:
    """A witness calling a family's ``bad_call(device, **changes)`` (its cases module's call with one argument
    changed)."""
    return Witness(call=lambda device: bad_call(device, **changes))


def guarded_tensors(logits: object, target: object, bug: Callable[[str], bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """The type guards a catalogue's baseline starts with (logits a floating tensor of a supported dtype, target a
    tensor), each with its realistic mutants (``bug(name)`` switches one on): a list converted instead of refused,
    bfloat16 refused, integer logits accepted. Returns the two tensors, converted where a mutant converts them."""
    if bug("logits-list-converted") and isinstance(logits, list):
        logits = torch.as_tensor(logits).requires_grad_(True)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor. Got: {type(logits).__name__}")
    dtypes = (torch.float16, torch.float32, torch.float64) if bug("bfloat16-refused") else _FLOAT_DTYPES
    if bug("logits-int-accepted") and not logits.is_floating_point():
        logits = logits.float()
    if logits.dtype not in dtypes:
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64. Got: {logits.dtype}")
    if bug("target-list-converted") and isinstance(target, list):
        target = torch.as_tensor(target)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor. Got: {type(target).__name__}")
    return logits, target


def elements_witness(logit: float, target: float, dtype: torch.dtype = torch.float64, **kwargs) -> Witness:
    """Twelve equal elements (logit, target) of an elementwise family, ``reduction="none"``: a tiny loss judged on its
    own scale."""
    return Witness(call=lambda device: (
        torch.full((4, 3), logit, dtype=dtype, device=device),
        torch.full((4, 3), target, dtype=dtype, device=device),
        {"reduction": "none", **kwargs},
    ))  # fmt: skip


#: What a mutant gets wrong, in the order tables list them.
KINDS: tuple[str, ...] = (
    "arguments",  # a bad argument accepted, or a good one rejected
    "reduction",
    "ignore",  # ignore_index handling (softmax)
    "weights",  # alpha
    "focal term",  # gamma, p_t, the focal factor
    "stability",  # extreme, infinite and NaN logits
    "precision",  # dtypes of the arithmetic, the inputs and the result
    "layout",  # shapes, dense layouts, strides
    "gradient",
    "output",  # the returned object: type, shape, aliasing
    "inputs",  # the caller's tensors changed
)

#: ``call(device) -> (logits, target, kwargs)``: an input, as :class:`focalbench.arena.core.BadInput` calls it.
Call = Callable[[str], tuple[object, object, dict]]


@dataclass(frozen=True)
class Witness:
    """An input on which a mutant is wrong: a :class:`SampleCase` of the family, or a ``call`` (a bad argument, or a
    tensor a case cannot describe)."""

    case: SampleCase | None = None
    call: Call | None = field(default=None, compare=False, repr=False)

    def arguments(self, device: str) -> tuple[object, object, dict]:
        if self.case is not None:
            return (*self.case.make(device), self.case.kwargs())
        assert self.call is not None
        return self.call(device)

    @property
    def text(self) -> str:
        return self.case.id if self.case is not None else "a call"


@dataclass(frozen=True)
class Mutant:
    """One realistic bug: the baseline with ``fault=name``.

    ``kind``: one of :data:`KINDS`; ``bug``: what it does wrong, in a line; ``seen_in``: where such a bug shipped
    (a project, or "" when it comes from what the semantics allow to go wrong); ``witness``: an input on which it is
    wrong."""

    name: str
    kind: str
    bug: str
    witness: Witness
    seen_in: str = ""


@dataclass(frozen=True)
class Catalogue:
    """A family's mutant schema: ``baseline(logits, target, **keywords, fault=None)`` and its mutants."""

    family: str
    baseline: Callable[..., torch.Tensor]
    mutants: tuple[Mutant, ...]

    def mutant(self, name: str) -> Mutant:
        for mutant in self.mutants:
            if mutant.name == name:
                return mutant
        raise ValueError(f"mutant must be one of {', '.join(m.name for m in self.mutants)}. Got: {name!r}")

    def function(self, name: str | None) -> Callable[..., torch.Tensor]:
        """The baseline (``None``) or the mutant ``name``, with the family's common signature."""
        if name is not None:
            self.mutant(name)
        return functools.partial(self.baseline, fault=name)


@dataclass(frozen=True)
class Kill:
    """What one mutant met: killed by (check, case, detail), or survived every applicable case (``check`` "")."""

    mutant: Mutant
    check: str = ""
    case: str = ""
    detail: str = ""

    @property
    def killed(self) -> bool:
        return bool(self.check)


def as_implementation(catalogue: Catalogue, name: str | None) -> Implementation:
    """The baseline or a mutant as a user's ``module:attr`` is checked: every capability of the family but
    ``compile``, no declaration, no validation of focalbench's."""
    family = get_family(catalogue.family)
    return Implementation(
        name=f"mutant:{name}" if name else "baseline",
        fn=catalogue.function(name),
        description=catalogue.mutant(name).bug if name else "the mutant schema's baseline",
        capabilities=family.capabilities - {"compile"},
        external=True,
        family=catalogue.family,
    )


def _upstream(loss: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """Seeded weights for ``reduction="none"`` (a gradient that ignores them shows), 0.5 for a sum, 1 for a mean."""
    if kwargs.get("reduction", "none") == "none" or loss.dim():
        g = torch.Generator().manual_seed(1)
        return torch.rand(loss.shape, generator=g, dtype=torch.float64).to(loss.device)
    return torch.tensor(0.5 if kwargs["reduction"] == "sum" else 1.0, dtype=torch.float64, device=loss.device)


def witness_failure(family: str, fn: Callable, witness: Witness, device: str = "cpu") -> str | None:
    """What ``fn`` gets wrong on ``witness`` by the suite's own comparison, or None.

    Where the family's reference rejects the call, ``fn`` must raise the same exception type; elsewhere its loss and
    gradient (through :func:`focalbench.arena.core.loss_and_grad`, which also checks the returned object and the
    inputs) must equal the float64 reference's on the same inputs within the dtype's tolerance."""
    kind = get_family(family)
    reference = get_implementation(kind.reference)
    keywords = {**kind.defaults}
    logits, target, kwargs = witness.arguments(device)
    try:
        probe = reference(logits, target, **{**keywords, **kwargs})  # its shape sizes the upstream gradient
    except (TypeError, ValueError) as error:
        try:
            fn(logits, target, **{**keywords, **kwargs})
        except type(error):
            return None
        except Exception as other:  # noqa: BLE001 - another exception is the finding
            return f"raised {type(other).__name__} where the reference raises {type(error).__name__}: {other}"
        return f"accepted a call the reference rejects ({type(error).__name__}: {error})"
    kwargs = {**keywords, **kwargs}
    dtype = logits.dtype
    upstream = _upstream(probe, kwargs)
    if kind.witness_judge is not None:
        try:
            return kind.witness_judge(fn, reference, logits, target, kwargs, upstream)
        except Exception as error:  # noqa: BLE001 - an exception from the function is the finding
            return f"raised {type(error).__name__}: {error}"
    try:  # loss_and_grad checks the returned object (its dtype too) and the inputs
        loss, grad = loss_and_grad(lambda x, t, **kw: fn(x, t, **kw), logits, target, kwargs, upstream)
    except Exception as error:  # noqa: BLE001 - an exception from the function is the finding
        return f"raised {type(error).__name__}: {error}"
    if grad.dtype != dtype:
        return f"gradient dtype {grad.dtype} != logits dtype {dtype}"
    reference_target = target.double() if target.is_floating_point() else target
    ref_loss, ref_grad = loss_and_grad(reference, logits.double(), reference_target, kwargs, upstream)
    return compare(loss, ref_loss, dtype, "loss") or compare(grad, ref_grad, dtype, "gradient")


def failures(
    impl: Implementation, device: str = "cpu", checks: Sequence | None = None
) -> Iterator[tuple[str, str, str]]:
    """Each (check, case id, detail) on which ``impl`` fails one of its family's checks, lazily (in the family's
    order of checks and cases)."""
    checks = list(all_checks(impl.family).values()) if checks is None else list(checks)
    for check in checks:
        for case in check.cases():
            outcome = evaluate(impl, check, case, device)
            if outcome.unexpected:
                yield check.name, case_id(case), outcome.detail


def kill(catalogue: Catalogue, name: str, device: str = "cpu", checks: Sequence | None = None) -> Kill:
    """Run the family's checks on mutant ``name`` until one fails."""
    first = next(failures(as_implementation(catalogue, name), device, checks), None)
    return Kill(catalogue.mutant(name), *first) if first else Kill(catalogue.mutant(name))


def baseline_failures(catalogue: Catalogue, device: str = "cpu") -> list[tuple[str, str, str]]:
    """Every (check, case, detail) the baseline fails: the score means nothing unless this is empty."""
    return list(failures(as_implementation(catalogue, None), device))
