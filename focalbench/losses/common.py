"""What every loss family of the product shares: argument checks, dtype rules, reductions, and the fused path.

The fused path is written once for every family. A family supplies

* a *forward kernel* ``kernel(args, need_grad) -> (loss, grad)``: the loss (per element, or already reduced: the
  family's :attr:`ClosedForm.reduce` finishes it) and, when ``need_grad``, the gradient of the reduced loss with the
  reduction's scale folded in, computed in the same sweep;
* a :class:`ClosedForm`: how its reduction ends, how an elementwise upstream gradient lines up with the gradient, and
  its gradient in differentiable float64 PyTorch operations (for a double backward).

:class:`FusedLoss` then makes the backward a multiplication by the upstream gradient (skipped when that is 1 on the
CPU; on CUDA a multiplication rather than a host sync), as in Liger-Kernel's cross-entropy. ``need_grad`` is decided
before the autograd function runs (inside its forward grad mode is always off): no gradient is computed under
``torch.no_grad()`` / ``torch.inference_mode()`` or for logits that do not require one. Under ``create_graph=True``
the backward adds the closed form in differentiable float64 operations as ``y - y.detach()``: its value is exactly
0, so the gradient keeps the kernel's values, and autograd differentiates ``y`` for the second derivative.

:func:`front_door` is the public functions' common entry (autocast's policy, tracing, validation, kernel);
:func:`operator_outputs`, :func:`fake_outputs`, :func:`operator_backward` and :func:`device_operator` are the custom
operators' common parts.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from focalbench.kernels import choose  # imports no kernel: choose does, at the first call of a device

__all__ = [
    "FLOAT_DTYPES",
    "HALF_DTYPES",
    "REDUCTIONS",
    "ClosedForm",
    "LossArgs",
    "ForwardKernel",
    "FusedLoss",
    "check_tensors",
    "check_values",
    "checked_once",
    "compute_dtype",
    "device_operator",
    "fake_outputs",
    "front_door",
    "fused_loss",
    "operator_backward",
    "operator_outputs",
    "reduce_loss",
    "mean_divisor",
    "reduction_scale",
    "scaled_gradient",
    "shape_of",
    "validate_gamma",
    "values_checked_on_host",
]

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Computed in float32 (and in float32 under autocast, as F.cross_entropy is).
HALF_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

ForwardKernel = Callable[[Any, bool], "tuple[torch.Tensor, torch.Tensor | None]"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic is done in: float32 for half-precision inputs, the input dtype otherwise."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def shape_of(t: torch.Tensor) -> tuple[int, ...]:
    """A tensor's shape as a plain tuple, as error messages print it."""
    return tuple(t.shape)


