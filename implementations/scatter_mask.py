"""``scatter_mask``: the seed blog post's FocalLoss, kept as it computes, behind a thin adapter.

The seed builds ``softmax``, multiplies it by a one-hot mask made with ``scatter_``, sums the row to get ``p_t``, and
takes ``p_t.log()`` and ``(1 - p_t) ** gamma``. Only what today's PyTorch forces has changed (no ``Variable``, an
explicit softmax ``dim``). Its defects are kept so the suite can show them, and declared below:

* ``log(p_t)`` is ``-inf`` once ``p_t`` underflows to 0 (a logit gap of 1e3 or beyond the dtype's range, a target
  at -inf), so the loss is not finite; the gradient is NaN as soon as ``1 / p_t`` overflows (in float16 from a gap
  of ~11);
* at a confident row ``p_t`` rounds to 1 (also: every other class at -inf) and autograd's ``pow`` backward gives
  ``0 * inf = NaN`` for ``0 < gamma < 1``;
* a 1-D per-class ``alpha`` (as its docstring invites) indexes to shape ``(N,)`` and multiplies an ``(N, 1)`` column:
  the product silently broadcasts to ``(N, N)`` and the mean is wrong;
* the mean of an empty batch is ``0 / 0 = NaN``.

Which cases a defect covers is decided from the case's own values where the defect depends on them (``p_t`` exactly
0 or 1 as the seed computes it), so random cases are judged as precisely as the named ones.

It has no ``ignore_index``, no ``reduction="none"`` and no dense inputs; the registry refuses those calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.arena.registry import KnownDefect, register
from focalbench.losses.softmax.semantics import FocalArgs


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


def _seed_p_t(case) -> torch.Tensor:
    """p_t of a case's counted elements as the seed computes it (softmax in the logits' dtype)."""
    logits, target = case.make()
    counted = target != case.ignore_index
    p_t = torch.softmax(logits, dim=1).gather(1, torch.where(counted, target, 0).long().unsqueeze(1)).squeeze(1)
    return p_t[counted]


def _underflows(case) -> bool:
    """Some p_t is so small that 1 / p_t overflows the dtype: exactly 0 at a gap >= 1e3 (float32 and float64) or beyond
    the dtype's range and at a target at -inf; in float16 already below 1/65504 (a gap of ~11)."""
    return bool((_seed_p_t(case) * torch.finfo(case.dtype).max < 1).any())


def _saturates(case) -> bool:
    """0 < gamma < 1 and some p_t rounds to exactly 1: a gap past ~17 in float32 (~37 in float64, ~6 in bfloat16), or
    every other class at -inf."""
    return 0 < case.gamma < 1 and bool((_seed_p_t(case) == 1).any())


_LOG_OF_ZERO = "p_t underflows (to 0: a huge gap, a target at -inf) and log(p_t)'s backward 1/p_t overflows: NaN"
_UNDERFLOW_CHECKS = ("finite_at_extremes", "impossible_target", "beyond_range", "cross_entropy_at_gamma_zero")
_POW_AT_ONE = "p_t rounds to 1 and pow's backward at 0 gives 0 * inf = NaN for 0 < gamma < 1"


def _broadcast(check: str) -> KnownDefect:
    return KnownDefect(
        check,
        "1-D per-class alpha of shape (N,) times an (N, 1) column broadcasts to (N, N): wrong mean/sum",
        when=lambda case: case.alpha_kind == "per_class" and case.shape[0] > 1,  # (1,) x (1, 1) is (1, 1)
    )


@register(
    "scatter_mask",
    description="the seed: softmax, scatter one-hot mask, .log(), pow (kept with its defects)",
    capabilities={"alpha:scalar", "alpha:per_class", "double_backward"},
    known_defects=(
        _broadcast("matches_reference"),
        _broadcast("create_graph"),
        *(KnownDefect(check, _LOG_OF_ZERO, when=_underflows) for check in _UNDERFLOW_CHECKS),
        KnownDefect("matches_reference", _LOG_OF_ZERO, when=lambda case: bool((_seed_p_t(case) == 0).any())),
        *(KnownDefect(check, _POW_AT_ONE, when=_saturates) for check in ("finite_at_extremes", "absent_classes")),
        KnownDefect(
            "empty_batch",
            "the mean of no element is torch.mean of an empty tensor: 0 / 0 = NaN",
            when=lambda case: case.reduction == "mean",
        ),
    ),
    family="softmax",
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
