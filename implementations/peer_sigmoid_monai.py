"""``sigmoid_monai``: ``monai.losses.FocalLoss(use_softmax=False)`` (MONAI >= 1.6), the peer, behind a thin adapter.

How the common arguments map onto MONAI's, and only where MONAI has the same meaning:

==================  ==================================================================================================
common              MONAI
==================  ==================================================================================================
``logits``          ``input``, ``(B, N, ...)``: two dimensions at least (``any_shape`` not declared)
``target``          ``target`` of the logits' shape (no ``to_onehot_y``)
``alpha``           ``alpha`` (a float weights positives by alpha, negatives by 1 - alpha); negative: ``alpha=None``
``gamma``           ``gamma``
``"mean"``          ``"mean"``
``"sum"``           ``"sum"``, MONAI's own, which is not a sum (a declared defect, below)
``"none"``          ``"none"``
==================  ==================================================================================================

MONAI computes ``x - x t - logsigmoid(x)`` for BCE and ``exp(gamma logsigmoid(-x (2t - 1)))`` for the focal factor, in
float32 whatever the input (the result is cast back to the logits' dtype). Declared defects: float64 logits are
computed in float32; ``"sum"`` averages over the spatial dimensions first (a mean for ``(N, C)`` inputs) and is NaN for
an empty tensor, like ``"mean"``; ``x - x t - logsigmoid(x)`` cancels for confident negatives (accuracy) and is NaN at
infinite logits (``inf - inf``); for a soft target the focal factor ``sigmoid(-x (2t - 1))`` is not ``1 - p_t``; near
the largest logit the backward overflows.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import defects, import_peer, installed_version
from focalbench.implementations._sigmoid_defects import (
    OVERFLOW_AT_THE_LARGEST_LOGIT,
    exceeds_accuracy_bound,
    infinite_logit,
    soft_targets,
)
from focalbench.losses.sigmoid.semantics import SigmoidArgs

MonaiFocalLoss, MISSING = import_peer("monai.losses", "FocalLoss", "monai")

_FLOAT32 = "float64 logits are computed in float32 (input.float()): float32's accuracy and range, not float64's"
_SUM = (
    "'sum' is not a sum: the loss is first averaged over the spatial dimensions (for (N, C) inputs over all of them, a "
    "mean), and an empty tensor gives 0 / 0 = NaN"
)
_EMPTY = "the mean (and MONAI's 'sum') of an empty tensor is 0 / 0 = NaN"
_CANCELLATION = (
    "BCE as x - x t - logsigmoid(x) cancels for confident negatives (float32 past x ~ -17: the loss 0), and float64 is "
    "computed in float32"
)
_INFINITE = "x - x t - logsigmoid(x) is inf - inf = NaN at an infinite logit: NaN loss"
_SOFT_TARGETS = "for a soft target the focal factor sigmoid(-x (2t - 1)) is not 1 - p_t = p (1 - t) + (1 - p) t"


def _float64(case) -> bool:
    return case.dtype == torch.float64


def _monai_module(alpha: float, gamma: float, reduction: str):
    return MonaiFocalLoss(use_softmax=False, gamma=gamma, alpha=alpha if alpha >= 0 else None, reduction=reduction)


def _monai_per_element(x: torch.Tensor, t: torch.Tensor, case) -> torch.Tensor:
    return _monai_module(case.alpha, case.gamma, "none")(x, t)


def sigmoid_monai(args: SigmoidArgs) -> torch.Tensor:
    """monai.losses.FocalLoss(use_softmax=False): sigmoid focal loss on targets of the logits' shape."""
    module = _monai_module(args.alpha, float(args.gamma), args.reduction)
    return module(args.logits, args.target.to(args.logits.dtype)).to(args.logits.dtype)


if MonaiFocalLoss is None:
    register_unavailable("sigmoid_monai", MISSING, family="sigmoid")
else:
    register(
        "sigmoid_monai",
        family="sigmoid",
        description=f"MONAI {installed_version('monai')}: monai.losses.FocalLoss(use_softmax=False) (peer)",
        capabilities={"double_backward"},
        known_defects=(
            *defects(_FLOAT32, _float64, "sigmoid_matches_reference", "sigmoid_bce_at_gamma_zero",
                     "sigmoid_focal_to_bce_ratio", "sigmoid_gradcheck", "sigmoid_gradgradcheck", "sigmoid_create_graph",
                     "sigmoid_soft_targets", "sigmoid_propagates_nan"),  # fmt: skip
            KnownDefect(
                "sigmoid_finite_at_extremes", _FLOAT32, when=lambda case: _float64(case) and case.magnitude == "max"
            ),
            OVERFLOW_AT_THE_LARGEST_LOGIT,
            *defects(_SUM, lambda case: case.reduction == "sum", "sigmoid_matches_reference",
                     "sigmoid_bce_at_gamma_zero", "sigmoid_soft_targets"),  # fmt: skip
            KnownDefect("sigmoid_empty_batch", _EMPTY, when=lambda case: case.reduction != "none"),
            KnownDefect(
                "sigmoid_accurate_at_extremes",
                _CANCELLATION,
                when=lambda case: _float64(case) or exceeds_accuracy_bound(_monai_per_element)(case),
            ),
            *defects(_INFINITE, infinite_logit, "sigmoid_infinite_logits", "sigmoid_propagates_nan"),
            *defects(_SOFT_TARGETS, soft_targets, "sigmoid_matches_reference", "sigmoid_soft_targets"),
        ),
        version=installed_version("monai"),
        peer=True,
    )(sigmoid_monai)