def check_tensors(logits: object, target: object) -> None:
    """Both are tensors and the logits floating: every family's first check."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor. Got: {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor. Got: {type(target).__name__}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64. Got: {logits.dtype}")


# --- value checks without a host synchronization (the CUDA path) ---------------------------------------------------

#: Whether the values a check must read (target range, a device tensor's weights) are read on the host even on a
#: path that checks them on the device: ``FOCALBENCH_CHECK_VALUES=1`` in the environment, or :func:`check_values`.
_CHECK_VALUES: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "focalbench_check_values", default=os.environ.get("FOCALBENCH_CHECK_VALUES", "") not in ("", "0")
)


@contextlib.contextmanager
def check_values(enabled: bool = True) -> Iterator[None]:
    """Within the block, the CUDA path checks the target's values on the host, as the CPU path always does: an
    out-of-range target raises the ``ValueError`` the CPU path raises, at the cost of one device-to-host
    synchronization per call. Outside it (the default, unless ``FOCALBENCH_CHECK_VALUES=1``) the CUDA path reads no
    value on the host and an out-of-range target gives a NaN loss and NaN gradient at its rows, as
    ``F.cross_entropy`` gives a device-side assert there.

    Example:
        >>> import torch, focalbench
        >>> with focalbench.check_values():
        ...     pass  # a debugging run: bad targets raise on every device
    """
    token = _CHECK_VALUES.set(enabled)
    try:
        yield
    finally:
        _CHECK_VALUES.reset(token)


def values_checked_on_host() -> bool:
    """True inside :func:`check_values` (or with ``FOCALBENCH_CHECK_VALUES=1``)."""
    return _CHECK_VALUES.get()


#: id(tensor) -> (weak reference, version counter, result) of the value checks already run on a tensor.
_CHECKED: dict[int, tuple[weakref.ref, int, Any]] = {}


def checked_once(tensor: torch.Tensor, check: Callable[[torch.Tensor], Any]) -> Any:
    """``check(tensor)``'s result, computed once per distinct tensor and version: a weight tensor kept on the device
    (a module's buffer) costs one host read at its first use and after each in-place change, not one per call."""
    key = id(tensor)
    entry = _CHECKED.get(key)
    if entry is not None and entry[0]() is tensor and entry[1] == tensor._version:
        return entry[2]
    result = check(tensor)
    _CHECKED[key] = (weakref.ref(tensor, lambda _, key=key: _CHECKED.pop(key, None)), tensor._version, result)
    return result


def validate_gamma(
    gamma: object, read_values: bool = True, kernel_device: torch.device | None = None
) -> float | torch.Tensor:
    """A float; or a 0-dim floating tensor (a gamma schedule's, so compiled code sees a new value, not a new constant),
    read as a float unless ``read_values`` is False (while tracing: the value is checked where the kernel runs) or the
    tensor is on ``kernel_device``, the device of a kernel that checks values itself (then a negative or non-finite
    gamma gives a NaN loss: reading it would cost a synchronization)."""
    if type(gamma) is float and read_values:  # the common call, without the abstract-class checks below
        if not 0.0 <= gamma < math.inf:  # NaN fails it too
            raise ValueError(f"gamma must be a finite number >= 0. Got: {gamma!r}")
        return gamma
    if isinstance(gamma, torch.Tensor) and not isinstance(gamma, bool):
        if gamma.dim() != 0 or not gamma.is_floating_point():
            raise TypeError(
                f"gamma must be a real number >= 0 or a 0-dim floating tensor. Got: tensor of shape "
                f"{shape_of(gamma)} and dtype {gamma.dtype}"
            )
        if gamma.requires_grad and torch.is_grad_enabled():
            raise ValueError("gamma must not require grad: the focal loss is not differentiable with respect to gamma")
        if not read_values or gamma.device == kernel_device:
            return gamma.detach()
        gamma = float(gamma)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real | torch.SymFloat | torch.SymInt):
        raise TypeError(f"gamma must be a real number >= 0. Got: {type(gamma).__name__} {gamma!r}")
    if not read_values:
        # while tracing, a float that changes between calls is symbolic: it becomes a graph input, checked at run time
        return torch.scalar_tensor(gamma, dtype=torch.float64)
    value = float(gamma)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {value!r}")
    return value


def reduce_loss(per_element: torch.Tensor, args: Any) -> torch.Tensor:
    """Apply ``args.reduction`` to a per-element loss that is already 0 where nothing is counted.

    ``"mean"`` divides by ``args.count``, the number of counted elements (not by the sum of alpha weights); with none
    counted it returns 0 with zero gradient instead of NaN. A count kept on the device (the CUDA path) stays there.
    """
    if args.reduction == "none":
        return per_element
    total = per_element.sum()
    if args.reduction == "sum":
        return total
    return total / mean_divisor(args)


def mean_divisor(args: Any) -> int | torch.Tensor:
    """``max(count, 1)``: a Python int, or a device tensor where the count is one (no host read)."""
    count = args.count
    return count.clamp_min(1) if isinstance(count, torch.Tensor) else max(count, 1)


def reduction_scale(args: Any) -> float | torch.Tensor:
    """The factor :func:`reduce_loss` applies to every element: 1 / count for ``"mean"`` (1 when nothing is
    counted), else 1; a 0-dim float64 device tensor where the count is one."""
    if args.reduction != "mean":
        return 1.0
    divisor = mean_divisor(args)
    return divisor.to(torch.float64).reciprocal() if isinstance(divisor, torch.Tensor) else 1.0 / divisor


def check_soft_target(logits: torch.Tensor, target: object, reduction: object, *, holds: str, detach: str) -> None:
    """The checks every elementwise family makes of its target and reduction, after :func:`check_tensors`: a floating
    tensor of the logits' shape on their device that does not require grad, and a known reduction. ``holds`` says in
    the type error what the target holds (e.g. ``"probabilities in [0, 1], the logits' shape (...)"``), ``detach``
    which tensor to detach.

    Raises:
        TypeError: a target that is not floating.
        ValueError: a target of another shape or device, one that requires grad, or an unknown reduction."""
    if not target.is_floating_point():
        raise TypeError(f"target must be a floating-point tensor of {holds}. Got: {target.dtype}")
    if shape_of(target) != shape_of(logits):
        raise ValueError(f"target must have the logits' shape {shape_of(logits)}. Got: shape {shape_of(target)}")
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: target on {target.device}")
    if target.requires_grad and torch.is_grad_enabled():
        # the kernels differentiate with respect to the logits alone: a gradient for the target would be dropped
        raise ValueError(
            "target must not require grad: the loss is differentiable with respect to the logits only "
            f"(detach {detach})"
        )
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}. Got: {reduction!r}")


