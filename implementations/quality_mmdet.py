"""``quality_mmdet``: mmdet 3.3's ``quality_focal_loss_tensor_target`` (what ``QualityFocalLoss`` calls for a tensor
target), the peer, behind a thin adapter.

The function lives in ``mmdet/models/losses/gfocal_loss.py``, whose two package imports (``weighted_loss`` from
``mmdet/models/losses/utils.py``, which imports only torch, and the ``MODELS`` registry, which imports mmengine and
mmcv) are all it needs of mmdet. So the two files are loaded on their own, without running the package: ``utils.py``
as it is, ``gfocal_loss.py`` with its import of ``mmdet.registry`` answered by a stand-in whose
``MODELS.register_module()`` leaves the class as it is (the file's code is not changed). Install mmdet without its
dependencies: ``pip install --no-deps "mmdet==3.3.0"``.

How the common arguments map onto mmdet's, and only where mmdet has the same meaning: ``beta``; ``reduction="sum"``
(mmdet's per-anchor sums, summed); ``"mean"`` as mmdet's ``"mean"`` with ``avg_factor`` the number of elements would
add ``eps`` to it, so the adapter divides mmdet's ``"sum"`` by the element count itself; ``"none"`` is not declared
(mmdet returns the per-anchor sum, shape ``(N,)``); logits ``(N, C)`` only.

mmdet computes ``sigmoid(x)`` and ``|y - sigmoid(x)|^beta`` in the logits' dtype: the factor of a confident element
is one minus a rounded probability (the accuracy checks, elementwise, take ``"none"``: not applicable here; the
accuracy sweep shows it). Declared defects: where that difference rounds to 0 (a saturated negative's
``sigmoid(x)``, a confident positive's ``y - s``) pow's backward is ``inf`` times 0 for ``0 < beta < 1``: NaN
gradients; half-precision logits are computed in half precision, so the loss of large logits overflows float16
(mmdet#5090); for ``0 < beta < 1`` pow's backward amplifies the rounding of ``sigmoid(x)`` near ``s = y``.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import installed_version, mmdet_losses_file
from focalbench.implementations.quality_autograd import amplified_rounding
from focalbench.losses.common import reduce_loss
from focalbench.losses.quality.semantics import QualityArgs

PACKAGE = "mmdet"


def _load_quality_focal_loss():
    """mmdet's ``quality_focal_loss_tensor_target``, from ``models/losses/gfocal_loss.py`` (the package not run)."""
    return mmdet_losses_file("gfocal_loss.py", {}).quality_focal_loss_tensor_target


try:
    mmdet_quality_focal_loss = _load_quality_focal_loss()
except (ImportError, OSError, AttributeError, SyntaxError) as error:
    mmdet_quality_focal_loss = None
    MISSING = f"{type(error).__name__}: {error}"


def quality_mmdet(args: QualityArgs) -> torch.Tensor:
    """mmdet's quality_focal_loss_tensor_target: per-anchor sums, reduced here ("sum", or "sum" over the count)."""
    total = mmdet_quality_focal_loss(args.logits, args.target.to(args.logits.dtype), beta=float(args.beta),
                                     reduction="sum")  # fmt: skip
    return total if args.reduction == "sum" else reduce_loss(total, args)


def _fractional_beta_zero_difference(case) -> bool:
    """``0 < beta < 1`` and ``sigmoid(x)`` (a negative's factor) or ``y - sigmoid(x)`` (a positive's) is exactly 0
    in the logits' dtype somewhere."""
    if not 0 < case.beta < 1:
        return False
    logits, target = case.make()
    s = torch.sigmoid(logits)
    return bool(((target == 0) & (s == 0)).any() | ((target != 0) & (target.to(s.dtype) - s == 0)).any())


def _half_overflow(case) -> bool:
    """Half-precision logits whose loss, formed in their dtype, is not finite somewhere (mmdet#5090)."""
    logits, target = case.make()
    if logits.dtype not in (torch.float16, torch.bfloat16):
        return False
    x = logits.clone().requires_grad_(True)
    loss = mmdet_quality_focal_loss(x, target.to(x.dtype), beta=case.beta, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return not (bool(torch.isfinite(loss)) and bool(torch.isfinite(grad).all()))


_POW_AT_ZERO = (
    "where sigmoid(x) (a negative's factor) or y - sigmoid(x) (a positive's) rounds to 0, pow's backward is "
    "beta * 0^(beta - 1) = inf for 0 < beta < 1 and the factor's derivative 0: a NaN gradient"
)
_FP16 = "half-precision logits computed in half precision: the loss of large logits overflows (mmdet#5090)"
_AMPLIFIED = "for 0 < beta < 1 pow's backward amplifies the rounding of sigmoid(x) in y - s near s = y"

if mmdet_quality_focal_loss is None:
    register_unavailable("quality_mmdet", MISSING, family="quality")
else:
    register(
        "quality_mmdet",
        family="quality",
        description=f"mmdet {installed_version(PACKAGE)}: quality_focal_loss_tensor_target (peer)",
        capabilities={"double_backward"},
        known_defects=(
            *(
                KnownDefect(check, _POW_AT_ZERO, when=_fractional_beta_zero_difference)
                for check in (
                    "quality_finite_at_saturation",
                    "quality_saturated_values",
                    "quality_sigmoid_focal_at_hard_targets",
                    "quality_zero_where_s_equals_y",
                )
            ),
            KnownDefect("quality_half_precision", _FP16, when=_half_overflow),
            KnownDefect("quality_matches_reference", _AMPLIFIED, when=amplified_rounding),
        ),  # fmt: skip
        version=installed_version(PACKAGE),
        peer=True,
    )(quality_mmdet)
