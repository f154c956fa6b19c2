"""RetinaNet's sigmoid focal loss (torchvision's meaning) as a family of the arena: its record.

The product's definition of the arguments is :mod:`focalbench.losses.sigmoid.semantics`; here is what the suite adds:
capabilities, the reference, the checks and cases (``sigmoid_*``), the timing workload against
``F.binary_cross_entropy_with_logits``, the accuracy sweep by logit magnitude, randomized differential testing, and
the labels of its figures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from focalbench.arena.families.sigmoid import accuracy
from focalbench.arena.families.sigmoid.cases import differential_cases
from focalbench.arena.families.sigmoid.checks import CHECKS, checks_reached, matches_limits
from focalbench.arena.family import Differential, Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.sigmoid.semantics import DEFAULTS, SigmoidArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "SHAPES"]

#: What an implementation of the family may support beyond logits of two or more dimensions.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "any_shape",  # logits of any shape, (N,) and 0-dim included
        "double_backward",
        "compile",
    }
)

#: RetinaNet's shapes: every one representative, so a quick run takes them all.
SHAPES: tuple[Shape, ...] = (
    Shape("retinanet_rows", (65536, 80), "RetinaNet-style detection head: 65536 anchors x 80 COCO classes"),
    Shape("retinanet_dense", (8, 80, 64, 64), "dense one-vs-rest logits: 8 images x 80 classes x 64 x 64"),
)


def _call_needs(args: SigmoidArgs, capabilities: frozenset[str]) -> list[str]:
    """The capabilities a call needs that are absent from ``capabilities``."""
    return ["any_shape"] if "any_shape" not in capabilities and args.logits.dim() < 2 else []


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits and one-vs-rest targets as a detector sees them: 1 % positives (foreground anchors), the rest 0."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    target = (torch.rand(shape.shape, generator=g) < 0.01).to(device=device, dtype=dtype)
    return logits, target


def _figure_1_inputs(p_t: Sequence[float]):
    """Logits ``log(p/(1-p))`` with target 1 and no weighting: the loss is ``-(1 - p_t)^gamma log p_t``."""
    logits = torch.tensor([[math.log(p / (1 - p))] for p in p_t], dtype=torch.float64)
    return logits, torch.ones_like(logits), {"alpha": -1.0, "reduction": "none"}


def _differential_check(impl, case, device: str):
    # judged on the scale of a unit loss, as the softmax family's differential test is
    return matches_limits(impl, case, device, scale_floor=1.0)


def _mutants():
    from focalbench.arena.families.sigmoid.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(
    Family(
        name="sigmoid",
        description="RetinaNet's sigmoid focal loss alpha_t (1 - p_t)^gamma BCE, every element its own binary problem",
        validate=validate,
        defaults=dict(DEFAULTS),
        capabilities=CAPABILITIES,
        call_needs=_call_needs,
        reference="sigmoid_reference",
        gradient_penalty_reference="sigmoid_logspace",
        recommended="sigmoid_fused",
        parameters={"gamma": 2.0},
        product="focalbench:sigmoid_focal_loss",
        checks=lambda: CHECKS,
        # RetinaNet sums its loss (then divides by the number of positive anchors): reduction "sum" on both sides
        workload=Workload(
            baseline="bce_with_logits",
            # picklable (a partial, not a lambda): focalbench bisect sends it to the probes that time old commits
            baseline_loss=functools.partial(F.binary_cross_entropy_with_logits, reduction="sum"),
            inputs=_inputs,
            call=lambda impl, x, target, parameters: impl(x, target, **parameters, reduction="sum"),
            needs=lambda shape: set(),
            target_bytes=lambda shape, dtype: shape.numel * torch.empty((), dtype=dtype).element_size(),
            shapes=SHAPES,
        ),
        sweep=Sweep(
            axis="logit magnitude |x|",
            values=accuracy.MAGNITUDES,
            errors=accuracy.errors,
            description="the loss and of the gradient of every element against the mpmath oracle, by logit magnitude "
            "|x|, over both signs, targets 0 and 1 (confident and hopeless elements), gammas 0..5, alpha 0.25 and "
            "none",
        ),
        labels=Labels(
            baseline="F.binary_cross_entropy_with_logits",
            sweep_rows="rows (80 classes)",
            accuracy_axis="logit magnitude |x| (both signs, targets 0 and 1: confident and hopeless elements)",
            figure_1="FL = −(1 − p_t)^γ log p_t, sigmoid family (alpha = −1, target 1)",
        ),
        differential=Differential(cases=differential_cases, check=_differential_check, reached=checks_reached),
        figure_1_inputs=_figure_1_inputs,
        mutants=_mutants,
        order=1,
    )
)
