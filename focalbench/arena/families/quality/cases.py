"""Seeded inputs of the quality family (:mod:`focalbench.losses.quality.semantics`): every case is a frozen description
that builds the same tensors from its seed; the suites of its checks are built here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from focalbench.arena.core import DTYPE_NAMES, BadInput, SampleCase, error_inputs, valid_call

__all__ = [
    "BETAS",
    "SATURATED",
    "QualityCase",
    "accuracy_cases",
    "bad_call",
    "bad_inputs",
    "bce_cases",
    "compile_cases",
    "create_graph_cases",
    "empty_cases",
    "equal_cases",
    "gradcheck_cases",
    "half_cases",
    "hard_target_cases",
    "nan_cases",
    "random_cases",
    "saturated_cases",
    "soft_target_cases",
]

#: The betas the cases cross: 0 (BCE), below 1 (|y - s|^(beta - 1) singular at s = y), 1, 2 (the paper's), 5.
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
#: Saturated logit magnitudes: exp(-|x|) underflows float32 past ~104 and float64 past ~745.
SATURATED = (1e4, 1e10, 1e20)
#: Soft targets at the ends of [0, 1] (float32 numbers: 1 - 2^-24 is the largest below 1).
EDGE_TARGETS = (0.0, 1.0, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1 - 2.0**-24)


@dataclass(frozen=True)
class QualityCase(SampleCase):
    """One reproducible input of the quality family: logits of ``shape`` and ``dtype``, targets, loss arguments.

    ``targets``: ``"iou"`` (a detector's: a fraction ``positives`` of elements hold an IoU-like score in (0.05, 1],
    the rest 0), ``"soft"`` (uniform in [0, 1]), ``"hard"`` (0 or 1) or ``"edge"`` (:data:`EDGE_TARGETS` in turn),
    ``"equal"`` (elements where ``sigmoid(x) = y`` exactly in float64: ``x = 0, y = 0.5``, and ``x = +-1e4`` with
    the target it saturates to, between ordinary elements). ``magnitude``: every logit is ``+-magnitude (1 + u / 10)``,
    agreeing with the target (``y >= 0.5``) at even elements, disagreeing at odd ones. ``nan``: the fraction of
    logits replaced by NaN (from their own generator). ``beta_tensor``: beta passed as a 0-dim float64 tensor.
    """

    family: ClassVar[str] = "quality"

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    beta: float = 2.0
    reduction: str = "mean"
    targets: str = "iou"  # iou | soft | hard | edge | equal
    positives: float = 0.3
    layout: str = "contiguous"  # contiguous | non_contiguous
    magnitude: float | None = None
    scale: float = 3.0
    nan: float = 0.0
    target_dtype: torch.dtype | None = None
    beta_tensor: bool = False
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)) or "scalar", DTYPE_NAMES[self.dtype]]
        if self.target_dtype is not None:
            parts.append(f"target-{DTYPE_NAMES[self.target_dtype]}")
        parts += [f"b{self.beta:g}" + ("-tensor" if self.beta_tensor else ""), self.reduction, self.targets]
        if self.layout != "contiguous":
            parts.append("strided")
        if self.magnitude is not None:
            parts.append(f"m{self.magnitude:g}")
        if self.nan:
            parts.append(f"nan{self.nan:g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        return self.shape

    def needs(self) -> set[str]:
        """Capabilities (:data:`focalbench.arena.families.quality.CAPABILITIES`) this case needs."""
        needs = {"any_shape"} if len(self.shape) < 2 else set()
        return needs | ({"elementwise_none"} if self.reduction == "none" else set())

    def kwargs(self) -> dict:
        beta = torch.tensor(self.beta, dtype=torch.float64) if self.beta_tensor else self.beta
        return {"beta": beta, "reduction": self.reduction}

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; the logits are a leaf that does not require grad."""
        g = torch.Generator().manual_seed(self.seed)
        swapped = self.layout == "non_contiguous" and len(self.shape) >= 2
        gen_shape = (self.shape[1], self.shape[0], *self.shape[2:]) if swapped else self.shape
        noise = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        draw = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        score = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        logits = torch.randn(gen_shape, generator=g, dtype=torch.float64) * self.scale
        if swapped:
            noise, draw, score, logits = (v.transpose(0, 1) for v in (noise, draw, score, logits))
        index = torch.arange(draw.numel()).reshape(draw.shape)
        if self.targets == "iou":
            target = torch.where(draw < self.positives, 1 - 0.95 * score, 0.0)
        elif self.targets == "soft":
            target = draw
        elif self.targets == "hard":
            target = (draw < self.positives).double()
        elif self.targets == "edge":
            target = torch.tensor(EDGE_TARGETS, dtype=torch.float64)[index % len(EDGE_TARGETS)]
        else:  # "equal": every third element has sigmoid(x) = y exactly, the others are ordinary soft ones
            kind = index % 6
            logits = torch.where(kind == 0, 0.0, torch.where(kind == 2, 1e4, torch.where(kind == 4, -1e4, logits)))
            target = torch.where(kind == 0, 0.5, torch.where(kind == 2, 1.0, torch.where(kind == 4, 0.0, draw)))
        if self.magnitude is not None:
            agree = index % 2 == 0
            sign = torch.where((target >= 0.5) == agree, 1.0, -1.0).to(torch.float64)
            logits = sign * self.magnitude * (1 + noise / 10)
        if self.nan:
            special = torch.Generator().manual_seed(self.seed + 104729)
            u = torch.rand(logits.shape, generator=special, dtype=torch.float64)
            logits = torch.where(u < self.nan, math.nan, logits)
        target_dtype = self.dtype if self.target_dtype is None else self.target_dtype
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=target_dtype)