def check_unit_interval(target: torch.Tensor) -> None:
    """Raise a ``ValueError`` naming ``target`` where a value is outside ``[0, 1]`` (NaN included): one pass on the
    host, and a second only to name the values when one is."""
    if target.numel():
        low, high = (float(v) for v in torch.aminmax(target))  # NaN fails both comparisons
        if not (low >= 0 and high <= 1):
            bad = target[~((target >= 0) & (target <= 1))]
            raise ValueError(
                f"target values must be in [0, 1]. Got: {bad.numel()} value(s) outside, e.g. {bad[:5].tolist()}"
            )


class LossArgs:
    """What every family's validated arguments (a frozen dataclass with ``logits``, ``reduction`` and ``count``, the
    number of counted elements) tell a kernel about arithmetic and reduction, so that the kernels need nothing from the
    families' modules."""

    logits: torch.Tensor
    reduction: str
    count: int
    #: the values were not read on the host: the kernel checks them (the CUDA path); the count may be a tensor
    device_checks: bool = False

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the arithmetic is done in (:func:`compute_dtype` of the logits')."""
        return compute_dtype(self.logits.dtype)

    @property
    def reduction_scale(self) -> float | torch.Tensor:
        """The factor the reduction applies to every element (:func:`reduction_scale`)."""
        return reduction_scale(self)

    def reduce(self, per_element: torch.Tensor) -> torch.Tensor:
        """``per_element`` reduced as the arguments say (:func:`reduce_loss`)."""
        return reduce_loss(per_element, self)

    def check_target_range(self) -> None:
        """The validation of a target of scores in ``[0, 1]`` (:func:`check_unit_interval`), for a kernel that found
        one outside where the arguments were validated without reading them (``kernel_checks_range``)."""
        check_unit_interval(self.target)


@dataclass(frozen=True)
class ClosedForm:
    """What a family's closed form gives the fused path.

    ``reduce(loss, args)``: the kernel's loss reduced as ``args.reduction`` says (the identity where the kernel
    reduces itself). ``broadcast(upstream)``: a ``reduction="none"`` upstream gradient (the loss's shape) lined
    up with the gradient (the logits' shape). ``exact_gradient(logits, args, grad_output)``: d(reduced loss)/d logits
    times ``grad_output``, in float64 PyTorch operations that autograd can differentiate.
    """

    reduce: Callable[[torch.Tensor, Any], torch.Tensor]
    broadcast: Callable[[torch.Tensor], torch.Tensor]
    exact_gradient: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]


def scaled_gradient(
    grad: torch.Tensor, grad_output: torch.Tensor, args: Any, logits: torch.Tensor, closed_form: ClosedForm
) -> torch.Tensor:
    """The backward: the kernel's gradient of the reduced loss times the upstream gradient; differentiable (through
    ``closed_form.exact_gradient``) when grad mode is on, i.e. under ``create_graph=True``."""
    upstream = grad_output.detach() if grad_output.requires_grad else grad_output
    if args.reduction == "none":
        grad = grad * closed_form.broadcast(upstream.to(grad.dtype))
    elif args.device_checks or upstream.device.type != "cpu" or float(upstream) != 1.0:
        # on a device (and on the path that reads nothing back) a multiplication rather than reading the value back
        grad = grad * upstream.to(grad.dtype)
    if torch.is_grad_enabled():  # create_graph=True: the same values, differentiable
        exact = closed_form.exact_gradient(logits, args, grad_output)
        exact = torch.where(torch.isfinite(exact), exact, 0.0)  # a non-finite value must not reach the sum
        grad = grad + (exact - exact.detach()).to(grad.dtype)
    return grad


