"""Loss families as data: one :class:`Family` record holds everything that differs between the softmax focal loss
and RetinaNet's sigmoid one (and any family added later).

The generic machinery — the registry, the check framework, the accuracy sweep, differential testing, the runner,
the gate, the report, the plots — takes a family and reads its record; none of it asks which family it has.

The built-in families are the packages under :mod:`focalbench.arena.families` (each registers its record when it is
imported); a third-party package can ship one through the entry-point group ``focalbench.families`` (an entry point
that imports the module registering it); :func:`register_family` registers one at run time. This module imports
nothing of the arena: the records reference their checks, cases and sweeps through callables.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import pkgutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAMILIES",
    "Differential",
    "Family",
    "Labels",
    "Shape",
    "Sweep",
    "Workload",
    "families",
    "get_family",
    "register_family",
    "unregister_family",
]

ENTRY_POINT_GROUP = "focalbench.families"


@dataclass(frozen=True)
class Shape:
    """A named input shape of a family's timings; ``sweep`` shapes form the size sweep (not in a quick run)."""

    name: str
    shape: tuple[int, ...]
    stands_for: str
    sweep: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Workload:
    """What a family's timings run: the baseline and its name, the inputs (``inputs(shape, dtype, device, seed=0)``),
    how an implementation is called to a scalar loss (``call(impl, logits, target, parameters)``: ``parameters``
    the family's timed parameters by name, :attr:`Family.parameters` or values given for them), what a shape
    needs, the bytes of the targets, the family's shapes."""

    baseline: str
    baseline_loss: Callable[[Any, Any], Any]
    inputs: Callable[..., tuple[Any, Any]]
    call: Callable[[Any, Any, Any, Mapping[str, float]], Any]
    needs: Callable[[Shape], set[str]]
    target_bytes: Callable[[Shape, Any], int]
    shapes: tuple[Shape, ...]
    #: the inputs are logits: time one exp pass and one copy over them as the floors of a row, count bytes per
    #: logit; False for a family whose first input is not the logits (the linear family's hidden states)
    floors: bool = True
    #: the logits a shape stands for (what a run's memory estimate counts); None: ``shape.numel``
    logits_elements: Callable[[Shape], int] | None = None
    #: frees what a timed call left besides the logits' gradient (the linear family's weight gradient), so that a
    #: memory measurement starts from the inputs alone; None: nothing to free
    reset: Callable[[], None] | None = None


@dataclass(frozen=True)
class Sweep:
    """A family's accuracy sweep against its arbitrary-precision oracle, by one axis.

    ``errors(impls, value, dtype, device, **grid) -> {name: [(loss error, gradient error, where), ...]}`` measures
    every implementation at one value of the axis (``grid`` narrows the family's own grid, e.g. ``gammas=``);
    ``description`` says in a sentence what is measured (it heads the accuracy report)."""

    axis: str
    values: tuple[float, ...]
    errors: Callable[..., dict[str, list[tuple[float, float, str]]]]
    description: str


@dataclass(frozen=True)
class Differential:
    """Randomized differential testing: ``cases(seed, count)`` draws random cases, ``check(impl, case, device)``
    compares an implementation with the reference's limits on one, and ``reached(case)`` names the checks whose
    declared defects may explain a failure on it."""

    cases: Callable[[int, int], list]
    check: Callable[[Any, Any, str], str | None]
    reached: Callable[[Any], list[str]]


@dataclass(frozen=True)
class Labels:
    """What figures and reports call the family's things."""

    baseline: str  # the baseline in words, e.g. "F.cross_entropy"
    sweep_rows: str  # the size sweep's x axis
    accuracy_axis: str  # the accuracy figure's x axis, in full
    figure_1: str = ""  # the paper's figure, drawn from this family's implementations ("" for none)


