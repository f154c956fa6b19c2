"""Seeded inputs of the sigmoid family: every case is a frozen description that builds the same tensors from its seed.

Its cases implement the interface every generic check reads (:class:`focalbench.arena.core.SampleCase`); the suites
of its checks are built here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from focalbench.arena.core import DTYPE_NAMES, GAMMAS, BadInput, SampleCase, error_inputs, valid_call

__all__ = [
    "GAMMAS",
    "MAGNITUDES",
    "SigmoidCase",
    "accuracy_cases",
    "bad_call",
    "bad_inputs",
    "bce_cases",
    "differential_cases",
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
class SigmoidCase(SampleCase):
    """One reproducible input of the sigmoid family: logits of ``shape`` and ``dtype``, targets, loss arguments.

    ``target_dtype``: the target's dtype (default: the logits'); ``alpha_tensor``/``gamma_tensor``: pass alpha/gamma as
    a 0-dim float64 tensor (a module's buffer, a schedule's value) instead of a float.

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
    target_dtype: torch.dtype | None = None
    alpha_tensor: bool = False
    gamma_tensor: bool = False
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)) or "scalar", DTYPE_NAMES[self.dtype]]
        if self.target_dtype is not None:
            parts.append(f"target-{DTYPE_NAMES[self.target_dtype]}")
        parts += [f"g{self.gamma:g}" + ("-tensor" if self.gamma_tensor else "")]
        parts += [f"a{self.alpha:g}" + ("-tensor" if self.alpha_tensor else ""), self.reduction]
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
        """Capabilities (:data:`focalbench.arena.families.sigmoid.CAPABILITIES`) this case needs."""
        return {"any_shape"} if len(self.shape) < 2 else set()

    def kwargs(self) -> dict:
        alpha = torch.tensor(self.alpha, dtype=torch.float64) if self.alpha_tensor else self.alpha
        gamma = torch.tensor(self.gamma, dtype=torch.float64) if self.gamma_tensor else self.gamma
        return dict(alpha=alpha, gamma=gamma, reduction=self.reduction)

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
        target_dtype = self.dtype if self.target_dtype is None else self.target_dtype
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=target_dtype)


