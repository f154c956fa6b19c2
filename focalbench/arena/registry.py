"""The registry of focal-loss implementations.

An implementation is one file in ``implementations/`` (installed as ``focalbench.implementations``) that ends in one
:func:`register` decorator. Each belongs to a loss *family* (:data:`FAMILIES`), which owns the definition of its
arguments: ``"softmax"`` (the default; the decorated *kernel* receives validated
:class:`~focalbench.losses.softmax.semantics.FocalArgs`) or ``"sigmoid"`` (RetinaNet's one-vs-rest loss; it receives
:class:`~focalbench.losses.sigmoid.semantics.SigmoidArgs`). The registry wraps the kernel into a callable with the
family's
common signature::

    impl(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100) -> Tensor   # softmax
    impl(logits, target, *, alpha=0.25, gamma=2.0, reduction="none") -> Tensor                      # sigmoid

which validates its arguments (the family's ``validate``), refuses what the implementation declares it
cannot do, and carries the metadata the checks and the benchmarks read (devices, dtypes, capabilities, known defects).
A user's own focal loss can be loaded as ``"module:attr"`` with :func:`load_implementation`; it is called as it is,
without our validation, so the checks judge its own behaviour, and it may declare what it is with attributes
(:data:`DECLARATIONS`: ``focalbench_capabilities`` and the like).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from focalbench.arena.family import FAMILIES, Shape, families, get_family
from focalbench.losses.common import FLOAT_DTYPES

__all__ = [
    "FAMILIES",
    "Implementation",
    "add",
    "KnownDefect",
    "get_family",
    "get_implementation",
    "list_implementations",
    "load_implementation",
    "register",
    "register_unavailable",
    "unregister",
    "unavailable_implementations",
]

Kernel = Callable[[Any], torch.Tensor]  # FocalArgs -> Tensor, or SigmoidArgs -> Tensor


@dataclass(frozen=True)
class KnownDefect:
    """A documented way an implementation fails a check.

    ``when`` receives the check's :class:`~focalbench.arena.families.softmax.cases.Case` and says whether the defect
    applies to it;
    ``None`` means every case of that check. The suite asserts that such a case *fails* (a strict expected failure),
    so a change that repairs or alters the defect shows up.
    """

    check: str
    reason: str
    when: Callable[[Any], bool] | None = None

    def applies(self, check: str, case: Any) -> bool:
        return check == self.check and (self.when is None or bool(self.when(case)))


@dataclass(frozen=True)
class Implementation:
    """A registered focal loss: a callable with the common signature plus what the suite needs to know about it."""

    name: str
    fn: Callable[..., torch.Tensor]
    description: str = ""
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES
    capabilities: frozenset[str] = frozenset()  # register() and load_implementation() fill in the family's
    known_defects: tuple[KnownDefect, ...] = ()
    compiles: bool = False  # has a one-off compilation cost that benchmarks measure separately
    external: bool = False  # loaded from a user's "module:attr"; called without focalbench's validation
    family: str = ""  # the loss it computes (required): a key of FAMILIES
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.family:
            raise ValueError(f"implementation {self.name!r} must name its family (family=...). Got: none")

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The loss, with the family's keyword arguments (every one passed, defaults filled in)."""
        return self.fn(logits, target, **{**get_family(self.family).defaults, **kwargs})

    def supports(
        self,
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        needs: Iterable[str] = (),
        family: str | None = None,
    ) -> str | None:
        """``None`` when a call with these properties is supported, else the reason it is not.

        ``family``: the loss family the call is about; the one place that keeps a check, a case or a timing of one
        family off the implementations of another."""
        if family is not None and family != self.family:
            return f"{self.name} is a {self.family} focal loss, not a {family} one"
        if device is not None and device not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}, not {device}"
        if dtype is not None and dtype not in self.dtypes:
            return f"{self.name} does not support {dtype}"
        missing = sorted(set(needs) - self.capabilities)
        if missing:
            return f"{self.name} does not support {', '.join(missing)}"
        return None

    def defect_for(self, check: str, case: Any) -> KnownDefect | None:
        return next((d for d in self.known_defects if d.applies(check, case)), None)