@dataclass(frozen=True)
class Family:
    """A loss family: the definition of the arguments its implementations share and everything the suite needs to
    check, time and draw them.

    ``validate(logits, target, **keywords)`` returns the validated arguments the registered kernels receive (and
    raises TypeError/ValueError); ``defaults`` are the keywords of the common signature; ``capabilities`` what an
    implementation may declare; ``call_needs(args, capabilities)`` the capabilities a validated call needs that are
    missing. ``reference`` is the registered float64 reference the checks compare with (it is judged against the
    oracle), ``gradient_penalty_reference`` the plain-autograd implementation a double backward is compared with,
    ``recommended`` the implementation that mirrors the product, ``product`` the public function itself as
    ``module:attr`` (what ``focalbench history`` times at old commits, where the registry may not know
    ``recommended`` yet; "" for a family without one). ``checks()`` gives the family's checks;
    ``figure_1_inputs(p_t)`` the ``(logits, target, kwargs)`` at which the loss is ``-(1 - p_t)^gamma log p_t``
    (Lin et al.'s Fig. 1) minus gamma, or None; ``mutants()`` the mutant catalogue that scores the checks' power
    (:mod:`focalbench.arena.mutation`), or None. ``parameters`` are the loss's parameters the timings take, with
    their defaults (``{"gamma": 2.0}``; ``{}`` for a loss without any): what ``focalbench run --param`` sets, what
    a report row records and what the gate keys rows by, so a row timed at one value is never compared with
    another's. ``class_axis`` and ``gradient_is_derivative`` tell the generic checks how to judge a gradient (see
    the field comments).
    """

    name: str
    description: str
    validate: Callable[..., Any]
    defaults: Mapping[str, Any]
    capabilities: frozenset[str]
    call_needs: Callable[[Any, frozenset[str]], list[str]]
    reference: str
    gradient_penalty_reference: str
    recommended: str
    checks: Callable[[], Sequence[Any]]
    workload: Workload
    sweep: Sweep
    labels: Labels
    differential: Differential | None = None
    figure_1_inputs: Callable[[Sequence[float]], tuple[Any, Any, dict]] | None = None
    mutants: Callable[[], Any] | None = None  # the family's mutant catalogue (focalbench.arena.mutation.Catalogue)
    order: int = 100  # where listings put the family (lower first; ties by name)
    product: str = ""  # the public function, "module:attr" (e.g. "focalbench:focal_loss")
    parameters: Mapping[str, float] = field(default_factory=dict)  # timed parameters and their defaults
    # the logits' axis one loss element's gradient spans (the classes of a softmax, the bins of a distribution: -1 for
    # the last); None: an elementwise loss, each gradient element judged alone
    class_axis: int | None = None
    # whether the gradient a call returns is the derivative of its loss, given the call's keywords (False for a loss
    # that treats a weight as a constant, e.g. a detached focal weight): finite-difference checks do not apply there
    gradient_is_derivative: Callable[[Mapping[str, Any]], bool] = lambda keywords: True
    # how a mutant's witness is judged against the reference, for a family whose call has more to judge than the
    # loss and the logits' gradient (the linear family: the weight's and bias's gradients, a second backward):
    # ``judge(fn, reference, logits, target, keywords, upstream) -> None | str``; None: loss and logits' gradient
    witness_judge: Callable[..., str | None] | None = None

    def all_checks(self) -> dict[str, Any]:
        """The family's checks by name (each check's ``family`` is this family's name)."""
        checks = {check.name: check for check in self.checks()}
        wrong = [name for name, check in checks.items() if check.family != self.name]
        if wrong:
            raise ValueError(f"checks of family {self.name!r} must say family={self.name!r}. Got: {wrong}")
        return checks


_FAMILIES: dict[str, Family] = {}
_DISCOVERED = False
_DISCOVERING = False
_LOCK = threading.RLock()
#: The built-in families' packages, imported by name (so this module imports none of them).
BUILTIN_PACKAGE = "focalbench.arena.families"


def register_family(family: Family) -> Family:
    """Register ``family`` under its name; returns it.

    Raises:
        ValueError: a family of that name is already registered.
        TypeError: ``family`` is not a :class:`Family`.
    """
    if not isinstance(family, Family):
        raise TypeError(f"family must be a focalbench Family. Got: {type(family).__name__}")
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"family name must be unique: {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> Family:
    """Remove the family registered as ``name`` (a plugin's or a test's); returns it.

    Raises:
        ValueError: no family of that name is registered."""
    _discover()
    if name not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(families())}. Got: {name!r}")
    return _FAMILIES.pop(name)


def _discover() -> None:
    """Import every built-in family package and every ``focalbench.families`` entry point, once."""
    global _DISCOVERED, _DISCOVERING
    if _DISCOVERED:
        return
    with _LOCK:
        if _DISCOVERED or _DISCOVERING:
            return
        _DISCOVERING = True
        try:
            package = importlib.import_module(BUILTIN_PACKAGE)
            for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if module.ispkg:
                    importlib.import_module(f"{BUILTIN_PACKAGE}.{module.name}")
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                entry_point.load()
            _DISCOVERED = True
        finally:
            _DISCOVERING = False


def families() -> dict[str, Family]:
    """Every registered family, by name, in listing order (:attr:`Family.order`, then the name)."""
    _discover()
    return {f.name: f for f in sorted(_FAMILIES.values(), key=lambda f: (f.order, f.name))}


def get_family(name: str) -> Family:
    """The family called ``name``. Raises ValueError naming the families otherwise."""
    _discover()
    if name not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(families())}. Got: {name!r}")
    return _FAMILIES[name]


class _Families(Mapping):
    """:data:`FAMILIES`: a read-only view of the registered families that discovers the built-in ones on first use."""

    def __getitem__(self, name: str) -> Family:
        return families()[name]

    def __iter__(self):
        return iter(families())

    def __len__(self) -> int:
        return len(families())


#: The registered loss families, by name (a live, read-only mapping).
FAMILIES: Mapping[str, Family] = _Families()
