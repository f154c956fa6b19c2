"""``monai``: ``monai.losses.FocalLoss(use_softmax=True)`` (MONAI >= 1.6), the peer, behind a thin adapter.

How the common arguments map onto MONAI's, and only where MONAI has the same meaning:

==================  ==================================================================================================
common              MONAI
==================  ==================================================================================================
``target``          ``to_onehot_y=True`` with the target as ``(N, 1, ...)``, as MONAI takes class indices
``gamma``           ``gamma``
``alpha`` per class ``alpha`` as a sequence of C weights; ``alpha=None``
``alpha`` scalar    not declared: MONAI's scalar ``alpha`` weights class 0 by ``1 - alpha`` and every other class by
                    ``alpha`` (class 0 as background), not every class by ``alpha``
``ignore_index``    ``ignore_index``, always passed (our default is -100). It also chooses MONAI's mean: with it,
                    ``"mean"`` divides by the counted elements (ours); without it, by N x C x every position
``"mean"``          ``"mean"``
``"sum"``           ``"sum"``, MONAI's own, which is not a sum (a declared defect, below)
``"none"``          MONAI's ``(N, C, ...)`` map summed over the classes (the loss at the target's slice, 0 elsewhere
                    for finite logits)
==================  ==================================================================================================

The result is cast back to the logits' dtype (MONAI returns float32 for every input; for half precision that is only
the result's dtype, since we compute in float32 too). Declared defects: float64 logits are computed in float32;
``"sum"`` is not a sum; a -inf logit at any class makes the loss NaN (every class's term is computed and multiplied by
the one-hot target, 0 x -inf); NaN gradients for 0 < gamma < 1 at confident rows and for gamma > 0 where p_t = 0;
ignored elements are computed and masked afterwards, so -inf/NaN/+inf there make NaN gradients; ``1 - exp(log p_t)``
cancels at confident rows.
"""

from __future__ import annotations

import math

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import (
    CANCELLATION,
    counts_something,
    defects,
    import_peer,
    installed_version,
    nan_gradient_at_p_t_zero,
    nan_gradient_for_fractional_gamma,
)
from focalbench.losses.softmax.semantics import FocalArgs

MonaiFocalLoss, MISSING = import_peer("monai.losses", "FocalLoss", "monai")


def _float64(case) -> bool:
    return case.dtype == torch.float64


def _sum_of_something(case) -> bool:
    """A sum of some counted element, except over dense maps of one position (whose average is that position)."""
    one_position = len(case.shape) > 2 and math.prod(case.shape[2:]) == 1
    return case.reduction == "sum" and counts_something(case) and not one_position


def _non_target_log_p_infinite(case) -> bool:
    """log p_j = -inf at some non-target class: a -inf logit, or a gap beyond the range of the compute dtype (float16
    logits are computed in float32, whose range holds their gaps; bfloat16's range is float32's own)."""
    return case.masked > 0 or (case.beyond_range and case.dtype != torch.float16)


_FLOAT32 = "float64 logits are computed in float32 (input.float()): float32's accuracy, not float64's"
_SUM = (
    "'sum' is not a sum: with ignore_index given, (N, C) inputs are divided by the counted elements (a mean) and dense "
    "ones averaged over each image's counted positions before the sum (without it: divided by N x C)"
)
_MINUS_INF = (
    "every class's term -(1 - p_j)^gamma log p_j is computed and multiplied by the one-hot target: log p_j = -inf at a "
    "non-target class (a -inf logit, a gap beyond range) gives 0 x -inf = NaN"
)
_IGNORED = (
    "ignored elements are computed and multiplied by the mask afterwards: -inf, NaN or +inf there give NaN gradients "
    "(and NaN losses where a whole row is -inf)"
)


def monai(args: FocalArgs) -> torch.Tensor:
    """monai.losses.FocalLoss(use_softmax=True, to_onehot_y=True): softmax focal loss over one-hot targets."""
    module = MonaiFocalLoss(
        to_onehot_y=True,
        use_softmax=True,
        gamma=args.gamma,
        alpha=None if args.alpha is None else args.alpha.tolist(),
        reduction=args.reduction,
        ignore_index=args.ignore_index,
    )
    loss = module(args.logits, args.target.unsqueeze(1))
    if args.reduction == "none":
        loss = loss.sum(dim=1)
    return loss.to(args.logits.dtype)


if MonaiFocalLoss is None:
    register_unavailable("monai", MISSING, family="softmax")
else:
    register(
        "monai",
        description=f"MONAI {installed_version('monai')}: monai.losses.FocalLoss(use_softmax=True) (peer)",
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:per_class", "double_backward"},
        known_defects=(
            *defects(
                _FLOAT32,
                _float64,
                "matches_reference",
                "cross_entropy_at_gamma_zero",
                "focal_to_cross_entropy_ratio",
                "paper_figure_1",
                "gradcheck",
                "gradgradcheck",
                "create_graph",
                "impossible_target",
                "propagates_non_finite",
                "accurate_at_extremes",
            ),
            *defects(
                _SUM,
                _sum_of_something,
                "matches_reference",
                "cross_entropy_at_gamma_zero",
                "create_graph",
                "propagates_non_finite",
            ),
            *defects(
                _MINUS_INF,
                _non_target_log_p_infinite,
                "absent_classes",
                "cross_entropy_at_gamma_zero",
                "create_graph",
                "impossible_target",
                "beyond_range",
            ),
            KnownDefect("ignored_are_inert", _IGNORED),
            # computed in float32, float64 rows saturate at the same gap as float32 ones
            *nan_gradient_for_fractional_gamma(float64_gap=30.0),
            *nan_gradient_at_p_t_zero("impossible_target"),
            CANCELLATION,
        ),
        version=installed_version("monai"),
        peer=True,
        family="softmax",
    )(monai)
