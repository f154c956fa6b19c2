"""The CPU kernel of the sigmoid focal loss: ``sigmoid_focal_forward`` in ``sigmoid_cpu.c``, through its typed table.

A library of its own (:class:`~focalbench.kernels.build.TypedLibrary`: built at first use, a signature table that a
test checks against the C source), so that a build failure of one family's kernel leaves the other family's working;
it shares the softmax kernel's exponential and logarithm through ``focal_math.h``. Its steps and limits are in the
comment above it; the derivation in :mod:`focalbench.losses.sigmoid.closed_form`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.sigmoid.semantics import SigmoidArgs

from focalbench.kernels.build import TypedLibrary
from focalbench.kernels.cpu import pointer

__all__ = ["CHUNK", "LIBRARY", "SIGNATURES", "SOURCE", "available", "elementwise_call", "forward_args"]

SOURCE = Path(__file__).with_name("sigmoid_cpu.c")

#: The exported functions: name -> (C return type, [(C type, parameter name), ...]), in declaration order.
SIGNATURES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "sigmoid_focal_forward": (
        "int",
        [("const void *", "x"), ("const void *", "t"), ("int", "is_double"), ("int64_t", "n"), ("double", "alpha"),
         ("double", "gamma"), ("double", "scale"), ("void *", "loss"), ("double *", "partial"), ("void *", "grad"),
         ("int", "threads")],
    ),
}  # fmt: skip

#: The sigmoid family's library: built once per process, at first use.
LIBRARY = TypedLibrary(SOURCE, SIGNATURES)

#: Elements per partial sum (SIGMOID_CHUNK in the C source): the total does not depend on the number of threads.
CHUNK = 4096
#: Below this many elements per thread, more threads cost more than they save (measured on the 2-core VM of the README).
ELEMENTS_PER_THREAD = 32768

available = LIBRARY.available


def _readable(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` contiguous in ``dtype``: itself where it already is (a call's fixed cost counts at detection
    shapes)."""
    return tensor if tensor.dtype == dtype and tensor.is_contiguous() else tensor.to(dtype).contiguous()


def elementwise_call(
    library: TypedLibrary, name: str, args, need_grad: bool, chunk: int, *, counts_outside: bool = False, **arguments
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One call of an elementwise kernel of the sigmoid kind (``name`` in ``library``: logits ``x``, a target, ``n``,
    the loss's own ``arguments``, then ``scale``, ``loss``, ``partial``, ``grad``, ``threads``): the reduced loss
    (float64 for ``"mean"``/``"sum"``, the compute dtype for ``"none"``) and, when ``need_grad``, the gradient of that
    loss. Tensors among ``arguments`` (the target) are passed contiguous in the compute dtype (a copy only where they
    are not already).

    ``counts_outside``: the kernel also counts the targets outside [0, 1] (per chunk, in its ``outside`` argument) and
    returns their number; where the arguments were validated without reading that range (``args.kernel_checks_range``)
    and one is outside, ``args.check_target_range()`` raises the validation's ``ValueError`` before anything is
    returned."""
    dtype = args.compute_dtype
    x = _readable(args.logits, dtype)
    n = x.numel()
    kept = {}  # the converted tensors, alive until the call returns
    for key, value in arguments.items():
        if isinstance(value, torch.Tensor):
            kept[key] = _readable(value, dtype)
            arguments[key] = kept[key].data_ptr()
    per_element = args.reduction == "none"
    loss = torch.empty(x.shape, dtype=dtype) if per_element else None
    partial = None if per_element else torch.empty(-(-n // chunk), dtype=torch.float64)
    grad = torch.empty(x.shape, dtype=dtype) if need_grad else None
    if counts_outside:
        outside = torch.empty(-(-n // chunk), dtype=torch.int64)
        arguments["outside"] = outside.data_ptr()
    threads = min(torch.get_num_threads(), max(1, n // ELEMENTS_PER_THREAD))
    outside_count = library.call(
        name, x=x.data_ptr(), is_double=int(dtype == torch.float64), n=n, scale=args.reduction_scale,
        loss=pointer(loss), partial=pointer(partial), grad=pointer(grad), threads=threads, **arguments,
    )  # fmt: skip
    if counts_outside and outside_count and getattr(args, "kernel_checks_range", False):
        args.check_target_range()  # raises, naming the values
    if per_element:
        return loss, grad
    return args.reduce(partial), grad


def forward_args(args: SigmoidArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype for ``"none"``) and, when ``need_grad``,
    the gradient of that loss (the reduction's scale folded in), from one sweep over the logits.

    Logits and target are read contiguous in the compute dtype (a copy only where they are not already).
    """
    return elementwise_call(LIBRARY, "sigmoid_focal_forward", args, need_grad, CHUNK, t=args.target,
                            alpha=args.alpha, gamma=float(args.gamma))  # fmt: skip
