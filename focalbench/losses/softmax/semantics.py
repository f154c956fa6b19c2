r"""The one definition of the softmax focal loss's arguments and of their validation.

Every registered implementation receives a :class:`FocalArgs` built by :func:`validate`, so every
implementation accepts exactly the same inputs and rejects bad ones with the same message.

.. math::

    \mathrm{FL}(z, t) = -\alpha_t \, (1 - p_t)^\gamma \log p_t, \qquad p = \mathrm{softmax}(z) \text{ over dim 1}

Args (of every implementation):
    logits: float16, bfloat16, float32 or float64 tensor of shape ``(N, C)`` or ``(N, C, d1, ..., dk)``, ``C >= 2``.
    target: integer tensor of shape ``(N,)`` or ``(N, d1, ..., dk)`` with values in ``[0, C)`` or ``ignore_index``.
    gamma: float ``>= 0`` (default 2.0); 0 gives cross-entropy.
    alpha: ``None`` (all ones), a float ``>= 0`` applied to every class, or ``C`` non-negative per-class weights
        (a sequence or a 1-D tensor); ``alpha_t = alpha[target]``.
    reduction: ``"mean"`` (sum over non-ignored elements divided by their count; 0 when every element is ignored),
        ``"sum"`` or ``"none"`` (target's shape, 0 at ignored positions).
    ignore_index: target value whose elements contribute neither loss nor gradient (default -100).

Arithmetic is at least float32 (:func:`compute_dtype`); the result has the logits' dtype.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy
import torch

from focalbench.losses.common import (
    REDUCTIONS,
    LossArgs,
    check_tensors,
    checked_once,
    compute_dtype,
    shape_of,
    validate_gamma,
    values_checked_on_host,
)

__all__ = ["FocalArgs", "validate"]

_INT64 = torch.iinfo(torch.int64)


@dataclass(frozen=True)
class FocalArgs(LossArgs):
    """Validated, normalized arguments of one focal-loss call.

    ``alpha`` is ``None``, a Python float, or a 1-D tensor of length ``C`` in :func:`compute_dtype` on the logits'
    device. ``target`` is int64 and may hold ``ignore_index``; ``valid`` marks the elements that count.
    """

    logits: torch.Tensor
    target: torch.Tensor
    gamma: float  # a 0-dim tensor only in arguments validated with read_values=False
    alpha: None | float | torch.Tensor
    reduction: str
    ignore_index: int
    all_counted: bool = False  # known to hold no ignore_index (then valid, count and safe_target cost nothing)
    device_checks: bool = False  # the target's range left to the kernel; count is then a device tensor

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def is_dense(self) -> bool:
        return self.logits.dim() > 2

    @functools.cached_property
    def valid(self) -> torch.Tensor:
        """Boolean mask of the counted (non-ignored) elements, target's shape."""
        return self.target != self.ignore_index

    @functools.cached_property
    def count(self) -> int | torch.Tensor:
        """Number of counted (non-ignored) elements: an int, or a 0-dim device tensor with ``device_checks``."""
        if self.all_counted:
            return self.target.numel()
        return self.valid.sum() if self.device_checks else int(self.valid.sum())

    @property
    def alpha_kind(self) -> str:
        if self.alpha is None:
            return "none"
        return "scalar" if isinstance(self.alpha, float) else "per_class"

    @functools.cached_property
    def safe_target(self) -> torch.Tensor:
        """``target`` with ignored positions (and, with ``device_checks``, unchecked out-of-range ones) replaced by
        class 0, safe to use as an index."""
        if self.device_checks:
            usable = self.valid & (self.target >= 0) & (self.target < self.num_classes)
            return self.target.masked_fill(~usable, 0)
        return self.target if self.all_counted else self.target.masked_fill(~self.valid, 0)

    def alpha_t(self, dtype: torch.dtype) -> torch.Tensor:
        """Per-element weight ``alpha[target]`` (1 where alpha is None), 0 at ignored positions."""
        valid = self.valid
        if self.alpha is None:
            return valid.to(dtype)
        if isinstance(self.alpha, float):
            return valid.to(dtype) * self.alpha
        return self.alpha.to(dtype)[self.safe_target].masked_fill_(~valid, 0)


def _checked_weights(weights: torch.Tensor) -> bool:
    """Whether every weight is finite and >= 0 (one host read)."""
    return bool(torch.isfinite(weights).all()) and not bool((weights < 0).any())


