r"""The one definition of the varifocal loss's arguments and of their validation.

Varifocal loss (Zhang et al., *VarifocalNet: An IoU-aware Dense Object Detector*, CVPR 2021), every element of the
logits its own binary problem. With ``p = sigmoid(x)`` and an IoU-aware target score ``q`` in ``[0, 1]`` (the IoU of
the predicted box with its ground truth at the ground truth's class, 0 everywhere else):

.. math::

    \mathrm{BCE}(x, q) = -q \log p - (1 - q) \log(1 - p) = \max(x, 0) - x q + \log(1 + e^{-|x|}),

    \mathrm{VFL}(x, q) = \begin{cases} w_+ \, \mathrm{BCE}(x, q) & q > 0 \text{ (a positive)} \\
        \alpha \, p^\gamma \, \mathrm{BCE}(x, 0) & q = 0 \text{ (a negative)} \end{cases}
    \qquad w_+ = q \text{ (``iou_weighted``) or } 1.

Only the negatives are down-weighted (by ``alpha p^gamma``, the sigmoid focal loss's negative term); a positive is
weighted by its own target score, so that high-quality positives dominate training.

The weight and the gradient. With ``detach_weight=False`` (the paper, mmdet, ultralytics) the gradient is the loss's
derivative: ``q (p - q)`` at a positive (``p - q`` without ``iou_weighted``), and at a negative

.. math::

    \frac{\partial}{\partial x} \alpha p^\gamma \mathrm{BCE}(x, 0) =
        \alpha \left[\gamma p^\gamma (1 - p) \, \mathrm{BCE}(x, 0) + p^\gamma \, p\right]

(``d p^gamma / dx = gamma p^gamma (1 - p)``). ``detach_weight=True`` is RT-DETR's criterion (``loss_labels_vfl``,
whose ``pred_score = sigmoid(x).detach()``): the weight is a constant, the gradient is ``w (p - q)`` alone, **not** the
derivative of the loss it returns (finite differences of the loss do not give it; at a negative the term
``alpha gamma p^gamma (1 - p) BCE`` is missing).

Which weight the code of the VarifocalNet authors uses: ``|p - q|^gamma`` at every ``q <= 0`` (mmdet's
``varifocal_loss``: ``alpha * |sigmoid(pred) - target|^gamma * (target <= 0)``), where the paper writes ``p^gamma``
(VarifocalNet issue #8). Both agree, since the weight only applies where ``q = 0``: ``|p - 0|^gamma = p^gamma``. They
would differ only if ``|p - q|^gamma`` were applied to positives too, which neither the paper nor any of the three
implementations does; this definition is ``p^gamma`` at the negatives, which all of them compute.

Reductions: ``"none"`` (the logits' shape), ``"sum"``, ``"mean"`` (the default, as mmdet's: the sum over every element
divided by their number; 0 for an empty tensor). The detectors' normalizers in those terms:

* mmdet 3.3 ``varifocal_loss(pred, target, avg_factor=A)`` (reduction ``"mean"``) is ``sum / (A + eps)`` with
  ``eps = torch.finfo(torch.float32).eps``: ``varifocal_loss(..., reduction="sum") / (A + eps)``; without
  ``avg_factor`` it is this ``"mean"``. mmdet's ``weight`` multiplies the ``"none"`` loss.
* ultralytics' ``VarifocalLoss`` on ``(batch, queries, classes)`` scores returns ``loss.mean(1).sum()``: the sum over
  every element divided by the number of queries, ``varifocal_loss(..., reduction="sum") / pred.shape[1]``; its
  ``(gt_score, label)`` pair becomes this target with :func:`ultralytics_targets`.

Args (of every implementation of the family):
    logits: float16, bfloat16, float32 or float64 tensor of any shape.
    target: floating tensor of the logits' shape with values in ``[0, 1]``: the IoU-aware score at positives, 0 at
        negatives.
    alpha: the negatives' weight, a finite real number ``>= 0`` (default 0.75), or a 0-dim floating tensor.
    gamma: the negatives' focusing exponent, a finite real number ``>= 0`` (default 2.0), or a 0-dim floating tensor.
    iou_weighted: ``True`` (default): a positive is weighted by ``q``; ``False``: by 1 (mmdet's option).
    detach_weight: ``False`` (default): the gradient is the loss's derivative; ``True``: the weight is a constant
        (RT-DETR).
    reduction: ``"none"``, ``"mean"`` (default, over every element) or ``"sum"``.

Arithmetic is at least float32 (:func:`focalbench.losses.common.compute_dtype`); the result has the logits' dtype; the
target is converted to the compute dtype.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from focalbench.losses.common import (
    LossArgs,
    check_soft_target,
    check_tensors,
    check_unit_interval,
    compute_dtype,
    shape_of,
    validate_gamma,
    values_checked_on_host,
)

__all__ = ["DEFAULTS", "VarifocalArgs", "ultralytics_targets", "validate"]

#: The keyword defaults of the family's common signature: VarifocalNet's (and mmdet's).
DEFAULTS: dict[str, object] = {
    "alpha": 0.75,
    "gamma": 2.0,
    "iou_weighted": True,
    "detach_weight": False,
    "reduction": "mean",
}


@dataclass(frozen=True)
class VarifocalArgs(LossArgs):
    """Validated, normalized arguments of one varifocal-loss call.

    ``target`` is in the compute dtype on the logits' device; ``alpha`` and ``gamma`` are floats (0-dim float64
    tensors only in arguments validated with ``read_values=False``, while a call is traced).
    """

    logits: torch.Tensor
    target: torch.Tensor
    alpha: float
    gamma: float
    iou_weighted: bool
    detach_weight: bool
    reduction: str
    device_checks: bool = False
    kernel_checks_range: bool = False  # the target's range left to the CPU kernel, which raises the same error

    @property
    def count(self) -> int:
        return self.logits.numel()


def _validate_alpha(
    alpha: object, read_values: bool = True, kernel_device: torch.device | None = None
) -> float | torch.Tensor:
    """A finite float ``>= 0``; while tracing (``read_values=False``) a 0-dim float64 tensor, a graph input whose value
    the operator checks when it runs; a tensor on ``kernel_device`` (a kernel that checks values itself, on the
    device) stays one, unread."""
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() != 0 or not alpha.is_floating_point():
            raise TypeError(
                f"alpha must be a real number >= 0 or a 0-dim floating tensor. Got: tensor of shape {shape_of(alpha)} "
                f"and dtype {alpha.dtype}"
            )
        if alpha.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "alpha must not require grad: the varifocal loss is not differentiable with respect to alpha"
            )
        if not read_values or alpha.device == kernel_device:
            return alpha.detach().to(torch.float64)
        alpha = float(alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real | torch.SymFloat | torch.SymInt):
        raise TypeError(f"alpha must be a real number >= 0. Got: {type(alpha).__name__} {alpha!r}")
    if not read_values:
        return torch.scalar_tensor(alpha, dtype=torch.float64)
    value = float(alpha)
    if not (value >= 0 and math.isfinite(value)):  # NaN fails the comparison
        raise ValueError(f"alpha must be a finite number >= 0. Got: {value!r}")
    return value


def _validate_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False). Got: {type(value).__name__} {value!r}")
    return value


def validate(
    logits: object,
    target: object,
    *,
    alpha: object = 0.75,
    gamma: object = 2.0,
    iou_weighted: object = True,
    detach_weight: object = False,
    reduction: object = "mean",
    read_values: bool = True,
    device_checks: bool = False,
    kernel_checks_range: bool = False,
) -> VarifocalArgs:
    """Check every argument before any computation and return them normalized.

    ``read_values=False`` (while ``torch.compile`` or ``torch.export`` traces a call) checks what does not depend on
    the tensors' values and leaves the target's range and the values of alpha and gamma (then 0-dim tensors: graph
    inputs) to the custom operator, which calls this function again on the real tensors: the same errors, raised
    without a graph break. ``device_checks`` is accepted for the common front door; no kernel of this family checks
    values on the device, so the values are always read on the host.

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(2, 3), torch.tensor([[0.8, 0.0, 0.0], [0.0, 0.0, 0.3]]))
        >>> args.alpha, args.gamma, args.iou_weighted, args.detach_weight, args.reduction
        (0.75, 2.0, True, False, 'mean')
    """
    check_tensors(logits, target)
    check_soft_target(
        logits, target, reduction, detach="the IoU scores: target.detach()",
        holds="IoU-aware scores in [0, 1], the logits' shape (ultralytics' (gt_score, label) pair: see "
        "ultralytics_targets)",
    )  # fmt: skip
    iou_weighted = _validate_flag("iou_weighted", iou_weighted)
    detach_weight = _validate_flag("detach_weight", detach_weight)
    device_checks = device_checks and not values_checked_on_host()
    kernel_device = logits.device if device_checks else None  # the CUDA path's kernel checks the values itself
    alpha_value = _validate_alpha(alpha, read_values, kernel_device)
    gamma_value = validate_gamma(gamma, read_values, kernel_device)
    target = target.to(compute_dtype(logits.dtype))
    kernel_checks_range = read_values and kernel_checks_range and not device_checks
    if read_values and not kernel_checks_range and not device_checks:
        check_unit_interval(target)  # on the host, before any kernel runs
    return VarifocalArgs(logits, target, alpha_value, gamma_value, iou_weighted, detach_weight, reduction,
                         device_checks=device_checks, kernel_checks_range=kernel_checks_range)  # fmt: skip


def ultralytics_targets(gt_score: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ultralytics' ``VarifocalLoss(pred_score, gt_score, label)`` arguments as this family's: ``(target, weight)``.

    ultralytics weights an element by ``gt_score`` where ``label`` is 1 and by ``alpha p^gamma`` where it is 0, with
    ``BCE(x, gt_score)`` in both. ``target`` is ``gt_score`` at the labels and 0 elsewhere; ``weight`` is 1 except at a
    label whose score is 0 (a matched prediction that does not overlap its box), where ultralytics' weight
    ``gt_score * label`` is 0 and this family's definition would make it a negative: multiply the
    ``reduction="none"`` loss by ``weight`` there (it is all ones in ordinary use). Then
    ``VarifocalLoss()(pred, gt_score, label)`` equals ``(varifocal_loss(pred, target, reduction="none") *
    weight).sum() / pred.shape[1]``.

    Raises:
        TypeError: ``gt_score`` is not a floating tensor, or ``label`` not a tensor.
        ValueError: shapes or devices differ, a label is not 0 or 1, a score is outside ``[0, 1]``, or a score is
            not 0 where the label is 0 (ultralytics would then weight ``BCE(x, gt_score)`` by ``alpha p^gamma``: no
            varifocal loss).

    Example:
        >>> import torch
        >>> target, weight = ultralytics_targets(torch.tensor([[0.9, 0.0], [0.0, 0.0]]),
        ...                                      torch.tensor([[1, 0], [0, 1]]))
        >>> target.tolist(), weight.tolist()
        ([[0.8999999761581421, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    """
    if not isinstance(gt_score, torch.Tensor) or not gt_score.is_floating_point():
        got = gt_score.dtype if isinstance(gt_score, torch.Tensor) else type(gt_score).__name__
        raise TypeError(f"gt_score must be a floating-point tensor of IoU scores in [0, 1]. Got: {got}")
    if not isinstance(label, torch.Tensor) or label.is_complex():
        got = label.dtype if isinstance(label, torch.Tensor) else type(label).__name__
        raise TypeError(f"label must be a tensor of 0s and 1s (bool, integer or floating). Got: {got}")
    if shape_of(label) != shape_of(gt_score):
        raise ValueError(f"label must have gt_score's shape {shape_of(gt_score)}. Got: shape {shape_of(label)}")
    if label.device != gt_score.device:
        raise ValueError(f"label must be on gt_score's device ({gt_score.device}). Got: label on {label.device}")
    positive = label != 0
    if not bool(((label == 0) | (label == 1)).all()):
        bad = label[(label != 0) & (label != 1)]
        raise ValueError(f"label values must be 0 or 1. Got: {bad.numel()} value(s) other, e.g. {bad[:5].tolist()}")
    outside = ~((gt_score >= 0) & (gt_score <= 1))
    if bool(outside.any()):
        bad = gt_score[outside]
        raise ValueError(
            f"gt_score values must be in [0, 1]. Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
        )
    stray = ~positive & (gt_score != 0)
    if bool(stray.any()):
        raise ValueError(
            "gt_score must be 0 where label is 0 (ultralytics would weight BCE(x, gt_score) by alpha p^gamma there: "
            f"no varifocal loss). Got: {int(stray.sum())} nonzero score(s) at label 0, e.g. "
            f"{gt_score[stray][:5].tolist()}"
        )
    target = torch.where(positive, gt_score, 0.0)
    weight = torch.where(positive & (gt_score == 0), 0.0, 1.0).to(gt_score.dtype)
    return target, weight