_REGISTRY: dict[str, Implementation] = {}
_ORIGIN: dict[str, str] = {}  # name -> the module whose code registered it (listings follow the order of discovery)
_ALONE = False  # an implementation module was imported alone, before discovery (the listing is then reordered)
_UNAVAILABLE: dict[str, str] = {}
_UNAVAILABLE_FAMILY: dict[str, str] = {}  # the family of an unavailable implementation, where its module says
_DISCOVERED = False  # every implementation module has been imported
_DISCOVERING = False  # the thread holding _DISCOVERY_LOCK is importing them
_DISCOVERY_LOCK = threading.RLock()
ENTRY_POINT_GROUP = "focalbench.implementations"
PACKAGE = "focalbench.implementations"  # the built-in implementations' package (implementations/ in the repository)


def register(
    name: str,
    *,
    description: str = "",
    family: str,
    devices: tuple[str, ...] = ("cpu", "cuda"),
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
    capabilities: Iterable[str] | None = None,
    known_defects: Iterable[KnownDefect] = (),
    compiles: bool = False,
    traced: Callable[..., torch.Tensor] | None = None,
    **extra: Any,
) -> Callable[[Kernel], Kernel]:
    """Register a kernel ``f(args) -> Tensor`` of the loss ``family`` under ``name``; returns the kernel unchanged.

    ``args`` are the family's validated arguments (:class:`~focalbench.losses.softmax.semantics.FocalArgs` for
    ``"softmax"``,
    :class:`~focalbench.losses.sigmoid.semantics.SigmoidArgs` for ``"sigmoid"``); ``capabilities`` default to all of the
    family's but ``compile``.

    ``traced``, a callable with the common signature, is what the implementation runs while ``torch.compile`` or
    ``torch.export`` traces it (validation reads values on the host, which tracing cannot); giving it declares the
    ``compile`` capability, which the ``compiles_fullgraph`` check verifies.

    Raises:
        ValueError: ``name`` is already registered, or the family or a capability is unknown.

    Example:
        >>> from focalbench.arena.registry import register
        >>> @register("my_loss", capabilities={"dense"})  # doctest: +SKIP
        ... def my_loss(args):
        ...     ...
    """
    kind = get_family(family)  # the built-in families are discovered here, at the first registration
    declared = kind.capabilities - {"compile"} if capabilities is None else frozenset(capabilities)
    caps = declared | ({"compile"} if traced is not None else set())
    unknown = caps - kind.capabilities
    if unknown:
        raise ValueError(f"capabilities must be among {sorted(kind.capabilities)}. Got: {sorted(unknown)}")

    def decorator(kernel: Kernel) -> Kernel:
        def impl(logits, target, **kwargs):
            if traced is not None and torch.compiler.is_compiling():
                return traced(logits, target, **kwargs)
            args = kind.validate(logits, target, **kwargs)
            device = args.logits.device.type
            if device not in devices:
                raise ValueError(f"logits must be on {' or '.join(devices)} for {name!r}. Got: {device}")
            if args.logits.dtype not in dtypes:
                raise TypeError(
                    f"logits dtype must be one of {[str(d) for d in dtypes]} for {name!r}. Got: {args.logits.dtype}"
                )
            missing = kind.call_needs(args, caps)
            if missing:
                raise ValueError(f"{name!r} does not support {', '.join(missing)} (a declared limitation)")
            return kernel(args)

        impl.__name__ = impl.__qualname__ = name
        impl.__doc__ = kernel.__doc__
        add(Implementation(
            name=name,
            fn=impl,
            description=description or next(iter((kernel.__doc__ or "").strip().splitlines()), name),
            devices=tuple(devices),
            dtypes=tuple(dtypes),
            capabilities=caps,
            known_defects=tuple(known_defects),
            compiles=compiles,
            family=family,
            extra=dict(extra),
        ), origin=_registering_module(kernel.__module__))  # fmt: skip
        return kernel

    return decorator


