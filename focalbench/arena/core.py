"""The check framework, apart from every family's definitions (as PyTorch's OpInfo core is apart from its domains).

A *check* is a function ``(impl, case, device) -> None | str`` (``None``: it holds; a string: what went wrong) with the
cases it runs on and the loss family it checks. Cases are data: a :class:`SampleCase` builds the same tensors from its
seed and says what it needs from an implementation; a :class:`BadInput` carries an invalid call and the error it must
raise. :func:`evaluate` turns one (implementation, check, case) into an :class:`Outcome`:

* ``n/a``   the implementation is of another family, or does not declare what the case needs (device, dtype,
  capability);
* ``pass`` / ``fail``;
* ``xfail`` a failure covered by one of the implementation's declared known defects;
* ``xpass`` a known defect that no longer reproduces (an error: the declaration is stale).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from focalbench.arena.family import families, get_family
from focalbench.arena.registry import Implementation, KnownDefect

__all__ = [
    "DTYPE_NAMES",
    "GAMMAS",
    "BadInput",
    "Check",
    "CheckFn",
    "Outcome",
    "SampleCase",
    "WrongOutput",
    "all_checks",
    "applicability",
    "case_id",
    "checked_output",
    "classified",
    "error_inputs",
    "evaluate",
    "failure_of",
    "loss_and_grad",
    "run_matrix",
    "summarize",
    "unchanged_inputs",
    "upstream_for",
]

#: The gammas the cases cross: 0 (cross-entropy), below 1 (where (1 - p_t)^(gamma - 1) is singular), 1, 2, 5.
GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
#: How a case's id spells its dtype.
DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}

CheckFn = Callable[[Implementation, Any, str], "str | None"]


class SampleCase(abc.ABC):
    """One reproducible input of a family, as every generic check reads it.

    Subclasses are frozen dataclasses with (at least) the fields ``dtype``, ``reduction`` and ``seed``, and the class
    attribute ``family``; they build their tensors in :meth:`make` from the seed alone, so a case's ``repr``
    reproduces it.
    """

    family: ClassVar[str]
    dtype: torch.dtype
    reduction: str
    seed: int

    @property
    @abc.abstractmethod
    def id(self) -> str:
        """A readable, unique name (test ids and reports)."""

    @property
    @abc.abstractmethod
    def loss_shape(self) -> tuple[int, ...]:
        """Shape of the ``reduction="none"`` loss."""

    @abc.abstractmethod
    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; the logits are a leaf that does not require grad."""

    @abc.abstractmethod
    def kwargs(self) -> dict[str, Any]:
        """The loss's keyword arguments for this case."""

    @abc.abstractmethod
    def needs(self) -> set[str]:
        """Capabilities an implementation must declare for this case."""

    def with_(self, **changes: Any) -> SampleCase:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class BadInput:
    """An invalid call (OpInfo's ``ErrorInput``): ``call(device) -> (logits, target, kwargs)`` and the exception,
    whose message must name ``argument``, that it must raise."""

    name: str
    argument: str
    error: type[Exception]
    call: Callable[[str], tuple[object, object, dict]] = dataclasses.field(compare=False, repr=False)
    device: str = "cpu"  # "cuda": needs a CUDA device
    #: the error depends on a tensor's values: a path that checks values on the device (no host read) gives a NaN
    #: loss instead, and raises the error inside focalbench.check_values()
    device_value: bool = False

    def call_args(self, device: str) -> tuple[object, object, dict]:
        return self.call(device)


def valid_call(make_target: Callable[[str], torch.Tensor]) -> Callable[..., tuple[object, object, dict]]:
    """A family's ``bad_call(device, **changes)``: a valid call — logits (4, 3) and ``make_target(device)`` on
    ``device`` — with what a bad input changes (``logits=`` or ``target=`` replace that argument; any other keyword is
    passed to the loss)."""

    def bad_call(device: str, logits=None, target=None, **kwargs) -> tuple[object, object, dict]:
        logits = torch.randn(4, 3, device=device) if logits is None else logits
        target = make_target(device) if target is None else target
        return logits, target, kwargs

    return bad_call


def error_inputs(
    table: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]],
    needs_cuda: Iterable[str] = (),
    device_values: Iterable[str] = (),
) -> list[BadInput]:
    """A family's bad inputs from its table ``{name: (argument named in the message, exception, call)}``; the calls
    named in ``needs_cuda`` put one tensor on the CPU and the other on CUDA, those in ``device_values`` are wrong by
    a tensor's values (:attr:`BadInput.device_value`)."""
    cuda, values = set(needs_cuda), set(device_values)
    return [BadInput(name, argument, error, call, "cuda" if name in cuda else "cpu", name in values)
            for name, (argument, error, call) in table.items()]  # fmt: skip


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    fn: CheckFn
    cases: Callable[[], list]
    needs: frozenset[str] = frozenset()
    skip_reference: bool = False  # the reference is judged against the arbitrary-precision oracle instead
    # it compares the gradient with the loss's derivative (finite differences): not applicable to a call whose
    # gradient is not, by the family's definition (Family.gradient_is_derivative); None: as check.fn says
    # (its ``compares_with_derivative`` attribute: focalbench.arena.checks.gradcheck and gradgradcheck)
    derivative_only: bool | None = None
    family: str = ""  # the loss family it checks (required): it applies to that family's implementations only

    def __post_init__(self) -> None:
        if not self.family:
            raise ValueError(f"check {self.name!r} must name its family (family=...). Got: none")


