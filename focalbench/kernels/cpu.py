"""The CPU kernel of the softmax focal loss: ``focal_cpu.c``, built at first use, called through one typed table.

The bridge is ctypes over a plain C library rather than a ``torch.utils.cpp_extension``: measured on a 2-core
x86-64 VM, the C file built in 6.0 s with the system compiler and no torch headers, a one-line extension against
torch's headers (``load_inline``) in 45.5 s, and first use is what a user waits for; the call itself is a few
microseconds either way, small beside the autograd bookkeeping around it. What ctypes lacks, type checking, is
:data:`SIGNATURES`: each exported function with its C types and parameter names, as declared in the C source. A test
parses the prototypes in ``focal_cpu.c`` and checks them against this table, and :func:`call` passes arguments by
name, so a drift between the two is a test failure or a ``TypeError``, never silently corrupted memory.

The exponential and logarithm the C source uses are written in ``focal_math.h`` (shared with the sigmoid family's
``sigmoid_cpu.c``, which is built into a library of its own) rather than taken from libm, because libm's scalar
calls keep the per-row terms from vectorizing (see the comment at ``log_pos``); they are checked against an mpmath
oracle like everything else.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.softmax.semantics import FocalArgs

from focalbench.kernels.build import TypedLibrary

__all__ = ["LIBRARY", "SIGNATURES", "SOURCE", "available", "call", "forward", "forward_args", "library", "pointer"]

SOURCE = Path(__file__).with_name("focal_cpu.c")

#: focal_forward's ``element``: the logits' dtype as the C source's ELEM_* codes.
ELEMENTS = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}

#: The exported functions: name -> (C return type, [(C type, parameter name), ...]), in declaration order.
SIGNATURES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "focal_forward": (
        "int",
        [("const void *", "z"), ("int", "element"), ("int64_t", "B"), ("int64_t", "S"), ("int64_t", "C"),
         ("int64_t", "sB"), ("int64_t", "sC"), ("int64_t", "sS"), ("const int64_t *", "target"),
         ("const double *", "alpha_t"), ("double", "gamma"), ("double", "scale"), ("double *", "loss"),
         ("void *", "grad"), ("int64_t", "gB"), ("int64_t", "gC"), ("int64_t", "gS"), ("int", "need_grad"),
         ("int", "threads")],
    ),
}  # fmt: skip

#: The softmax family's library: built once per process, at first use.
LIBRARY = TypedLibrary(SOURCE, SIGNATURES)
library = LIBRARY.library
available = LIBRARY.available
call = LIBRARY.call


def pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def forward(
    logits: torch.Tensor,
    target_rows: torch.Tensor,
    alpha_rows: torch.Tensor | None,
    gamma: float,
    scale: float,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element loss (float64, the target's shape) and ``scale`` times its gradient (the logits' shape).

    Args:
        logits: ``(N, C, ...)`` float32, float64, bfloat16 or float16 on the CPU, any strides (half precision is
            computed in float32 and its gradient returned in its own dtype, rounded once).
        target_rows: int64, one per row (``N * d1 * ... * dk``, contiguous), -1 at ignored rows.
        alpha_rows: float64 weight per row (contiguous), or None for all ones.
        gamma, scale: the focusing parameter and the factor folded into the gradient (1 / count for a mean).
        need_grad: write the gradient (else None is returned for it).
    """
    dtype = logits.dtype
    element = ELEMENTS[dtype]
    shape = logits.shape
    n, c = shape[0], shape[1]
    if len(shape) == 2:  # rows are the lanes: (1, C, N) with the row stride as the lane stride
        x = logits
        row_stride, class_stride = x.stride()
        blocks_b, lanes, strides = 1, n, (0, class_stride, row_stride)
        grad = torch.empty(shape, dtype=dtype) if need_grad else None
        grad_strides = (0, 1, c)
    else:
        x = logits.reshape(n, c, math.prod(shape[2:]))  # not -1: 0 elements have no inferable size
        blocks_b, lanes, strides = n, x.shape[2], x.stride()
        grad = torch.empty(x.shape, dtype=dtype) if need_grad else None
        grad_strides = (c * lanes, lanes, 1)
    loss = torch.empty(target_rows.numel(), dtype=torch.float64)
    threads = min(torch.get_num_threads(), max(1, logits.numel() // 16384))  # threads pay off past ~16k logits
    # positional, in SIGNATURES' order (a test checks it against the C prototype): a small batch's call is mostly
    # fixed cost, and call()'s check of the names was a tenth of it
    failed = LIBRARY.function("focal_forward")(
        x.data_ptr(), element, blocks_b, lanes, c, strides[0], strides[1], strides[2], target_rows.data_ptr(),
        None if alpha_rows is None else alpha_rows.data_ptr(), gamma, scale, loss.data_ptr(),
        None if grad is None else grad.data_ptr(), grad_strides[0], grad_strides[1], grad_strides[2],
        1 if need_grad else 0, threads,
    )  # fmt: skip
    if failed:
        raise MemoryError("focal_cpu: could not allocate its block buffers")
    if grad is not None and grad.dim() != len(shape):
        grad = grad.reshape(shape)
    return loss, grad


def forward_args(args: FocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`forward` for validated arguments: the per-element loss and the gradient of the *reduced* loss (in the
    logits' dtype: the kernel reads and writes half precision itself)."""
    logits = args.logits
    # -1 marks an ignored row: the kernel reads none of its logits, so garbage there (NaN, -inf) stays out
    target = args.target if args.all_counted else args.target.masked_fill(~args.valid, -1)
    alpha = None if args.alpha is None else args.alpha_t(torch.float64).reshape(-1).contiguous()
    if target.dim() != 1 or not target.is_contiguous():
        target = target.reshape(-1).contiguous()
    loss, grad = forward(logits, target, alpha, args.gamma, args.reduction_scale, need_grad)
    return loss if loss.dim() == args.target.dim() else loss.reshape(args.target.shape), grad
