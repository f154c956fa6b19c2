"""``dfl_ultralytics``: ultralytics' ``DFLoss`` (8.3), the peer, behind a thin adapter.

The class lives in ``ultralytics/utils/loss.py``, whose imports run the whole package (OpenCV, the model zoo). So the
class alone is taken from the installed file: its definition is compiled from that file's source (not changed, not
copied into this project) with ``torch``, ``nn`` and ``F`` as its only names. Install ultralytics without its
dependencies: ``pip install --no-deps "ultralytics==8.3.253"``.

How the common arguments map onto ultralytics': ``DFLoss(reg_max=n)(pred_dist, target)`` with ``pred_dist`` the
logits as ``(-1, n)`` (as ``BboxLoss`` passes ``pred_dist[fg_mask].view(-1, reg_max)``) and the target as ``(-1, 1)``,
so that its ``.mean(-1, keepdim=True)`` over the sides is over one side: every element's loss (``"none"``), summed or
averaged here for ``"sum"`` and ``"mean"``. The target is the one the call receives (in the compute dtype: the
caller's own tensor where it already is), as ``BboxLoss`` hands over its ``target_ltrb``.

Declared defects (each on the cases where it shows): ``target.clamp_(0, n - 1 - 0.01)`` clamps the caller's tensor in
place (``BboxLoss`` clamps its own ``bbox2dist`` output, but a user's target is changed) and takes the loss of a target
in ``(n - 1.01, n - 1]`` at ``n - 1.01``: ``y = n - 1`` puts 0.01 of its weight on bin ``n - 2``; a bin at ``-inf``
whose weight is exactly 0 (an integer target next to an absent bin) gives ``inf x 0 = NaN``;
``F.cross_entropy``'s ``log_softmax`` rounds a confident element's loss ``e^-gap`` to 0 and its gradient's
``S_k - 1`` to no correct digit: off the accuracy bound.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import defects, installed_version
from focalbench.implementations.dfl_autograd import ZERO_WEIGHT_ABSENT_BIN, exceeds_accuracy_bound
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.dfl.semantics import DflArgs

PACKAGE = "ultralytics"
#: ultralytics' clamp: ``target.clamp_(0, reg_max - 1 - 0.01)``.
CLAMP_BELOW_END = 0.01


def _load_dfloss() -> type:
    """ultralytics' ``DFLoss`` class, compiled from ``utils/loss.py`` alone (the package not run)."""
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed (pip install --no-deps '{PACKAGE}==8.3.253')")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils" / "loss.py"
    tree = ast.parse(path.read_text(), str(path))
    definition = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DFLoss"), None)
    if definition is None:
        raise AttributeError(f"{path} defines no DFLoss")
    future = ast.ImportFrom(module="__future__", names=[ast.alias("annotations")], level=0)
    code = compile(ast.fix_missing_locations(ast.Module(body=[future, definition], type_ignores=[])), str(path), "exec")
    names = {"torch": torch, "nn": nn, "F": F, "__name__": "focalbench_peer_ultralytics_loss"}
    exec(code, names)  # noqa: S102 - the installed file's own class definition
    return names["DFLoss"]


try:
    UltralyticsDFLoss = _load_dfloss()
except (ImportError, OSError, AttributeError, SyntaxError) as error:
    UltralyticsDFLoss = None
    MISSING = f"{type(error).__name__}: {error}"


def dfl_ultralytics(args: DflArgs) -> torch.Tensor:
    """ultralytics' DFLoss with the common arguments: ``(-1, n)`` logits, ``(-1, 1)`` targets, one side a row."""
    n = args.bins
    per_side = UltralyticsDFLoss(reg_max=n)(args.logits.reshape(-1, n), args.target.reshape(-1, 1))
    return reduce_loss(per_side.reshape(args.target.shape), args)  # its own dtype, as BboxLoss receives it