@dataclass(frozen=True)
class Outcome:
    status: str  # pass | fail | xfail | xpass | n/a
    detail: str = ""

    @property
    def unexpected(self) -> bool:
        return self.status in ("fail", "xpass")


class WrongOutput(Exception):
    """What an implementation returned, or did to the caller's tensors, is wrong before any value can be compared: a
    failure in the suite's own words, which :func:`failure_of` reports as it is (not as a raised exception)."""


#: The shape of the loss each reduction returns, given the target (both families: the ``"none"`` loss has the
#: target's shape; a reduction not listed is not checked).
REDUCED_SHAPES: dict[str, Callable[[torch.Tensor], tuple[int, ...]]] = {
    "mean": lambda target: (),
    "sum": lambda target: (),
    "none": lambda target: tuple(target.shape),
}


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are views of one storage (empty ones share nothing)."""
    try:
        first, second = a.untyped_storage(), b.untyped_storage()
    except (RuntimeError, NotImplementedError):  # a tensor without storage (a subclass, a fake tensor)
        return False
    return first.nbytes() > 0 and second.nbytes() > 0 and first.data_ptr() == second.data_ptr()


def checked_output(loss: object, logits: torch.Tensor, target: object, reduction: str | None = None) -> torch.Tensor:
    """``loss`` when it is what a call on ``logits`` and ``target`` must return: a torch.Tensor of the logits' dtype,
    on their device, of the reduction's shape (:data:`REDUCED_SHAPES`; not checked when ``reduction`` is None or
    another), sharing no memory with either input (a view of an input is not a loss: the caller's tensor would change
    with it).

    Raises:
        WrongOutput: the first of these it is not, in one line."""
    if not isinstance(loss, torch.Tensor):
        raise WrongOutput(f"returned {type(loss).__name__}, expected a torch.Tensor")
    if loss.dtype != logits.dtype:
        raise WrongOutput(f"returned a {loss.dtype} loss for {logits.dtype} logits: expected the logits' dtype")
    if loss.device != logits.device:
        raise WrongOutput(
            f"returned a loss on {loss.device} for logits on {logits.device}: expected the logits' device"
        )
    if reduction in REDUCED_SHAPES and isinstance(target, torch.Tensor):
        expected = REDUCED_SHAPES[reduction](target)
        if tuple(loss.shape) != expected:
            what = "the target's shape" if expected else "a 0-dim tensor"
            raise WrongOutput(f"returned a loss of shape {tuple(loss.shape)} for reduction={reduction!r}: expected "
                              f"{expected} ({what})")  # fmt: skip
    for name, tensor in (("logits", logits), ("target", target)):
        if isinstance(tensor, torch.Tensor) and _shares_memory(loss, tensor):
            raise WrongOutput(f"returned a view of its {name} (the loss shares their memory): expected a new tensor")
    return loss


def _equal(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Same shape, dtype and values, NaN equal to NaN."""
    if before.shape != after.shape or before.dtype != after.dtype or before.device != after.device:
        return False
    if torch.equal(before, after):
        return True
    if before.is_floating_point() or before.is_complex():
        return bool(((before == after) | (before.isnan() & after.isnan())).all())
    return False


def unchanged_inputs(**pairs: tuple[object, object]) -> None:
    """Each ``name=(snapshot, tensor)`` still equal to its snapshot (a clone taken before the call).

    Raises:
        WrongOutput: ``modified its <name> in place``."""
    for name, (snapshot, tensor) in pairs.items():
        if isinstance(snapshot, torch.Tensor) and not _equal(snapshot, tensor.detach()):
            raise WrongOutput(f"modified its {name} in place")


def _reduction(impl: Callable, kwargs: dict) -> str | None:
    """The reduction a call makes: the keyword's, else the family default an :class:`Implementation` fills in."""
    if "reduction" in kwargs:
        return kwargs["reduction"]
    return get_family(impl.family).defaults.get("reduction") if isinstance(impl, Implementation) else None


