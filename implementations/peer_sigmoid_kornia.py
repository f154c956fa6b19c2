"""``sigmoid_kornia``: ``kornia.losses.binary_focal_loss_with_logits`` (kornia >= 0.9), the peer, behind a thin adapter.

How the common arguments map onto kornia's, and only where kornia has the same meaning:

==================  ==================================================================================================
common              kornia
==================  ==================================================================================================
``logits``          ``pred``, ``(N, C, *)``: kornia checks for two dimensions at least (``any_shape`` not declared)
``target``          ``target``, in the logits' dtype
``alpha``           ``alpha``; a negative alpha (no weighting) as ``alpha=None``
``gamma``           ``gamma``
``reduction``       ``reduction`` (``"mean"`` over every element, as ours)
``ignore_index``    passed as ``None``: kornia's default -100 marks target entries, which a target in [0, 1] never holds
==================  ==================================================================================================

kornia computes in log space (``logsigmoid``) with the focal factor as ``exp(gamma logsigmoid(-+x))``: accurate at
confident elements and NaN-free there for 0 < gamma < 1. Declared defects: a soft target weights kornia's two terms,
``t (1 - p)^gamma (-log p) + (1 - t) p^gamma (-log(1 - p))``, which is not ``(1 - p_t)^gamma CE`` for targets strictly
between 0 and 1 (a convention); an infinite logit makes the loss NaN where it agrees with its target (``0 * -inf`` in
the term of weight 0) and the gradient NaN where it does not (CE = +inf times the focal factor's derivative 0); near
the dtype's largest logit the backward overflows; the mean of an empty tensor is NaN.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.implementations._peers import defects, import_peer, installed_version
from focalbench.implementations._sigmoid_defects import (
    EMPTY_MEAN,
    OVERFLOW_AT_THE_LARGEST_LOGIT,
    infinite_logit,
    soft_targets,
)
from focalbench.losses.sigmoid.semantics import SigmoidArgs

binary_focal_loss_with_logits, MISSING = import_peer("kornia.losses", "binary_focal_loss_with_logits", "kornia")

_SOFT_TARGETS = (
    "convention: a soft target weights kornia's two terms, t (1 - p)^gamma (-log p) + (1 - t) p^gamma (-log(1 - p)), "
    "instead of multiplying CE by (1 - p_t)^gamma with 1 - p_t = p (1 - t) + (1 - p) t"
)
_INFINITE = (
    "an infinite logit: 0 * -inf in the term of weight 0 makes the loss NaN where it agrees with its target, and CE = "
    "+inf times the focal factor's derivative 0 the gradient NaN where it disagrees"
)


def sigmoid_kornia(args: SigmoidArgs) -> torch.Tensor:
    """kornia.losses.binary_focal_loss_with_logits with the common arguments."""
    return binary_focal_loss_with_logits(
        args.logits,
        args.target.to(args.logits.dtype),
        alpha=args.alpha if args.weighted else None,
        gamma=float(args.gamma),
        reduction=args.reduction,
        ignore_index=None,
    )


if binary_focal_loss_with_logits is None:
    register_unavailable("sigmoid_kornia", MISSING, family="sigmoid")
else:
    register(
        "sigmoid_kornia",
        family="sigmoid",
        description=f"kornia {installed_version('kornia')}: kornia.losses.binary_focal_loss_with_logits (peer)",
        capabilities={"double_backward"},
        known_defects=(
            *defects(_SOFT_TARGETS, soft_targets, "sigmoid_matches_reference", "sigmoid_create_graph"),
            *defects(_SOFT_TARGETS, lambda case: case.targets != "hard", "sigmoid_soft_targets"),
            *defects(_INFINITE, infinite_logit, "sigmoid_infinite_logits", "sigmoid_propagates_nan"),
            OVERFLOW_AT_THE_LARGEST_LOGIT,
            EMPTY_MEAN,
        ),
        version=installed_version("kornia"),
        peer=True,
    )(sigmoid_kornia)
