"""``sigmoid_compiled``: ``torch.compile`` of the ``sigmoid_logspace`` computation.

Compilations are few by construction (each costs 15-25 s cold on the CPU): the compiled function always sees

* fresh, contiguous 1-D float32 logits and targets (any shape is flattened; a view or a strided input is copied;
  half-precision logits are upcast, as the semantics computes in float32 anyway), so neither the number of dimensions
  nor strides nor aliasing nor the dtype vary;
* ``alpha_t`` (ones without weighting) and ``gamma`` as tensors, so a new alpha or gamma is data, not a guard;
* dynamic sizes (``dynamic=True``), so a new size does not recompile; an empty input is computed eagerly.

What still makes a new graph: grad or no grad (2) and a single element (dynamo specializes size 1): 4 graphs, bounded
at 8, never one per alpha, gamma or size; past the bound it raises instead of falling back to eager silently. float64
logits are not taken (declared: one dtype halves the graphs), so ``gradcheck`` does not apply. The reduction stays in
eager code. AOTAutograd's backward is not differentiable: ``create_graph=True`` raises. The first call of each graph
pays the compile time; benchmarks measure it apart.
"""

from __future__ import annotations

import functools

import torch

from focalbench.arena.registry import register
from focalbench.implementations.compiled import bounded_compile
from focalbench.implementations.sigmoid_logspace import INFINITE_CE_DEFECTS, logspace_per_element
from focalbench.losses.common import reduce_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs

MAX_GRAPHS = 8


@functools.cache
def compiled_per_element():
    """The compiled kernel, created on first use so that importing focalbench never starts a compiler."""
    return bounded_compile(logspace_per_element, MAX_GRAPHS)


@register(
    "sigmoid_compiled",
    family="sigmoid",
    description="torch.compile(dynamic=True) of the log-space computation; alpha_t and gamma as tensors",
    dtypes=(torch.float16, torch.bfloat16, torch.float32),
    capabilities={"any_shape"},
    known_defects=INFINITE_CE_DEFECTS,  # the log-space computation's, compiled
    compiles=True,
)
def sigmoid_compiled(args: SigmoidArgs) -> torch.Tensor:
    """torch.compile of the log-space sigmoid focal loss (float32, one graph per grad mode)."""
    x = args.logits.to(torch.float32).reshape(-1)
    if x.numel() == 0:  # nothing to compute (an empty product keeps the autograd graph)
        return reduce_loss(args.logits * 0, args)
    if x._base is not None or not x.is_contiguous():
        x = x.clone(memory_format=torch.contiguous_format)  # views and strides would each be guarded
    t = args.target.to(torch.float32).reshape(-1).clone()
    alpha_t = args.alpha_t(torch.float32)
    alpha_t = alpha_t.reshape(-1).clone() if isinstance(alpha_t, torch.Tensor) else torch.ones_like(t)
    gamma = torch.tensor(float(args.gamma), dtype=torch.float32, device=x.device)
    per_element = compiled_per_element()(x, t, alpha_t, gamma).reshape(args.logits.shape)
    return reduce_loss(per_element, args).to(args.logits.dtype)
