"""VarifocalNet's varifocal loss as a family of the arena: its record.

The product's definition of the arguments is :mod:`focalbench.losses.varifocal.semantics`; here is what the suite
adds: capabilities, the reference, the checks and cases (``varifocal_*``), the timing workload against
``F.binary_cross_entropy_with_logits`` on the same soft targets, the accuracy sweep by logit magnitude against the
mpmath oracle (:mod:`~focalbench.arena.families.varifocal.oracle`), and the mutant catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from focalbench.arena.families.varifocal import accuracy
from focalbench.arena.families.varifocal.cases import gradient_is_derivative
from focalbench.arena.families.varifocal.checks import CHECKS
from focalbench.arena.family import Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.varifocal.semantics import DEFAULTS, VarifocalArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "PARAMETERS", "SHAPES"]

#: What an implementation of the family may support beyond logits of two or more dimensions.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "any_shape",  # logits of any shape, (N,) and 0-dim included
        "unweighted",  # iou_weighted=False: positives weighted by 1
        "detached",  # detach_weight=True: RT-DETR's constant weight
        "reduction:none",  # the per-element loss
        "double_backward",
        "compile",
    }
)

#: The loss parameters timings take (and report rows are keyed by), with their defaults; alpha stays at its default.
PARAMETERS: Mapping[str, float] = {"gamma": 2.0}

#: Detectors' classification heads: RT-DETR's decoder queries and dense COCO rows.
SHAPES: tuple[Shape, ...] = (
    Shape("rtdetr_queries", (16 * 300, 80), "RT-DETR's decoder: batch 16 x 300 queries x 80 COCO classes"),
    Shape("coco_rows", (65536, 80), "a dense detector's rows (VarifocalNet, YOLO heads): 65536 x 80 COCO classes"),
)


def _call_needs(args: VarifocalArgs, capabilities: frozenset[str]) -> list[str]:
    """The capabilities a call needs that are absent from ``capabilities``."""
    needed = {
        "any_shape": args.logits.dim() < 2,
        "unweighted": not args.iou_weighted,
        "detached": args.detach_weight,
        "reduction:none": args.reduction == "none",
    }
    return [name for name, needs in needed.items() if needs and name not in capabilities]


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits and IoU-aware targets as a detector sees them: 1 % positives, IoU-like scores in (0, 1], the rest 0."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    positive = torch.rand(shape.shape, generator=g) < 0.01
    score = 1 - torch.rand(shape.shape, generator=g)  # in (0, 1]
    target = torch.where(positive, score, 0.0).to(device=device, dtype=dtype)
    return logits, target


def _call(impl, logits, target, parameters: Mapping[str, float]):
    """A timed call: the loss parameters given (``{"gamma": ...}``), alpha at its default, summed as the baseline."""
    return impl(logits, target, gamma=parameters["gamma"], reduction="sum")


def _mutants():
    from focalbench.arena.families.varifocal.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(Family(
    name="varifocal",
    description="VarifocalNet's IoU-aware loss: q BCE(x, q) at positives, alpha p^gamma BCE(x, 0) at negatives",
    validate=validate,
    defaults=dict(DEFAULTS),
    capabilities=CAPABILITIES,
    call_needs=_call_needs,
    reference="varifocal_reference",
    gradient_penalty_reference="varifocal_autograd",
    recommended="varifocal_fused",
    product="focalbench:varifocal_loss",
    checks=lambda: CHECKS,
    # a detector sums its classification loss (then divides by a normalizer): reduction "sum" on both sides
    workload=Workload(
        baseline="bce_with_logits",
        # picklable (a partial, not a lambda): focalbench bisect sends it to the probes that time old commits
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
        "|x|, over both signs, targets 0, 1 and 0.3, gammas 0..5, alpha 0.75 and 0.25, IoU-weighted, unweighted and "
        "detached weights",
    ),
    labels=Labels(
        baseline="F.binary_cross_entropy_with_logits",
        sweep_rows="rows (80 classes)",
        accuracy_axis="logit magnitude |x| (both signs, targets 0, 1 and 0.3)",
    ),
    mutants=_mutants,
    order=3,
    parameters=PARAMETERS,
    # RT-DETR's detached weight: the gradient is w (p - q), not the loss's derivative (no finite-difference check)
    gradient_is_derivative=gradient_is_derivative,
))  # fmt: skip
