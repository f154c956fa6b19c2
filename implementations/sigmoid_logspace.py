r"""``sigmoid_logspace``: the sigmoid focal loss in log space with PyTorch operations, the careful eager version.

.. math::

    \log p = \mathrm{logsigmoid}(x), \quad \log(1 - p) = \mathrm{logsigmoid}(-x), \quad
    \mathrm{CE} = -t \log p - (1 - t) \log(1 - p),

    \log(1 - p_t) = \mathrm{logaddexp}(\log(1 - t) + \log p, \; \log t + \log(1 - p)), \quad
    \mathrm{FL} = \alpha_t \exp(\gamma \log(1 - p_t)) \, \mathrm{CE}

* ``logsigmoid`` never takes the log of a rounded probability: CE and ``log(1 - p_t)`` keep their digits at every
  finite logit, so a confident element's loss is not 0 (torchvision's ``1 - p_t`` is).
* The focal factor is ``exp(gamma log(1 - p_t))``, not ``pow``: its derivative is ``gamma (1 - p_t)^gamma`` times that
  of the log, never ``(1 - p_t)^(gamma - 1)``, so the gradient is finite for ``0 < gamma < 1`` at confident elements.
* Autograd differentiates it (any number of times: it is the gradient-penalty reference of the sigmoid checks).
* Products with a weight of 0 (``t log p`` at ``t = 0``) are taken on safe operands on both sides of ``torch.where``, so
  an infinite logit gives the limit rather than ``0 * inf``.

What autograd cannot do here (declared below): at an infinite logit that disagrees with its target CE is +inf, and
the product rule multiplies it by the focal factor's derivative, 0 there: a NaN gradient where the limit is finite; near
the dtype's largest logit the same product overflows (gamma > 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.arena.registry import KnownDefect, register
from focalbench.implementations._sigmoid_defects import OVERFLOW_AT_THE_LARGEST_LOGIT, disagreeing_infinity
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs


def _weighted(weight: torch.Tensor, log_value: torch.Tensor) -> torch.Tensor:
    """``weight * log_value`` with 0 where the weight is 0 (``log_value`` may be -inf there), gradients included."""
    nonzero = weight != 0
    return torch.where(nonzero, weight * torch.where(nonzero, log_value, 0.0), 0.0)


def logspace_per_element(x: torch.Tensor, t: torch.Tensor, alpha_t, gamma) -> torch.Tensor:
    """Per-element sigmoid focal loss of logits ``x`` and targets ``t`` (same dtype), weighted by ``alpha_t`` (a tensor
    of their shape, or 1.0); ``gamma`` a float or a 0-dim tensor (the compiled implementation passes tensors, so that a
    new alpha or gamma does not recompile)."""
    log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)
    ce = -(_weighted(t, log_p) + _weighted(1 - t, log_q))
    # log(1 - p_t) = log(p (1 - t) + q t): log p or log q for hard targets (logaddexp with a -inf argument has a NaN
    # second derivative), logaddexp of the two terms for soft ones
    soft = torch.where((t > 0) & (t < 1), t, 0.5)
    both = torch.logaddexp(torch.log1p(-soft) + log_p, torch.log(soft) + log_q)
    log_m = torch.where(t == 0, log_p, torch.where(t == 1, log_q, both))
    certain = log_m == -torch.inf  # 1 - p_t = 0: the focal factor is 0^gamma (1 at gamma = 0, not exp(0 * -inf))
    focal = torch.where(
        certain,
        torch.zeros((), dtype=x.dtype, device=x.device).pow(gamma),
        torch.exp(gamma * torch.where(certain, 0.0, log_m)),
    )
    weight = alpha_t * focal
    inert = (weight == 0) & ~torch.isnan(x)  # weight 0: loss 0 whatever CE is, +inf included
    return torch.where(inert, 0.0, weight * torch.where(inert, 0.0, ce))


_INFINITE_CE = (
    "an infinite logit that disagrees with its target: CE = +inf times the focal factor's derivative 0 (autograd's "
    "product rule) gives a NaN gradient where the limit is finite"
)
INFINITE_CE_DEFECTS = (
    KnownDefect("sigmoid_infinite_logits", _INFINITE_CE, when=disagreeing_infinity),
    KnownDefect("sigmoid_propagates_nan", _INFINITE_CE, when=disagreeing_infinity),
    OVERFLOW_AT_THE_LARGEST_LOGIT,
)


@register(
    "sigmoid_logspace",
    family="sigmoid",
    description="logsigmoid + logaddexp + exp(gamma log(1 - p_t)), autograd backward (careful eager)",
    capabilities={"any_shape", "double_backward"},
    known_defects=INFINITE_CE_DEFECTS,
)
def sigmoid_logspace(args: SigmoidArgs) -> torch.Tensor:
    """Log-space sigmoid focal loss: finite and NaN-free gradients at every logit."""
    dtype = compute_dtype(args.logits.dtype)
    per_element = logspace_per_element(args.logits.to(dtype), args.target.to(dtype), args.alpha_t(dtype), args.gamma)
    return reduce_loss(per_element, args).to(args.logits.dtype)