def _registering_module(default: str) -> str:
    """The implementation module whose top-level code is running (the one registering), else ``default``."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if frame.f_code.co_name == "<module>" and name.startswith(f"{PACKAGE}."):
            return name
        frame = frame.f_back
    return default


def add(impl: Implementation, origin: str | None = None) -> Implementation:
    """Register an :class:`Implementation` record as it is (a wrapped or re-declared one: ``unregister`` it first);
    ``origin``: the module registering it (default: its function's), which places it in listings.

    Raises:
        ValueError: its name is already registered."""
    _discover()
    if impl.name in _REGISTRY:
        raise ValueError(f"implementation name must be unique: {impl.name!r} is already registered")
    _REGISTRY[impl.name] = impl
    _ORIGIN[impl.name] = origin or _registering_module(getattr(impl.fn, "__module__", "") or "")
    return impl


def unregister(name: str) -> Implementation:
    """Remove the implementation registered as ``name`` (a plugin's or a test's); returns it.

    Raises:
        ValueError: no implementation of that name is registered."""
    if name not in _REGISTRY:
        raise ValueError(f"implementation must be one of {', '.join(_REGISTRY)}. Got: {name!r}")
    _ORIGIN.pop(name, None)
    return _REGISTRY.pop(name)


def register_unavailable(name: str, reason: str, family: str | None = None) -> None:
    """Record that ``name`` (a ``family`` loss, when known) exists but cannot run here (e.g. an optional dependency
    is missing)."""
    _UNAVAILABLE[name] = reason
    if family is not None:
        _UNAVAILABLE_FAMILY[name] = family


def _import_registering(name: str, load: Callable[[], object]) -> None:
    """Run one registering import; a module that fails to import makes ``name`` unavailable, never the registry."""
    try:
        load()
    except Exception as error:  # noqa: BLE001 - whatever a module raises, the other implementations stay usable
        register_unavailable(name, f"importing it failed: {type(error).__name__}: {error}")


def _discover() -> None:
    """Import every implementation module once, whichever thread asks first; the others wait for it to finish.

    ``_DISCOVERED`` is set only after every import has run, under ``_DISCOVERY_LOCK``, so no thread can see a
    half-filled registry. The lock is re-entrant and ``_DISCOVERING`` makes a nested call (a module that looks an
    implementation up while it is being imported) return at once instead of starting discovery again. Where
    :func:`get_implementation` imported a module alone before, the listing is put back in the order a discovery from
    scratch registers (:func:`_in_discovery_order`).
    """
    global _DISCOVERED, _DISCOVERING
    if _DISCOVERED:
        return
    with _DISCOVERY_LOCK:
        if _DISCOVERED or _DISCOVERING:
            return
        _DISCOVERING = True
        try:
            package = importlib.import_module(PACKAGE)
            for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if not module.name.startswith("_"):
                    qualified = f"{package.__name__}.{module.name}"
                    _import_registering(module.name, functools.partial(importlib.import_module, qualified))
            # Third-party packages can ship implementations through an entry point that imports their module.
            entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
            for entry_point in entry_points:
                _import_registering(entry_point.name, entry_point.load)
            if _ALONE:
                _in_discovery_order(_execution_order(package) + [e.module for e in entry_points])
            _DISCOVERED = True
        finally:
            _DISCOVERING = False


def _package_imports(path: Path) -> list[str]:
    """The package's modules that a module's top-level code imports, in the order it imports them."""
    imported: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.ImportFrom) and statement.module == PACKAGE:
                imported.extend(alias.name for alias in statement.names)
            elif isinstance(statement, ast.ImportFrom) and (statement.module or "").startswith(f"{PACKAGE}."):
                imported.append(statement.module.removeprefix(f"{PACKAGE}.").partition(".")[0])
            elif isinstance(statement, ast.Import):
                imported.extend(alias.name.removeprefix(f"{PACKAGE}.").partition(".")[0]
                                for alias in statement.names if alias.name.startswith(f"{PACKAGE}."))  # fmt: skip
            elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([s for s in getattr(statement, field, []) if isinstance(s, ast.stmt)] +
                          [s for h in getattr(statement, field, []) if isinstance(h, ast.ExceptHandler)
                           for s in h.body])  # fmt: skip

    try:
        visit(ast.parse(path.read_text(encoding="utf-8")).body)
    except (OSError, SyntaxError, ValueError):
        pass
    return imported


def _execution_order(package) -> list[str]:
    """The package's modules in the order a discovery from scratch runs their registrations: by name, each after the
    package modules its top-level code imports (Python runs those first)."""
    root = Path(next(iter(package.__path__)))
    files = {m.name: root / m.name / "__init__.py" if m.ispkg else root / f"{m.name}.py"
             for m in pkgutil.iter_modules(package.__path__)}  # fmt: skip
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        for imported in _package_imports(files[name]):
            visit(imported)
        order.append(f"{PACKAGE}.{name}")

    for name in sorted(n for n in files if not n.startswith("_")):
        visit(name)
    return order


def _in_discovery_order(modules: list[str]) -> None:
    """Reorder the registry as a discovery from scratch fills it: by the registering module's place in ``modules``
    (registration order within one module; a name from elsewhere after them, in its order)."""
    place = {module: index for index, module in enumerate(modules)}
    names = sorted(_REGISTRY, key=lambda name: place.get(_ORIGIN.get(name, ""), len(place)))
    reordered = {name: _REGISTRY[name] for name in names}
    _REGISTRY.clear()
    _REGISTRY.update(reordered)


def _import_alone(name: str) -> None:
    """Import the implementation module named like ``name`` (``implementations/<name>.py``), and only it, when
    there is one: what a lookup of one implementation needs (the family's reference, say), without importing every
    peer. Discovery, when something asks for it later, finds the module imported and reorders the listing."""
    global _ALONE, _DISCOVERING
    if _DISCOVERED or name.startswith("_") or not name.isidentifier():
        return
    with _DISCOVERY_LOCK:
        if _DISCOVERED or _DISCOVERING:
            return
        qualified = f"{PACKAGE}.{name}"
        try:
            found = importlib.util.find_spec(qualified) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return
        _DISCOVERING = _ALONE = True  # a registration while it imports must not start the whole discovery
        try:
            _import_registering(name, functools.partial(importlib.import_module, qualified))
        finally:
            _DISCOVERING = False


def list_implementations(family: str | None = None) -> list[str]:
    """Names of the registered implementations that can run in this environment, in registration order; only those
    of ``family`` when it is given."""
    _discover()
    if family is not None:
        get_family(family)
    return [name for name, impl in _REGISTRY.items() if family in (None, impl.family)]


def unavailable_implementations(family: str | None = None) -> dict[str, str]:
    """Implementations that exist but cannot run here, with the reason (only ``family``'s, and those of no known
    family, when given)."""
    _discover()
    return {name: reason for name, reason in _UNAVAILABLE.items()
            if family is None or _UNAVAILABLE_FAMILY.get(name, family) == family}  # fmt: skip


def get_implementation(name: str) -> Implementation:
    """The registered implementation called ``name``.

    Raises:
        ValueError: no such implementation; the message lists the valid names (and why an unavailable one is).
    """
    if name not in _REGISTRY:
        _import_alone(name)  # the module of that name alone, where there is one
    if name in _REGISTRY:
        return _REGISTRY[name]
    _discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _UNAVAILABLE:
        raise ValueError(f"implementation {name!r} is unavailable here: {_UNAVAILABLE[name]}")
    raise ValueError(f"implementation must be one of {', '.join(_REGISTRY)}. Got: {name!r}")


#: Attributes by which a user's ``module:attr`` callable declares what it is (each optional; without one, the default
#: of :class:`Implementation`: every device, dtype and capability of its family, no known defect; the family
#: :func:`load_implementation` is given).
DECLARATIONS = {
    "focalbench_family": "family",
    "focalbench_devices": "devices",
    "focalbench_dtypes": "dtypes",
    "focalbench_capabilities": "capabilities",
    "focalbench_known_defects": "known_defects",
}


def _declarations(obj: Any, spec: str, family: str | None) -> dict[str, Any]:
    """The :data:`DECLARATIONS` attributes ``obj`` carries, checked, as :class:`Implementation` fields (``family``
    where it declares none)."""
    declared = {name: getattr(obj, attribute) for attribute, name in DECLARATIONS.items() if hasattr(obj, attribute)}
    declared.setdefault("family", family)
    kind = get_family(declared["family"])
    declared.setdefault("capabilities", kind.capabilities - {"compile"})
    for name in ("devices", "dtypes", "known_defects"):
        if name in declared:
            declared[name] = tuple(declared[name])
    if "capabilities" in declared:
        declared["capabilities"] = frozenset(declared["capabilities"])
        unknown = declared["capabilities"] - kind.capabilities
        if unknown:
            raise ValueError(f"focalbench_capabilities of {spec!r} must be among {sorted(kind.capabilities)}. "
                             f"Got: {sorted(unknown)}")  # fmt: skip
    wrong = [d for d in declared.get("dtypes", ()) if not isinstance(d, torch.dtype)]
    wrong += [d for d in declared.get("known_defects", ()) if not isinstance(d, KnownDefect)]
    wrong += [d for d in declared.get("devices", ()) if not isinstance(d, str)]
    if wrong:
        raise TypeError(f"declarations of {spec!r} must be device names, torch dtypes and KnownDefects. Got: {wrong}")
    return declared


def _signature_keywords(fn: Callable) -> tuple[set[str], set[str]] | str | None:
    """``(keywords fn takes, parameters it requires)`` beyond the logits and the target, from its signature; None when
    the signature cannot tell (it takes ``**kwargs``, or has none); a string when it cannot take two positional
    arguments at all."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or an extension's callable without a signature
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return "must take the logits and the target as its first two arguments"
    rest = positional[2:] + [p for p in parameters if p.kind is p.KEYWORD_ONLY]
    return {p.name for p in rest if p.kind is not p.POSITIONAL_ONLY}, {p.name for p in rest if p.default is p.empty}


def _probe(fn: Callable, family: str, devices: Iterable[str], dtypes: Iterable[torch.dtype]) -> str | None:
    """What one call of ``fn`` on a tiny valid input of ``family`` (its workload's inputs of shape (4, 3), its
    keywords) on the CPU raised, as ``"Type: message"``; None when it returned (or cannot run on the CPU)."""
    if "cpu" not in devices:
        return None
    dtypes = tuple(dtypes)
    kind = get_family(family)
    dtype = torch.float32 if torch.float32 in dtypes or not dtypes else dtypes[0]
    logits, target = kind.workload.inputs(Shape("probe", (4, 3), "a probe call"), dtype, "cpu")
    try:
        fn(logits, target, **kind.defaults)
    except Exception as error:  # noqa: BLE001 - whatever it raises is what the probe reports
        return f"{type(error).__name__}: {error}"
    return None


def _keyword_mismatch(fn: Callable, spec: str, declared: dict[str, Any], family_declared: bool) -> str | None:
    """Why ``fn`` cannot be called as a loss of its family (every call passes the logits, the target and the
    family's keywords, :attr:`Family.defaults`), in one line naming the family whose keywords it takes; or None.

    From the signature when it tells (a function of another family takes exactly that family's keywords, or not all
    of its own); otherwise by probe calls (:func:`_probe`): one of its family that raises where one of another
    family returns."""
    family = declared["family"]
    wanted = tuple(get_family(family).defaults)
    others = [name for name in families() if name != family]
    fix = {True: "declare focalbench_family = {!r}", False: "use --family {}"}[family_declared]

    def takes(name: str) -> str:
        return f"{spec} takes {name}'s keywords ({', '.join(get_family(name).defaults)})"

    keywords = _signature_keywords(fn)
    if isinstance(keywords, str):
        return f"{spec} {keywords}"
    if keywords is None:
        devices, dtypes = declared.get("devices", ("cpu",)), declared.get("dtypes", ())
        if "cpu" not in devices:
            return None
        raised = _probe(fn, family, devices, dtypes)
        if raised is None:
            return None
        for name in others:
            if _probe(fn, name, devices, dtypes) is None:
                return (f"{takes(name)} and inputs, not {family}'s (a call with {family}'s raised {raised}): "
                        f"{fix.format(name)}")  # fmt: skip
        return None
    accepted, required = keywords
    fitting = sorted((name for name in families() if set(get_family(name).defaults) <= accepted),
                     key=lambda name: (-len(get_family(name).defaults), name != family))  # fmt: skip
    missing = [k for k in wanted if k not in accepted]
    if missing:
        if fitting:
            return f"{takes(fitting[0])}, not {family}'s: {fix.format(fitting[0])}"
        return (f"{spec} must take {family}'s keywords ({', '.join(wanted)}): every call passes them. Got a "
                f"signature without {', '.join(missing)}")  # fmt: skip
    if not family_declared and fitting[0] != family:  # takes more: another family's keywords, its own among them
        if accepted == set(get_family(fitting[0]).defaults):
            return f"{takes(fitting[0])}, not {family}'s: use --family {fitting[0]}"
        return (f"{takes(fitting[0])}, not only {family}'s: use --family {fitting[0]} (or declare "
                f"focalbench_family = {family!r})")  # fmt: skip
    unpassed = sorted(required - set(wanted))
    if unpassed:
        return f"{spec} requires {', '.join(unpassed)}, which no call passes (calls pass {', '.join(wanted)})"
    return None


def _import_user_module(module_name: str):
    """``module_name`` imported as ``python -m`` would find it: from ``sys.path``, else from the current directory
    (where a console script such as ``focalbench`` is run from the folder that holds the module, which is not on
    ``sys.path`` as it is for ``python -m``); the current directory is on ``sys.path`` for that import only.

    Raises:
        ModuleNotFoundError: neither has it; the message names every directory searched."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        searched = [entry or os.getcwd() for entry in sys.path]
        here = os.getcwd()
        missing = error.name or ""
        # only a miss of that very module (or a package above it), never one of the modules it imports
        if not (module_name == missing or module_name.startswith(f"{missing}.")):
            raise
        if here not in searched:
            sys.path.insert(0, here)
            importlib.invalidate_caches()
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as retry:
                if retry.name != missing:
                    raise
            finally:
                if here in sys.path:
                    sys.path.remove(here)
        raise ModuleNotFoundError(
            f"No module named {missing!r} (searched the current directory {here} and sys.path: "
            f"{', '.join(dict.fromkeys(s for s in searched if s != here))}; set PYTHONPATH to add a directory)",
            name=missing,
        ) from error


def load_implementation(spec: str | Callable, family: str | None = None) -> Implementation:
    """A registered name, a user's ``"module:attr"``, or a user's callable itself: an :class:`Implementation`.

    A user's callable has the common signature and may declare what it is with the :data:`DECLARATIONS` attributes
    (``focalbench_capabilities`` ...); its family is its ``focalbench_family``, else ``family``: one of the two must
    name it (no family is assumed).
    Whether it takes that family's keywords is read from its signature, or (where the signature takes ``**kwargs``)
    found by one call on a tiny input of the family on the CPU. ``module`` is looked for on ``sys.path``, then in the
    current directory (as ``python -m`` would find it). A callable given itself is named ``module:qualname``.

    Raises:
        ValueError: the module or attribute cannot be loaded (the message names the directories searched), no
            family is named (neither ``focalbench_family`` nor ``family``), a declared family or capability is
            unknown, or the callable cannot take its family's keywords (the
            message names the family whose keywords it takes).
        TypeError: the attribute is not callable, or a declaration has the wrong type.
    """
    if isinstance(spec, Implementation):
        return spec
    if not isinstance(spec, str):
        obj = spec
        spec = _name_of(obj)
    elif ":" not in spec:
        return get_implementation(spec)
    else:
        module_name, _, attr = spec.partition(":")
        try:
            obj = _import_user_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"implementation {spec!r} could not be loaded: {error}") from error
        if isinstance(obj, Implementation):
            return obj
    if not callable(obj):
        raise TypeError(f"implementation {spec!r} must be callable. Got: {type(obj).__name__}")
    description = (obj.__doc__ or spec).strip().splitlines()[0]
    if family is None and not hasattr(obj, "focalbench_family"):
        family = _product_family(obj)
    if family is None and not hasattr(obj, "focalbench_family"):
        raise ValueError(f"implementation {spec!r} must name its loss family: give it a focalbench_family attribute "
                         f"or pass the family ({', '.join(families())}; --family on the command line). Got: "
                         "neither")  # fmt: skip
    declared = _declarations(obj, spec, family)
    mismatch = _keyword_mismatch(obj.forward if isinstance(obj, torch.nn.Module) else obj, spec, declared,
                                 family_declared=hasattr(obj, "focalbench_family"))  # fmt: skip
    if mismatch:
        raise ValueError(mismatch)
    return Implementation(name=spec, fn=obj, description=description, external=True, **declared)


def _product_family(obj: object) -> str | None:
    """The family whose public function ``obj`` is (its record's ``product``), else None: the product needs no
    declaration."""
    for family in families().values():
        module, _, attr = family.product.partition(":")
        if module and obj is getattr(importlib.import_module(module), attr, None):
            return family.name
    return None


def _name_of(obj: object) -> str:
    """A callable's ``module:qualname`` (an instance's: its class's), as a report names it."""
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(named, '__module__', None) or '?'}:{getattr(named, '__qualname__', type(obj).__name__)}"
