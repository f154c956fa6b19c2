r"""``quality_autograd``: the Quality Focal Loss as the paper and mmdet write it, in plain PyTorch autograd.

.. math::

    s = \mathrm{sigmoid}(x), \qquad \mathrm{QFL} = |y - s|^\beta \cdot
        \mathrm{binary\_cross\_entropy\_with\_logits}(x, y)

in the compute dtype (float32 for half-precision logits), differentiated by autograd (twice, too: it is the quality
family's gradient-penalty reference). It is what a careful user writes, and what the fused closed form is judged
against by autograd's own rules. Declared defects, each where it follows from the formula:

* ``|y - s|`` is one minus a rounded probability at confident elements: in float32 ``sigmoid(x)`` rounds to 1 past
  ``x ~ 17``, so the loss of a confident positive (and a negative's past ``x ~ -88``, where ``s`` underflows) is off by
  up to 100 % of its (tiny) value;
* where ``|y - s|`` rounds to 0 (a confident element, or ``s`` equal to its soft target), ``pow``'s backward is
  ``beta 0^(beta - 1) = inf`` for ``0 < beta < 1`` and ``abs``'s is 0: a NaN gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.quality.semantics import QualityArgs

__all__ = [
    "DIFFERENCE_ROUNDS_TO_ZERO",
    "amplified_rounding",
    "autograd_per_element",
    "difference_rounds_to_zero",
    "exceeds_accuracy_bound",
]


def autograd_per_element(x: torch.Tensor, y: torch.Tensor, beta) -> torch.Tensor:
    """Per-element ``|y - sigmoid(x)|^beta BCE(x, y)`` of logits and targets of one dtype."""
    weight = (y - torch.sigmoid(x)).abs().pow(beta)
    return weight * F.binary_cross_entropy_with_logits(x, y, reduction="none")


def difference_rounds_to_zero(case) -> bool:
    """``0 < beta < 1`` and ``y - sigmoid(x)`` is exactly 0 somewhere in the case's compute dtype (pow's backward is
    infinite there, abs's 0)."""
    if not 0 < case.beta < 1:
        return False
    logits, target = case.make()
    dtype = compute_dtype(logits.dtype)
    return bool(((target.to(dtype) - torch.sigmoid(logits.to(dtype))) == 0).any())


def amplified_rounding(case) -> bool:
    """``0 < beta < 1`` in float32 (or half) arithmetic, and the gradient of this formula, with the case's reduction
    and upstream, is off the reference's beyond the dtype's tolerance at an element where ``|y - s| < 1e-2``: the
    rounding of ``sigmoid(x)`` (``6e-8`` absolute) in ``y - s``, multiplied by ``|y - s|^(beta - 1)``."""
    from focalbench.arena.core import upstream_for
    from focalbench.arena.tolerances import TOLERANCES
    from focalbench.implementations.quality_reference import reference_elements

    if not 0 < case.beta < 1 or case.dtype == torch.float64:
        return False
    logits, target = case.make()
    dtype = compute_dtype(logits.dtype)
    x = logits.to(dtype).detach().clone().requires_grad_(True)
    per_element = autograd_per_element(x, target.to(dtype), case.beta)
    scale = 1.0 / max(per_element.numel(), 1) if case.reduction == "mean" else 1.0
    upstream = upstream_for(case, "cpu").to(dtype) * scale
    (grad,) = torch.autograd.grad(per_element, x, upstream.expand_as(per_element))
    exact = torch.from_numpy(reference_elements(logits.double().numpy(), target.double().numpy(), case.beta)[1])
    exact = exact * upstream.double()
    tolerance = TOLERANCES[case.dtype]
    excess = (grad.double() - exact).abs() - (tolerance.atol * exact.abs().max() + tolerance.rtol * exact.abs())
    near = (target.double() - torch.sigmoid(logits.double())).abs() < 1e-2
    return bool(((excess > 0) & near).any())


def exceeds_accuracy_bound(case) -> bool:
    """Some loss or gradient element of this formula is off by more than the accuracy bound from the reference's
    (where that is a normal number of the dtype), or NaN."""
    from focalbench.implementations.quality_reference import reference_elements

    if case.dtype not in ACCURACY_BOUND:
        return False
    logits, target = case.make()
    x = logits.clone().requires_grad_(True)
    loss = autograd_per_element(x, target.to(x.dtype), case.beta)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    exact = reference_elements(logits.double().numpy(), target.double().numpy(), case.beta)
    tiny, bound = torch.finfo(case.dtype).smallest_normal, ACCURACY_BOUND[case.dtype]
    for value, exact_value in zip((loss, grad), map(torch.from_numpy, exact), strict=True):
        normal = exact_value.abs() >= tiny
        error = (value.double() - exact_value).abs() / exact_value.abs().clamp_min(tiny)
        if bool((error[normal] > bound).any()) or bool(value.isnan().any()):
            return True
    return False


_CANCELLATION = (
    "|y - s| is one minus a rounded probability at confident elements (sigmoid(x) rounds to 1 past x ~ 17 in "
    "float32): the loss and gradient of a confident element off by up to 100 % of their tiny values"
)
_POW_AT_ZERO = (
    "where y - sigmoid(x) rounds to 0, pow's backward is beta * 0^(beta - 1) = inf for 0 < beta < 1 and abs's is 0: "
    "a NaN gradient"
)
_AMPLIFIED = (
    "for 0 < beta < 1 pow's backward multiplies the rounding of sigmoid(x) in y - s (6e-8 absolute in float32) by "
    "|y - s|^(beta - 1): the gradient of an element whose score its probability nearly matches is off by 1e-4"
)
DIFFERENCE_ROUNDS_TO_ZERO = tuple(
    KnownDefect(check, _POW_AT_ZERO, when=difference_rounds_to_zero)
    for check in (
        "quality_finite_at_saturation",
        "quality_zero_where_s_equals_y",
        "quality_saturated_values",
        "quality_sigmoid_focal_at_hard_targets",
        "quality_half_precision",
    )
)


@register(
    "quality_autograd",
    family="quality",
    description="|y - sigmoid(x)|^beta * F.binary_cross_entropy_with_logits, autograd backward (mmdet's formula)",
    capabilities={"any_shape", "elementwise_none", "double_backward"},
    known_defects=(
        KnownDefect("quality_accurate_at_saturation", _CANCELLATION, when=exceeds_accuracy_bound),
        *DIFFERENCE_ROUNDS_TO_ZERO,
        KnownDefect("quality_matches_reference", _AMPLIFIED, when=amplified_rounding),
    ),
)
def quality_autograd(args: QualityArgs) -> torch.Tensor:
    """Plain-autograd Quality Focal Loss in the compute dtype."""
    dtype = compute_dtype(args.logits.dtype)
    per_element = autograd_per_element(args.logits.to(dtype), args.target.to(dtype), args.beta)
    return reduce_loss(per_element, args).to(args.logits.dtype)
