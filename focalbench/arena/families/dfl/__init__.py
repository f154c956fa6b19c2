"""Distribution Focal Loss (Li et al., 2020; GFL; the box loss of ultralytics YOLOv8/YOLO11 and mmdet's GFL heads) as
a family of the arena: its record.

The product's definition of the arguments is :mod:`focalbench.losses.dfl.semantics`; here is what the suite adds:
capabilities, the reference, the checks and cases (``dfl_*``), the timing workload against ultralytics' two
``F.cross_entropy`` calls on the same targets, the accuracy sweep by logit scale against the mpmath oracle
(:mod:`~focalbench.arena.families.dfl.oracle`), and the mutant catalogue. The loss has no timed parameter; its bins are
the logits' last axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from focalbench.arena.families.dfl import accuracy
from focalbench.arena.families.dfl.checks import CHECKS
from focalbench.arena.family import Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.dfl.semantics import DEFAULTS, DflArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "SHAPES", "two_cross_entropy"]

#: What an implementation of the family may support beyond ``(N, n)`` logits.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "any_shape",  # logits of any number of leading dimensions: (n,), (N, 4, n), ...
        "double_backward",
        "compile",
    }
)

#: Box-regression heads' positives, bins last (DFL is computed at the positive anchors only).
SHAPES: tuple[Shape, ...] = (
    Shape("yolo_positives", (33600, 16), "ultralytics YOLOv8/YOLO11 at 640 px, batch 16: 8400 positive anchors x 4 "
          "sides, reg_max 16 bins"),
    Shape("gfl_positives", (65536, 17), "mmdet GFL/RTMDet-style head: 16384 positive points x 4 sides, reg_max 16 "
          "(17 bins)"),
    Shape("yolo_batch", (537600, 16), "every anchor of a YOLO batch: 16 images x 8400 anchors x 4 sides x 16 bins"),
)  # fmt: skip


def _call_needs(args: DflArgs, capabilities: frozenset[str]) -> list[str]:
    """The capabilities a call needs that are absent from ``capabilities``."""
    needs = {"any_shape"} if args.logits.dim() != 2 else set()
    return sorted(needs - capabilities)


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Logits and targets as a YOLO head's positives see them: logits ~ 3 randn, targets uniform in ``[0, n - 1.01]``,
    a tenth of them integers, some exactly 0 and ``n - 1.01`` (a side on a cell's edge, or beyond ``reg_max``: the
    assigners of both peers clamp there, ultralytics' at ``reg_max - 1 - 0.01``), so every implementation is timed on
    what its callers pass (mmdet's reads bin ``n`` at ``n - 1``: the checks show it, the timings do not trip on it)."""
    g = torch.Generator().manual_seed(seed)
    n = shape.shape[-1]
    logits = (torch.randn(shape.shape, generator=g) * 3).to(device=device, dtype=dtype)
    lead = shape.shape[:-1]
    top = n - 1.01
    target = torch.rand(lead, generator=g) * top
    draw = torch.rand(lead, generator=g)
    target = torch.where(draw < 0.1, target.floor(), target)
    target = torch.where(draw > 0.98, 0.0, torch.where(draw > 0.96, top, target))
    return logits, target.to(device=device, dtype=dtype)


def two_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The baseline: ultralytics' ``DFLoss`` arithmetic, ``CE(x, y_l) w_l + CE(x, y_r) w_r`` with two
    ``F.cross_entropy`` calls (``y_l = floor(y)`` clamped to ``n - 2`` instead of ultralytics' in-place clamp of the
    target), reduced with ``"sum"``."""
    n = logits.shape[-1]
    x, y = logits.reshape(-1, n), target.reshape(-1)
    left = y.long().clamp(max=n - 2)
    right = left + 1
    w_left = right - y
    w_right = 1 - w_left
    left_loss, right_loss = F.cross_entropy(x, left, reduction="none"), F.cross_entropy(x, right, reduction="none")
    per_element = left_loss * w_left + right_loss * w_right
    return per_element.sum()


def _call(impl, logits, target, parameters: Mapping[str, float]):
    """A timed call, summed as the baseline (the loss has no timed parameter)."""
    return impl(logits, target, reduction="sum")


def _mutants():
    from focalbench.arena.families.dfl.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(Family(
    name="dfl",
    description="Distribution Focal Loss: w_l CE(z, y_l) + w_r CE(z, y_r) over the bins of a box side (GFL, "
    "ultralytics, mmdet)",
    validate=validate,
    defaults=dict(DEFAULTS),
    capabilities=CAPABILITIES,
    call_needs=_call_needs,
    reference="dfl_reference",
    gradient_penalty_reference="dfl_autograd",
    recommended="dfl_fused",
    product="focalbench:distribution_focal_loss",
    checks=lambda: CHECKS,
    # a detector sums its box loss (then divides by a normalizer): reduction "sum" on both sides
    workload=Workload(
        baseline="two_cross_entropy",
        baseline_loss=two_cross_entropy,
        inputs=_inputs,
        call=_call,
        needs=lambda shape: {"any_shape"} if len(shape.shape) != 2 else set(),
        # one target a row of bins
        target_bytes=lambda shape, dtype: shape.numel // shape.shape[-1] * torch.empty((), dtype=dtype).element_size(),
        shapes=SHAPES,
    ),
    sweep=Sweep(
        axis="logit scale",
        values=accuracy.SCALES,
        errors=accuracy.errors,
        description="the loss of every element and of its gradient over the bins against the mpmath oracle, by logit "
        "scale (scale times a ramp, a peak at the target, a peak away from it and seeded values over 16 bins), "
        "integer, fractional and near-bin targets below n - 1.01",
    ),
    labels=Labels(
        baseline="two F.cross_entropy (ultralytics' DFLoss)",
        sweep_rows="rows (16 bins)",
        accuracy_axis="logit scale (16 bins: ramp, peaks, seeded patterns; integer, fractional, near-bin targets)",
    ),
    mutants=_mutants,
    order=4,
    parameters={},
    class_axis=-1,
))  # fmt: skip
