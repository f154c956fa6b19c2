"""``sigmoid_torchvision``: ``torchvision.ops.sigmoid_focal_loss``'s computation, kept as it computes.

torchvision itself is not installed here (its wheels pin their own torch build), so its function is written out, line
for line (torchvision >= 0.15): ``p = sigmoid(x)``, ``ce = F.binary_cross_entropy_with_logits(x, t)``,
``p_t = p t + (1 - p)(1 - t)``, ``loss = ce (1 - p_t) ** gamma``, times ``alpha_t`` when ``alpha >= 0``, then the
reduction. Like torchvision it computes in the logits' dtype. Its defects, declared below and asserted as strict
expected failures (each decided from the case's own values where it depends on them):

* ``1 - p_t`` is computed as one minus a number close to 1: ~1e-6 relative error in float32 already at ``|x| = 3``,
  and 0 once ``|x|`` passes ~17 (float64: ~37), so a confident element's loss is 0 (relative error 1); BCE's own
  ``x - logsigmoid(x)`` cancels likewise for confident negatives. For ``0 < gamma < 1``, ``pow``'s backward
  ``gamma (1 - p_t)^(gamma - 1)`` is infinite where ``1 - p_t`` is 0 and the gradient NaN (inf * 0); in half precision
  (computed there, as torchvision does) that happens past ``|x|`` ~ 8 (float16) or ~ 6 (bfloat16);
* at logits near the dtype's largest number ``ce * gamma (1 - p_t)^(gamma - 1)`` overflows in the backward, times
  the sigmoid's derivative 0: a NaN gradient (gamma > 1) where the loss itself is finite;
* ``F.binary_cross_entropy_with_logits`` is NaN at infinite logits where the target agrees (the limit is 0) and at
  ``-inf`` where it does not (the limit is +inf): NaN losses and gradients;
* the mean of an empty tensor is 0 / 0 = NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register
from focalbench.implementations._sigmoid_defects import (
    EMPTY_MEAN,
    OVERFLOW_AT_THE_LARGEST_LOGIT,
    exceeds_accuracy_bound,
    saturated_fractional_gamma,
)
from focalbench.losses.sigmoid.semantics import SigmoidArgs


def torchvision_sigmoid_focal_loss(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2, reduction: str = "none"
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss (0.15 - 0.24), as written there (its usage logging left out)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)

    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss

    # Check reduction option and return loss accordingly
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(
            f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction modes: 'none', 'mean', 'sum'"
        )
    return loss


def _bce_at_infinity(case) -> bool:
    """An infinite logit: BCE with logits is NaN at +-inf agreeing with a hard target and at -inf, and at +inf
    disagreeing with its target the product rule meets CE = +inf with the focal factor's derivative 0 (found by the
    randomized differential test, on a case whose only infinities were +inf at targets 0)."""
    logits, _ = case.make()
    return bool(torch.isinf(logits).any())


_CANCELLATION = (
    "1 - p_t = 1 - (p t + (1 - p)(1 - t)) cancels (0 at confident elements: |x| past ~17 in float32, ~37 in float64) "
    "and BCE's x - logsigmoid(x) cancels for confident negatives: ~1e-6 relative in float32 already at |x| = 3, "
    "the loss 0 instead of a normal number further out"
)
_POW_AT_ZERO = (
    "1 - p_t rounds to 0 and pow's backward gamma (1 - p_t)^(gamma - 1) is inf for 0 < gamma < 1: NaN gradient"
)
_BCE_AT_INFINITY = (
    "F.binary_cross_entropy_with_logits is NaN at an infinite logit that agrees with its target (limit 0) and at -inf "
    "(limits 0 or +inf): NaN loss and gradient; at +inf disagreeing with its target, CE = +inf times the focal "
    "factor's derivative 0 (autograd's product rule): a NaN gradient where the limit is finite"
)


@register(
    "sigmoid_torchvision",
    family="sigmoid",
    description="torchvision.ops.sigmoid_focal_loss's computation, written out (kept with its defects)",
    capabilities={"any_shape", "double_backward"},
    known_defects=(
        KnownDefect(
            "sigmoid_accurate_at_extremes",
            _CANCELLATION + "; " + _POW_AT_ZERO,
            when=exceeds_accuracy_bound(lambda x, t, c: torchvision_sigmoid_focal_loss(x, t, c.alpha, c.gamma)),
        ),
        *(
            KnownDefect(check, _POW_AT_ZERO, when=saturated_fractional_gamma)
            for check in ("sigmoid_finite_at_extremes", "sigmoid_matches_reference", "sigmoid_soft_targets")
        ),
        OVERFLOW_AT_THE_LARGEST_LOGIT,
        KnownDefect("sigmoid_infinite_logits", _BCE_AT_INFINITY, when=_bce_at_infinity),
        KnownDefect("sigmoid_propagates_nan", _BCE_AT_INFINITY, when=_bce_at_infinity),
        EMPTY_MEAN,
    ),
)
def sigmoid_torchvision(args: SigmoidArgs) -> torch.Tensor:
    """torchvision's sigmoid_focal_loss, called with the common arguments."""
    target = args.target.to(args.logits.dtype)
    return torchvision_sigmoid_focal_loss(args.logits, target, args.alpha, args.gamma, args.reduction)
