"""The softmax focal loss (Lin et al., 2017) as a family of the arena: its record.

The product's definition of the arguments is :mod:`focalbench.losses.softmax.semantics`; here is what the suite adds:
capabilities, the reference, the checks and cases, the timing workload against ``F.cross_entropy``, the accuracy
sweep by logit gap, randomized differential testing, and the labels of its figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from focalbench.arena.families.softmax import accuracy
from focalbench.arena.families.softmax.cases import differential_cases
from focalbench.arena.families.softmax.checks import CHECKS, checks_reached, matches_limits
from focalbench.arena.family import Differential, Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.softmax.semantics import FocalArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "SHAPES"]

#: What an implementation may support beyond plain (N, C) inputs with alpha None and reduction mean/sum.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "dense",  # logits (N, C, d1, ..., dk)
        "ignore_index",  # targets equal to ignore_index are skipped
        "reduction:none",
        "alpha:scalar",
        "alpha:per_class",
        "double_backward",  # differentiable gradient (gradgradcheck)
        "compile",  # traceable by torch.compile(fullgraph=True) and torch.export: given by register(traced=...)
    }
)

SHAPES: tuple[Shape, ...] = (
    Shape("yolov2_voc", (54080, 20), "the seed's YOLOv2 head on VOC: 64 images x 13x13 cells x 5 anchors, 20 classes"),
    Shape("coco_rows", (32768, 80), "COCO-style detection: 32768 anchor rows, 80 classes"),
    Shape("imagenet", (256, 1000), "ImageNet classification: batch 256, 1000 classes"),
    Shape("segmentation", (8, 21, 128, 128), "dense segmentation, Pascal VOC: 8 x 21 classes x 128 x 128"),
) + tuple(
    Shape(f"sweep_{rows}x20", (rows, 20), "size sweep: rows x 20 classes", sweep=True) for rows in (2**12, 2**15, 2**18)
)


def _call_needs(args: FocalArgs, capabilities: frozenset[str]) -> list[str]:
    """The capabilities a call needs that are absent from ``capabilities`` (only checks what could be missing)."""
    needs = []
    if "dense" not in capabilities and args.is_dense:
        needs.append("dense")
    if "reduction:none" not in capabilities and args.reduction == "none":
        needs.append("reduction:none")
    if args.alpha is not None and f"alpha:{args.alpha_kind}" not in capabilities:
        needs.append(f"alpha:{args.alpha_kind}")
    if "ignore_index" not in capabilities and not args.all_counted and bool((~args.valid).any()):
        needs.append("ignore_index")
    return needs


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    target = torch.randint(0, shape.shape[1], (shape.shape[0], *shape.shape[2:]), generator=g).to(device)
    return logits, target


def _figure_1_inputs(p_t: Sequence[float]):
    """Two-class float64 logits ``[log(p/(1-p)), 0]`` with target 0: softmax gives exactly ``p_t`` (up to
    rounding)."""
    logits = torch.tensor([[math.log(p / (1 - p)), 0.0] for p in p_t], dtype=torch.float64)
    return logits, torch.zeros(len(p_t), dtype=torch.long), {"alpha": None, "reduction": "none", "ignore_index": -100}


def _differential_check(impl, case, device: str):
    # judged on the scale of a unit loss: a total of tiny losses may be off by atol; the relative accuracy of
    # confident elements is the accuracy checks' business, this test is after wrong values, infinities and NaN
    return matches_limits(impl, case, device, scale_floor=1.0)


def _mutants():
    from focalbench.arena.families.softmax.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(
    Family(
        name="softmax",
        description="softmax focal loss -alpha_t (1 - p_t)^gamma log p_t over classes along dim 1 (Lin et al., 2017)",
        validate=validate,
        defaults={"gamma": 2.0, "alpha": None, "reduction": "mean", "ignore_index": -100},
        capabilities=CAPABILITIES,
        call_needs=_call_needs,
        reference="numpy_reference",
        gradient_penalty_reference="gather",  # plain autograd through log_softmax: differentiable any number of times
        recommended="fused",
        parameters={"gamma": 2.0},
        class_axis=1,
        product="focalbench:focal_loss",
        checks=lambda: CHECKS,
        workload=Workload(
            baseline="cross_entropy",
            baseline_loss=F.cross_entropy,  # picklable: focalbench bisect sends it to its probes
            inputs=_inputs,
            call=lambda impl, x, target, parameters: impl(x, target, **parameters),
            needs=lambda shape: {"dense"} if len(shape.shape) > 2 else set(),
            target_bytes=lambda shape, dtype: shape.numel // shape.shape[1] * 8,
            shapes=SHAPES,
        ),
        sweep=Sweep(
            axis="logit gap",
            values=accuracy.GAPS,
            errors=accuracy.errors,
            description="the loss (per element) and of the gradient (per row, max-norm) against the mpmath oracle, "
            "by logit gap, over shifts 0, +1e3, -3e3, gammas 0..5, C in 2, 20, 1000, confident and hopeless rows",
        ),
        labels=Labels(
            baseline="F.cross_entropy",
            sweep_rows="rows (20 classes)",
            accuracy_axis="logit gap (target raised, or another class raised: confident and hopeless rows)",
            figure_1="FL = −(1 − p_t)^γ log p_t (Lin et al. 2017, Fig. 1)",
        ),
        differential=Differential(cases=differential_cases, check=_differential_check, reached=checks_reached),
        figure_1_inputs=_figure_1_inputs,
        mutants=_mutants,
        order=0,
    )
)