class FusedLoss(torch.autograd.Function):
    """Forward runs the kernel (gradient included when ``need_grad``); backward scales that gradient."""

    @staticmethod
    def forward(ctx, logits, args, kernel: ForwardKernel, closed_form: ClosedForm, need_grad: bool):
        loss, grad = kernel(args, need_grad)
        ctx.args, ctx.closed_form = args, closed_form
        if grad is not None:
            ctx.save_for_backward(grad, logits)  # the logits only for a double backward (an input: no extra memory)
        loss = closed_form.reduce(loss, args)
        if loss.dtype != logits.dtype or loss.device != logits.device:  # a no-op .to still costs a dispatch
            loss = loss.to(device=logits.device, dtype=logits.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad, logits = ctx.saved_tensors
        result = scaled_gradient(grad, grad_output, ctx.args, logits, ctx.closed_form)
        return result if result.dtype == logits.dtype else result.to(logits.dtype), None, None, None, None


def fused_loss(args: Any, kernel: ForwardKernel, closed_form: ClosedForm) -> torch.Tensor:
    """The loss of the validated ``args`` through ``kernel``, differentiable twice; no gradient work when none is
    needed."""
    need_grad = torch.is_grad_enabled() and args.logits.requires_grad
    return FusedLoss.apply(args.logits, args, kernel, closed_form, need_grad)


def front_door(
    logits: Any,
    target: Any,
    arguments: dict[str, Any],
    *,
    family: str,
    path: str | None,
    validate: Callable[..., Any],
    traced: Callable[..., torch.Tensor],
    closed_form: ClosedForm,
) -> torch.Tensor:
    """A public loss function's body: autocast's policy for losses (half-precision logits computed and returned in
    float32, as for ``F.cross_entropy``), ``traced(logits, target, path=..., **arguments)`` while ``torch.compile`` or
    ``torch.export`` traces the call, else ``validate`` and the kernel :func:`focalbench.kernels.choose` gives
    ``family`` on ``path`` (a device type; ``None``: the logits') through :class:`FusedLoss`. A kernel that checks
    values on the device gets arguments validated without a host read (``device_checks``)."""
    half = isinstance(logits, torch.Tensor) and logits.dtype in HALF_DTYPES
    if half and torch.is_autocast_enabled(logits.device.type):
        logits = logits.float()
    path = path or (logits.device.type if isinstance(logits, torch.Tensor) else "cpu")
    if torch.compiler.is_compiling():
        return traced(logits, target, path=path, **arguments)
    choice = choose(family, path)
    # a kernel that counts the targets outside [0, 1] as it goes (the check then costs no pass of its own)
    checked = {"kernel_checks_range": True} if choice.range_checked else {}
    args = validate(logits, target, device_checks=choice.device_checks, **arguments, **checked)
    return fused_loss(args, choice.forward, closed_form)


def device_operator(
    name: str,
    body: Callable[..., Any],
    *,
    fake: Callable[..., Any],
    backward: Callable[..., Any],
    setup_context: Callable[..., Any],
    interpreted: bool,
) -> Any:
    """The custom operator ``name`` of a Triton kernel's ``body``, with its autograd formula: a
    ``torch.library.triton_op`` (Inductor sees the kernel, ``wrap_triton``'s, as a node it schedules with the ops
    around it), or, in Triton's interpreter (``interpreted``), where ``wrap_triton`` cannot trace, an opaque
    ``custom_op`` with ``fake`` as its shapes."""
    if interpreted:
        operator = torch.library.custom_op(name, mutates_args=())(body)
        operator.register_fake(fake)
    else:
        operator = torch.library.triton_op(name, mutates_args=())(body)
    operator.register_autograd(backward, setup_context=setup_context)
    return operator


# --- the custom operators' common parts (each family's op.py declares its schema and registers them) ---------------


def operator_outputs(args: Any, kernel: ForwardKernel, closed_form: ClosedForm, need_grad: bool):
    """``(reduced loss in the logits' dtype, gradient in the compute dtype or an empty tensor)`` of one operator
    call on validated ``args``."""
    logits = args.logits
    loss, grad = kernel(args, need_grad)
    dtype = compute_dtype(logits.dtype)
    loss = closed_form.reduce(loss, args).to(logits.dtype)
    return loss, logits.new_empty(0, dtype=dtype) if grad is None else grad.to(dtype)


def fake_outputs(logits: torch.Tensor, loss_shape: tuple[int, ...], need_grad: bool):
    """The operator's outputs as tracing sees them: shapes and dtypes, no values read."""
    dtype = compute_dtype(logits.dtype)
    grad = logits.new_empty(logits.shape, dtype=dtype) if need_grad else logits.new_empty(0, dtype=dtype)
    return logits.new_empty(loss_shape), grad


def operator_backward(
    grad: torch.Tensor,
    grad_loss: torch.Tensor,
    logits: torch.Tensor,
    reduction: str,
    arguments: Callable[[], Any],
    closed_form: ClosedForm,
) -> torch.Tensor:
    """The operator's autograd formula: the saved gradient times the upstream one; under ``create_graph`` the closed
    form's own derivative, for which ``arguments()`` validates the saved argument values."""
    if torch.is_grad_enabled():
        return scaled_gradient(grad, grad_loss, arguments(), logits, closed_form)
    if reduction == "none":
        return grad * closed_form.broadcast(grad_loss.to(grad.dtype))
    return grad * grad_loss.to(grad.dtype)

