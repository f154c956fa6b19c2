"""``focal_loss_torch``: ``focal_loss.focal_loss.FocalLoss`` (focal_loss_torch >= 0.1.2), the peer, thinly adapted.

focal_loss_torch takes probabilities, classes last (``(N, C)`` or ``(N, d1, ..., C)``), as its documentation shows
(``criterion(torch.softmax(logits, dim=-1), target)``). How the common arguments map onto its own, and only where it has
the same meaning:

==================  ==================================================================================================
common              focal_loss_torch
==================  ==================================================================================================
``logits``          ``softmax(logits, dim=1)`` with the classes moved last (a copy for dense inputs)
``gamma``           ``gamma``
``alpha`` per class ``weights`` (a C-tensor: the loss of class c times ``weights[c]``); ``alpha=None``
``alpha`` scalar    not declared: it has no scalar weight
``ignore_index``    ``ignore_index``
``"mean"``          ``"mean"``: divided by the counted elements, or with ``weights`` by the sum of their weights
                    (``F.cross_entropy``'s weighted mean; a declared convention difference, below)
``"sum"``           ``"sum"``
``"none"``          ``"none"``, reshaped from its flat ``(N x d1 x ...)`` to the target's shape
==================  ==================================================================================================

Declared defects: ``-log(p_t + 1e-16)`` caps the loss of a hopeless element at 36.84 with a zero gradient and shifts
log p_t by 1e-16 / p_t (in float16 the 1e-16 rounds to 0: NaN gradients where p_t = 0, e.g. at ignored elements); NaN
gradients for 0 < gamma < 1 at confident rows; ``1 - p_t`` cancels at confident rows; the mean of no counted element is
0 / 0; an ``assert`` on the probabilities raises ``AssertionError`` for any NaN (a NaN or +inf logit, ignored or not).
Not reachable through the common arguments (which reject a ``(C, 1)`` alpha): a ``(C, 1)`` weights tensor broadcasts
silently when N == C.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register, register_unavailable
from focalbench.implementations._peers import (
    CANCELLATION,
    counts_something,
    defects,
    import_peer,
    installed_version,
    nan_gradient_for_fractional_gamma,
    no_counted_element,
    smallest_p_t,
)
from focalbench.losses.softmax.semantics import FocalArgs

TorchFocalLoss, MISSING = import_peer("focal_loss.focal_loss", "FocalLoss", "focal_loss_torch")


def _float16(case) -> bool:
    return case.dtype == torch.float16


def _float16_log_of_zero(case) -> bool:
    """float16 where some p_t is 0: an ignored element (its p_t is set to 0), a -inf target, a gap beyond range, or
    a p_t below float16's smallest number (2^-24: wide rows, large logits)."""
    special = case.ignore_fraction > 0 or case.impossible > 0 or case.beyond_range
    return _float16(case) and (special or smallest_p_t(case) < 2.0**-25)


def _weighted_mean(case) -> bool:
    return case.alpha_kind == "per_class" and case.reduction == "mean" and counts_something(case)


def _empty_mean(case) -> bool:
    return case.reduction == "mean" and no_counted_element(case)


_CAP = (
    "-log(p_t + 1e-16): the loss of an element whose p_t is 0 (a -inf target, a gap beyond range) is capped at 36.84 "
    "with a zero gradient, instead of +inf and the limit -alpha_t"
)
_SHIFT = (
    "-log(p_t + 1e-16) is off by 1e-16 / p_t: above float64's tolerance where p_t < ~1e-6 (1e-4 under create_graph)"
)
_FLOAT16 = (
    "in float16 the 1e-16 of -log(p_t + 1e-16) rounds to 0: where p_t = 0 (ignored elements too) log's backward is NaN"
)
_WEIGHTED_MEAN = (
    "convention: 'mean' with weights divides by the sum of the counted elements' weights (F.cross_entropy's weighted "
    "mean), not by their count"
)
_NO_ELEMENT = "the mean of no counted element (all ignored, or an empty batch) is 0 / 0 = NaN"
_ASSERT = (
    "asserts every probability is in [0, 1] (an assert: python -O drops it): a NaN or +inf logit anywhere, ignored "
    "elements included, raises AssertionError instead of giving NaN"
)


def focal_loss_torch(args: FocalArgs) -> torch.Tensor:
    """focal_loss_torch's FocalLoss on softmax probabilities, classes last."""
    module = TorchFocalLoss(
        gamma=args.gamma, weights=args.alpha, reduction=args.reduction, ignore_index=args.ignore_index
    )
    probabilities = torch.softmax(args.logits, dim=1).movedim(1, -1).contiguous()
    loss = module(probabilities, args.target)
    if args.reduction == "none":
        loss = loss.reshape(args.target.shape)
    return loss.to(args.logits.dtype)


if TorchFocalLoss is None:
    register_unavailable("focal_loss_torch", MISSING, family="softmax")
else:
    register(
        "focal_loss_torch",
        description=f"focal_loss_torch {installed_version('focal_loss_torch')}: FocalLoss on softmax probabilities "
        "(peer)",
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:per_class", "double_backward"},
        known_defects=(
            *defects(_FLOAT16, _float16, "impossible_target", "beyond_range"),
            KnownDefect("matches_reference", _FLOAT16, when=_float16_log_of_zero),
            *defects(_CAP, None, "impossible_target", "beyond_range"),
            KnownDefect("matches_reference", _CAP, when=lambda case: smallest_p_t(case) < 1e-18),
            KnownDefect(
                "cross_entropy_at_gamma_zero", _CAP, when=lambda case: case.impossible > 0 or case.beyond_range
            ),
            KnownDefect(
                "cross_entropy_at_gamma_zero",
                _SHIFT,
                when=lambda case: case.dtype == torch.float64 and smallest_p_t(case) < 1e-6,
            ),
            KnownDefect(
                "create_graph", _SHIFT, when=lambda case: case.dtype == torch.float64 and smallest_p_t(case) < 1e-4
            ),
            *defects(_WEIGHTED_MEAN, _weighted_mean, "matches_reference", "create_graph"),
            *defects(_NO_ELEMENT, _empty_mean, "matches_reference", "cross_entropy_at_gamma_zero", "empty_batch"),
            *defects(_ASSERT, None, "propagates_non_finite", "ignored_are_inert"),
            *nan_gradient_for_fractional_gamma(),
            CANCELLATION,
        ),
        version=installed_version("focal_loss_torch"),
        peer=True,
        family="softmax",
    )(focal_loss_torch)
