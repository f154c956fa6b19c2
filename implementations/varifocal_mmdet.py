"""``varifocal_mmdet``: mmdet 3.3's ``varifocal_loss`` (what ``VarifocalLoss`` calls), the peer, behind a thin adapter.

The function lives in ``mmdet/models/losses/varifocal_loss.py``, whose two package imports (``weight_reduce_loss``
from ``mmdet/models/losses/utils.py``, which imports only torch, and the ``MODELS`` registry, which imports mmengine
and mmcv) are all it needs of mmdet. So the two files are loaded on their own, without running the package:
``utils.py`` as it is, ``varifocal_loss.py`` with its import of ``mmdet.registry`` answered by a stand-in whose
``MODELS.register_module()`` leaves the class as it is (the file's code is not changed). Install mmdet without its
dependencies: ``pip install --no-deps "mmdet==3.3.0"``.

How the common arguments map onto mmdet's, and only where mmdet has the same meaning: ``alpha``, ``gamma``,
``iou_weighted``, ``reduction`` (``"mean"`` without ``avg_factor`` is the mean over every element, as ours; with
``avg_factor=A`` it is our ``"sum"`` over ``A + eps``, tested in ``tests/test_varifocal.py``). Not declared:
``detach_weight=True`` (no such option).

mmdet computes ``alpha |sigmoid(x) - q|^gamma`` (``|p - 0|^gamma = p^gamma`` at the negatives, where it applies) and
``F.binary_cross_entropy_with_logits`` in the logits' dtype, the target cast to it (``target.type_as(pred)``).
Declared defects: BCE-with-logits cancels at confident negatives (``(1 - q) x - logsigmoid(x)``: 0 at ``x = -17`` in
float32, 4 % off at ``x = -30`` in float64) and ``|sigmoid(x)|^gamma`` carries gamma times the rounding of
``sigmoid(x)``: off the accuracy bound; where ``sigmoid(x)`` underflows (``x < -745`` in float64, ``< -104`` in
float32) pow's backward is ``inf`` times 0 for ``0 < gamma < 1``: NaN gradients; near the dtype's largest logit
autograd's product overflows to a NaN gradient; half-precision logits are computed in half precision with the target
rounded to it (a score of 1e-30 becomes 0: a positive turned negative; a float16 sum overflows), and returned in float32
(the weight's ``(target > 0).float()``); the mean of no element is NaN.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations._peers import installed_version, mmdet_losses_file
from focalbench.implementations.varifocal_autograd import overflows_at_the_largest_logit
from focalbench.implementations.varifocal_reference import reference_elements
from focalbench.losses.varifocal.semantics import VarifocalArgs, validate

PACKAGE = "mmdet"


def _load_varifocal_loss():
    """mmdet's ``varifocal_loss``, from ``models/losses/varifocal_loss.py`` (the package not run)."""
    return mmdet_losses_file("varifocal_loss.py", {}).varifocal_loss


try:
    mmdet_varifocal_loss = _load_varifocal_loss()
except (ImportError, OSError, AttributeError, SyntaxError, KeyError) as error:
    mmdet_varifocal_loss = None
    MISSING = f"{type(error).__name__}: {error}"


def varifocal_mmdet(args: VarifocalArgs) -> torch.Tensor:
    """mmdet's varifocal_loss with the common arguments."""
    return mmdet_varifocal_loss(args.logits, args.target, alpha=args.alpha, gamma=float(args.gamma),
                                iou_weighted=args.iou_weighted, reduction=args.reduction)  # fmt: skip


def _fractional_gamma_underflow(case) -> bool:
    """0 < gamma < 1 where some negative's ``sigmoid(x)`` is exactly 0 in the logits' dtype."""
    if not 0 < case.gamma < 1:
        return False
    logits, target = case.make()
    return bool(((target == 0) & (torch.sigmoid(logits) == 0)).any())


def _exceeds_accuracy_bound(case) -> bool:
    """float32/float64 logits where some element's loss or gradient, as mmdet computes it, is off the exact one by
    more than the accuracy bound (where the exact one is a normal number of the dtype)."""
    if case.dtype not in ACCURACY_BOUND:
        return False
    logits, target = case.make()
    x = logits.clone().requires_grad_(True)
    loss = varifocal_mmdet(validate(x, target, **{**case.kwargs(), "reduction": "none"}))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    exact = reference_elements(logits.double().numpy(), target.double().numpy(), case.alpha, case.gamma,
                               case.iou_weighted)  # fmt: skip
    tiny, bound = torch.finfo(case.dtype).smallest_normal, ACCURACY_BOUND[case.dtype]
    for value, exact_value in zip((loss, grad), map(torch.from_numpy, exact), strict=True):
        normal = exact_value.abs() >= tiny
        error = (value.detach().double() - exact_value).abs() / exact_value.abs().clamp_min(tiny)
        if bool((error[normal] > bound).any()) or bool(value.isnan().any()):
            return True
    return False


def _half(case) -> bool:
    return case.dtype in (torch.float16, torch.bfloat16)


_CANCELLATION = (
    "F.binary_cross_entropy_with_logits computes (1 - q) x - logsigmoid(x), which cancels at a confident negative "
    "(0 at x = -17 in float32, 4 % off at x = -30 in float64), and |sigmoid(x)|^gamma multiplies the rounding of "
    "sigmoid(x) by gamma: off the accuracy bound"
)
_POW_AT_ZERO = (
    "|sigmoid(x) - 0|.pow(gamma) where sigmoid(x) underflows to 0: pow's backward gamma * 0^(gamma - 1) = inf "
    "times the sigmoid's derivative 0 is NaN for 0 < gamma < 1"
)
_LARGEST_LOGIT = (
    "near the dtype's largest logit autograd carries BCE (~x) through pow's backward (gamma alpha x overflows) to "
    "the sigmoid's derivative 0: a NaN gradient"
)
_HALF = (
    "half-precision logits computed in half precision, the target rounded to it (target.type_as(pred)): a score of "
    "1e-30 becomes 0 (a positive turned negative), a float16 sum overflows"
)
_HALF_RESULT = "the focal weight's (target > 0).float() is float32: half-precision logits get a float32 loss"
_EMPTY_MEAN = "the mean of no element is 0 / 0 = NaN (reduce_loss's loss.mean())"

if mmdet_varifocal_loss is None:
    register_unavailable("varifocal_mmdet", MISSING, family="varifocal")
else:
    register(
        "varifocal_mmdet",
        family="varifocal",
        description=f"mmdet {installed_version(PACKAGE)}: varifocal_loss (peer)",
        capabilities={"any_shape", "unweighted", "reduction:none", "double_backward"},
        known_defects=(
            KnownDefect("varifocal_accurate_at_extremes", _CANCELLATION, when=_exceeds_accuracy_bound),
            KnownDefect("varifocal_finite_at_extremes", _POW_AT_ZERO, when=_fractional_gamma_underflow),
            KnownDefect("varifocal_finite_at_extremes", _LARGEST_LOGIT, when=overflows_at_the_largest_logit),
            KnownDefect("varifocal_half_precision", _HALF, when=_half),
            KnownDefect("varifocal_matches_reference", _HALF_RESULT, when=_half),
            KnownDefect("varifocal_nonnegative", _HALF_RESULT, when=_half),
            KnownDefect("varifocal_empty_batch", _EMPTY_MEAN, when=lambda case: case.reduction == "mean"),
        ),
        version=installed_version(PACKAGE),
        peer=True,
    )(varifocal_mmdet)
