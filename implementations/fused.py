"""``fused``: the closed-form focal loss as one C kernel over the logits (CPU).

The derivation is in :mod:`focalbench.fused`; the kernel and its step comments in ``fused_kernel.c``. For float32
logits each difference ``z_j - max`` carries its own rounding error back into the float32 exponential (TwoSum), sums
and per-row terms are double, so the loss and gradient are within a few float32 ulp of the exact values at every
finite logit gap (float64 logits are computed in double throughout); the gradient is written in the same sweep, so
the logits are read twice and the gradient written once (then rescaled in cache).

The kernel is compiled at first use with the system C compiler (cached, see :mod:`focalbench.native`); without a
compiler the implementation is unavailable and ``focalbench list`` says why.
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path

import torch

from focalbench.fused import fused_loss
from focalbench.native import NativeBuildError, load
from focalbench.registry import register, register_unavailable
from focalbench.semantics import FocalArgs, compute_dtype, mean_scale

LANES = 16  # rows per kernel block, as in fused_kernel.c
SOURCE = Path(__file__).with_name("fused_kernel.c")

_c_int64, _c_double, _ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
_ARGTYPES = [
    _ptr,
    ctypes.c_int,
    _c_int64,
    _c_int64,
    _c_int64,
    _c_int64,
    _c_int64,
    _ptr,
    _ptr,
    _c_double,
    _c_double,
    _ptr,
    _ptr,
    _c_int64,
    _c_int64,
    _c_int64,
    ctypes.c_int,
    _c_int64,
    ctypes.c_int,
]


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def c_forward(library: ctypes.CDLL, args: FocalArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element loss (float64) and the reduction-scaled gradient, from the C kernel."""
    dtype = compute_dtype(args.logits.dtype)
    x = args.logits.to(dtype)
    n, c = x.shape[:2]
    if x.dim() == 2:  # rows are the lanes: (1, C, N) with the row stride as the lane stride
        blocks_b, lanes, strides = 1, n, (0, x.stride(1), x.stride(0))
        grad = torch.empty((n, c), dtype=dtype) if need_grad else None
        grad_strides = (0, 1, c)
    else:
        x = x.reshape(n, c, math.prod(x.shape[2:]))  # not -1: a batch of 0 elements has no inferable size
        blocks_b, lanes, strides = n, x.shape[2], x.stride()
        grad = torch.empty(x.shape, dtype=dtype) if need_grad else None
        grad_strides = (c * lanes, lanes, 1)
    # -1 marks an ignored row: the kernel reads none of its logits, so garbage there (NaN, -inf) stays out
    target = (args.target if args.all_counted else args.target.masked_fill(~args.valid, -1)).reshape(-1).contiguous()
    # per-row weights; none to pass when every weight is 1
    alpha_t = None if args.alpha is None else args.alpha_t(torch.float64).reshape(-1).contiguous()
    scale = mean_scale(args) if args.reduction == "mean" else 1.0
    loss = torch.empty(target.numel(), dtype=torch.float64)

    blocks = library.focal_blocks_count(blocks_b, lanes, c, strides[1], grad_strides[1], int(dtype == torch.float64))
    threads = min(torch.get_num_threads(), max(1, x.numel() // 16384))  # threads pay off past ~16k logits
    if library.focal_forward(
        _pointer(x),
        int(dtype == torch.float64),
        lanes,
        c,
        *strides,
        _pointer(target),
        _pointer(alpha_t),
        args.gamma,
        scale,
        _pointer(loss),
        _pointer(grad),
        *grad_strides,
        int(need_grad),
        blocks,
        threads,
    ):
        raise MemoryError("fused kernel: could not allocate its block buffers")
    per_element = loss.reshape(args.target.shape)
    if grad is not None:
        grad = grad.reshape(args.logits.shape)
    return per_element, grad


try:
    _LIBRARY = load(SOURCE)
except NativeBuildError as error:
    register_unavailable("fused", f"its C kernel could not be built: {error}")
else:
    _LIBRARY.focal_forward.argtypes = _ARGTYPES
    _LIBRARY.focal_forward.restype = ctypes.c_int
    _LIBRARY.focal_blocks_count.argtypes = [_c_int64] * 5 + [ctypes.c_int]
    _LIBRARY.focal_blocks_count.restype = _c_int64

    @register(
        "fused",
        description="closed form as one C kernel: corrected exponentials, double row terms, gradient in the forward",
        devices=("cpu",),
        capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class"},
    )
    def fused(args: FocalArgs) -> torch.Tensor:
        """Fused closed-form focal loss (C kernel), accurate at every finite logit gap."""
        return fused_loss(args, functools.partial(c_forward, _LIBRARY))
