r"""The one definition of the Quality Focal Loss's arguments and of their validation.

Quality Focal Loss (Li et al., "Generalized Focal Loss", NeurIPS 2020; mmdet's ``QualityFocalLoss``) trains a
detector's classification branch against a soft, localization-aware target: the IoU of the box a positive anchor
predicts, 0 for the negatives. Every element of the logits is its own binary problem. With ``s = sigmoid(x)`` and a
target ``y`` in ``[0, 1]``:

.. math::

    \mathrm{BCE}(x, y) = -y \log s - (1 - y) \log(1 - s)
        = (1 - y)\,\mathrm{softplus}(x) + y\,\mathrm{softplus}(-x),

    \mathrm{QFL}(x, y) = |y - s|^\beta \, \mathrm{BCE}(x, y), \qquad |y - s|^0 = 1 \text{ (also at } s = y).

``beta = 0`` gives binary cross-entropy with soft targets; for ``y`` in ``{0, 1}`` QFL is the sigmoid focal loss
without ``alpha`` with ``gamma = beta`` (``|y - s| = 1 - p_t``). The loss is 0 exactly where ``s = y`` (``beta > 0``).

Args (of every implementation of the family):
    logits: float16, bfloat16, float32 or float64 tensor of any shape (a head passes ``(anchors, C)``).
    target: floating tensor of the logits' shape with values in ``[0, 1]``: the IoU-aware score at a positive's
        class, 0 elsewhere. mmdet's ``(label, score)`` form is not taken: :func:`label_score_targets` turns it into
        this one.
    beta: float ``>= 0`` (default 2.0, the paper's), or a 0-dim floating tensor.
    reduction: ``"mean"`` (default, as mmdet's: over every element; 0 for an empty tensor), ``"sum"`` or ``"none"``
        (the logits' shape).

How the reductions map onto mmdet 3.3 (``mmdet/models/losses/gfocal_loss.py``). mmdet's ``quality_focal_loss``
returns the per-anchor loss summed over the classes (``.sum(dim=1)``, shape ``(N,)``), then reduces it with
``weight`` and ``avg_factor`` and multiplies by ``loss_weight``. With ``L = quality_focal_loss(x, y, beta=beta,
reduction="none")`` of shape ``(N, C)`` and ``eps = torch.finfo(torch.float32).eps``:

* mmdet ``reduction="none"``                         = ``L.sum(dim=1)``;
* mmdet ``reduction="sum"``                          = ``quality_focal_loss(x, y, reduction="sum")``;
* mmdet ``reduction="mean"``, ``avg_factor=None``    = ``reduction="sum"`` / N (the number of anchors), i.e. C times
  our ``"mean"`` (ours divides by the ``N * C`` elements);
* mmdet ``reduction="mean"``, ``avg_factor=A``        = ``reduction="sum"`` / (A + eps) (GFL passes the number of
  positives, or their summed quality, averaged over the GPUs);
* mmdet's ``weight`` ``(N,)`` multiplies each anchor's row: ``(L.sum(dim=1) * weight)`` before the steps above;
* ``loss_weight`` multiplies the result.

Arithmetic is at least float32 (:func:`focalbench.losses.common.compute_dtype`: half-precision logits are computed
in float32, where mmdet's fp16 loss overflowed, mmdet#5090); the result has the logits' dtype; the target is converted
to the compute dtype.
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
    checked_once,
    compute_dtype,
    shape_of,
    values_checked_on_host,
)

__all__ = ["DEFAULTS", "QualityArgs", "label_score_targets", "validate", "validate_beta"]

#: The keyword defaults of the family's common signature: mmdet's (beta 2, reduction "mean").
DEFAULTS: dict[str, object] = {"beta": 2.0, "reduction": "mean"}


@dataclass(frozen=True)
class QualityArgs(LossArgs):
    """Validated, normalized arguments of one Quality Focal Loss call.

    ``target`` is in the compute dtype on the logits' device; ``beta`` a float ``>= 0`` (a 0-dim float64 tensor only
    in arguments validated with ``read_values=False``)."""

    logits: torch.Tensor
    target: torch.Tensor
    beta: float
    reduction: str
    device_checks: bool = False
    kernel_checks_range: bool = False  # the target's range left to the CPU kernel, which raises the same error

    @property
    def count(self) -> int:
        return self.logits.numel()


def validate_beta(
    beta: object, read_values: bool = True, kernel_device: torch.device | None = None
) -> float | torch.Tensor:
    """A finite float ``>= 0``; or a 0-dim floating tensor (a module's, so compiled code sees a new value rather than
    a new constant), read as a float unless ``read_values`` is False (while tracing: the operator checks the value
    where it runs) or the tensor is on ``kernel_device`` (a kernel that checks values itself)."""
    if isinstance(beta, torch.Tensor):
        if beta.dim() != 0 or not beta.is_floating_point():
            raise TypeError(
                f"beta must be a real number >= 0 or a 0-dim floating tensor. Got: tensor of shape {shape_of(beta)} "
                f"and dtype {beta.dtype}"
            )
        if beta.requires_grad and torch.is_grad_enabled():
            raise ValueError("beta must not require grad: the loss is not differentiable with respect to beta")
        if not read_values:
            return beta.detach().to(torch.float64)
        beta = checked_once(beta, float) if beta.device == kernel_device else float(beta)
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real | torch.SymFloat | torch.SymInt):
        raise TypeError(f"beta must be a real number >= 0. Got: {type(beta).__name__} {beta!r}")
    if not read_values:
        return torch.scalar_tensor(beta, dtype=torch.float64)
    value = float(beta)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"beta must be a finite number >= 0. Got: {value!r}")
    return value


def validate(
    logits: object,
    target: object,
    *,
    beta: object = 2.0,
    reduction: object = "mean",
    read_values: bool = True,
    device_checks: bool = False,
    kernel_checks_range: bool = False,
) -> QualityArgs:
    """Check every argument before any computation and return them normalized.

    ``read_values=False`` (while ``torch.compile`` or ``torch.export`` traces a call) checks what does not depend on
    the tensors' values and leaves the target's range and beta's value to the custom operator, which calls this
    function again on the real tensors: the same errors, without a graph break. ``device_checks=True`` reads no value
    of a device tensor on the host (no such kernel exists yet: the argument is there for the common front door).

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(2, 3), torch.tensor([[0.8, 0.0, 0.0], [0.0, 0.0, 0.35]]), beta=1)
        >>> args.beta, args.reduction
        (1.0, 'mean')
    """
    check_tensors(logits, target)
    check_soft_target(
        logits, target, reduction, detach="the IoU scores: target.detach()",
        holds="scores in [0, 1], the logits' shape (mmdet's (label, score) form: see label_score_targets)",
    )  # fmt: skip
    device_checks = device_checks and not values_checked_on_host()
    beta_value = validate_beta(beta, read_values, logits.device if device_checks else None)
    target = target.to(compute_dtype(logits.dtype))
    kernel_checks_range = read_values and kernel_checks_range and not device_checks
    if read_values and not device_checks and not kernel_checks_range:
        check_unit_interval(target)  # on the host, before any kernel runs
    return QualityArgs(logits, target, beta_value, reduction, device_checks, kernel_checks_range)


def label_score_targets(
    labels: torch.Tensor, scores: torch.Tensor, num_classes: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """mmdet's ``(label, score)`` targets as this family's: the ``(N, C)`` soft target.

    ``labels`` ``(N,)`` holds a class in ``[0, C)`` for a positive anchor or ``num_classes`` (``C``) for a negative
    (mmdet's background index); ``scores`` ``(N,)`` the quality (IoU) of each anchor's box, read at positives only.
    The target is ``scores[i]`` at ``(i, labels[i])`` for the positives and 0 everywhere else: what mmdet's
    ``quality_focal_loss(pred, (label, score))`` computes its loss against, so that
    ``quality_focal_loss(pred, label_score_targets(label, score, C), reduction="none").sum(dim=1)`` equals mmdet's
    ``quality_focal_loss(pred, (label, score), beta)``.

    Raises:
        TypeError: ``labels`` is not an integer tensor, ``scores`` not a floating one, ``num_classes`` not an int.
        ValueError: shapes other than ``(N,)`` and ``(N,)``, ``num_classes < 1``, a label outside
            ``[0, num_classes]``, a positive's score outside ``[0, 1]``, tensors on different devices.

    Example:
        >>> import torch
        >>> label_score_targets(torch.tensor([1, 2, 0]), torch.tensor([0.9, 0.5, 0.25]), 2).tolist()
        [[0.0, 0.8999999761581421], [0.0, 0.0], [0.25, 0.0]]
    """
    if (
        not isinstance(labels, torch.Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or (labels.dtype == torch.bool)
    ):
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor of class indices. Got: {got}")
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        got = scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise TypeError(f"scores must be a floating-point tensor of qualities in [0, 1]. Got: {got}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an int. Got: {type(num_classes).__name__} {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1. Got: {num_classes}")
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (N,), one label per anchor. Got: shape {shape_of(labels)}")
    if shape_of(scores) != shape_of(labels):
        raise ValueError(f"scores must have the labels' shape {shape_of(labels)}. Got: shape {shape_of(scores)}")
    if scores.device != labels.device:
        raise ValueError(f"scores must be on the labels' device ({labels.device}). Got: scores on {scores.device}")
    labels = labels.long()
    bad = labels[(labels < 0) | (labels > num_classes)]
    if bad.numel():
        raise ValueError(
            f"labels must be in [0, {num_classes}] ({num_classes}: background). Got: {bad.numel()} value(s) outside, "
            f"e.g. {bad[:5].tolist()}"
        )
    positive = labels < num_classes
    score = scores.to(dtype)
    wrong = score[positive & ~((score >= 0) & (score <= 1))]
    if wrong.numel():
        raise ValueError(
            f"scores of positive anchors must be in [0, 1]. Got: {wrong.numel()} value(s) outside, e.g. "
            f"{wrong[:5].tolist()}"
        )
    classes = torch.arange(num_classes, device=labels.device)
    hit = labels.unsqueeze(1) == classes  # background rows: no class hit
    return torch.where(hit, score.unsqueeze(1), torch.zeros((), dtype=dtype, device=labels.device))