def _validate_alpha(
    alpha: object,
    num_classes: int,
    dtype: torch.dtype,
    device: torch.device,
    read_values: bool = True,
    device_checks: bool = False,
) -> None | float | torch.Tensor:
    if alpha is None:
        return None
    if isinstance(alpha, bool):
        raise TypeError(f"alpha must be None, a float >= 0 or {num_classes} per-class weights. Got: bool {alpha!r}")
    if isinstance(alpha, torch.Tensor) and alpha.requires_grad and torch.is_grad_enabled():
        raise ValueError("alpha must not require grad: the focal loss is not differentiable with respect to alpha")
    if isinstance(alpha, torch.Tensor) and alpha.dim() == 0:  # a scalar kept in a tensor (FocalLoss's buffer)
        if alpha.is_complex() or not alpha.is_floating_point():
            raise TypeError(f"alpha must hold real numbers. Got: tensor of dtype {alpha.dtype}")
        if not read_values:
            return alpha.detach()
        # a device tensor is read once per distinct tensor (a module's buffer: at its first use), not at every call
        alpha = checked_once(alpha, float) if device_checks and alpha.device == device else float(alpha)
    if isinstance(alpha, numbers.Real):
        value = float(alpha)
        if not (value >= 0) or math.isinf(value):
            raise ValueError(f"alpha must be a finite float >= 0. Got: {value!r}")
        return value
    if isinstance(alpha, numpy.ndarray):  # e.g. sklearn's compute_class_weight
        if alpha.dtype.kind not in "fiu":
            raise TypeError(f"alpha must hold real numbers. Got: ndarray of dtype {alpha.dtype}")
        alpha = torch.from_numpy(numpy.asarray(alpha, dtype=numpy.float64))
    if isinstance(alpha, torch.Tensor):
        if alpha.is_complex() or not (alpha.is_floating_point() or alpha.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"alpha must hold real numbers. Got: tensor of dtype {alpha.dtype}")
        weights = alpha.detach()
    elif isinstance(alpha, Sequence) and not isinstance(alpha, (str, bytes)):
        if not all(isinstance(a, numbers.Real) and not isinstance(a, bool) for a in alpha):
            raise TypeError(f"alpha must be a sequence of real numbers. Got: {alpha!r}")
        weights = torch.tensor([float(a) for a in alpha], dtype=torch.float64)
    else:
        raise TypeError(
            f"alpha must be None, a float >= 0 or {num_classes} per-class weights. Got: {type(alpha).__name__}"
        )
    if weights.dim() != 1:
        raise ValueError(
            f"alpha must be 1-D with {num_classes} per-class weights (shape ({num_classes},)). "
            f"Got: shape {shape_of(weights)}"
        )
    if weights.numel() != num_classes:
        raise ValueError(f"alpha must have one weight per class ({num_classes}). Got: {weights.numel()} weights")
    if read_values:
        on_device = device_checks and isinstance(alpha, torch.Tensor) and weights.device == device
        if not (checked_once(alpha, _checked_weights) if on_device else _checked_weights(weights)):
            raise ValueError(f"alpha must hold finite weights >= 0. Got: {weights.tolist()}")
    # non_blocking: weights on the host are copied without waiting for the device's queue (no synchronization)
    return weights.to(device=device, dtype=dtype, non_blocking=True)


def validate(
    logits: object,
    target: object,
    *,
    gamma: object = 2.0,
    alpha: object = None,
    reduction: object = "mean",
    ignore_index: object = -100,
    read_values: bool = True,
    device_checks: bool = False,
) -> FocalArgs:
    """Check every argument before any computation and return them normalized.

    ``read_values=False`` (used while ``torch.compile`` or ``torch.export`` traces a call) checks everything that does
    not depend on the tensors' values — types, dtypes, shapes, devices, gamma and the reduction — and leaves the
    values (target range, alpha's weights, a gamma tensor's value) to the custom operator, which calls this function
    again with ``read_values=True`` on the real tensors when it runs: the same errors, raised without a graph break.

    ``device_checks=True`` (the CUDA path, whose kernel checks values) reads no value of a device tensor on the host,
    so a call costs no synchronization: the target's range is left to the kernel (an out-of-range target gives a NaN
    loss at its rows), the mean's count stays a device tensor, and a device tensor of weights is checked once per
    distinct tensor. Inside :func:`focalbench.check_values` the values are read on the host as without it.

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: an argument of the right type with a wrong value, shape or device.

    Example:
        >>> import torch
        >>> args = validate(torch.zeros(4, 3), torch.tensor([0, 1, 2, -100]), gamma=2, alpha=0.25)
        >>> args.num_classes, args.alpha, int(args.valid.sum())
        (3, 0.25, 3)
    """
    check_tensors(logits, target)
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (N, C) or (N, C, d1, ..., dk). Got: shape {shape_of(logits)}")
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(f"logits must have at least 2 classes along dim 1. Got: shape {shape_of(logits)}")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise TypeError(f"target must be an integer tensor of class indices. Got: {target.dtype}")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if shape_of(target) != expected:
        raise ValueError(
            f"target must have shape {expected} for logits of shape {shape_of(logits)}. Got: shape {shape_of(target)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: target on {target.device}")
    integral = type(ignore_index) is int or isinstance(ignore_index, numbers.Integral)  # the first test is the fast one
    if isinstance(ignore_index, bool) or not integral:
        raise TypeError(f"ignore_index must be an int. Got: {type(ignore_index).__name__} {ignore_index!r}")
    ignore_index = int(ignore_index)
    if not _INT64.min <= ignore_index <= _INT64.max:  # compared with int64 targets: a wider int overflows there
        raise ValueError(f"ignore_index must be an int64, in [{_INT64.min}, {_INT64.max}]. Got: {ignore_index}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}. Got: {reduction!r}")
    device_checks = device_checks and not values_checked_on_host()
    gamma_value = validate_gamma(gamma, read_values, logits.device if device_checks else None)
    alpha_value = _validate_alpha(
        alpha, num_classes, compute_dtype(logits.dtype), logits.device, read_values, device_checks
    )
    target = target.long()
    if not read_values or device_checks:
        return FocalArgs(logits, target, gamma_value, alpha_value, reduction, ignore_index, all_counted=False,
                         device_checks=device_checks)  # fmt: skip
    low = high = 0
    if target.numel():
        # Checked on the host before any kernel runs: an out-of-range index must never become a device-side assert.
        # One pass finds the extremes; only when they are out of range is the ignore mask consulted.
        low, high = (int(v) for v in torch.aminmax(target))
    all_counted = not low <= ignore_index <= high  # ignore_index lies outside the targets' range: none ignored
    args = FocalArgs(logits, target, gamma_value, alpha_value, reduction, ignore_index, all_counted)
    if target.numel():
        if low < 0 or high >= num_classes:
            out_of_range = args.valid & ((target < 0) | (target >= num_classes))
            if bool(out_of_range.any()):
                bad = target[out_of_range]
                raise ValueError(
                    f"target values must be in [0, {num_classes}) or equal ignore_index ({ignore_index}). "
                    f"Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
                )
    return args


