r"""``gather``: log_softmax + gather, the careful eager version.

.. math::

    \log p_t = \mathrm{log\_softmax}(z)_t, \qquad 1 - p_t = -\mathrm{expm1}(\log p_t), \qquad
    \mathrm{FL} = -\alpha_t \, (1 - p_t)^\gamma \log p_t

* ``log_softmax`` never takes the log of an underflowed probability, so the loss is finite for every finite logit.
* ``1 - p_t`` comes from ``expm1``, accurate while ``log p_t`` itself is representable (logit gaps up to about 17 in
  float32; past that ``log p_t`` rounds to 0 and so does the loss, whose exact value is below ``1e-7``).
* ``(1 - p_t)`` is clamped at the dtype's smallest normal number before ``pow``: autograd's ``pow`` backward is
  ``gamma * base ** (gamma - 1)``, infinite at ``base = 0`` for ``0 < gamma < 1``, and ``0 * inf`` would be NaN although
  the true gradient tends to 0. The clamp's own gradient is 0 there, and the loss it changes is ``<= tiny``.
* Dense ``(N, C, d1, ..., dk)`` inputs are handled along dim 1 directly, without a permute-copy.
"""

from __future__ import annotations

import torch

from focalbench.arena.registry import KnownDefect, register
from focalbench.losses.common import compute_dtype, reduce_loss
from focalbench.losses.softmax.semantics import FocalArgs


def gather_per_element(logits: torch.Tensor, target: torch.Tensor, alpha_t: torch.Tensor, gamma) -> torch.Tensor:
    """Per-element focal loss of ``logits`` (N, C, ...) at class ``target`` (N, ...), weighted by ``alpha_t``.

    ``target`` must be a valid index everywhere (ignored positions carry ``alpha_t = 0``). ``gamma`` may be a float
    or a 0-d tensor (the compiled implementation passes a tensor so that a new gamma does not recompile).
    """
    log_p = torch.log_softmax(logits, dim=1)
    log_p_t = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    one_minus_p_t = (-torch.expm1(log_p_t)).clamp_min(torch.finfo(logits.dtype).tiny)
    return -alpha_t * one_minus_p_t.pow(gamma) * log_p_t


#: 1 - p_t inherits the absolute rounding error of log p_t (~1e-7 in float32, ~1e-16 in float64): at a logit gap of 30
#: it is 100% in float32 (log p_t rounds to 0) and ~1e-3 in float64, far above the accuracy bound.
EXPM1_ACCURACY = KnownDefect(
    "accurate_at_extremes",
    "1 - p_t = -expm1(log p_t) loses its digits once 1 - p_t nears log p_t's rounding error "
    "(gap >= ~17 fp32, ~37 fp64)",
    when=lambda case: case.margin is not None and case.margin >= 30,
)


#: log p_t = -inf (a target logit at -inf, or a gap beyond the dtype's range: log_softmax's difference overflows; half
#: precision is computed in float32, which holds its gaps): pow's backward gamma (1 - p_t)^(gamma - 1) (-p_t) = 0 is
#: multiplied by log p_t = -inf, so the gradient is NaN for every gamma > 0 (at gamma 0 it is cross-entropy's).
_LOG_P_T_INFINITE = "log p_t = -inf: pow's backward (0 at p_t = 0) times log p_t is 0 * inf, a NaN gradient"
NON_FINITE_DEFECTS = (
    KnownDefect("impossible_target", _LOG_P_T_INFINITE, when=lambda case: case.gamma > 0),
    KnownDefect(
        "beyond_range",
        _LOG_P_T_INFINITE + " (log_softmax's difference overflows)",
        # float16's gaps fit in float32, its compute dtype; bfloat16's do not
        when=lambda case: case.gamma > 0 and case.dtype != torch.float16,
    ),
    KnownDefect(
        "ignored_are_inert",
        "ignored elements are computed at class 0 and multiplied by alpha_t = 0: -inf, NaN or +inf there makes the "
        "loss 0 * inf = NaN and log_softmax's backward multiplies exp(NaN) by 0 (NaN gradients)",
    ),
)


@register(
    "gather",
    description="log_softmax + gather + expm1, autograd backward (careful eager)",
    known_defects=(EXPM1_ACCURACY, *NON_FINITE_DEFECTS),
    family="softmax",
)
def gather(args: FocalArgs) -> torch.Tensor:
    """log_softmax + gather focal loss with a NaN-free pow at p_t -> 1."""
    dtype = compute_dtype(args.logits.dtype)
    per_element = gather_per_element(args.logits.to(dtype), args.safe_target, args.alpha_t(dtype), args.gamma)
    return reduce_loss(per_element, args).to(args.logits.dtype)
