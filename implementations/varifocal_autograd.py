r"""``varifocal_autograd``: the varifocal loss in plain PyTorch operations, differentiated by autograd.

.. math::

    \mathrm{BCE} = (1 - q)\,\mathrm{softplus}(x) + q\,\mathrm{softplus}(-x), \qquad
    p^\gamma = \exp(-\gamma\, \mathrm{softplus}(-x)), \qquad
    \mathrm{VFL} = \mathrm{where}(q > 0,\; q \text{ (or 1)},\; \alpha p^\gamma)\; \mathrm{BCE}

in the compute dtype (float32 for half-precision logits), ``softplus(z) = logaddexp(z, 0)`` (never the log of a rounded
probability), the weight detached with ``detach_weight`` (as RT-DETR's ``sigmoid(x).detach()``). Autograd
differentiates it any number of times: it is the gradient-penalty reference of the varifocal checks.

What autograd cannot do here (declared below): near the dtype's largest logit, at a negative with ``x > 0``, the
backward multiplies the upstream ``BCE ~ x`` by ``alpha gamma`` on its way to ``softplus(-x)``, whose derivative is 0:
where ``alpha gamma x`` overflows the dtype the product is ``inf * 0``, a NaN gradient where the exact one is
``alpha``.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.varifocal.semantics import VarifocalArgs


def autograd_per_element(x: torch.Tensor, q: torch.Tensor, args: VarifocalArgs) -> torch.Tensor:
    """Per-element varifocal loss of logits ``x`` and targets ``q`` (same dtype), differentiable by autograd."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    softplus_x, softplus_minus_x = torch.logaddexp(x, zero), torch.logaddexp(-x, zero)
    bce = (1 - q) * softplus_x + q * softplus_minus_x
    focal = torch.exp(-args.gamma * softplus_minus_x)
    if args.detach_weight:
        focal = focal.detach()
    positive_weight = q if args.iou_weighted else torch.ones_like(q)
    return torch.where(q > 0, positive_weight, args.alpha * focal) * bce


def overflows_at_the_largest_logit(case) -> bool:
    """Some negative (``q = 0``) at ``x > 0`` where ``alpha gamma x`` overflows the dtype, the weight not detached."""
    if case.detach_weight:
        return False
    logits, target = case.make()
    x = logits.double()
    return bool(((target == 0) & (x > 0) & (case.alpha * case.gamma * x > torch.finfo(logits.dtype).max)).any())


OVERFLOW_AT_THE_LARGEST_LOGIT = KnownDefect(
    "varifocal_finite_at_extremes",
    "near the dtype's largest logit autograd carries alpha gamma BCE (~x) to softplus(-x), whose derivative is 0: the "
    "product overflows to inf and gives a NaN gradient where the exact one is alpha",
    when=overflows_at_the_largest_logit,
)


@register(
    "varifocal_autograd",
    family="varifocal",
    description="logaddexp + exp(-gamma softplus(-x)) in PyTorch ops, autograd backward (plain eager)",
    capabilities={"any_shape", "unweighted", "detached", "reduction:none", "double_backward"},
    known_defects=(OVERFLOW_AT_THE_LARGEST_LOGIT,),
)
def varifocal_autograd(args: VarifocalArgs) -> torch.Tensor:
    """Varifocal loss in plain PyTorch operations; autograd computes the gradient."""
    dtype = compute_dtype(args.logits.dtype)
    per_element = autograd_per_element(args.logits.to(dtype), args.target.to(dtype), args)
    return reduce_loss(per_element, args).to(args.logits.dtype)
