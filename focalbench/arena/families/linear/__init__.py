"""The fused linear focal loss as a family of the arena: its record.

The family's inputs are ``(hidden, weight, target)`` (and a bias): an implementation is called
``impl(hidden, target, *, weight, bias, gamma, alpha, reduction, ignore_index, chunk_size)`` — the hidden states
where the other families take their logits, the head's parameters as keywords — and computes
``focal_loss(hidden @ weight.T + bias, target)`` (:mod:`focalbench.losses.linear.semantics`). The checks judge the
gradients of all three differentiable inputs; the reference is ``linear_reference`` (float64 logits, the softmax
family's NumPy reference), itself judged against the mpmath oracle
(:mod:`~focalbench.arena.families.linear.accuracy`); the timings run language-model heads against ``nn.Linear`` +
``F.cross_entropy``, with their peak memory.

A timing shape is ``(N, H, V)``: N rows of H features, V classes. The language-model heads are the size sweep (a
full run's, not a quick run's or the gate's): ``focalbench run --family linear --shape lm_64k``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from focalbench.arena.families.linear import accuracy
from focalbench.arena.families.linear.checks import CHECKS, witness_judge
from focalbench.arena.family import Family, Labels, Shape, Sweep, Workload, register_family
from focalbench.losses.linear.semantics import DEFAULTS, LinearArgs, validate

__all__ = ["CAPABILITIES", "FAMILY", "SHAPES", "linear_cross_entropy"]

CAPABILITIES: frozenset[str] = frozenset(
    {
        "any_shape",  # hidden states of any leading shape: (B, T, H)
        "double_backward",
        "compile",
        "chunked",  # memory beyond the inputs and gradients independent of the number of rows
    }
)

#: Language-model heads, ``(N, H, V)``: N tokens of H features, V classes.
SHAPES: tuple[Shape, ...] = (
    Shape(
        "head_8k",
        (512, 512, 8192),
        "a small classification head: 512 tokens, hidden 512, 8k classes (the quick "
        "run's and the gate's shape: a fraction of a second a call)",
    ),
    Shape(
        "lm_32k",
        (2048, 1024, 32768),
        "a small language model's head: 2048 tokens, hidden 1024, 32k vocabulary",
        sweep=True,
    ),
    Shape(
        "lm_64k",
        (8192, 2048, 65536),
        "a 1-2B language model's head: 8192 tokens, hidden 2048, 64k vocabulary (35 s a call on 2 CPU cores)",
        sweep=True,
    ),
)

#: (N, H, dtype, device) -> the head's weight of the timed inputs (the workload's call passes it as a keyword).
_WEIGHTS: dict[tuple, torch.Tensor] = {}


def _call_needs(args: LinearArgs, capabilities: frozenset[str]) -> list[str]:
    needs = {"any_shape"} if len(args.loss_shape) != 1 else set()
    return sorted(needs - capabilities)


def _inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0):
    """Hidden states ``randn / sqrt(H)`` (a row of unit norm, as a final normalization leaves them),
    the head's weight ``randn`` (logits about unit scale), uniform targets; the weight is kept for the calls (it
    requires grad: its gradient is timed too). A shape of two numbers ``(N, C)`` is a probe's: ``H = V = C``."""
    n, h, v = shape.shape if len(shape.shape) == 3 else (shape.shape[0], shape.shape[1], shape.shape[1])
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(n, h, generator=g) / h**0.5).to(device=device, dtype=dtype)
    weight = torch.randn(v, h, generator=g).to(device=device, dtype=dtype).requires_grad_(True)
    target = torch.randint(0, v, (n,), generator=g).to(device)
    _WEIGHTS.clear()  # one case's head at a time: the 64k head is 512 MiB
    _WEIGHTS[(n, h, dtype, str(device))] = weight
    return hidden, target


def _free_gradients() -> None:
    for weight in _WEIGHTS.values():
        weight.grad = None


def _weight(hidden: torch.Tensor) -> torch.Tensor:
    weight = _WEIGHTS[(*hidden.shape, hidden.dtype, str(hidden.device))]
    weight.grad = None  # each call computes the weight's gradient afresh (no accumulation timed)
    return weight


def linear_cross_entropy(hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The baseline: ``F.cross_entropy(F.linear(hidden, weight), target)``, what a language model's loss is."""
    return F.cross_entropy(F.linear(hidden, _weight(hidden)), target)


def _call(impl, hidden, target, parameters: Mapping[str, float]):
    return impl(hidden, target, weight=_weight(hidden), gamma=parameters["gamma"])


def _mutants():
    from focalbench.arena.families.linear.mutants import CATALOGUE  # imported when a score is asked for

    return CATALOGUE


FAMILY = register_family(Family(
    name="linear",
    description="fused linear focal loss: the softmax focal loss of hidden @ weight.T + bias, without the N x V "
    "logits",
    validate=validate,
    defaults=dict(DEFAULTS),
    capabilities=CAPABILITIES,
    call_needs=_call_needs,
    reference="linear_reference",
    gradient_penalty_reference="linear_unfused",
    recommended="linear_fused",
    product="focalbench:fused_linear_focal_loss",
    checks=lambda: CHECKS,
    workload=Workload(
        baseline="linear_cross_entropy",
        baseline_loss=linear_cross_entropy,
        inputs=_inputs,
        call=_call,
        needs=lambda shape: set(),
        target_bytes=lambda shape, dtype: shape.shape[0] * 8,
        shapes=SHAPES,
        floors=False,
        logits_elements=lambda shape: shape.shape[0] * shape.shape[-1],  # N x V (the unfused form holds them)
        reset=_free_gradients,
    ),
    sweep=Sweep(
        axis="logit scale",
        values=accuracy.SCALES,
        errors=accuracy.errors,
        description="each row's loss and hidden-state gradient against the mpmath oracle (exact logits h W^T + b of "
        "the inputs as given), by logit scale: a 6-row head of 7 classes (targets ahead, behind, seeded), "
        "gamma 0, 2, 5",
    ),
    labels=Labels(
        baseline="nn.Linear + F.cross_entropy",
        sweep_rows="tokens",
        accuracy_axis="logit scale (6 x 5 hidden states, 7 classes; gamma 0, 2, 5)",
    ),
    mutants=_mutants,
    order=5,
    parameters={"gamma": 2.0},
    class_axis=None,
    witness_judge=witness_judge,
))  # fmt: skip
