"""The CPU kernel of the Distribution Focal Loss: ``dfl_forward`` in ``dfl_cpu.c``, through its typed table.

A library of its own (:class:`~focalbench.kernels.build.TypedLibrary`: built at first use, a signature table that a
test checks against the C source), so that a build failure of this family's kernel leaves the others working. Its
steps and limits are in the comment at the top of the C source; the derivation in
:mod:`focalbench.kernels.dfl_eager`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.dfl.semantics import DflArgs

from focalbench.kernels.build import TypedLibrary

__all__ = ["CHUNK", "LIBRARY", "SIGNATURES", "SOURCE", "available", "forward_args"]

SOURCE = Path(__file__).with_name("dfl_cpu.c")

#: The exported functions: name -> (C return type, [(C type, parameter name), ...]), in declaration order.
SIGNATURES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "dfl_forward": (
        "int64_t",
        [("const void *", "z"), ("const void *", "y"), ("int", "is_double"), ("int64_t", "rows"), ("int64_t", "n"),
         ("double", "scale"), ("void *", "loss"), ("double *", "partial"), ("void *", "grad"),
         ("int64_t *", "outside"), ("int", "threads")],
    ),
}  # fmt: skip

#: The dfl family's library: built once per process, at first use.
LIBRARY = TypedLibrary(SOURCE, SIGNATURES)

#: Rows per partial sum (DFL_CHUNK in the C source): the total does not depend on the number of threads.
CHUNK = 512
#: Below this many logits per thread, a second thread costs more than it saves (one block of 16 rows of 16 bins
#: takes about a microsecond; a parallel region's start a few).
ELEMENTS_PER_THREAD = 16384

available = LIBRARY.available


def forward_args(args: DflArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype for ``"none"``) and, when ``need_grad``,
    the gradient of that loss (the reduction's scale folded in), from one pass over each row's bins; the kernel
    reduces the loss itself (its chunks' partial sums in order: the same total at any number of threads).

    Logits and target are read contiguous in the compute dtype (a copy only where they are not already: half
    precision, a permuted view). The kernel counts the targets outside ``[0, n - 1]`` as it goes: where validation
    left that range to it (``args.kernel_checks_range``) and one is outside, ``args.check_target_range()`` raises the
    validation's ``ValueError``, naming the values, before anything is returned.
    """
    dtype = args.compute_dtype
    logits, target = args.logits, args.target
    x = logits if logits.dtype == dtype and logits.is_contiguous() else logits.to(dtype).contiguous()
    y = target if target.is_contiguous() else target.contiguous()  # validate gave it the compute dtype
    bins = x.shape[-1]
    rows = y.numel()
    chunks = -(-rows // CHUNK)
    per_element = args.reduction == "none"
    loss = torch.empty(y.shape, dtype=dtype) if per_element else None
    # one allocation: the chunks' partial sums (the first then holds the reduced loss), then the chunks' counts of
    # targets outside (int64, as many)
    scratch = torch.empty(2 * chunks + 1, dtype=torch.float64)
    grad = torch.empty(x.shape, dtype=dtype) if need_grad else None
    address = scratch.data_ptr()
    outside = LIBRARY.call(
        "dfl_forward", z=x.data_ptr(), y=y.data_ptr(), is_double=int(dtype == torch.float64), rows=rows, n=bins,
        scale=args.reduction_scale, loss=None if loss is None else loss.data_ptr(), partial=address,
        grad=None if grad is None else grad.data_ptr(), outside=address + 8 * (chunks + 1),
        threads=min(torch.get_num_threads(), max(1, x.numel() // ELEMENTS_PER_THREAD)),
    )  # fmt: skip
    if outside and args.kernel_checks_range:
        args.check_target_range()  # raises, naming the values
    return (loss, grad) if per_element else (scratch[0], grad)  # the kernel reduced: partial sums, in order
