"""``scatter_mask``: the seed blog post's FocalLoss, kept as it computes, behind a thin adapter.

The seed builds ``softmax``, multiplies it by a one-hot mask made with ``scatter_``, sums the row to get ``p_t``, and
takes ``p_t.log()`` and ``(1 - p_t) ** gamma``. Only what today's PyTorch forces has changed (no ``Variable``, an
explicit softmax ``dim``). Its defects are kept so the suite can show them, and declared below:

* ``log(p_t)`` is ``-inf`` once a logit gap makes ``p_t`` underflow, so the loss is not finite;
* at a confident row ``p_t`` rounds to 1 and autograd's ``pow`` backward gives ``0 * inf = NaN`` for ``0 < gamma < 1``;
* a 1-D per-class ``alpha`` (as its docstring invites) indexes to shape ``(N,)`` and multiplies an ``(N, 1)`` column:
  the product silently broadcasts to ``(N, N)`` and the mean is wrong.

It has no ``ignore_index``, no ``reduction="none"`` and no dense inputs; the registry refuses those calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.registry import KnownDefect, register
from focalbench.semantics import FocalArgs


class SeedFocalLoss(nn.Module):
    """The seed's module: ``Loss(x, class) = -alpha (1 - softmax(x)[class])^gamma log(softmax(x)[class])``."""

    def __init__(self, class_num: int, alpha: torch.Tensor | None = None, gamma: float = 2, size_average: bool = True):
        super().__init__()
        self.alpha = torch.ones(class_num, 1) if alpha is None else torch.as_tensor(alpha)
        self.gamma = gamma
        self.class_num = class_num
        self.size_average = size_average

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        N = inputs.size(0)
        C = inputs.size(1)
        P = F.softmax(inputs, dim=1)

        class_mask = inputs.new_zeros(N, C)
        ids = targets.view(-1, 1)
        class_mask.scatter_(1, ids, 1.0)

        alpha = self.alpha.to(inputs.device)[ids.view(-1)]
        probs = (P * class_mask).sum(1).view(-1, 1)
        log_p = probs.log()
        batch_loss = -alpha * (torch.pow((1 - probs), self.gamma)) * log_p

        if self.size_average:
            return batch_loss.mean()
        return batch_loss.sum()


def _underflows(case) -> bool:
    """Extreme cases hold hopeless rows; a gap >= 1e3 underflows softmax to p_t = 0 in float32 and float64."""
    return case.margin is not None and case.margin >= 1e3


#: p_t = 0 exactly (a target logit at -inf, or a gap beyond the dtype's range): log(p_t) = -inf, and its backward
#: 1 / p_t = inf times 0 is NaN
_LOG_OF_ZERO = "p_t = 0 (softmax of a -inf target or of a gap beyond range): log(p_t)'s backward 1/p_t gives NaN"


def _broadcast(check: str) -> KnownDefect:
    return KnownDefect(
        check,
        "1-D per-class alpha of shape (N,) times an (N, 1) column broadcasts to (N, N): wrong mean/sum",
        when=lambda case: case.alpha_kind == "per_class",
    )


def _confident_fractional_gamma(case) -> bool:
    """Confident rows whose p_t rounds to exactly 1: gap >= 30 in float32 (>= 1e3 in float64), with 0 < gamma < 1."""
    saturating_gap = 30.0 if case.dtype == torch.float32 else 1e3
    return case.margin is not None and case.margin >= saturating_gap and 0 < case.gamma < 1


@register(
    "scatter_mask",
    description="the seed: softmax, scatter one-hot mask, .log(), pow (kept with its defects)",
    capabilities={"alpha:scalar", "alpha:per_class", "double_backward"},
    known_defects=(
        _broadcast("matches_reference"),
        _broadcast("create_graph"),
        KnownDefect("finite_at_extremes", "softmax underflows to p_t = 0, so log(p_t) = -inf", when=_underflows),
        KnownDefect(
            "finite_at_extremes",
            "p_t rounds to 1 and pow's backward at 0 gives 0 * inf = NaN for 0 < gamma < 1",
            when=_confident_fractional_gamma,
        ),
        KnownDefect("impossible_target", _LOG_OF_ZERO),
        KnownDefect("beyond_range", _LOG_OF_ZERO),
        KnownDefect("cross_entropy_at_gamma_zero", _LOG_OF_ZERO, when=lambda case: case.impossible > 0),
        KnownDefect(
            "empty_batch",
            "the mean of no element is torch.mean of an empty tensor: 0 / 0 = NaN",
            when=lambda case: case.reduction == "mean",
        ),
    ),
)
def scatter_mask(args: FocalArgs) -> torch.Tensor:
    """The seed's FocalLoss, called with the common arguments mapped onto its own."""
    if args.alpha is None:
        alpha = None
    elif isinstance(args.alpha, float):
        alpha = torch.full((args.num_classes, 1), args.alpha)
    else:
        alpha = args.alpha  # 1-D, as the seed's docstring says it takes it
    module = SeedFocalLoss(args.num_classes, alpha=alpha, gamma=args.gamma, size_average=args.reduction == "mean")
    return module(args.logits, args.target).to(args.logits.dtype)