def _with_seeds(cases: list[QualityCase], first: int) -> list[QualityCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def random_cases() -> list[QualityCase]:
    """Every beta x reduction on a detector's rows, IoU-like, soft and hard targets, a dense map, a 1-D and a 0-dim
    input, every dtype, strided logits, beta as a 0-dim tensor, targets of another dtype, size-1 dims."""
    base = QualityCase(shape=(16, 7))
    cases = [base.with_(beta=b, reduction=("none", "sum", "mean")[i % 3]) for i, b in enumerate(BETAS)]
    cases += [
        base.with_(reduction="none"),
        base.with_(reduction="sum", targets="soft", beta=1.5),
        base.with_(reduction="mean", targets="hard"),
        QualityCase(shape=(97, 13), beta=0.5, reduction="sum", positives=0.05),
        QualityCase(shape=(4, 80, 5, 7), positives=0.01, reduction="mean", label="dense"),
        QualityCase(shape=(3, 21, 5, 7), reduction="none", targets="soft", label="dense"),
        QualityCase(shape=(33,), beta=1.0, reduction="none"),
        QualityCase(shape=(), reduction="none"),
        QualityCase(shape=(), reduction="sum", targets="soft"),
        QualityCase(shape=(16, 7), layout="non_contiguous", reduction="none"),
        QualityCase(shape=(4, 5, 3, 2), layout="non_contiguous", reduction="sum", label="dense"),
        QualityCase(shape=(16, 7), dtype=torch.float64, beta=0.5, reduction="none", targets="soft"),
        QualityCase(shape=(16, 7), dtype=torch.float64, beta=0.3, beta_tensor=True, reduction="sum"),
        QualityCase(shape=(16, 7), beta=0.5, beta_tensor=True, reduction="mean"),
        QualityCase(shape=(16, 7), target_dtype=torch.float64, reduction="mean", targets="soft"),
        QualityCase(shape=(1, 80), reduction="none"),
        QualityCase(shape=(16, 1), reduction="mean"),
    ]
    return _with_seeds(cases, 5000)


def bce_cases() -> list[QualityCase]:
    """beta = 0: binary cross-entropy with the same soft targets, large finite logits included."""
    base = QualityCase(shape=(16, 7), beta=0.0)
    cases = [
        base,
        base.with_(reduction="none", targets="soft"),
        base.with_(reduction="sum", targets="edge"),
        base.with_(scale=30.0, reduction="none"),
        base.with_(dtype=torch.float64, targets="soft", reduction="none"),
        base.with_(magnitude=1e3, reduction="sum"),
        base.with_(targets="equal", reduction="none"),
        QualityCase(shape=(3, 21, 5, 7), beta=0.0, reduction="mean", label="dense"),
    ]
    return _with_seeds(cases, 5100)


def hard_target_cases() -> list[QualityCase]:
    """Targets in {0, 1}: the sigmoid focal loss without alpha, gamma = beta; large logits included."""
    cases = [
        QualityCase(shape=(32, 7), dtype=(torch.float32, torch.float64)[i % 2], beta=b, targets="hard",
                    reduction=("none", "sum")[i % 2], scale=s)
        for i, (b, s) in enumerate((b, s) for b in (0.5, 1.0, 2.0, 5.0) for s in (2.0, 20.0))
    ]  # fmt: skip
    return _with_seeds(cases, 5200)


def equal_cases() -> list[QualityCase]:
    """Elements where ``sigmoid(x) = y`` exactly (loss 0) among ordinary ones, every kind of beta."""
    cases = [QualityCase(shape=(6, 7), dtype=dt, beta=b, targets="equal", reduction="none")
             for dt in (torch.float32, torch.float64) for b in BETAS]  # fmt: skip
    cases += [QualityCase(shape=(6, 7), beta=0.5, targets="equal", reduction="sum")]
    return _with_seeds(cases, 5300)


def gradcheck_cases() -> list[QualityCase]:
    """Few float64 elements: soft, IoU and hard targets, every kind of beta (no element at ``s = y``)."""
    cases = [
        QualityCase(shape=(2, 3), dtype=torch.float64, beta=0.5, targets="soft", scale=1.5, reduction="none"),
        QualityCase(shape=(2, 3), dtype=torch.float64, beta=2.0, targets="iou", reduction="sum"),
        QualityCase(shape=(2, 3), dtype=torch.float64, beta=0.0, targets="soft", reduction="mean"),
        QualityCase(shape=(2, 3), dtype=torch.float64, beta=1.5, targets="hard", reduction="none"),
        QualityCase(shape=(1, 2, 2, 2), dtype=torch.float64, beta=5.0, targets="soft", reduction="sum", label="dense"),
    ]
    return _with_seeds(cases, 5400)


def create_graph_cases() -> list[QualityCase]:
    """Small inputs for double backward (gradient penalties), compared with quality_autograd (beta >= 1: its own
    second derivative is finite everywhere there)."""
    cases = [
        QualityCase(shape=(6, 5), dtype=torch.float64, beta=2.0, scale=1.5, reduction="none"),
        QualityCase(shape=(6, 5), dtype=torch.float64, beta=1.5, reduction="sum", targets="soft"),
        QualityCase(shape=(6, 5), dtype=torch.float32, beta=2.0, reduction="mean", targets="soft", scale=1.5),
    ]
    return _with_seeds(cases, 5500)


def compile_cases() -> list[QualityCase]:
    """Inputs for ``torch.compile(fullgraph=True)``."""
    cases = [
        QualityCase(shape=(6, 5), reduction="sum"),
        QualityCase(shape=(2, 4, 3, 2), beta=0.5, targets="soft", reduction="none", label="dense"),
        QualityCase(shape=(6, 5), dtype=torch.float64, beta=1.5, reduction="mean", beta_tensor=True),
    ]
    return _with_seeds(cases, 5600)


def saturated_cases(reduction: str = "sum", magnitudes=SATURATED, betas=(0.0, 0.5, 2.0, 5.0)) -> list[QualityCase]:
    """Confident and hopeless elements of both signs at saturated logits, IoU, soft and hard targets, float32 and
    float64."""
    cases = [
        QualityCase(shape=(4, 6), dtype=dt, beta=b, magnitude=m, reduction=reduction, targets=t)
        for dt in (torch.float32, torch.float64)
        for m in magnitudes
        for b, t in zip(betas, ("hard", "iou", "edge", "soft"), strict=False)
    ]
    return _with_seeds(cases, 5700)


def accuracy_cases() -> list[QualityCase]:
    """``reduction="none"`` elements for the relative-error bound, from moderate to saturated logits, every target
    kind; float64 at 20 (where ``F.softplus`` returns ``x`` itself) and 40 (past which sigmoid(x) rounds to 1)."""
    cases = [
        QualityCase(shape=(4, 7), dtype=dt, beta=b, magnitude=m, reduction="none", targets=t)
        for dt in (torch.float32, torch.float64)
        for m in (3.0, 17.0, 30.0, 50.0, 80.0, 100.0, 1e4, 1e20)
        for b, t in zip((0.5, 2.0, 5.0), ("hard", "iou", "edge"), strict=True)
    ]
    cases += [QualityCase(shape=(4, 7), dtype=torch.float64, magnitude=m, reduction="none", targets="hard")
              for m in (20.0, 40.0)]  # fmt: skip
    return _with_seeds(cases, 5800)


def half_cases() -> list[QualityCase]:
    """float16/bfloat16 logits, computed in float32: mmdet#5090's explosion (its fp16 loss passed 1e4) is the
    witness: large half-precision logits whose fp16 arithmetic (and fp16 sum) overflows."""
    cases = [
        QualityCase(shape=(16, 7), dtype=torch.float16, reduction="none"),
        QualityCase(shape=(16, 7), dtype=torch.bfloat16, reduction="mean", targets="soft"),
        QualityCase(shape=(64, 80), dtype=torch.float16, magnitude=1e3, reduction="mean", positives=0.01,
                    label="mmdet5090"),
        QualityCase(shape=(8, 80), dtype=torch.float16, magnitude=3e4, reduction="none", label="mmdet5090"),
        QualityCase(shape=(8, 100), dtype=torch.bfloat16, magnitude=1e5, reduction="sum", beta=0.5),
        QualityCase(shape=(16, 7), dtype=torch.bfloat16, target_dtype=torch.float32, targets="edge", reduction="none"),
    ]  # fmt: skip
    return _with_seeds(cases, 5900)


def soft_target_cases() -> list[QualityCase]:
    """Soft targets at the ends of [0, 1] and uniform ones, moderate and large logits."""
    base = QualityCase(shape=(16, 7), targets="edge", reduction="none")
    cases = [
        base,
        base.with_(beta=0.5),
        base.with_(scale=20.0, beta=5.0),
        base.with_(dtype=torch.float64),
        base.with_(dtype=torch.float64, magnitude=30.0, beta=1.0),
        base.with_(targets="soft", beta=0.25, reduction="sum"),
    ]
    return _with_seeds(cases, 6000)


def nan_cases() -> list[QualityCase]:
    """NaN logits among finite ones."""
    base = QualityCase(shape=(16, 7), nan=0.2, reduction="none")
    return _with_seeds([base, base.with_(reduction="mean"), base.with_(dtype=torch.float64, beta=0.0, reduction="sum"),
                        base.with_(targets="soft", beta=0.5)], 6100)  # fmt: skip


def empty_cases() -> list[QualityCase]:
    """No element: (0, 80) under every reduction, (0,) and (3, 0)."""
    cases = [QualityCase(shape=(0, 80), reduction=r) for r in ("none", "mean", "sum")]
    cases += [QualityCase(shape=(0,), reduction="sum"), QualityCase(shape=(3, 0), reduction="mean")]
    return _with_seeds(cases, 6200)


def _target(device: str) -> torch.Tensor:
    return torch.tensor([[0.75, 0.0, 0.0]] * 4, device=device)


#: A valid call — logits (4, 3), one IoU-scored positive per row — with what a bad input changes.
bad_call = valid_call(_target)


#: name -> (argument named in the message, exception, the call on a device)
_BAD_INPUTS: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]] = {
    "logits-int": ("logits", TypeError, lambda d: bad_call(d, logits=torch.ones(4, 3, dtype=torch.long, device=d))),
    "logits-list": ("logits", TypeError, lambda d: bad_call(d, logits=[[0.0, 1.0, 2.0]] * 4)),
    "target-list": ("target", TypeError, lambda d: bad_call(d, target=[[0.75, 0.0, 0.0]] * 4)),
    "target-int": ("target", TypeError, lambda d: bad_call(d, target=torch.zeros(4, 3, dtype=torch.long, device=d))),
    "target-labels": ("target", TypeError, lambda d: bad_call(d, target=torch.tensor([0, 3, 1, 3], device=d))),
    "target-bool": ("target", TypeError, lambda d: bad_call(d, target=_target(d).bool())),
    "target-shape": ("target", ValueError, lambda d: bad_call(d, target=_target(d)[:, :1])),
    "target-transposed": ("target", ValueError, lambda d: bad_call(d, target=_target(d).t().contiguous())),
    "target-above-one": ("target", ValueError, lambda d: bad_call(d, target=_target(d) * 2)),
    "target-negative": ("target", ValueError, lambda d: bad_call(d, target=-_target(d))),
    "target-nan": ("target", ValueError, lambda d: bad_call(
        d, target=_target(d).masked_fill(_target(d) > 0, math.nan))),
    "beta-negative": ("beta", ValueError, lambda d: bad_call(d, beta=-0.5)),
    "beta-nan": ("beta", ValueError, lambda d: bad_call(d, beta=math.nan)),
    "beta-inf": ("beta", ValueError, lambda d: bad_call(d, beta=math.inf)),
    "beta-str": ("beta", TypeError, lambda d: bad_call(d, beta="2")),
    "beta-bool": ("beta", TypeError, lambda d: bad_call(d, beta=True)),
    "beta-1d-tensor": ("beta", TypeError, lambda d: bad_call(d, beta=torch.tensor([2.0]))),
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
