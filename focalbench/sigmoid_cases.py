"""Seeded inputs of the sigmoid family: every case is a frozen description that builds the same tensors from its seed.

The sigmoid family's counterpart of :mod:`focalbench.cases` (same interface: ``make``, ``kwargs``, ``needs``, ``id``,
``family``), so the generic checks of :mod:`focalbench.checks` take either; the suites of its checks are built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from focalbench.cases import _DTYPE_NAMES, GAMMAS, BadInput

__all__ = [
    "GAMMAS",
    "MAGNITUDES",
    "SigmoidBadInput",
    "SigmoidCase",
    "accuracy_cases",
    "bad_inputs",
    "bce_cases",
    "compile_cases",
    "create_graph_cases",
    "empty_cases",
    "extreme_cases",
    "gradcheck_cases",
    "identity_cases",
    "infinite_cases",
    "nan_cases",
    "random_cases",
    "soft_target_cases",
]

#: Logit magnitudes of the extreme cases: float32's 1 - p_t rounds to 0 past ~17 (torchvision's defect), exp(-|x|)
#: underflows float64 past ~745, and 1e30 is far beyond both.
MAGNITUDES = (3.0, 17.0, 30.0, 1e3, 1e30)



@dataclass(frozen=True)
class SigmoidCase:
    """One reproducible input of the sigmoid family: logits of ``shape`` and ``dtype``, targets, loss arguments.

    ``targets``: ``"hard"`` (0 or 1, a fraction ``positives`` of ones), ``"soft"`` (uniform in [0, 1]) or ``"edge"``
    (soft targets at the ends: 0, 1, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1 - 2^-24 in turn). ``magnitude``: every logit is
    ``+-magnitude (1 + u / 10)``, the sign agreeing with the (hard) target at even elements (confident, ``p_t -> 1``)
    and disagreeing at odd ones (hopeless, ``p_t -> 0``); ``magnitude="max"`` puts them at +-3/4 of the dtype's largest
    number. ``infinite``/``nan``: the fraction of elements whose logit is replaced by +-inf (its sign drawn) or NaN,
    after the rest is drawn (from their own generator, so the finite values stay those of the same case without them).
    """

    family: ClassVar[str] = "sigmoid"

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    gamma: float = 2.0
    alpha: float = 0.25
    reduction: str = "none"
    targets: str = "hard"  # hard | soft | edge
    positives: float = 0.3
    layout: str = "contiguous"  # contiguous | non_contiguous
    magnitude: float | str | None = None
    scale: float = 3.0  # standard deviation of random logits
    infinite: float = 0.0
    nan: float = 0.0
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)) or "scalar", _DTYPE_NAMES[self.dtype], f"g{self.gamma:g}"]
        parts += [f"a{self.alpha:g}", self.reduction]
        if self.targets != "hard":
            parts.append(self.targets)
        if self.layout != "contiguous":
            parts.append("strided")
        if self.magnitude is not None:
            parts.append(f"m{self.magnitude:g}" if isinstance(self.magnitude, float) else f"m{self.magnitude}")
        if self.infinite:
            parts.append(f"inf{self.infinite:g}")
        if self.nan:
            parts.append(f"nan{self.nan:g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        """Shape of the ``reduction="none"`` loss: the logits'."""
        return self.shape

    def needs(self) -> set[str]:
        """Capabilities (:data:`focalbench.registry.SIGMOID_CAPABILITIES`) this case needs."""
        return {"any_shape"} if len(self.shape) < 2 else set()

    def with_(self, **changes) -> SigmoidCase:
        return replace(self, **changes)

    def kwargs(self) -> dict:
        return dict(alpha=self.alpha, gamma=self.gamma, reduction=self.reduction)

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; the logits are a leaf that does not require grad."""
        g = torch.Generator().manual_seed(self.seed)
        # non-contiguous: drawn with the first two dims swapped, then swapped back (a strided view)
        swapped = self.layout == "non_contiguous" and len(self.shape) >= 2
        gen_shape = (self.shape[1], self.shape[0], *self.shape[2:]) if swapped else self.shape
        noise = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        draw = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        logits = torch.randn(gen_shape, generator=g, dtype=torch.float64) * self.scale
        if swapped:
            noise, draw, logits = noise.transpose(0, 1), draw.transpose(0, 1), logits.transpose(0, 1)
        if self.targets == "soft":
            target = draw
        elif self.targets == "edge":
            ends = torch.tensor([0.0, 1.0, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1 - 2.0**-24], dtype=torch.float64)
            target = ends[torch.arange(draw.numel()).reshape(draw.shape) % len(ends)]
        else:
            target = (draw < self.positives).double()
        if self.magnitude is not None:
            size = 0.75 * torch.finfo(self.dtype).max if self.magnitude == "max" else self.magnitude
            agree = torch.arange(target.numel()).reshape(target.shape) % 2 == 0
            sign = torch.where((target >= 0.5) == agree, 1.0, -1.0).to(torch.float64)
            logits = sign * size * (1 + noise / 10 if self.magnitude != "max" else 1.0)
        if self.infinite or self.nan:
            logits = logits.clone()
            special = torch.Generator().manual_seed(self.seed + 104729)
            u = torch.rand(logits.shape, generator=special, dtype=torch.float64)
            signs = torch.where(torch.rand(logits.shape, generator=special) < 0.5, -math.inf, math.inf)
            logits = torch.where(u < self.infinite, signs.double(), logits)
            logits = torch.where((u >= self.infinite) & (u < self.infinite + self.nan), math.nan, logits)
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=self.dtype)


def _with_seeds(cases: list[SigmoidCase], first: int) -> list[SigmoidCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def random_cases() -> list[SigmoidCase]:
    """Every gamma x alpha (torchvision's 0.25, none, 0.5, and 1 / 0 where a class of elements weighs nothing) x
    reduction, detector and dense shapes, a 1-D and a 0-dim input, every dtype, strided logits, a few soft targets."""
    base = SigmoidCase(shape=(16, 7))
    cases = [base.with_(gamma=g, alpha=(0.25, -1.0)[i % 2]) for i, g in enumerate(GAMMAS)]
    cases += [base.with_(reduction=r, alpha=a) for r, a in (("mean", 0.25), ("sum", 0.5), ("sum", 1.0), ("mean", 0.0))]
    cases += [
        SigmoidCase(shape=(2, 2)),
        SigmoidCase(shape=(97, 13), gamma=0.5, reduction="sum"),
        SigmoidCase(shape=(4, 80, 5, 7), positives=0.05, reduction="mean", label="dense"),
        SigmoidCase(shape=(3, 21, 5, 7), label="dense"),
        SigmoidCase(shape=(33,), gamma=1.0),
        SigmoidCase(shape=(), reduction="none"),
        SigmoidCase(shape=(16, 7), layout="non_contiguous"),
        SigmoidCase(shape=(4, 5, 3, 2), layout="non_contiguous", reduction="sum", label="dense"),
        SigmoidCase(shape=(16, 7), targets="soft", gamma=0.5),
        SigmoidCase(shape=(16, 7), targets="soft", reduction="mean", alpha=-1.0),
    ]
    cases += [
        SigmoidCase(shape=(16, 7), dtype=dt, gamma=g, reduction=r)
        for dt in (torch.float16, torch.bfloat16, torch.float64)
        for g, r in ((0.5, "none"), (2.0, "mean"))
    ]
    return _with_seeds(cases, 3000)


def bce_cases() -> list[SigmoidCase]:
    """gamma = 0, no weighting: BCE's inputs, large finite logits included (where BCE itself is defined)."""
    base = SigmoidCase(shape=(16, 7), gamma=0.0, alpha=-1.0)
    cases = [
        base,
        base.with_(reduction="mean"),
        base.with_(reduction="sum", targets="soft"),
        SigmoidCase(shape=(3, 21, 5, 7), gamma=0.0, alpha=-1.0, reduction="mean", label="dense"),
        base.with_(scale=30.0),
        base.with_(dtype=torch.float64, targets="edge"),
        base.with_(magnitude=1e3, reduction="sum"),
    ]
    return _with_seeds(cases, 3100)


def identity_cases() -> list[SigmoidCase]:
    """Moderate logits for FL / BCE = alpha_t (1 - p_t)^gamma."""
    cases = [
        SigmoidCase(shape=(32, 7), dtype=(torch.float32, torch.float64)[i % 2], gamma=g, alpha=a, scale=2.0)
        for i, (g, a) in enumerate((g, a) for g in (0.5, 2.0, 5.0) for a in (0.25, -1.0))
    ]
    return _with_seeds(cases, 3200)


def gradcheck_cases() -> list[SigmoidCase]:
    """Few elements (gradgradcheck's cost grows with their square): every gamma kind, dense, soft targets."""
    cases = [
        SigmoidCase(shape=(2, 3), dtype=torch.float64, gamma=0.5, scale=1.5),
        SigmoidCase(shape=(1, 2, 2, 2), dtype=torch.float64, gamma=2.0, reduction="sum", label="dense"),
        SigmoidCase(shape=(2, 3), dtype=torch.float64, gamma=0.0, targets="soft", reduction="mean", alpha=-1.0),
        SigmoidCase(shape=(2, 3), dtype=torch.float64, gamma=1.5, targets="soft", alpha=0.75),
    ]
    return _with_seeds(cases, 3300)


def create_graph_cases() -> list[SigmoidCase]:
    """Small inputs for double backward (gradient penalties)."""
    cases = [
        SigmoidCase(shape=(6, 5), dtype=torch.float64, gamma=2.0, scale=1.5),
        SigmoidCase(shape=(6, 5), dtype=torch.float64, gamma=0.5, reduction="sum", targets="soft"),
        SigmoidCase(shape=(6, 5), dtype=torch.float32, gamma=2.0, reduction="mean", alpha=-1.0, scale=1.5),
    ]
    return _with_seeds(cases, 3400)


def compile_cases() -> list[SigmoidCase]:
    """Inputs for ``torch.compile(fullgraph=True)``: the argument forms a traced call carries to the kernel."""
    cases = [
        SigmoidCase(shape=(6, 5), reduction="sum"),
        SigmoidCase(shape=(2, 4, 3, 2), gamma=0.5, alpha=-1.0, targets="soft", label="dense"),
        SigmoidCase(shape=(6, 5), dtype=torch.float64, gamma=1.5, reduction="mean"),
    ]
    return _with_seeds(cases, 3500)


def extreme_cases(
    reduction: str = "sum", magnitudes=(*MAGNITUDES[1:], "max"), gammas=(0.0, 0.5, 2.0, 5.0)
) -> list[SigmoidCase]:
    """Confident and hopeless elements at every magnitude (``"max"``: +-3/4 of the dtype's largest number, per element:
    a sum of such losses overflows), gammas 0, 0.5 (0 < gamma < 1: pow's backward is infinite at 0), 2 and 5, float32
    and float64."""
    cases = [
        SigmoidCase(shape=(4, 6), dtype=dt, gamma=g, magnitude=m, reduction="none" if m == "max" else reduction)
        for dt in (torch.float32, torch.float64)
        for m in magnitudes
        for g in gammas
    ]
    return _with_seeds(cases, 3600)


def accuracy_cases() -> list[SigmoidCase]:
    """``reduction="none"`` elements for the relative-error bound: magnitudes up to 100 (the sweep of
    :func:`focalbench.accuracy.sigmoid_sweep` goes to 1e20 against the mpmath oracle)."""
    return [c.with_(seed=c.seed + 100) for c in extreme_cases("none", (3.0, 17.0, 30.0, 100.0))]


def infinite_cases() -> list[SigmoidCase]:
    """+-inf logits among finite ones: hard and soft targets, every reduction, alpha 1 (negatives weigh 0)."""
    base = SigmoidCase(shape=(16, 7), infinite=0.3)
    cases = [
        base,
        base.with_(gamma=0.0),
        base.with_(gamma=0.5, reduction="sum"),
        base.with_(alpha=-1.0, reduction="mean"),
        base.with_(alpha=1.0),
        base.with_(targets="soft"),
        base.with_(targets="edge", gamma=0.5),
        base.with_(dtype=torch.float64, gamma=5.0),
        base.with_(dtype=torch.float16),
        SigmoidCase(shape=(2, 5, 3, 4), infinite=0.5, reduction="sum", label="dense"),
    ]
    return _with_seeds(cases, 3700)


def nan_cases() -> list[SigmoidCase]:
    """NaN logits among finite (and infinite) ones."""
    base = SigmoidCase(shape=(16, 7), nan=0.2)
    cases = [
        base,
        base.with_(reduction="mean"),
        base.with_(alpha=1.0, gamma=0.0),
        base.with_(infinite=0.2, gamma=0.5),
        base.with_(dtype=torch.float64, reduction="sum"),
    ]
    return _with_seeds(cases, 3800)


def empty_cases() -> list[SigmoidCase]:
    """No element: (0, 80), (0, 80, 4, 4) and (0,), every reduction."""
    cases = [
        SigmoidCase(shape=(0, 80), reduction=r) for r in ("none", "mean", "sum")
    ] + [SigmoidCase(shape=(0, 80, 4, 4), reduction="mean", label="dense"), SigmoidCase(shape=(0,), reduction="sum")]
    return _with_seeds(cases, 3900)


def soft_target_cases() -> list[SigmoidCase]:
    """Soft targets: uniform, and at the ends of [0, 1] (1e-30, 1e-7, 1 - 1e-7, 1 - 2^-24), large logits too."""
    base = SigmoidCase(shape=(16, 7), targets="soft")
    cases = [
        base,
        base.with_(gamma=0.5, alpha=-1.0),
        base.with_(gamma=5.0, reduction="sum"),
        base.with_(targets="edge"),
        base.with_(targets="edge", scale=20.0, gamma=0.5),
        base.with_(targets="edge", dtype=torch.float64, gamma=2.0),
        base.with_(dtype=torch.float64, magnitude=30.0, gamma=1.0),
        SigmoidCase(shape=(3, 21, 5, 7), targets="soft", reduction="mean", label="dense"),
    ]
    return _with_seeds(cases, 4000)


@dataclass(frozen=True)
class SigmoidBadInput(BadInput):
    """An invalid call of the sigmoid family (the same record as the softmax family's, its own arguments)."""

    def call_args(self, device: str) -> tuple[object, object, dict]:
        logits = torch.randn(4, 3, device=device)
        target = torch.tensor([[1.0, 0.0, 0.0]] * 4, device=device)
        kwargs: dict = {}
        changes = {
            "logits-int": lambda: {"logits": torch.ones(4, 3, dtype=torch.long, device=device)},
            "logits-list": lambda: {"logits": [[0.0, 1.0, 2.0]] * 4},
            "target-list": lambda: {"target": [[1.0, 0.0, 0.0]] * 4},
            "target-int": lambda: {"target": torch.tensor([0, 1, 2, 1], device=device)},
            "target-bool": lambda: {"target": target.bool()},
            "target-shape": lambda: {"target": target[:, :1]},
            "target-above-one": lambda: {"target": target * 2},
            "target-negative": lambda: {"target": -target},
            "target-nan": lambda: {"target": target.masked_fill(target == 1, math.nan)},
            "target-device": lambda: {"target": target.to("cpu")},
            "alpha-above-one": lambda: {"alpha": 1.5},
            "alpha-nan": lambda: {"alpha": math.nan},
            "alpha-str": lambda: {"alpha": "0.25"},
            "gamma-negative": lambda: {"gamma": -0.5},
            "gamma-nan": lambda: {"gamma": math.nan},
            "gamma-inf": lambda: {"gamma": math.inf},
            "reduction-unknown": lambda: {"reduction": "batchwise_mean"},
        }
        if self.name not in changes:
            raise ValueError(f"unknown bad input {self.name!r}")
        change = changes[self.name]()
        logits, target = change.pop("logits", logits), change.pop("target", target)
        kwargs.update(change)
        return logits, target, kwargs


def bad_inputs() -> list[SigmoidBadInput]:
    return [
        SigmoidBadInput("logits-int", "logits", TypeError),
        SigmoidBadInput("logits-list", "logits", TypeError),
        SigmoidBadInput("target-list", "target", TypeError),
        SigmoidBadInput("target-int", "target", TypeError),
        SigmoidBadInput("target-bool", "target", TypeError),
        SigmoidBadInput("target-shape", "target", ValueError),
        SigmoidBadInput("target-above-one", "target", ValueError),
        SigmoidBadInput("target-negative", "target", ValueError),
        SigmoidBadInput("target-nan", "target", ValueError),
        SigmoidBadInput("alpha-above-one", "alpha", ValueError),
        SigmoidBadInput("alpha-nan", "alpha", ValueError),
        SigmoidBadInput("alpha-str", "alpha", TypeError),
        SigmoidBadInput("gamma-negative", "gamma", ValueError),
        SigmoidBadInput("gamma-nan", "gamma", ValueError),
        SigmoidBadInput("gamma-inf", "gamma", ValueError),
        SigmoidBadInput("reduction-unknown", "reduction", ValueError),
        SigmoidBadInput("target-device", "target", ValueError, device="cuda"),
    ]
