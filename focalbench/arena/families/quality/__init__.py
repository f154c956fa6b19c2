"""Quality Focal Loss (Li et al., 2020; GFL; mmdet's ``QualityFocalLoss``) as a family of the arena: its record.

The product's definition of the arguments is :mod:`focalbench.losses.quality.semantics`; here is what the suite adds:
capabilities, the reference, the checks and cases (``quality_*``), the timing workload against
``F.binary_cross_entropy_with_logits`` with the same soft targets, the accuracy sweep by logit magnitude against the
mpmath oracle (:mod:`~focalbench.arena.families.quality.oracle`), and the mutant catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from focalbench.arena.families.quality import accuracy
from focalbench.arena.families.quality.checks import CHECKS
from focalbench.arena.family import Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.quality.semantics import DEFAULTS, QualityArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "PARAMETERS", "SHAPES"]

#: What an implementation of the family may support beyond ``(N, C)``-like logits reduced to a scalar.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "any_shape",  # logits of any shape, (N,) and 0-dim included
        "elementwise_none",  # reduction="none" gives the logits' shape (mmdet's gives the per-anchor sum)
        "double_backward",
        "compile",
    }
)

#: The loss parameters timings take and report rows are keyed by, with their defaults.
PARAMETERS: Mapping[str, float] = {"beta": 2.0}

#: A GFL head's classification logits: every shape representative, so a quick run takes them all.
SHAPES: tuple[Shape, ...] = (
    Shape("yolo_head", (8400, 80), "YOLO-size head at 640 px: 8400 anchor points x 80 COCO classes"),
    Shape("coco_rows", (65536, 80), "a detector's rows: 65536 anchors x 80 COCO classes"),
)


def _call_needs(args: QualityArgs, capabilities: frozenset[str]) -> list[str]:
    """The capabilities a call needs that are absent from ``capabilities``."""
    needs = {"any_shape"} if args.logits.dim() < 2 else set()
    needs |= {"elementwise_none"} if args.reduction == "none" else set()
    return sorted(needs - capabilities)


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits and GFL's targets as a detector sees them: 1 % positives holding an IoU-like score in (0.05, 1], the
    rest 0."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    positive = torch.rand(shape.shape, generator=g) < 0.01
    score = 1 - 0.95 * torch.rand(shape.shape, generator=g)
    target = torch.where(positive, score, 0.0).to(device=device, dtype=dtype)
    return logits, target


def _call(impl, logits, target, parameters: Mapping[str, float]):
    """An implementation called to a scalar loss, as the family's baseline is (``reduction="sum"``)."""
    return impl(logits, target, beta=parameters["beta"], reduction="sum")


def _mutants():
    from focalbench.arena.families.quality.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(
    Family(
        name="quality",
        description="Quality Focal Loss |y - sigmoid(x)|^beta BCE(x, y) with soft IoU targets (GFL, mmdet)",
        validate=validate,
        defaults=dict(DEFAULTS),
        capabilities=CAPABILITIES,
        call_needs=_call_needs,
        reference="quality_reference",
        gradient_penalty_reference="quality_autograd",
        recommended="quality_fused",
        product="focalbench:quality_focal_loss",
        checks=lambda: CHECKS,
        # GFL sums its loss and divides by avg_factor: reduction "sum" on both sides
        workload=Workload(
            baseline="bce_with_logits",
            baseline_loss=functools.partial(F.binary_cross_entropy_with_logits, reduction="sum"),
            inputs=_inputs,
            call=_call,
            needs=lambda shape: set(),
            target_bytes=lambda shape, dtype: shape.numel * torch.empty((), dtype=dtype).element_size(),
            shapes=SHAPES,
        ),
        sweep=Sweep(
            axis="logit magnitude |x|",
            values=accuracy.MAGNITUDES,
            errors=accuracy.errors,
            description="the loss and of the gradient of every element against the mpmath oracle, by logit magnitude "
            "|x|, over both signs, targets 0, 1, 0.25 and 0.9, betas 0..5",
        ),
        labels=Labels(
            baseline="F.binary_cross_entropy_with_logits",
            sweep_rows="rows (80 classes)",
            accuracy_axis="logit magnitude |x| (both signs, targets 0, 1, 0.25, 0.9)",
        ),
        mutants=_mutants,
        order=2,
        parameters=dict(PARAMETERS),
    )
)
