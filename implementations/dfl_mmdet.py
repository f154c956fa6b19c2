"""``dfl_mmdet``: mmdet 3.3's ``distribution_focal_loss`` (what ``DistributionFocalLoss`` calls), the peer, behind a
thin adapter.

The function lives in ``mmdet/models/losses/gfocal_loss.py``, whose package imports (``weighted_loss`` from
``mmdet/models/losses/utils.py``, which imports only torch, and the ``MODELS`` registry, which imports mmengine and
mmcv) are all it needs of mmdet. So the two files are loaded on their own, without running the package
(:func:`focalbench.implementations._peers.mmdet_losses_file`). Install mmdet without its dependencies:
``pip install --no-deps "mmdet==3.3.0"``.

How the common arguments map onto mmdet's: ``distribution_focal_loss(pred, label, reduction=...)`` with ``pred`` the
logits as ``(N, n)`` and ``label`` the target as ``(N,)`` (GFL's head flattens its ``(N, 4, n)`` sides so), the
``"none"`` loss given the target's shape back; mmdet's ``"mean"`` without ``avg_factor`` is ours. Not declared:
``weight``, ``avg_factor`` (applied after, as :mod:`focalbench.losses.dfl.semantics` shows).

Declared defects (each on the cases where it shows): no clamp and no check of the range: ``y = n - 1`` gives
``dis_right = n``, a bin that does not exist (``F.cross_entropy`` raises an IndexError on the CPU; a device-side assert
on CUDA); a bin at ``-inf`` whose weight is exactly 0 (an integer target next to an absent bin) gives
``inf x 0 = NaN``; ``F.cross_entropy``'s ``log_softmax`` rounds a confident element's loss to 0 and its gradient's
``S_k - 1`` to no correct digit: off the accuracy bound; the weights ``dis_right.float() - label`` are float32, so
half-precision logits give a float32 loss; the mean of no element is NaN.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import defects, installed_version, mmdet_losses_file
from focalbench.implementations.dfl_autograd import ZERO_WEIGHT_ABSENT_BIN, exceeds_accuracy_bound
from focalbench.losses.common import compute_dtype
from focalbench.losses.dfl.semantics import DflArgs

PACKAGE = "mmdet"


def _load_distribution_focal_loss():
    """mmdet's ``distribution_focal_loss``, from ``models/losses/gfocal_loss.py`` (the package not run)."""
    return mmdet_losses_file("gfocal_loss.py", {}).distribution_focal_loss


try:
    mmdet_distribution_focal_loss = _load_distribution_focal_loss()
except (ImportError, OSError, AttributeError, SyntaxError, KeyError) as error:
    mmdet_distribution_focal_loss = None
    MISSING = f"{type(error).__name__}: {error}"


def dfl_mmdet(args: DflArgs) -> torch.Tensor:
    """mmdet's distribution_focal_loss with the common arguments: ``(N, n)`` logits, ``(N,)`` targets."""
    n = args.bins
    loss = mmdet_distribution_focal_loss(args.logits.reshape(-1, n), args.target.reshape(-1), reduction=args.reduction)
    return loss.reshape(args.target.shape) if args.reduction == "none" else loss


def _reads_bin_n(case) -> bool:
    """Some target is ``n - 1`` (in the dtype the call receives it): mmdet indexes bin ``n``."""
    logits, target = case.make()
    return bool((target.to(compute_dtype(logits.dtype)) >= logits.shape[-1] - 1).any())


def _accuracy(case) -> bool:
    def per_element(x, y):
        return mmdet_distribution_focal_loss(x.reshape(-1, x.shape[-1]), y.reshape(-1), reduction="none").reshape(
            y.shape)  # fmt: skip

    return not _reads_bin_n(case) and exceeds_accuracy_bound(case, per_element)


def _half(case) -> bool:
    return case.dtype in (torch.float16, torch.bfloat16)


_BIN_N = (
    "no range check and no clamp: y = n - 1 gives dis_right = n, a bin that does not exist (F.cross_entropy raises "
    "IndexError: Target n is out of bounds; a device-side assert on CUDA)"
)
_CANCELLATION = (
    "F.cross_entropy's log_softmax rounds a confident element's loss e^-gap to 0 and autograd's S_k - 1 keeps no "
    "correct digit: off the accuracy bound"
)
_HALF_RESULT = "the weights dis_right.float() - label are float32: half-precision logits get a float32 loss"
_EMPTY_MEAN = "the mean of no element is 0 / 0 = NaN (reduce_loss's loss.mean())"
#: Every check that calls the loss on a case's targets (all but the bad inputs, which validation rejects first).
_CALLING_CHECKS = ("dfl_matches_reference", "dfl_cross_entropy_at_integer_targets", "dfl_two_cross_entropies",
                   "dfl_gradient_is_softmax_minus_weights", "dfl_at_least_the_entropy", "dfl_translation_invariant",
                   "dfl_ends_of_the_range", "dfl_reductions", "dfl_gradcheck", "dfl_gradgradcheck",
                   "dfl_create_graph", "dfl_finite_at_saturation", "dfl_saturated_values", "dfl_accurate_at_saturation",
                   "dfl_absent_bins", "dfl_half_precision", "dfl_inputs_unchanged", "dfl_deterministic",
                   "dfl_propagates_nan")  # fmt: skip

if mmdet_distribution_focal_loss is None:
    register_unavailable("dfl_mmdet", MISSING, family="dfl")
else:
    register(
        "dfl_mmdet",
        family="dfl",
        description=f"mmdet {installed_version(PACKAGE)}: distribution_focal_loss (peer)",
        capabilities={"any_shape", "double_backward"},
        known_defects=(
            *defects(_BIN_N, _reads_bin_n, *_CALLING_CHECKS),
            KnownDefect(*ZERO_WEIGHT_ABSENT_BIN),
            KnownDefect("dfl_accurate_at_saturation", _CANCELLATION, when=_accuracy),
            KnownDefect("dfl_half_precision", _HALF_RESULT, when=_half),
            KnownDefect("dfl_empty_batch", _EMPTY_MEAN, when=lambda case: case.reduction == "mean"),
        ),
        version=installed_version(PACKAGE),
        peer=True,
    )(dfl_mmdet)
