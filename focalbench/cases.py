"""Seeded input generators: every case is a frozen description that builds the same tensors from its seed.

A :class:`Case` says what it needs from an implementation (:meth:`Case.needs`), so "not applicable" is decided from
declared capabilities, never by skipping silently. Suites of cases for each check are built here too, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

__all__ = ["BadInput", "Case", "bad_inputs", "extreme_cases", "random_cases"]

GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
ALPHAS = ("none", "scalar", "per_class")
REDUCTIONS = ("mean", "sum", "none")

_DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}


@dataclass(frozen=True)
class Case:
    """One reproducible input: logits of ``shape`` and ``dtype``, targets, and the loss arguments.

    ``margin``/``shift`` make extreme rows: every row is ``shift + noise`` with one class raised by ``margin``;
    even rows target that class (confident, ``p_t -> 1``), odd rows another one (hopeless, ``p_t -> 0``).
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    gamma: float = 2.0
    alpha_kind: str = "none"  # none | scalar | per_class
    reduction: str = "mean"
    ignore_fraction: float = 0.0
    ignore_index: int = -100
    layout: str = "contiguous"  # contiguous | non_contiguous
    margin: float | None = None
    shift: float = 0.0
    scale: float = 3.0  # standard deviation of random logits
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)), _DTYPE_NAMES[self.dtype], f"g{self.gamma:g}"]
        if self.alpha_kind != "none":
            parts.append(f"a-{self.alpha_kind}")
        parts.append(self.reduction)
        if self.ignore_fraction:
            parts.append(f"ign{self.ignore_fraction:g}")
        if self.layout != "contiguous":
            parts.append("strided")
        if self.margin is not None:
            parts.append(f"m{self.margin:g}")
        if self.shift:
            parts.append(f"s{self.shift:+g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def num_classes(self) -> int:
        return self.shape[1]

    def needs(self) -> set[str]:
        """Capabilities (see :data:`focalbench.registry.CAPABILITIES`) an implementation must have for this case."""
        needs = set()
        if len(self.shape) > 2:
            needs.add("dense")
        if self.ignore_fraction:
            needs.add("ignore_index")
        if self.reduction == "none":
            needs.add("reduction:none")
        if self.alpha_kind != "none":
            needs.add(f"alpha:{self.alpha_kind}")
        return needs

    def with_(self, **changes) -> Case:
        return replace(self, **changes)

    def alpha(self):
        """The ``alpha`` argument: None, 0.25, or C seeded per-class weights in [0.1, 2)."""
        if self.alpha_kind == "none":
            return None
        if self.alpha_kind == "scalar":
            return 0.25
        g = torch.Generator().manual_seed(self.seed + 7919)
        return (0.1 + 1.9 * torch.rand(self.num_classes, generator=g, dtype=torch.float64)).tolist()

    def kwargs(self) -> dict:
        return dict(gamma=self.gamma, alpha=self.alpha(), reduction=self.reduction, ignore_index=self.ignore_index)

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; logits are a leaf that does not require grad."""
        g = torch.Generator().manual_seed(self.seed)
        n, c, *spatial = self.shape
        # non-contiguous: generate with the class dim first, then move it into place (a strided view)
        gen_shape = (c, n, *spatial) if self.layout == "non_contiguous" else self.shape
        noise = torch.rand(gen_shape, generator=g, dtype=torch.float64) - 0.5
        if self.layout == "non_contiguous":
            noise = noise.movedim(0, 1)
        target = torch.randint(0, c, (n, *spatial), generator=g)
        if self.margin is None:
            logits = torch.randn(gen_shape, generator=g, dtype=torch.float64)
            if self.layout == "non_contiguous":
                logits = logits.movedim(0, 1)
            logits = logits * self.scale + self.shift
        else:
            # one raised class per row; even rows target it, odd rows target the next class
            rows = torch.arange(n).view(n, *([1] * len(spatial)))
            raised = (rows + torch.zeros(target.shape, dtype=torch.long)) % c
            logits = noise + self.shift
            logits.scatter_add_(
                1, raised.unsqueeze(1), torch.full_like(raised.unsqueeze(1), self.margin, dtype=logits.dtype)
            )
            target = torch.where(rows % 2 == 0, raised, (raised + 1) % c)
        if self.ignore_fraction:
            drop = torch.rand(target.shape, generator=g) < self.ignore_fraction
            target = torch.where(drop, torch.full_like(target, self.ignore_index), target)
        return logits.to(device=device, dtype=self.dtype), target.to(device)


def _merge(*groups: list[Case]) -> list[Case]:
    seen, out = set(), []
    for case in (c for group in groups for c in group):
        if case.id not in seen:
            seen.add(case.id)
            out.append(case)
    return out


def random_cases() -> list[Case]:
    """Seeded random cases: every gamma x alpha form, every reduction, odd and dense shapes, dtypes, strides."""
    base = Case(shape=(16, 7), ignore_fraction=0.2, seed=1)
    by_gamma_alpha = [
        base.with_(gamma=g, alpha_kind=a, seed=10 + i)
        for i, (g, a) in enumerate((g, a) for g in GAMMAS for a in ALPHAS)
    ]
    by_reduction = [
        base.with_(reduction=r, alpha_kind=a, seed=40 + i)
        for i, (r, a) in enumerate((r, a) for r in REDUCTIONS for a in ALPHAS)
    ]
    plain = Case(shape=(16, 7), seed=2)  # no ignore_index: what the seed can take
    shapes = [
        plain,
        plain.with_(gamma=0.5, seed=3),
        plain.with_(reduction="sum", alpha_kind="scalar", seed=4),
        plain.with_(alpha_kind="per_class", seed=96),  # the seed's 1-D alpha broadcast shows here
        plain.with_(reduction="sum", alpha_kind="per_class", seed=97),
        Case(shape=(2, 2), seed=5),
        Case(shape=(13, 2), gamma=0.25, seed=6),
        Case(shape=(31, 97), ignore_fraction=0.1, reduction="none", seed=7),
        Case(shape=(8, 1000), gamma=1.0, seed=8),
        Case(shape=(4, 21, 5, 7), ignore_fraction=0.2, alpha_kind="per_class", seed=9, label="seg"),
        Case(shape=(3, 21, 5, 7), reduction="none", seed=90, label="seg"),
        Case(shape=(2, 5, 3, 4, 5), gamma=0.5, reduction="sum", seed=91, label="vol"),
        Case(shape=(11, 3, 1), seed=92),
        Case(shape=(16, 7), ignore_fraction=1.0, seed=93, label="all-ignored"),
        Case(shape=(16, 7), ignore_fraction=1.0, reduction="sum", seed=94, label="all-ignored"),
        Case(shape=(16, 7), ignore_fraction=0.2, ignore_index=255, seed=95),
    ]
    strided = [
        Case(shape=(16, 7), layout="non_contiguous", seed=100),
        Case(shape=(4, 21, 5, 7), layout="non_contiguous", ignore_fraction=0.1, seed=101, label="seg"),
    ]
    dtypes = [
        Case(shape=(16, 7), dtype=dt, gamma=g, seed=110 + i)
        for i, (dt, g) in enumerate(
            (dt, g) for dt in (torch.float16, torch.bfloat16, torch.float64) for g in (0.5, 2.0)
        )
    ] + [
        Case(shape=(2, 5, 3, 4), dtype=dt, ignore_fraction=0.2, reduction="none", seed=120 + i, label="seg")
        for i, dt in enumerate((torch.float16, torch.bfloat16, torch.float64))
    ]
    return _merge(by_gamma_alpha, by_reduction, shapes, strided, dtypes)


#: Logit gaps and common shifts of the stability and accuracy checks. 1e3 makes softmax underflow in float32 and
#: float64 alike; 30 saturates p_t to 1 in float32 but not in float64.
MARGINS = (3.0, 30.0, 1e3, 1e30)
SHIFTS = (0.0, 1e3, -3e3)


def extreme_cases(reduction: str = "sum", margins=MARGINS, gammas=GAMMAS) -> list[Case]:
    """Rows with logit gaps up to 1e30 and shifted logits, for every gamma, in float32 and float64."""
    cases = []
    for dtype in (torch.float32, torch.float64):
        for margin in margins:
            for shift in SHIFTS:
                for gamma in gammas:
                    seed = 1000 + len(cases)
                    cases.append(
                        Case(
                            shape=(8, 5),
                            dtype=dtype,
                            gamma=gamma,
                            reduction=reduction,
                            margin=margin,
                            shift=shift,
                            seed=seed,
                        )
                    )
    return cases


@dataclass(frozen=True)
class BadInput:
    """An invalid call: what to pass and which exception (with the argument's name in its message) to expect."""

    name: str
    argument: str
    error: type[Exception]
    device: str = "cpu"  # "cuda": needs a CUDA device

    def call_args(self, device: str) -> tuple[object, object, dict]:
        logits = torch.randn(4, 3, device=device)
        target = torch.tensor([0, 1, 2, 1], device=device)
        kwargs: dict = {}
        if self.name == "logits-int":
            logits = torch.ones(4, 3, dtype=torch.long, device=device)
        elif self.name == "logits-list":
            logits = [[0.0, 1.0, 2.0]] * 4
        elif self.name == "logits-1d":
            logits = torch.randn(4, device=device)
        elif self.name == "target-float":
            target = target.float()
        elif self.name == "target-shape":
            target = torch.tensor([0, 1, 2, 1, 0], device=device)
        elif self.name == "target-dense-shape":
            logits = torch.randn(2, 3, 4, 5, device=device)
            target = torch.zeros(2, 5, 4, dtype=torch.long, device=device)
        elif self.name == "target-too-large":
            target = torch.tensor([0, 1, 3, 1], device=device)
        elif self.name == "target-negative":
            target = torch.tensor([0, -1, 2, 1], device=device)
        elif self.name == "gamma-negative":
            kwargs["gamma"] = -0.5
        elif self.name == "gamma-nan":
            kwargs["gamma"] = math.nan
        elif self.name == "reduction-unknown":
            kwargs["reduction"] = "average"
        elif self.name == "alpha-negative":
            kwargs["alpha"] = [0.5, -0.1, 1.0]
        elif self.name == "alpha-length":
            kwargs["alpha"] = [0.25, 0.75]
        elif self.name == "alpha-shape":
            kwargs["alpha"] = torch.ones(3, 1)  # the seed's (C, 1) column
        elif self.name == "alpha-negative-scalar":
            kwargs["alpha"] = -0.25
        elif self.name == "target-device":
            target = target.to("cpu")
        else:
            raise ValueError(f"unknown bad input {self.name!r}")
        return logits, target, kwargs


def bad_inputs() -> list[BadInput]:
    return [
        BadInput("logits-int", "logits", TypeError),
        BadInput("logits-list", "logits", TypeError),
        BadInput("logits-1d", "logits", ValueError),
        BadInput("target-float", "target", TypeError),
        BadInput("target-shape", "target", ValueError),
        BadInput("target-dense-shape", "target", ValueError),
        BadInput("target-too-large", "target", ValueError),
        BadInput("target-negative", "target", ValueError),
        BadInput("gamma-negative", "gamma", ValueError),
        BadInput("gamma-nan", "gamma", ValueError),
        BadInput("reduction-unknown", "reduction", ValueError),
        BadInput("alpha-negative", "alpha", ValueError),
        BadInput("alpha-negative-scalar", "alpha", ValueError),
        BadInput("alpha-length", "alpha", ValueError),
        BadInput("alpha-shape", "alpha", ValueError),
        BadInput("target-device", "target", ValueError, device="cuda"),
    ]
