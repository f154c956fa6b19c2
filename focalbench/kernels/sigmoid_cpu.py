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

__all__ = ["CHUNK", "LIBRARY", "SIGNATURES", "SOURCE", "available", "forward_args"]

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


def forward_args(args: SigmoidArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype for ``"none"``) and, when ``need_grad``,
    the gradient of that loss (the reduction's scale folded in), from one sweep over the logits.

    Logits and target are read contiguous in the compute dtype (a copy only where they are not already).
    """
    dtype = args.compute_dtype
    x = args.logits.to(dtype).contiguous()
    t = args.target.to(dtype).contiguous()
    n = x.numel()
    per_element = args.reduction == "none"
    loss = torch.empty(x.shape, dtype=dtype) if per_element else None
    partial = None if per_element else torch.empty(-(-n // CHUNK), dtype=torch.float64)
    grad = torch.empty(x.shape, dtype=dtype) if need_grad else None
    threads = min(torch.get_num_threads(), max(1, n // ELEMENTS_PER_THREAD))
    LIBRARY.call(
        "sigmoid_focal_forward", x=x.data_ptr(), t=t.data_ptr(), is_double=int(dtype == torch.float64), n=n,
        alpha=args.alpha, gamma=float(args.gamma), scale=args.reduction_scale, loss=pointer(loss),
        partial=pointer(partial), grad=pointer(grad), threads=threads,
    )  # fmt: skip
    if per_element:
        return loss, grad
    return args.reduce(partial), grad