def _clamped(case) -> bool:
    """Some target, in the dtype the call receives it, is above ``n - 1.01``: its loss is taken at ``n - 1.01``
    (bfloat16 logits aside: moving 0.01 of a weight changes a loss by less than bfloat16's tolerance, 3e-2)."""
    if case.dtype == torch.bfloat16:
        return False
    logits, target = case.make()
    n = logits.shape[-1]
    y = target.to(compute_dtype(logits.dtype))
    return bool((y.clamp(0, n - 1 - CLAMP_BELOW_END) != y).any())


def _clamps_the_callers_target(case) -> bool:
    """A call changes the caller's target: the clamp reaches it (the target is already in the compute dtype and its
    ``(-1, 1)`` view is no copy)."""
    logits, target = case.make()
    before = target.clone()
    UltralyticsDFLoss(reg_max=logits.shape[-1])(logits.to(compute_dtype(logits.dtype)).reshape(
        -1, logits.shape[-1]), target.to(compute_dtype(logits.dtype)).reshape(-1, 1))  # fmt: skip
    return not torch.equal(before, target)


def _accuracy(case) -> bool:
    def per_element(x, y):
        return UltralyticsDFLoss(reg_max=x.shape[-1])(x.reshape(-1, x.shape[-1]), y.clone().reshape(-1, 1)).reshape(
            y.shape)  # fmt: skip

    return exceeds_accuracy_bound(case, per_element)


_CLAMP = (
    "target.clamp_(0, n - 1 - 0.01): the loss and gradient of a target in (n - 1.01, n - 1] are those at n - 1.01 "
    "(y = n - 1 puts 0.01 of its weight on bin n - 2), and the caller's target is clamped in place"
)
_IN_PLACE = "target.clamp_(0, n - 1 - 0.01) changes the caller's tensor (a target in (n - 1.01, n - 1])"
_CANCELLATION = (
    "F.cross_entropy's log_softmax rounds a confident element's loss e^-gap to 0 and autograd's S_k - 1 keeps no "
    "correct digit: off the accuracy bound"
)
_HALF_RESULT = (
    "the weights tr - target are in the target's dtype (float32, as BboxLoss passes its box targets): half-precision "
    "logits get a float32 loss"
)


def _half(case) -> bool:
    return case.dtype in (torch.float16, torch.bfloat16)


#: The checks that compare values with the reference or an identity (the clamp shows there).
_VALUE_CHECKS = ("dfl_matches_reference", "dfl_cross_entropy_at_integer_targets", "dfl_two_cross_entropies",
                 "dfl_gradient_is_softmax_minus_weights", "dfl_translation_invariant",
                 "dfl_ends_of_the_range", "dfl_saturated_values", "dfl_absent_bins", "dfl_half_precision",
                 "dfl_inputs_unchanged", "dfl_propagates_nan", "dfl_accurate_at_saturation")  # fmt: skip
#: The checks that only see the clamp where it changes the caller's tensor.
_CALL_CHECKS = ("dfl_deterministic", "dfl_finite_at_saturation", "dfl_reductions")

if UltralyticsDFLoss is None:
    register_unavailable("dfl_ultralytics", MISSING, family="dfl")
else:
    register(
        "dfl_ultralytics",
        family="dfl",
        description=f"ultralytics {installed_version(PACKAGE)}: DFLoss (peer)",
        capabilities={"any_shape", "double_backward"},
        known_defects=(
            *defects(_CLAMP, _clamped, *_VALUE_CHECKS),
            *defects(_IN_PLACE, _clamps_the_callers_target, *_CALL_CHECKS),
            KnownDefect(*ZERO_WEIGHT_ABSENT_BIN),
            KnownDefect("dfl_accurate_at_saturation", _CANCELLATION, when=_accuracy),
            KnownDefect("dfl_half_precision", _HALF_RESULT, when=_half),
        ),
        version=installed_version(PACKAGE),
        peer=True,
    )(dfl_ultralytics)
