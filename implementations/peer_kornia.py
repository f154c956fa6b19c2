"""``kornia``: ``kornia.losses.focal_loss`` (kornia >= 0.9), the peer, behind a thin adapter.

How the common arguments map onto kornia's, and only where kornia has the same meaning:

==================  ==================================================================================================
common              kornia
==================  ==================================================================================================
``gamma``           ``gamma``
``alpha`` per class ``weight`` (multiplies class c's loss by ``weight[c]``), in the logits' dtype; ``alpha=None``
``alpha`` scalar    not declared: kornia's scalar ``alpha`` weights class 0 by ``1 - alpha`` and every other class
                    by ``alpha`` (class 0 as background), not every class by ``alpha``
``ignore_index``    ``ignore_index``
``"sum"``           ``"sum"``
``"mean"``          ``"mean"``, kornia's own: the mean of its ``(N, C, ...)`` map, i.e. divided by ``C`` times every
                    element, ignored ones included (a declared convention difference, below)
``"none"``          kornia's ``(N, C, ...)`` map summed over the classes: it holds the loss at the target's slice and
                    exactly 0 elsewhere, so the sum is kornia's per-element loss
==================  ==================================================================================================

Declared defects (each asserted as a strict expected failure where it applies): the ``"mean"`` divisor (a convention);
the mean of an empty batch is NaN; a NaN gradient where p_t = 0 for gamma > 0 (a -inf target, a gap beyond range);
``1 - exp(log p_t)`` cancels at confident rows (no correct digit in float32 past a gap of ~17). kornia's detached focal
factor at saturated rows keeps the gradient finite for 0 < gamma < 1, where the other peers give NaN.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.implementations._peers import (
    CANCELLATION,
    EMPTY_MEAN,
    counts_something,
    defects,
    import_peer,
    installed_version,
    nan_gradient_at_p_t_zero,
)
from focalbench.losses.softmax.semantics import FocalArgs

kornia_focal_loss, MISSING = import_peer("kornia.losses", "focal_loss", "kornia")

_MEAN_DIVISOR = (
    "convention: kornia's 'mean' divides the sum by C x every element, ignored ones included (the mean of its "
    "(N, C, ...) map), not by the counted elements: C times smaller"
)


def _mean_of_something(case) -> bool:
    return case.reduction == "mean" and counts_something(case)


def kornia(args: FocalArgs) -> torch.Tensor:
    """kornia.losses.focal_loss: softmax focal loss, per-class ``weight``, ``ignore_index``."""
    weight = None if args.alpha is None else args.alpha.to(args.logits.dtype)
    loss = kornia_focal_loss(
        args.logits,
        args.target,
        alpha=None,
        gamma=args.gamma,
        reduction=args.reduction,
        weight=weight,
        ignore_index=args.ignore_index,
    )
    return loss.sum(dim=1) if args.reduction == "none" else loss


if kornia_focal_loss is None:
    register_unavailable("kornia", MISSING, family="softmax")
else:
    register(
        "kornia",
        description=f"kornia {installed_version('kornia')}: kornia.losses.focal_loss (peer)",
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:per_class", "double_backward"},
        known_defects=(
            *defects(
                _MEAN_DIVISOR,
                _mean_of_something,
                "matches_reference",
                "cross_entropy_at_gamma_zero",
                "create_graph",
                "absent_classes",
                "propagates_non_finite",
            ),
            *nan_gradient_at_p_t_zero("impossible_target", "beyond_range"),
            EMPTY_MEAN,
            CANCELLATION,
        ),
        version=installed_version("kornia"),
        peer=True,
        family="softmax",
    )(kornia)
