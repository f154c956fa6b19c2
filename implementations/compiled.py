"""``compiled``: ``torch.compile`` of the ``gather`` computation.

Recompilations are bounded by construction: the compiled function always sees

* a 3-D ``(N, C, S)`` view of the logits (2-D inputs get ``S = 1``, dense ones flatten their spatial dims), so the
  number of dimensions never changes;
* float32 or float64 only (half-precision inputs are upcast first, as the semantics computes in float32 anyway);
* ``gamma`` as a 0-d tensor, so a new gamma value is data, not a guard;
* dynamic sizes (``dynamic=True``), so a new batch size or class count does not recompile.

So at most one graph per (dtype in {float32, float64}) x (grad or no grad). Reduction and ``alpha_t`` stay in eager
code around the compiled region. The first call of each graph pays the compile time; benchmarks measure it apart.
"""

from __future__ import annotations

import functools

import torch
from focalbench.implementations.gather import EXPM1_ACCURACY, gather_per_element

from focalbench.registry import KnownDefect, register
from focalbench.semantics import FocalArgs, compute_dtype, reduce_loss


@functools.cache
def compiled_per_element():
    """The compiled kernel, created on first use so that importing focalbench never starts a compiler."""
    return torch.compile(gather_per_element, dynamic=True)


@register(
    "compiled",
    description="torch.compile(dynamic=True) of the gather computation; gamma as a tensor",
    capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class"},
    known_defects=(
        EXPM1_ACCURACY,
        KnownDefect(
            "gradcheck",
            "AOTAutograd donates the backward's buffers, so backward(retain_graph=True), which gradcheck calls, raises "
            "(torch._functorch.config.donated_buffer=False lifts it, process-wide)",
        ),
    ),
    compiles=True,
)
def compiled(args: FocalArgs) -> torch.Tensor:
    """torch.compile of the gather focal loss (one graph per compute dtype)."""
    dtype = compute_dtype(args.logits.dtype)
    n, c = args.logits.shape[:2]
    logits = args.logits.to(dtype).reshape(n, c, -1).contiguous()
    target = args.safe_target.reshape(n, -1)
    alpha_t = args.alpha_t(dtype).reshape(n, -1)
    gamma = torch.tensor(args.gamma, dtype=dtype, device=logits.device)
    per_element = compiled_per_element()(logits, target, alpha_t, gamma).reshape(args.target.shape)
    return reduce_loss(per_element, args).to(args.logits.dtype)
