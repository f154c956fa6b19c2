"""``sigmoid_smp``: segmentation_models_pytorch's ``focal_loss_with_logits`` (>= 0.6), the peer, behind a thin adapter.

smp's ``FocalLoss(mode="binary" | "multilabel")`` calls this function; the module itself lives in the package, whose
``__init__`` imports timm and torchvision, so the function is taken from the one file ``losses/_functional.py`` that
the softmax adapter (:mod:`focalbench.implementations.peer_smp`) loads without running the package (install smp with
``pip install --no-deps "segmentation_models_pytorch==0.6.0"``).

How the common arguments map onto smp's, and only where smp has the same meaning: ``gamma``, ``alpha`` (a negative
one, no weighting, as ``alpha=None``), ``reduction`` (``"mean"`` over every element, as ours); any shape.

smp computes ``p_t = exp(-BCE)`` and ``(1 - p_t)^gamma``. Declared defects: ``1 - exp(-BCE)`` cancels as torchvision's
``1 - p_t`` does (accuracy, and a NaN gradient for 0 < gamma < 1 where it rounds to 0); for a soft target
``exp(-BCE) = p^t (1 - p)^(1 - t)`` is not ``p_t``, a different loss; BCE with logits is NaN at agreeing infinite
logits and at -inf; near the dtype's largest logit the backward overflows; the mean of an empty tensor is NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations import peer_smp
from focalbench.implementations._peers import defects, installed_version
from focalbench.implementations._sigmoid_defects import (
    EMPTY_MEAN,
    OVERFLOW_AT_THE_LARGEST_LOGIT,
    exceeds_accuracy_bound,
    infinite_logit,
    one_minus_p_t_rounds_to_zero,
)
from focalbench.losses.sigmoid.semantics import SigmoidArgs

# the function beside softmax_focal_loss_with_logits in the file peer_smp loaded (None where smp is not installed)
focal_loss_with_logits = (
    None if peer_smp.smp_softmax_focal_loss is None else peer_smp.smp_softmax_focal_loss.__globals__.get(
        "focal_loss_with_logits"
    )
)  # fmt: skip


def _smp_per_element(x: torch.Tensor, t: torch.Tensor, case) -> torch.Tensor:
    return focal_loss_with_logits(x, t, gamma=case.gamma, alpha=case.alpha if case.alpha >= 0 else None,
                                  reduction="none")  # fmt: skip


def _saturated_fractional_gamma(case) -> bool:
    """0 < gamma < 1 where ``1 - exp(-BCE)`` is 0 (where torchvision's ``1 - p_t`` is, for hard targets)."""
    if not 0 < case.gamma < 1:
        return False
    logits, target = case.make()
    soft_zero = (1 - torch.exp(-F.binary_cross_entropy_with_logits(logits, target, reduction="none"))) == 0
    return one_minus_p_t_rounds_to_zero(case) or bool(soft_zero.any())


_CANCELLATION = (
    "1 - p_t = 1 - exp(-BCE) cancels at confident elements (0 past |x| ~17 in float32), and pow's backward there is "
    "inf for 0 < gamma < 1: a loss off by up to 100 % and NaN gradients"
)
_SOFT_TARGETS = "for a soft target p_t = exp(-BCE) = p^t (1 - p)^(1 - t), not p t + (1 - p)(1 - t): a different loss"
_BCE_AT_INFINITY = (
    "F.binary_cross_entropy_with_logits is NaN at an infinite logit that agrees with its target and at -inf: NaN loss"
)


def sigmoid_smp(args: SigmoidArgs) -> torch.Tensor:
    """smp's focal_loss_with_logits with the common arguments."""
    return focal_loss_with_logits(
        args.logits,
        args.target,
        gamma=float(args.gamma),
        alpha=args.alpha if args.weighted else None,
        reduction=args.reduction,
    )


if focal_loss_with_logits is None:
    missing = getattr(peer_smp, "MISSING", "segmentation_models_pytorch is not installed")
    register_unavailable("sigmoid_smp", missing, family="sigmoid")
else:
    register(
        "sigmoid_smp",
        family="sigmoid",
        description=f"segmentation_models_pytorch {installed_version(peer_smp.PACKAGE)}: focal_loss_with_logits (peer)",
        capabilities={"any_shape", "double_backward"},
        known_defects=(
            KnownDefect("sigmoid_accurate_at_extremes", _CANCELLATION, when=exceeds_accuracy_bound(_smp_per_element)),
            *defects(_CANCELLATION, _saturated_fractional_gamma, "sigmoid_finite_at_extremes",
                     "sigmoid_matches_reference"),  # fmt: skip
            *defects(_SOFT_TARGETS, lambda case: case.targets != "hard", "sigmoid_matches_reference",
                     "sigmoid_create_graph", "sigmoid_soft_targets"),  # fmt: skip
            *defects(_BCE_AT_INFINITY, infinite_logit, "sigmoid_infinite_logits", "sigmoid_propagates_nan"),
            OVERFLOW_AT_THE_LARGEST_LOGIT,
            EMPTY_MEAN,
        ),
        version=installed_version(peer_smp.PACKAGE),
        peer=True,
    )(sigmoid_smp)
