"""``compiled``: ``torch.compile`` of the ``gather`` computation.

Recompilations are bounded by construction: the compiled function always sees

* fresh, contiguous 2-D ``(rows, C)`` logits (dense inputs move the class dim last and flatten, a copy; a view or a
  strided input is copied too), so neither the number of dimensions nor strides nor aliasing vary;
* float32 or float64 only (half-precision inputs are upcast first, as the semantics computes in float32 anyway);
* ``gamma`` as a 0-d tensor, so a new gamma value is data, not a guard;
* dynamic sizes (``dynamic=True``), so a new batch size or class count does not recompile.

What still makes a new graph: the dtype (2), grad or no grad (2), and a single row (dynamo specializes sizes 0 and
1): 8 graphs, bounded here at 16, never one per gamma or size. The recompile
limit is raised to that bound (torch's default of 8 would be hit), and hitting it raises instead of falling back to
eager silently. Reduction and ``alpha_t`` stay in eager code. The first call of each graph pays the compile time;
benchmarks measure it apart.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch._dynamo

from focalbench.arena.registry import KnownDefect, register
from focalbench.implementations.gather import EXPM1_ACCURACY, NON_FINITE_DEFECTS, gather_per_element
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.softmax.semantics import FocalArgs

MAX_GRAPHS = 16


def bounded_compile(fn, max_graphs: int):
    """``torch.compile(fn, dynamic=True)`` that raises past ``max_graphs`` graphs rather than fall back to eager
    without a word (the recompile limit raised to that bound: torch's default of 8 may be too few)."""
    if "recompile_limit" in inspect.signature(torch.compile).parameters:  # torch >= 2.12: a per-function limit
        compiled = torch.compile(fn, dynamic=True, recompile_limit=max_graphs)
    else:
        compiled = torch.compile(fn, dynamic=True)

    def call(*args):
        with torch._dynamo.config.patch(recompile_limit=max_graphs, fail_on_recompile_limit_hit=True):
            return compiled(*args)

    return call


@functools.cache
def compiled_per_element():
    """The compiled kernel, created on first use so that importing focalbench never starts a compiler."""
    return bounded_compile(gather_per_element, MAX_GRAPHS)


@register(
    "compiled",
    description="torch.compile(dynamic=True) of the gather computation; gamma as a tensor",
    capabilities={"dense", "ignore_index", "reduction:none", "alpha:scalar", "alpha:per_class"},
    known_defects=(
        EXPM1_ACCURACY,
        *NON_FINITE_DEFECTS,
        KnownDefect(
            "gradcheck",
            "AOTAutograd donates the backward's buffers, so backward(retain_graph=True), which gradcheck calls, raises "
            "(torch._functorch.config.donated_buffer=False lifts it, process-wide)",
        ),
    ),
    compiles=True,
    family="softmax",
)
def compiled(args: FocalArgs) -> torch.Tensor:
    """torch.compile of the gather focal loss (one graph per compute dtype)."""
    dtype = compute_dtype(args.logits.dtype)
    logits = args.logits.to(dtype)
    rows = logits if logits.dim() == 2 else logits.movedim(1, -1).reshape(-1, args.num_classes)
    if rows._base is not None or not rows.is_contiguous():
        rows = rows.clone(memory_format=torch.contiguous_format)  # views and strides would each be guarded
    target = args.safe_target.reshape(-1).clone()
    alpha_t = args.alpha_t(dtype).reshape(-1).clone()
    gamma = torch.tensor(args.gamma, dtype=dtype, device=rows.device)
    per_element = compiled_per_element()(rows, target, alpha_t, gamma).reshape(args.target.shape)
    return reduce_loss(per_element, args).to(args.logits.dtype)
