r"""The one definition of the sigmoid (one-vs-rest) focal loss's arguments and of their validation.

The loss of RetinaNet (Lin et al., 2017) as ``torchvision.ops.sigmoid_focal_loss`` defines it: every element of the
logits is its own binary problem. With ``p = sigmoid(x)`` and a target ``t`` in ``[0, 1]``:

.. math::

    \mathrm{CE} = -t \log p - (1 - t) \log(1 - p), \qquad 1 - p_t = p (1 - t) + (1 - p) t,

    \mathrm{FL}(x, t) = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{CE}, \qquad
    \alpha_t = \alpha t + (1 - \alpha)(1 - t) \text{ if } \alpha \ge 0 \text{, else } 1.

Args (of every implementation of the family):
    logits: float16, bfloat16, float32 or float64 tensor of any shape (detectors pass ``(anchors, C)`` or
        ``(N, C, H, W)``).
    target: floating tensor of the logits' shape with values in ``[0, 1]``: 1 for a positive, 0 for a negative,
        anything between for a soft target. Class indices are not taken: :func:`class_index_targets` turns them into
        this form (mmdet's convention, with an ignore value).
    alpha: a float ``<= 1`` weighting positives by ``alpha`` and negatives by ``1 - alpha`` (default 0.25, as
        torchvision); a negative alpha (torchvision uses -1) means no weighting.
    gamma: float ``>= 0`` (default 2.0), or a 0-dim floating tensor; 0 gives binary cross-entropy.
    reduction: ``"none"`` (default, as torchvision: the logits' shape), ``"mean"`` (over every element; 0 for an
        empty tensor) or ``"sum"``.

Arithmetic is at least float32 (:func:`focalbench.losses.softmax.semantics.compute_dtype`); the result has the logits'
dtype; the
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
    checked_once,
    compute_dtype,
    validate_gamma,
    values_checked_on_host,
)

__all__ = ["DEFAULTS", "SigmoidArgs", "class_index_targets", "validate"]

#: The keyword defaults of the family's common signature: torchvision's.
DEFAULTS: dict[str, object] = {"alpha": 0.25, "gamma": 2.0, "reduction": "none"}


@dataclass(frozen=True)
class SigmoidArgs(LossArgs):
    """Validated, normalized arguments of one sigmoid focal-loss call.

    ``target`` is in the compute dtype on the logits' device; ``alpha`` is a float ``<= 1``, -1.0 for no weighting
    (a 0-dim tensor, like ``gamma``, only in arguments validated with ``read_values=False``).
    """

    logits: torch.Tensor
    target: torch.Tensor
    alpha: float  # a 0-dim tensor only in arguments validated with read_values=False
    gamma: float  # likewise; or a 0-dim device tensor with device_checks
    reduction: str
    device_checks: bool = False  # the target's range left to the kernel (NaN outside [0, 1])

    @property
    def weighted(self) -> bool:
        return self.alpha >= 0

    @property
    def count(self) -> int:
        return self.logits.numel()

    def alpha_t(self, dtype: torch.dtype) -> torch.Tensor | float:
        """Per-element weight ``alpha t + (1 - alpha)(1 - t)``, or 1.0 without weighting."""
        if not self.weighted:
            return 1.0
        t = self.target.to(dtype)
        return self.alpha * t + (1 - self.alpha) * (1 - t)


def _validate_alpha(
    alpha: object, read_values: bool = True, kernel_device: torch.device | None = None
) -> float | torch.Tensor:
    """A float (-1.0 for no weighting); while tracing (``read_values=False``) a 0-dim float64 tensor, a graph input
    whose value the operator checks when it runs (a float that changes between compiled calls is symbolic)."""
    if isinstance(alpha, torch.Tensor) and alpha.dim() == 0 and alpha.is_floating_point():
        if alpha.requires_grad and torch.is_grad_enabled():
            raise ValueError("alpha must not require grad: the focal loss is not differentiable with respect to alpha")
        if not read_values:
            return alpha.detach().to(torch.float64)
        # a module's stored scalar, or the operator's argument; on the kernel's device read once per distinct tensor
        alpha = checked_once(alpha, float) if alpha.device == kernel_device else float(alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real | torch.SymFloat | torch.SymInt):
        raise TypeError(
            f"alpha must be a real number <= 1 (a negative alpha means no weighting). Got: {type(alpha).__name__} "
            f"{alpha!r}"
        )
    if not read_values:
        return torch.scalar_tensor(alpha, dtype=torch.float64)
    value = float(alpha)
    if math.isnan(value) or value > 1:
        raise ValueError(f"alpha must be a number <= 1 (a negative alpha means no weighting). Got: {value!r}")
    return value if value >= 0 else -1.0


def validate(
    logits: object,
    target: object,
    *,
    alpha: object = 0.25,
    gamma: object = 2.0,
    reduction: object = "none",
    read_values: bool = True,
    device_checks: bool = False,
) -> SigmoidArgs:
    """Check every argument before any computation and return them normalized.

    ``read_values=False`` (while ``torch.compile`` or ``torch.export`` traces a call) checks what does not depend on
    the tensors' values and leaves the target's range and the values of alpha and gamma (then 0-dim tensors: graph
    inputs) to the custom operator, which calls this function again on the real tensors: the same errors, raised
    without a graph break. ``device_checks=True`` (the CUDA path) reads no value of a device tensor on the host: the
    kernel gives a NaN loss where a target is outside ``[0, 1]`` (inside :func:`focalbench.check_values`, the host
    check runs as without it).

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]]), alpha=-1)
        >>> args.alpha, args.weighted, args.reduction
        (-1.0, False, 'none')
    """
    check_tensors(logits, target)
    check_soft_target(
        logits, target, reduction, detach="a teacher's soft targets: target.detach()",
        holds="probabilities in [0, 1], the logits' shape (class indices: see class_index_targets)",
    )  # fmt: skip
    device_checks = device_checks and not values_checked_on_host()
    kernel_device = logits.device if device_checks else None
    alpha_value = _validate_alpha(alpha, read_values, kernel_device)
    gamma_value = validate_gamma(gamma, read_values, kernel_device)
    target = target.to(compute_dtype(logits.dtype))
    if read_values and target.numel() and not device_checks:
        # on the host, before any kernel runs; one pass (NaN fails both comparisons)
        low, high = (float(v) for v in torch.aminmax(target))
        if not (low >= 0 and high <= 1):
            bad = target[~((target >= 0) & (target <= 1))]
            raise ValueError(
                f"target values must be in [0, 1]. Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
            )
    return SigmoidArgs(logits, target, alpha_value, gamma_value, reduction, device_checks)


def class_index_targets(
    labels: torch.Tensor, num_classes: int, *, ignore_index: int = -100, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """mmdet's class-index targets as this family's: ``(target, weight)`` for logits ``(N, C, d1, ..., dk)``.

    ``labels`` ``(N, d1, ..., dk)`` holds a class in ``[0, C)`` (that class positive, the others negative),
    ``num_classes`` (background: every class negative, mmdet's convention) or ``ignore_index`` (no loss). ``target``
    is the one-hot ``(N, C, d1, ..., dk)`` tensor and ``weight`` ``(N, 1, d1, ..., dk)`` is 0 at ignored positions and
    1 elsewhere, to multiply the ``reduction="none"`` loss with, as mmdet's ``weight``; divide the sum by mmdet's
    ``avg_factor`` (e.g. the number of positives).

    Raises:
        TypeError: ``labels`` is not an integer tensor, or ``num_classes`` not an int.
        ValueError: ``labels`` is 0-dim, ``num_classes < 1``, or a label outside ``[0, num_classes]`` is not
            ``ignore_index``.

    Example:
        >>> import torch
        >>> target, weight = class_index_targets(torch.tensor([0, 2, -100]), 2)
        >>> target.tolist(), weight.flatten().tolist()
        ([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [1.0, 1.0, 0.0])
    """
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() or (
        labels.dtype == torch.bool
    ):
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor of class indices. Got: {got}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an int. Got: {type(num_classes).__name__} {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1. Got: {num_classes}")
    if labels.dim() == 0:
        raise ValueError("labels must have shape (N,) or (N, d1, ..., dk), one label per row. Got: a 0-dim tensor")
    labels = labels.long()
    counted = labels != ignore_index
    bad = labels[counted & ((labels < 0) | (labels > num_classes))]
    if bad.numel():
        raise ValueError(
            f"labels must be in [0, {num_classes}] ({num_classes}: background) or equal ignore_index ({ignore_index}). "
            f"Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
        )
    classes = torch.arange(num_classes, device=labels.device).view(1, num_classes, *([1] * (labels.dim() - 1)))
    target = (labels.unsqueeze(1) == classes).to(dtype)  # background and ignored rows: all zeros
    return target, counted.unsqueeze(1).to(dtype)
