"""``varifocal_ultralytics``: ultralytics' ``VarifocalLoss`` (8.3), the peer, behind a thin adapter.

The class lives in ``ultralytics/utils/loss.py``, whose imports run the whole package (OpenCV, the model zoo). So the
class alone is taken from the installed file: its definition is compiled from that file's source (not changed, not
copied into this project) with ``torch``, ``nn``, ``F`` and ``autocast`` (ultralytics' ``torch_utils.autocast``:
``torch.amp.autocast(device, enabled=...)`` on PyTorch >= 1.13) as its only names. Install ultralytics without its
dependencies: ``pip install --no-deps "ultralytics==8.3.253"``.

How the common arguments map onto ultralytics', and only where ultralytics has the same meaning:
``VarifocalLoss(gamma, alpha)(pred_score, gt_score, label)`` with ``gt_score`` the target and ``label = target > 0``
(:func:`focalbench.losses.varifocal.semantics.ultralytics_targets` is the way back); its ``.mean(1).sum()`` is our
``"sum"`` on ``(N, 1, 1)`` scores and our ``"mean"`` on ``(1, N, 1)`` ones; ``"none"`` applies the class to each
element (``torch.func.vmap``). Not declared: ``iou_weighted=False`` and ``detach_weight=True`` (no such options).

ultralytics computes ``BCE`` with ``pred_score.float()``. Declared defects: float64 logits get float32 accuracy (the
loss is a float32 BCE times a float64 weight); where ``sigmoid(x)`` underflows (a negative at ``x < -745`` in float64,
``< -104`` in float32) pow's backward is ``gamma 0^(gamma - 1) = inf`` times 0 for ``0 < gamma < 1``: a NaN gradient;
``F.binary_cross_entropy_with_logits`` cancels at confident negatives (``(1 - q) x - logsigmoid(x)``: 0 at ``x = -17``
in float32) and ``sigmoid(x)^gamma`` in float32 carries gamma times the rounding of ``sigmoid(x)``: off the accuracy
bound at large logits; float64 logits beyond float32's range become inf (``pred_score.float()``): NaN; near the
dtype's largest logit autograd's product overflows to a NaN gradient.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations._peers import installed_version
from focalbench.implementations.varifocal_autograd import overflows_at_the_largest_logit
from focalbench.implementations.varifocal_reference import reference_elements
from focalbench.losses.varifocal.semantics import VarifocalArgs, validate

PACKAGE = "ultralytics"


def _autocast(enabled: bool, device: str = "cuda"):
    """ultralytics' ``utils.torch_utils.autocast`` on PyTorch >= 1.13."""
    return torch.amp.autocast(device, enabled=enabled)


def _load_varifocal_loss() -> type:
    """ultralytics' ``VarifocalLoss`` class, compiled from ``utils/loss.py`` alone (the package not run)."""
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed (pip install --no-deps '{PACKAGE}==8.3.253')")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils" / "loss.py"
    tree = ast.parse(path.read_text(), str(path))
    definition = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "VarifocalLoss"), None)
    if definition is None:
        raise AttributeError(f"{path} defines no VarifocalLoss")
    future = ast.ImportFrom(module="__future__", names=[ast.alias("annotations")], level=0)
    code = compile(ast.fix_missing_locations(ast.Module(body=[future, definition], type_ignores=[])), str(path), "exec")
    names = {"torch": torch, "nn": nn, "F": F, "autocast": _autocast, "__name__": "focalbench_peer_ultralytics_loss"}
    exec(code, names)  # noqa: S102 - the installed file's own class definition
    return names["VarifocalLoss"]


try:
    UltralyticsVarifocalLoss = _load_varifocal_loss()
except (ImportError, OSError, AttributeError, SyntaxError) as error:
    UltralyticsVarifocalLoss = None
    MISSING = f"{type(error).__name__}: {error}"


def varifocal_ultralytics(args: VarifocalArgs) -> torch.Tensor:
    """ultralytics' VarifocalLoss with the common arguments (gt_score = target, label = target > 0)."""
    criterion = UltralyticsVarifocalLoss(gamma=float(args.gamma), alpha=args.alpha)
    logits, score = args.logits, args.target  # the target in its own (compute) dtype, as a caller's gt_score
    label = (score > 0).to(score.dtype)
    if args.reduction == "none":

        def one(x, s, l):
            return criterion(x.view(1, 1, 1), s.view(1, 1, 1), l.view(1, 1, 1))

        flat = (t.reshape(-1) for t in (logits, score, label))
        loss = torch.func.vmap(one)(*flat).reshape(logits.shape)
    else:
        layout = (-1, 1, 1) if args.reduction == "sum" else (1, -1, 1)  # .mean(1).sum(): a sum, or a mean
        loss = criterion(*(t.reshape(layout) for t in (logits, score, label)))
        if args.reduction == "mean" and logits.numel() == 0:
            loss = loss.nan_to_num()  # .mean(1) of no element
    return loss.to(logits.dtype)