def _with_seeds(cases: list[SigmoidCase], first: int) -> list[SigmoidCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def random_cases() -> list[SigmoidCase]:
    """Every gamma x alpha (torchvision's 0.25, none, 0.5, and 1 / 0 where a class of elements weighs nothing) x
    reduction, detector and dense shapes, a 1-D and a 0-dim input, every dtype, strided logits, a few soft targets;
    alpha and gamma as 0-dim tensors, targets of another dtype, size-1 dims, half precision at large logits."""
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
    # the rest of the argument space: alpha and gamma as 0-dim tensors, a negative alpha other than -1, targets of
    # another dtype than the logits', size-1 dims and a 0-dim input under every reduction, half precision at large
    # logits (float16 past 1e3, whose sum overflows float16; bfloat16 beyond float16's range) and wide
    more = [
        SigmoidCase(shape=(16, 7), dtype=torch.float64, alpha=0.3, alpha_tensor=True),
        SigmoidCase(shape=(16, 7), gamma=0.5, gamma_tensor=True, reduction="sum"),
        SigmoidCase(shape=(16, 7), alpha=-0.5, reduction="sum"),
        SigmoidCase(shape=(16, 7), target_dtype=torch.float64, reduction="mean"),
        SigmoidCase(shape=(16, 7), dtype=torch.bfloat16, target_dtype=torch.float32, targets="soft"),
        SigmoidCase(shape=(1, 80)),
        SigmoidCase(shape=(16, 1), reduction="mean"),
        SigmoidCase(shape=(), reduction="sum"),
        SigmoidCase(shape=(16, 16), dtype=torch.float16, magnitude=1e3, reduction="mean"),
        SigmoidCase(shape=(4, 6), dtype=torch.float16, magnitude=3e4),
        SigmoidCase(shape=(8, 1000), dtype=torch.bfloat16, magnitude=1e5, reduction="sum", label="wide"),
    ]
    return _with_seeds(cases, 3000) + _with_seeds(more, 3050)


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
    :func:`focalbench.arena.accuracy.sigmoid_sweep` goes to 1e20 against the mpmath oracle), and float64 at 20 to 22
    (where ``F.softplus`` returns ``x`` itself, dropping ``exp(-x)``)."""
    cases = [c.with_(seed=c.seed + 100) for c in extreme_cases("none", (3.0, 17.0, 30.0, 100.0))]
    return cases + [SigmoidCase(shape=(4, 6), dtype=torch.float64, magnitude=20.0, seed=3750)]


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
    # float32 edge targets with float16 logits: 1e-30 and 1 - 1e-7 are not float16 numbers (the limit at an infinite
    # logit is +inf for both, 0 if they were rounded to 0 and 1)
    return _with_seeds(cases, 3700) + [
        base.with_(dtype=torch.float16, target_dtype=torch.float32, targets="edge", seed=3710)
    ]


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
    """No element: (0, 80) under every reduction, (0, 80, 4, 4), (0,) and (3, 0)."""
    cases = [SigmoidCase(shape=(0, 80), reduction=r) for r in ("none", "mean", "sum")]
    cases += [
        SigmoidCase(shape=(0, 80, 4, 4), reduction="mean", label="dense"),
        SigmoidCase(shape=(0,), reduction="sum"),
        SigmoidCase(shape=(0,), reduction="none"),
        SigmoidCase(shape=(3, 0), reduction="mean"),
    ]
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


def differential_cases(seed: int, count: int) -> list[SigmoidCase]:
    """``count`` random cases drawn from ``seed``, each with its own seed (its repr reproduces it).

    Shapes from a 0-dim and an empty input to detector rows and dense maps; every dtype, gamma (plus a random one),
    alpha (none, torchvision's, 0 and 1 where a class of elements weighs nothing, a random one) and reduction; hard,
    soft and edge targets at several positive rates; extreme magnitudes; +-inf logits; strided layouts.
    """
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        kind = rng.choice(("rows", "rows", "dense", "flat", "scalar", "empty"))
        shape = {
            "rows": (rng.choice((1, 2, 5, 16, 33)), rng.choice((1, 2, 3, 7, 80))),
            "dense": (rng.randint(1, 3), rng.choice((1, 3, 21)), rng.randint(1, 4), rng.randint(1, 4)),
            "flat": (rng.choice((1, 7, 33)),),
            "scalar": (),
            "empty": (0, rng.choice((1, 5))),
        }[kind]
        cases.append(
            SigmoidCase(
                shape=shape,
                dtype=rng.choice((torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16)),
                gamma=rng.choice((*GAMMAS, round(rng.uniform(0.0, 5.0), 3))),
                alpha=rng.choice((0.25, -1.0, 0.0, 1.0, round(rng.uniform(0.0, 1.0), 3))),
                reduction=rng.choice(("mean", "sum", "none")),
                targets=rng.choice(("hard", "hard", "soft", "edge")),
                positives=rng.choice((0.01, 0.3, 0.9)),
                layout=rng.choice(("contiguous", "contiguous", "non_contiguous")) if len(shape) >= 2 else "contiguous",
                magnitude=rng.choice((None, None, None, 3.0, 17.0, 30.0)),
                scale=rng.choice((1.0, 3.0)),
                infinite=rng.choice((0.0, 0.0, 0.1, 0.3)),
                seed=rng.randrange(2**31),
                label="random",
            )
        )
    return cases


def _target(device: str) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0]] * 4, device=device)


#: A valid call — logits (4, 3), one positive per row — with what a bad input changes.
bad_call = valid_call(_target)


#: name -> (argument named in the message, exception, the call on a device)
_BAD_INPUTS: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]] = {
    "logits-int": ("logits", TypeError, lambda d: bad_call(d, logits=torch.ones(4, 3, dtype=torch.long, device=d))),
    "logits-list": ("logits", TypeError, lambda d: bad_call(d, logits=[[0.0, 1.0, 2.0]] * 4)),
    "target-list": ("target", TypeError, lambda d: bad_call(d, target=[[1.0, 0.0, 0.0]] * 4)),
    "target-int": ("target", TypeError, lambda d: bad_call(d, target=torch.tensor([0, 1, 2, 1], device=d))),
    "target-bool": ("target", TypeError, lambda d: bad_call(d, target=_target(d).bool())),
    "target-shape": ("target", ValueError, lambda d: bad_call(d, target=_target(d)[:, :1])),
    "target-above-one": ("target", ValueError, lambda d: bad_call(d, target=_target(d) * 2)),
    "target-negative": ("target", ValueError, lambda d: bad_call(d, target=-_target(d))),
    "target-nan": ("target", ValueError, lambda d: bad_call(
        d, target=_target(d).masked_fill(_target(d) == 1, math.nan))),
    "alpha-above-one": ("alpha", ValueError, lambda d: bad_call(d, alpha=1.5)),
    "alpha-nan": ("alpha", ValueError, lambda d: bad_call(d, alpha=math.nan)),
    "alpha-str": ("alpha", TypeError, lambda d: bad_call(d, alpha="0.25")),
    "gamma-negative": ("gamma", ValueError, lambda d: bad_call(d, gamma=-0.5)),
    "gamma-nan": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.nan)),
    "gamma-inf": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.inf)),
    "target-transposed": ("target", ValueError, lambda d: bad_call(d, target=_target(d).t().contiguous())),
    "alpha-bool": ("alpha", TypeError, lambda d: bad_call(d, alpha=True)),
    "gamma-str": ("gamma", TypeError, lambda d: bad_call(d, gamma="2")),
    "gamma-bool": ("gamma", TypeError, lambda d: bad_call(d, gamma=True)),
    "gamma-1d-tensor": ("gamma", TypeError, lambda d: bad_call(d, gamma=torch.tensor([2.0]))),
    "reduction-unknown": ("reduction", ValueError, lambda d: bad_call(d, reduction="batchwise_mean")),
    "reduction-capitalized": ("reduction", ValueError, lambda d: bad_call(d, reduction="Mean")),
    "reduction-None": ("reduction", ValueError, lambda d: bad_call(d, reduction=None)),
    "target-device": ("target", ValueError, lambda d: bad_call(d, target=_target("cpu"))),
}  # fmt: skip
_NEEDS_CUDA = {"target-device"}  # a target on the CPU with logits on CUDA
_DEVICE_VALUES = {"target-above-one", "target-negative", "target-nan"}  # wrong by a tensor's values


def bad_inputs() -> list[BadInput]:
    """Every invalid call of the family, with the error it must raise."""
    return error_inputs(_BAD_INPUTS, needs_cuda=_NEEDS_CUDA, device_values=_DEVICE_VALUES)
