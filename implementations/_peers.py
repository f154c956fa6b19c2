"""What the peer adapters (``peer_*.py``) share: the cases their defects apply to, and the defects several peers have.

A peer is a focal loss that people install (kornia, MONAI, focal_loss_torch, segmentation_models_pytorch), entered in
the arena through a thin adapter that maps the common arguments onto the peer's own only where the peer has the same
meaning. Its defects are declared as strict known defects, each with the cases it applies to (``when``), so that every
case where a declared defect shows fails, and every other case must pass.

This module registers nothing (its name starts with ``_``, so discovery skips it).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.metadata
import importlib.util
import types
from pathlib import Path

import torch

from focalbench.arena.registry import KnownDefect

__all__ = [
    "CANCELLATION",
    "EMPTY_MEAN",
    "confident_fractional_gamma",
    "certain_fractional_gamma",
    "counts_something",
    "defects",
    "import_peer",
    "installed_version",
    "log_p_t_infinite",
    "no_counted_element",
    "smallest_p_t",
]


def defects(reason: str, when, *checks: str) -> tuple[KnownDefect, ...]:
    """One defect that shows in several checks: the same reason and cases (``when``) for each of ``checks``."""
    return tuple(KnownDefect(check, reason, when=when) for check in checks)


def import_peer(module: str, attr: str, distribution: str) -> tuple[object | None, str]:
    """``(module.attr, "")`` when the peer is installed, else ``(None, why not)`` (the install command included)."""
    try:
        return getattr(importlib.import_module(module), attr), ""
    except ImportError as error:
        return None, f"{distribution} is not installed (pip install 'focalbench[peers]'): {error}"


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (its pip name), or ``"?"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def counts_something(case) -> bool:
    """The exact loss of ``case`` is not 0: a non-empty batch with counted elements, not all of them certain.

    A peer whose reduction divides by another number still gives 0 where the loss is 0 (every element ignored, or every
    non-target class at -inf without an impossible target), so a divisor defect does not show there.
    """
    return case.shape[0] > 0 and case.ignore_fraction < 1 and (case.masked < 1 or case.impossible > 0)


def confident_fractional_gamma(case, float64_gap: float = 1e3) -> bool:
    """0 < gamma < 1 at confident rows whose p_t rounds to 1: a gap >= 30 in float32, ``float64_gap`` in float64."""
    saturating_gap = 30.0 if case.dtype != torch.float64 else float64_gap
    return case.margin is not None and case.margin >= saturating_gap and 0 < case.gamma < 1


def _p_t(case, dtype: torch.dtype) -> torch.Tensor:
    """p_t of the case's counted elements, softmax computed in ``dtype``."""
    logits, target = case.make()
    counted = target != case.ignore_index
    p = torch.softmax(logits.to(dtype), dim=1).gather(1, torch.where(counted, target, 0).long().unsqueeze(1)).squeeze(1)
    return p[counted]


def certain_fractional_gamma(case) -> bool:
    """0 < gamma < 1 where some counted p_t is exactly 1 in the logits' dtype (e.g. every other class at -inf)."""
    return 0 < case.gamma < 1 and bool((_p_t(case, case.dtype) == 1).any())


def no_counted_element(case) -> bool:
    """An empty batch, or every element ignored (also where a random ignore mask happens to drop them all)."""
    logits, target = case.make()
    return not bool((target != case.ignore_index).any())


def log_p_t_infinite(case) -> bool:
    """gamma > 0 where some p_t is exactly 0 (a target at -inf, or a gap beyond the dtype's range)."""
    return case.gamma > 0


def smallest_p_t(case) -> float:
    """The smallest p_t of the case's counted elements, in float64 (1 when none is counted)."""
    p_t = _p_t(case, torch.float64)
    return float(p_t.min()) if p_t.numel() else 1.0


