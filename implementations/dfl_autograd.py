r"""``dfl_autograd``: the Distribution Focal Loss as GFL writes it, in plain PyTorch autograd.

.. math::

    \mathrm{DFL} = -\left(w_l \log\mathrm{softmax}(z)_{y_l} + w_r \log\mathrm{softmax}(z)_{y_r}\right)

with ``torch.log_softmax`` over the bins and ``gather`` at the two target bins, in the compute dtype (float32 for
half-precision logits), differentiated by autograd (twice, too: it is the dfl family's gradient-penalty reference). It
is what a careful user writes. Declared defects, each where it follows from the formula:

* ``log_softmax`` is ``z - max - log(sum e^{z - max})``: at a confident element (one bin ahead by more than ~17 in
  float32, ~37 in float64) the sum rounds to 1 and the loss to 0, and autograd's ``S_k - 1`` keeps no correct digit
  either: off the accuracy bound;
* a bin at ``-inf`` whose weight is exactly 0 (an integer target next to an absent bin): ``0 x -inf`` is a NaN loss.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.dfl.semantics import DflArgs

__all__ = ["ZERO_WEIGHT_ABSENT_BIN", "autograd_per_element", "exceeds_accuracy_bound", "zero_weight_bin_absent"]


def target_weights(y: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y_l, y_r, w_l, w_r)`` of targets ``y`` (floating, in ``[0, n - 1]``): the bins as int64 indices, the weights
    in ``y``'s dtype."""
    left = y.floor().clamp(max=bins - 2).long()
    right = left + 1
    return left, right, right.to(y.dtype) - y, y - left.to(y.dtype)


def autograd_per_element(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-element ``-(w_l log S_{y_l} + w_r log S_{y_r})`` of logits ``(..., n)`` and targets ``(...)`` of one
    dtype."""
    left, right, w_left, w_right = target_weights(y, x.shape[-1])
    log_s = torch.log_softmax(x, dim=-1)
    at_left = log_s.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    at_right = log_s.gather(-1, right.unsqueeze(-1)).squeeze(-1)
    return -(w_left * at_left + w_right * at_right)


def zero_weight_bin_absent(case) -> bool:
    """Some element has a target bin at ``-inf`` whose weight is exactly 0 (``0 x -inf``)."""
    logits, target = case.make()
    y = target.to(compute_dtype(logits.dtype)).double()
    left, right, w_left, w_right = target_weights(y, logits.shape[-1])
    z = logits.double()
    at_left = z.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    at_right = z.gather(-1, right.unsqueeze(-1)).squeeze(-1)
    return bool((((w_left == 0) & (at_left == -torch.inf)) | ((w_right == 0) & (at_right == -torch.inf))).any())


def exceeds_accuracy_bound(case, per_element=autograd_per_element) -> bool:
    """Some loss element or gradient row of ``per_element`` (this formula, or a peer's of the same form) is off the
    reference's by more than the accuracy bound (relative, per element and normwise per row, where the exact value
    is a normal number of the dtype), or not finite where the reference is."""
    from focalbench.arena.checks import accuracy_errors
    from focalbench.implementations.dfl_reference import reference_rows

    if case.dtype not in ACCURACY_BOUND:
        return False
    logits, target = case.make()
    n = logits.shape[-1]
    x = logits.detach().clone().requires_grad_(True)
    loss = per_element(x, target.to(x.dtype))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    exact_loss, exact_grad = reference_rows(logits.double().reshape(-1, n).numpy(), target.double().reshape(-1).numpy())
    errors = accuracy_errors(loss.detach(), grad, torch.from_numpy(exact_loss), torch.from_numpy(exact_grad).reshape(
        grad.shape), case.dtype, -1)  # fmt: skip
    return max(errors) > ACCURACY_BOUND[case.dtype]


_CANCELLATION = (
    "log_softmax is z - max - log(sum e^(z - max)): at a confident element the sum rounds to 1 and the loss to 0 (the "
    "exact one is e^-gap), and autograd's S_k - 1 keeps no correct digit: off the accuracy bound"
)
_ZERO_TIMES_INF = (
    "a target bin at -inf whose weight is exactly 0 (an integer target next to an absent bin): 0 x -inf = NaN"
)
ZERO_WEIGHT_ABSENT_BIN = "dfl_absent_bins", _ZERO_TIMES_INF, zero_weight_bin_absent


@register(
    "dfl_autograd",
    family="dfl",
    description="-(w_l log_softmax(z)[y_l] + w_r log_softmax(z)[y_r]), autograd backward (GFL's formula)",
    capabilities={"any_shape", "double_backward"},
    known_defects=(
        KnownDefect("dfl_accurate_at_saturation", _CANCELLATION, when=exceeds_accuracy_bound),
        KnownDefect(*ZERO_WEIGHT_ABSENT_BIN),
    ),
)
def dfl_autograd(args: DflArgs) -> torch.Tensor:
    """Plain-autograd Distribution Focal Loss in the compute dtype."""
    dtype = compute_dtype(args.logits.dtype)
    per_element = autograd_per_element(args.logits.to(dtype), args.target.to(dtype))
    return reduce_loss(per_element, args).to(args.logits.dtype)
