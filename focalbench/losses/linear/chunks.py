"""One pass over the chunks of a fused linear focal loss: the chunks' logits by the matrix product, the softmax
family's kernel on each, the gradients folded in (:func:`sweep`); used by the eager path
(:mod:`focalbench.losses.linear.api`) and the custom operators (:mod:`focalbench.losses.linear.op`)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from focalbench.losses.common import compute_dtype
from focalbench.losses.linear.semantics import LinearArgs

__all__ = ["Sweep", "scalar_sweep", "sweep"]


@dataclasses.dataclass
class Sweep:
    """What one pass over the chunks gives: the per-row loss (the kernel's dtype) and the gradients asked for (the
    hidden states' in their dtype, the weight's and bias's in at least float32)."""

    loss: torch.Tensor
    hidden: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None


def sweep(
    args: LinearArgs, kernel, *, hidden: bool, weight: bool, bias: bool, rows: torch.Tensor | None = None
) -> Sweep:
    """One pass over the chunks of ``args``: the per-row losses and the gradients of the *summed* loss (times each
    row's factor in ``rows``, float32 or float64, when given: the upstream gradient of a ``"none"`` loss) asked for.

    The kernel writes each chunk's logits-gradient into a buffer of its own (the chunk's logits are not overwritten:
    nothing another autograd node saved is touched); the row factors are applied on the ``H`` side (to ``G W`` and to
    the chunk's hidden states), never as a pass over the chunk's logits."""
    h, w, b = args.hidden, args.weight, args.bias
    n, features = h.shape
    accumulate = compute_dtype(h.dtype)
    need = hidden or weight or bias
    grad_h = torch.empty_like(h, memory_format=torch.contiguous_format) if hidden else None
    grad_w = torch.zeros((w.shape[0], features), dtype=accumulate, device=h.device) if weight else None
    grad_b = torch.zeros(w.shape[0], dtype=accumulate, device=h.device) if bias else None
    losses = []
    softmax = args.softmax
    for start in range(0, n, args.chunk_size):
        stop = min(n, start + args.chunk_size)
        h_chunk = h[start:stop]
        logits = F.linear(h_chunk, w, b)
        chunk = dataclasses.replace(softmax, logits=logits, target=softmax.target[start:stop], reduction="sum")
        loss, g = kernel(chunk, need)
        losses.append(loss)
        if not need:
            del logits  # before the next chunk's is allocated
            continue
        factor = None if rows is None else rows[start:stop].unsqueeze(1)
        if hidden:
            out = grad_h[start:stop]
            if factor is None:
                torch.mm(g, w, out=out)
            else:
                out.copy_(torch.mm(g, w).to(factor.dtype) * factor)
        if weight or bias:
            g_acc = g if g.dtype == accumulate else g.to(accumulate)
            if weight:
                scaled = h_chunk if factor is None else h_chunk.to(factor.dtype) * factor
                grad_w.addmm_(g_acc.t(), scaled.to(accumulate))
            if bias:
                grad_b += g_acc.sum(0) if factor is None else torch.mv(g_acc.t(), factor.squeeze(1).to(accumulate))
        del logits, g  # before the next chunk's are allocated: two chunks of logits at a time, not four
    loss = (
        torch.cat(losses) if losses else h.new_zeros(0, dtype=torch.float64 if h.device.type == "cpu" else accumulate)
    )
    return Sweep(loss, grad_h, grad_w, grad_b)


def scalar_sweep(args: LinearArgs, kernel, wanted: tuple[bool, bool, bool]) -> tuple[Sweep, tuple]:
    """The sweep of a scalar reduction: its result and the gradients of the reduced loss (upstream gradient 1) in
    the inputs' dtypes, None where not wanted."""
    result = sweep(args, kernel, hidden=wanted[0], weight=wanted[1], bias=wanted[2])
    scale = args.softmax.reduction_scale  # 1 / count for a mean (a device tensor on CUDA), else 1
    dtypes = (args.hidden.dtype, args.weight.dtype, None if args.bias is None else args.bias.dtype)
    grads = tuple(None if g is None else _scaled(g, scale).to(dtype)
                  for g, dtype in zip((result.hidden, result.weight, result.bias), dtypes, strict=True))  # fmt: skip
    return result, grads


def _scaled(gradient: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    if isinstance(scale, torch.Tensor):
        return gradient.mul_(scale.to(gradient.dtype))
    return gradient if scale == 1.0 else gradient.mul_(scale)
