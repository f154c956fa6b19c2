r"""The one definition of the Distribution Focal Loss's arguments and of their validation.

Distribution Focal Loss (Li et al., "Generalized Focal Loss", NeurIPS 2020) regresses each side of a box as a
distribution over ``n`` bins (``reg_max`` + 1 in mmdet, ``reg_max`` = 16 in ultralytics YOLOv8/YOLO11). With logits
``z`` over the bins (bins last), ``S = softmax(z)`` and a continuous target ``y`` in ``[0, n - 1]``:

.. math::

    y_l = \min(\lfloor y \rfloor, n - 2), \quad y_r = y_l + 1, \quad w_l = y_r - y, \quad w_r = y - y_l,

    \mathrm{DFL}(z, y) = -w_l \log S_{y_l} - w_r \log S_{y_r}
        = \mathrm{logsumexp}(z) - w_l z_{y_l} - w_r z_{y_r} \quad (w_l + w_r = 1),

    \partial \mathrm{DFL} / \partial z_j = S_j - w_l [j = y_l] - w_r [j = y_r].

An integer target ``k`` gives the cross-entropy of bin ``k``; the gradient over the bins sums to 0. The ends: ``y = n -
1`` is taken (``y_l = n - 2`` with weight 0, ``y_r = n - 1`` with weight 1: the loss is continuous there), a target
outside ``[0, n - 1]`` (NaN included) is a ``ValueError`` naming the values — never a clamp and never a read outside
the bins. ultralytics clamps the caller's tensor in place to ``[0, n - 1 - 0.01]`` (``target.clamp_``) before its
loss; mmdet does not clamp, so its ``y = n - 1`` indexes bin ``n``: pass ``target.clamp(0, n - 1)`` yourself where
your assigner can produce values outside.

Args (of every implementation of the family):
    logits: float16, bfloat16, float32 or float64 tensor ``(..., n)``, ``n >= 2`` bins along the last axis (as both
        peers pass them: ultralytics ``pred_dist.view(-1, reg_max)``, mmdet ``(N, reg_max + 1)``).
    target: floating tensor of the logits' shape without the bin axis, ``(...)``, values in ``[0, n - 1]``.
    reduction: ``"mean"`` (default: over the target's elements, i.e. the box sides; 0 for an empty tensor),
        ``"sum"`` or ``"none"`` (the target's shape).

How the peers' reductions map onto it. ultralytics 8.3 (``ultralytics/utils/loss.py``): ``DFLoss(reg_max)(pred_dist,
target)`` returns ``(F.cross_entropy(pred, tl) * wl + F.cross_entropy(pred, tr) * wr).mean(-1, keepdim=True)`` over
the 4 sides, then ``BboxLoss`` multiplies by the IoU weight and divides the sum by ``target_scores_sum``:
``(distribution_focal_loss(x, y, reduction="none").mean(-1, keepdim=True) * weight).sum() / target_scores_sum``
(after the clamp above). mmdet 3.3 (``mmdet/models/losses/gfocal_loss.py``): ``distribution_focal_loss(pred, label)``
is ``reduction="none"`` of ``(N, n)`` logits and ``(N,)`` targets; its ``weight``, ``avg_factor`` and ``loss_weight``
(0.25 in GFL) are applied after: ``(L * weight).sum() / avg_factor * loss_weight``.

Arithmetic is at least float32 (:func:`focalbench.losses.common.compute_dtype`); the result has the logits' dtype; the
target is converted to the compute dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from focalbench.losses.common import (
    REDUCTIONS,
    LossArgs,
    check_tensors,
    compute_dtype,
    shape_of,
    values_checked_on_host,
)

__all__ = ["DEFAULTS", "DflArgs", "check_bin_range", "validate"]

#: The keyword defaults of the family's common signature.
DEFAULTS: dict[str, object] = {"reduction": "mean"}


@dataclass(frozen=True)
class DflArgs(LossArgs):
    """Validated, normalized arguments of one Distribution Focal Loss call.

    ``target`` is in the compute dtype on the logits' device, of the logits' shape without the last axis."""

    logits: torch.Tensor
    target: torch.Tensor
    reduction: str
    device_checks: bool = False
    kernel_checks_range: bool = False  # the target's range left to the CPU kernel, which raises the same error

    @property
    def bins(self) -> int:
        """``n``, the number of bins (the logits' last dimension)."""
        return self.logits.shape[-1]

    @property
    def count(self) -> int:
        """The number of loss elements (box sides): what ``"mean"`` divides by."""
        return self.target.numel()

    def check_target_range(self) -> None:
        """The validation of the target's range (:func:`check_bin_range`), for a kernel that found a value outside
        where the arguments were validated without reading them (``kernel_checks_range``)."""
        check_bin_range(self.target, self.bins)


def check_bin_range(target: torch.Tensor, bins: int) -> None:
    """Raise a ``ValueError`` naming ``target`` where a value is outside ``[0, bins - 1]`` (NaN included): one pass on
    the host, and a second only to name the values when one is."""
    if target.numel():
        low, high = (float(v) for v in torch.aminmax(target))  # NaN fails both comparisons
        if not (low >= 0 and high <= bins - 1):
            bad = target[~((target >= 0) & (target <= bins - 1))]
            raise ValueError(
                f"target values must be in [0, {bins - 1}] (the bins' range, n - 1 with n = {bins} bins along the "
                f"logits' last axis). Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
            )


def validate(
    logits: object,
    target: object,
    *,
    reduction: object = "mean",
    read_values: bool = True,
    device_checks: bool = False,
    kernel_checks_range: bool = False,
) -> DflArgs:
    """Check every argument before any computation and return them normalized.

    ``read_values=False`` (while ``torch.compile`` or ``torch.export`` traces a call) checks what does not depend on
    the tensors' values and leaves the target's range to the custom operator, which calls this function again on the
    real tensors. ``device_checks=True``: the kernel checks the range on the device (no host read); otherwise the
    range is read on the host, here or (``kernel_checks_range``) by a CPU kernel that counts the values outside as it
    goes and raises the same error.

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(2, 4, 16), torch.full((2, 4), 3.5))
        >>> args.bins, args.count, args.reduction
        (16, 8, 'mean')
    """
    check_tensors(logits, target)
    if logits.dim() < 1 or logits.shape[-1] < 2:
        raise ValueError(
            "logits must have the bins along their last axis, at least 2 of them: shape (..., n), n >= 2. "
            f"Got: shape {shape_of(logits)}"
        )
    if not target.is_floating_point():
        raise TypeError(
            "target must be a floating-point tensor of continuous bin positions in [0, n - 1] (a distance in bins). "
            f"Got: {target.dtype}"
        )
    if shape_of(target) != shape_of(logits)[:-1]:
        raise ValueError(
            f"target must have the logits' shape without the bin axis, {shape_of(logits)[:-1]}. "
            f"Got: shape {shape_of(target)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: target on {target.device}")
    if target.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "target must not require grad: the loss is differentiable with respect to the logits only "
            "(detach the box targets: target.detach())"
        )
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}. Got: {reduction!r}")
    device_checks = device_checks and not values_checked_on_host()
    target = target.to(compute_dtype(logits.dtype))
    kernel_checks_range = read_values and kernel_checks_range and not device_checks
    if read_values and not device_checks and not kernel_checks_range:
        check_bin_range(target, logits.shape[-1])  # on the host, before any kernel runs
    return DflArgs(logits, target, reduction, device_checks, kernel_checks_range)