#: 1 - p_t computed as 1 - exp(log p_t) (or 1 - softmax_t): once p_t is within a rounding error of 1 the difference
#: keeps no correct digit (float32 past a logit gap of ~17, float64 past ~37; ~1e-3 relative at a gap of 30).
CANCELLATION = KnownDefect(
    "accurate_at_extremes",
    "1 - p_t = 1 - exp(log p_t) cancels: no correct digit in float32 past a gap of ~17, ~1e-3 relative in float64 "
    "at a gap of 30 (the exact 1 - p_t is below the rounding error of p_t)",
    when=lambda case: case.margin is not None and case.margin >= 30,
)

EMPTY_MEAN = KnownDefect(
    "empty_batch", "the mean of an empty batch is 0 / 0 = NaN", when=lambda case: case.reduction == "mean"
)


def nan_gradient_at_p_t_zero(*checks: str) -> tuple[KnownDefect, ...]:
    """autograd through (1 - p_t)^gamma * log p_t at p_t = 0: the focal factor's derivative (0 there) times
    log p_t = -inf is NaN, for every gamma > 0."""
    reason = (
        "p_t = 0 (a -inf target, or a gap beyond range): the focal factor's derivative, 0 there, times log p_t = -inf "
        "gives a NaN gradient for gamma > 0"
    )
    return defects(reason, log_p_t_infinite, *checks)


def nan_gradient_for_fractional_gamma(float64_gap: float = 1e3) -> tuple[KnownDefect, ...]:
    """autograd's pow backward at a confident row: gamma (1 - p_t)^(gamma - 1) is infinite at p_t = 1 for
    0 < gamma < 1, and infinity times 0 is NaN (the whole row's gradient)."""
    reason = (
        "p_t rounds to 1 and pow's backward gamma (1 - p_t)^(gamma - 1) is inf for 0 < gamma < 1: inf x 0 = NaN "
        "in the whole row's gradient"
    )
    return (
        KnownDefect("finite_at_extremes", reason, when=lambda case: confident_fractional_gamma(case, float64_gap)),
        KnownDefect(
            "absent_classes", reason + " (p_t exactly 1: other classes at -inf)", when=certain_fractional_gamma
        ),
    )


def mmdet_losses_file(filename: str, imports: dict[str, object]) -> types.ModuleType:
    """One file of mmdet's ``models/losses/`` (mmdet located, never imported: its package imports mmcv and mmengine,
    which cannot be installed beside the CPU torch), loaded with ``utils.py`` of the same folder (it imports only
    torch) answering its ``from mmdet.models.losses.utils import ...`` / ``from .utils import ...`` and a stand-in
    registry answering ``from mmdet.registry import MODELS`` (``MODELS.register_module()`` leaves the class as it is):
    the file's own code, unchanged. ``imports`` adds other answers.

    Raises:
        ImportError: mmdet is not installed (the message says how to install it), or the file cannot be loaded.
    """
    spec = importlib.util.find_spec("mmdet")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mmdet is not installed (pip install --no-deps 'mmdet==3.3.0')")
    losses = Path(next(iter(spec.submodule_search_locations))) / "models" / "losses"
    utils = load_file(losses / "utils.py", f"focalbench_peer_mmdet_utils_for_{Path(filename).stem}", {})
    registry = types.SimpleNamespace(MODELS=types.SimpleNamespace(register_module=lambda *a, **k: lambda cls: cls))
    answers = {"mmdet.models.losses.utils": utils, ".utils": utils, "mmdet.registry": registry, **imports}
    return load_file(losses / filename, f"focalbench_peer_mmdet_{Path(filename).stem}", answers)


def load_file(path: Path, name: str, imports: dict[str, object]) -> types.ModuleType:
    """The module of one file, its imports of the modules named in ``imports`` answered from there (a relative
    ``from .x import ...`` by the key ``".x"``), every other import as usual."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)

    def scoped_import(module_name, globals_=None, locals_=None, fromlist=(), level=0):
        key = "." * level + module_name
        if key in imports:
            return imports[key]
        return builtins.__import__(module_name, globals_, locals_, fromlist, level)

    module.__builtins__ = {**vars(builtins), "__import__": scoped_import}
    spec.loader.exec_module(module)
    return module
