r"""``linear_reference``: the linear family's reference — the head's logits in float64, the softmax family's NumPy
float64 reference on them.

.. math::

    \mathrm{FLL}(h, W, b, t) = \mathrm{FL}_{\text{numpy\_reference}}(h W^\top + b, t)

The logits' *values* are the ones the implementations see — ``F.linear`` in the inputs' dtype, as ``nn.Linear``
computes them (exact in float64; rounded once to bfloat16 for bfloat16 inputs) — and their *derivative* is the exact
float64 ``h W^T + b``: the gradients of the hidden states, the weight and the bias are ``G W``, ``G^T h`` and
``sum G`` in float64, ``G`` the reference's own closed-form gradient. Nothing is chunked: it holds the ``N x V``
logits (it does not declare ``chunked``). Differentiable once, as ``numpy_reference``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.arena.registry import get_implementation, register
from focalbench.losses.linear.semantics import LinearArgs

__all__ = ["linear_reference"]


@register(
    "linear_reference",
    family="linear",
    description="logits h W^T + b in float64 (the inputs' rounded values), numpy_reference's focal loss on them",
    capabilities={"any_shape"},
)
def linear_reference(args: LinearArgs) -> torch.Tensor:
    h, w, b = args.hidden, args.weight, args.bias
    exact = F.linear(h.double(), w.double(), None if b is None else b.double())
    with torch.no_grad():
        rounded = F.linear(h, w, b).double()
    logits = rounded + (exact - exact.detach())  # the rounded values, the exact derivative
    soft = args.softmax
    loss = get_implementation("numpy_reference")(logits, args.target, gamma=soft.gamma, alpha=soft.alpha,
                                                 reduction=soft.reduction, ignore_index=soft.ignore_index)  # fmt: skip
    loss = loss.reshape(args.loss_shape) if soft.reduction == "none" else loss
    return loss.to(h.dtype)