def loss_and_grad(
    impl: Callable, logits: torch.Tensor, target: torch.Tensor, kwargs: dict, upstream: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and d(sum of upstream * loss)/d logits, on a fresh leaf that keeps the logits' strides.

    The returned object is checked before anything uses it (:func:`checked_output`), and the logits and target are
    proven unchanged after the call and after the backward (:func:`unchanged_inputs`).

    Raises:
        WrongOutput: what the call returned or did to its inputs is wrong (reported by :func:`failure_of` as it is).
    """
    x = logits.detach().clone().requires_grad_(True)
    inputs = {"logits": (logits.detach(), x), "target": (target.clone() if isinstance(target, torch.Tensor) else None,
                                                         target)}  # fmt: skip
    loss = impl(x, target, **kwargs)
    unchanged_inputs(**inputs)
    checked_output(loss, x, target, _reduction(impl, kwargs))
    if not loss.requires_grad:
        raise WrongOutput("returned a loss that does not require grad: no gradient reaches the logits")
    if upstream is None:
        upstream = torch.ones_like(loss)
    (grad,) = torch.autograd.grad(loss, x, upstream.to(loss.dtype))
    unchanged_inputs(**inputs)
    return loss.detach(), grad


def upstream_for(case: SampleCase, device: str) -> torch.Tensor:
    """Upstream gradient: seeded weights for ``none``, 0.5 for ``sum`` (exercises scaling), 1 for ``mean``."""
    if case.reduction == "none":
        g = torch.Generator().manual_seed(case.seed + 1)
        return torch.rand(case.loss_shape, generator=g, dtype=torch.float64).to(device)
    return torch.tensor(0.5 if case.reduction == "sum" else 1.0, dtype=torch.float64, device=device)


def applicability(impl: Implementation, check: Check, case, device: str) -> str | None:
    """``None`` when ``check`` applies to ``impl`` on ``case`` and ``device``, else why not (another family first;
    the family's reference where the check judges it against the oracle instead)."""
    reference = get_family(check.family).reference
    if check.skip_reference and impl.name == reference:
        return f"{reference} is the reference here; it is checked against the arbitrary-precision oracle"
    derivative_only = check.derivative_only
    if derivative_only is None:
        derivative_only = getattr(check.fn, "compares_with_derivative", False)
    if derivative_only and not isinstance(case, BadInput):
        if not get_family(check.family).gradient_is_derivative(case.kwargs()):
            return "the call's gradient is not its loss's derivative (a weight held constant): the reference judges it"
    if isinstance(case, BadInput):
        if case.device == "cuda" and device != "cuda":
            return "needs a CUDA device (--device cuda)"
        return impl.supports(device=device, family=check.family)
    needs = set(case.needs()) | set(check.needs)
    return impl.supports(device=device, dtype=case.dtype, needs=needs, family=check.family)


def failure_of(fn: CheckFn, impl: Implementation, case, device: str) -> str | None:
    """What ``fn`` found wrong, or None; an exception from the implementation is a failure, described (a
    :class:`WrongOutput` by its message alone)."""
    try:
        return fn(impl, case, device)
    except WrongOutput as error:  # the suite's own words
        return str(error)
    except Exception as error:  # noqa: BLE001 - an exception from the implementation is a failed check
        return f"raised {type(error).__name__}: {error}"


def classified(failure: str | None, defect: KnownDefect | None) -> Outcome:
    """A failure (or None) as an outcome, given the declared defect that applies (or None)."""
    if defect is not None:
        if failure:
            return Outcome("xfail", f"known defect: {defect.reason} ({failure})")
        return Outcome("xpass", f"declared known defect did not reproduce: {defect.reason}")
    return Outcome("fail", failure) if failure else Outcome("pass")


def evaluate(impl: Implementation, check: Check, case, device: str = "cpu") -> Outcome:
    """Run one check on one case and classify the result against the implementation's declarations."""
    reason = applicability(impl, check, case, device)
    if reason is not None:
        return Outcome("n/a", reason)
    return classified(failure_of(check.fn, impl, case, device), impl.defect_for(check.name, case))


def all_checks(family: str | None = None) -> dict[str, Check]:
    """Every registered family's checks by name (only ``family``'s when given).

    Raises:
        ValueError: two families name a check alike (check names key report rows and ``--check``)."""
    chosen = [get_family(family)] if family is not None else list(families().values())
    checks: dict[str, Check] = {}
    for kind in chosen:
        for name, check in kind.all_checks().items():
            if name in checks:
                raise ValueError(f"check names must be unique across families: {name!r} is {checks[name].family}'s "
                                 f"and {kind.name}'s")  # fmt: skip
            checks[name] = check
    return checks


def case_id(case) -> str:
    return case.name if isinstance(case, BadInput) else case.id


def run_matrix(
    impls: Iterable[Implementation], checks: Iterable[Check], device: str = "cpu", progress=None
) -> dict[str, dict[str, list[tuple[str, Outcome]]]]:
    """Every applicable (check, case) for each implementation: ``{impl: {check: [(case id, outcome), ...]}}``."""
    checks = list(checks)
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