def _float64(case) -> bool:
    return case.dtype == torch.float64


def _beyond_float32(case) -> bool:
    """float64 logits beyond float32's range (``pred_score.float()`` makes them inf)."""
    logits, _ = case.make()
    return case.dtype == torch.float64 and bool((logits.abs() > torch.finfo(torch.float32).max).any())


def _fractional_gamma_underflow(case) -> bool:
    """0 < gamma < 1 where some negative's ``sigmoid(x)`` is exactly 0 in the logits' dtype."""
    if not 0 < case.gamma < 1:
        return False
    logits, target = case.make()
    return bool(((target == 0) & (torch.sigmoid(logits) == 0)).any())


def _exceeds_accuracy_bound(case) -> bool:
    """float32 logits where some element's loss or gradient, as ultralytics computes it, is off the exact one by more
    than the accuracy bound (where the exact one is a normal float32 number)."""
    if case.dtype != torch.float32:
        return False
    logits, target = case.make()
    x = logits.clone().requires_grad_(True)
    args = validate(x, target, **{**case.kwargs(), "reduction": "none"})
    loss = varifocal_ultralytics(args)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    exact = reference_elements(logits.double().numpy(), target.double().numpy(), case.alpha, case.gamma)
    tiny, bound = torch.finfo(torch.float32).smallest_normal, ACCURACY_BOUND[torch.float32]
    for value, exact_value in zip((loss, grad), map(torch.from_numpy, exact), strict=True):
        normal = exact_value.abs() >= tiny
        error = (value.detach().double() - exact_value).abs() / exact_value.abs().clamp_min(tiny)
        if bool((error[normal] > bound).any()):
            return True
    return False


_FLOAT32_BCE = (
    "BCE computed as F.binary_cross_entropy_with_logits(pred_score.float(), ...): float64 logits get float32 "
    "accuracy (and gradcheck's float64 finite differences see it)"
)
_BEYOND_FLOAT32 = "pred_score.float() turns float64 logits beyond float32's range into inf: a NaN loss"
_POW_AT_ZERO = (
    "sigmoid(x).pow(gamma) where sigmoid(x) underflows to 0: pow's backward gamma * 0^(gamma - 1) = inf times the "
    "sigmoid's derivative 0 is NaN for 0 < gamma < 1"
)
_CANCELLATION = (
    "F.binary_cross_entropy_with_logits computes (1 - q) x - logsigmoid(x), which cancels at a confident negative "
    "(0 at x = -17 in float32, where BCE is 4e-8), and the weight sigmoid(x)^gamma multiplies the float32 rounding "
    "of sigmoid(x) by gamma: off the accuracy bound"
)
_LARGEST_LOGIT = (
    "near the dtype's largest logit autograd carries BCE (~x) through pow's backward (gamma alpha x overflows) to "
    "the sigmoid's derivative 0: a NaN gradient"
)

if UltralyticsVarifocalLoss is None:
    register_unavailable("varifocal_ultralytics", MISSING, family="varifocal")
else:
    _CHECKS_OF_VALUES = ("varifocal_matches_reference", "varifocal_accurate_at_extremes", "varifocal_gradcheck",
                         "varifocal_gradgradcheck", "varifocal_negatives_are_sigmoid_focal",
                         "varifocal_positives_are_weighted_bce", "varifocal_create_graph")  # fmt: skip
    register(
        "varifocal_ultralytics",
        family="varifocal",
        description=f"ultralytics {installed_version(PACKAGE)}: VarifocalLoss (peer)",
        capabilities={"any_shape", "reduction:none", "double_backward"},
        known_defects=(
            *(KnownDefect(check, _FLOAT32_BCE, when=_float64) for check in _CHECKS_OF_VALUES),
            *(
                KnownDefect(check, _BEYOND_FLOAT32, when=_beyond_float32)
                for check in ("varifocal_finite_at_extremes", "varifocal_nonnegative")
            ),
            KnownDefect("varifocal_finite_at_extremes", _POW_AT_ZERO, when=_fractional_gamma_underflow),
            KnownDefect("varifocal_finite_at_extremes", _LARGEST_LOGIT, when=overflows_at_the_largest_logit),
            KnownDefect("varifocal_accurate_at_extremes", _CANCELLATION, when=_exceeds_accuracy_bound),
        ),  # fmt: skip
        version=installed_version(PACKAGE),
        peer=True,
    )(varifocal_ultralytics)
