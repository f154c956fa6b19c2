"""Seeded inputs of the varifocal family: every case is a frozen description that builds the same tensors from its seed.

Its cases implement the interface every generic check reads (:class:`focalbench.arena.core.SampleCase`) and say one
more thing: whether the gradient an implementation returns is the derivative of the loss it returns
(:attr:`VarifocalCase.gradient_is_derivative`: not with ``detach_weight=True``, RT-DETR's weight held constant). The
checks that compare a gradient with finite differences of the loss take only such cases
(:func:`derivative_cases`); the others compare the gradient with the reference's, which holds the weight constant too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from focalbench.arena.core import DTYPE_NAMES, BadInput, SampleCase, error_inputs, valid_call

__all__ = [
    "GAMMAS",
    "VarifocalCase",
    "accuracy_cases",
    "bad_call",
    "bad_inputs",
    "compile_cases",
    "create_graph_cases",
    "derivative_cases",
    "detached_cases",
    "empty_cases",
    "extreme_cases",
    "gradcheck_cases",
    "gradient_is_derivative",
    "half_cases",
    "nan_cases",
    "negative_cases",
    "positive_cases",
    "random_cases",
    "reduction_cases",
]

#: The gammas the cases cross: 0 (no focusing), below 1, 1, 2 (the default), 5.
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)

#: Soft targets at the ends of [0, 1], and zeros (negatives) between them.
EDGE_TARGETS = (0.0, 1.0, 1e-30, 0.0, 1e-7, 0.5, 0.0, 1 - 1e-7, 1 - 2.0**-24)


@dataclass(frozen=True)
class VarifocalCase(SampleCase):
    """One reproducible input of the varifocal family: logits of ``shape`` and ``dtype``, targets, loss arguments.

    ``targets``: ``"iou"`` (a fraction ``positives`` of elements positive with an IoU-like score ``1 - u`` in
    ``(0, 1]``, the rest 0: a detector's), ``"hard"`` (0 or 1), ``"negatives"`` (all 0), ``"soft"`` (uniform in
    ``[0, 1]``: almost every element a positive) or ``"edge"`` (:data:`EDGE_TARGETS` in turn). ``magnitude``: every
    logit is ``+-magnitude (1 + u / 10)``, the sign alternating from element to element (``"max"``: +-3/4 of the dtype's
    largest number). ``nan``: the fraction of logits replaced by NaN (from their own generator). ``target_dtype``: the
    target's dtype (default: the logits'); ``alpha_tensor``/``gamma_tensor``: pass alpha/gamma as 0-dim float64 tensors.
    """

    family: ClassVar[str] = "varifocal"

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    alpha: float = 0.75
    gamma: float = 2.0
    iou_weighted: bool = True
    detach_weight: bool = False
    reduction: str = "mean"
    targets: str = "iou"  # iou | hard | negatives | soft | edge
    positives: float = 0.3
    layout: str = "contiguous"  # contiguous | non_contiguous
    magnitude: float | str | None = None
    scale: float = 3.0  # standard deviation of random logits
    nan: float = 0.0
    target_dtype: torch.dtype | None = None
    alpha_tensor: bool = False
    gamma_tensor: bool = False
    seed: int = 0
    label: str = ""

    @property
    def gradient_is_derivative(self) -> bool:
        """Whether the gradient is the derivative of the loss: not with ``detach_weight`` (RT-DETR), whose gradient
        holds the weight constant (:func:`gradient_is_derivative`). Finite differences judge only such cases."""
        return gradient_is_derivative(self.kwargs())

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)) or "scalar", DTYPE_NAMES[self.dtype]]
        if self.target_dtype is not None:
            parts.append(f"target-{DTYPE_NAMES[self.target_dtype]}")
        parts += [f"a{self.alpha:g}" + ("-tensor" if self.alpha_tensor else "")]
        parts += [f"g{self.gamma:g}" + ("-tensor" if self.gamma_tensor else ""), self.reduction]
        if not self.iou_weighted:
            parts.append("unweighted")
        if self.detach_weight:
            parts.append("detached")
        if self.targets != "iou":
            parts.append(self.targets)
        if self.layout != "contiguous":
            parts.append("strided")
        if self.magnitude is not None:
            parts.append(f"m{self.magnitude:g}" if isinstance(self.magnitude, float) else f"m{self.magnitude}")
        if self.nan:
            parts.append(f"nan{self.nan:g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        """Shape of the ``reduction="none"`` loss: the logits'."""
        return self.shape

    def needs(self) -> set[str]:
        """Capabilities (:data:`focalbench.arena.families.varifocal.CAPABILITIES`) this case needs."""
        needed = {
            "any_shape": len(self.shape) < 2,
            "unweighted": not self.iou_weighted,
            "detached": self.detach_weight,
            "reduction:none": self.reduction == "none",
        }
        return {name for name, needs in needed.items() if needs}

    def kwargs(self) -> dict:
        alpha = torch.tensor(self.alpha, dtype=torch.float64) if self.alpha_tensor else self.alpha
        gamma = torch.tensor(self.gamma, dtype=torch.float64) if self.gamma_tensor else self.gamma
        return dict(alpha=alpha, gamma=gamma, iou_weighted=self.iou_weighted, detach_weight=self.detach_weight,
                    reduction=self.reduction)  # fmt: skip

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; the logits are a leaf that does not require grad."""
        g = torch.Generator().manual_seed(self.seed)
        # non-contiguous: drawn with the first two dims swapped, then swapped back (a strided view)
        swapped = self.layout == "non_contiguous" and len(self.shape) >= 2
        gen_shape = (self.shape[1], self.shape[0], *self.shape[2:]) if swapped else self.shape
        noise = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        draw = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        score = torch.rand(gen_shape, generator=g, dtype=torch.float64)
        logits = torch.randn(gen_shape, generator=g, dtype=torch.float64) * self.scale
        if swapped:
            noise, draw, score, logits = (t.transpose(0, 1) for t in (noise, draw, score, logits))
        index = torch.arange(draw.numel()).reshape(draw.shape)
        if self.targets == "iou":
            target = torch.where(draw < self.positives, 1 - score, 0.0)
        elif self.targets == "hard":
            target = (draw < self.positives).double()
        elif self.targets == "negatives":
            target = torch.zeros_like(draw)
        elif self.targets == "soft":
            target = draw
        else:
            ends = torch.tensor(EDGE_TARGETS, dtype=torch.float64)
            target = ends[index % len(ends)]
        if self.magnitude is not None:
            size = 0.75 * torch.finfo(self.dtype).max if self.magnitude == "max" else self.magnitude
            sign = torch.where(index % 2 == 0, 1.0, -1.0).to(torch.float64)
            logits = sign * size * (1 + noise / 10 if self.magnitude != "max" else 1.0)
        if self.nan:
            special = torch.Generator().manual_seed(self.seed + 104729)
            u = torch.rand(logits.shape, generator=special, dtype=torch.float64)
            logits = torch.where(u < self.nan, math.nan, logits)
        target_dtype = self.dtype if self.target_dtype is None else self.target_dtype
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=target_dtype)


def gradient_is_derivative(keywords) -> bool:
    """Whether a call with these keywords returns the derivative of its loss as its gradient: not with
    ``detach_weight=True`` (the family record's :attr:`~focalbench.arena.family.Family.gradient_is_derivative`)."""
    return not keywords.get("detach_weight", False)


def _with_seeds(cases: list[VarifocalCase], first: int) -> list[VarifocalCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def derivative_cases(cases: list[VarifocalCase]) -> list[VarifocalCase]:
    """Only the cases whose gradient is the loss's derivative (:attr:`VarifocalCase.gradient_is_derivative`): what a
    check comparing the gradient with finite differences may run on."""
    return [case for case in cases if case.gradient_is_derivative]


def random_cases() -> list[VarifocalCase]:
    """Every gamma, alpha (0, 0.25, the default 0.75, 1 and 2.5: alpha is a weight, not a fraction), both weightings
    of the positives, the detached weight, every reduction, detector and dense shapes, a 1-D and a 0-dim input, every
    dtype, strided logits, hard, soft and edge targets; alpha and gamma as 0-dim tensors, targets of another dtype."""
    base = VarifocalCase(shape=(16, 7))
    cases = [base.with_(gamma=g, reduction=("none", "sum")[i % 2]) for i, g in enumerate(GAMMAS)]
    cases += [base.with_(alpha=a, reduction="none") for a in (0.0, 0.25, 1.0, 2.5)]
    cases += [
        base.with_(iou_weighted=False, reduction="none"),
        base.with_(iou_weighted=False, targets="soft", gamma=0.5, reduction="sum"),
        base.with_(detach_weight=True, reduction="none"),
        base.with_(detach_weight=True, gamma=0.5, alpha=0.25, reduction="sum"),
        base.with_(detach_weight=True, iou_weighted=False),
        base,
        VarifocalCase(shape=(2, 2)),
        VarifocalCase(shape=(97, 13), gamma=0.5, reduction="sum", positives=0.05),
        VarifocalCase(shape=(4, 80, 5, 7), positives=0.01, label="dense"),
        VarifocalCase(shape=(3, 21, 5, 7), reduction="none", label="dense"),
        VarifocalCase(shape=(33,), gamma=1.0, reduction="none"),
        VarifocalCase(shape=(), reduction="none", positives=1.0),
        VarifocalCase(shape=(), reduction="sum", positives=0.0),
        VarifocalCase(shape=(16, 7), layout="non_contiguous", reduction="none"),
        VarifocalCase(shape=(4, 5, 3, 2), layout="non_contiguous", reduction="sum", label="dense"),
        VarifocalCase(shape=(16, 7), targets="soft", reduction="none"),
        VarifocalCase(shape=(16, 7), targets="hard", reduction="none"),
        VarifocalCase(shape=(16, 7), targets="edge", reduction="none", gamma=0.5),
        VarifocalCase(shape=(16, 7), dtype=torch.float64, targets="edge", reduction="none"),
    ]
    cases += [
        VarifocalCase(shape=(16, 7), dtype=dt, gamma=g, reduction=r)
        for dt in (torch.float16, torch.bfloat16, torch.float64)
        for g, r in ((0.5, "none"), (2.0, "mean"))
    ]
    more = [
        VarifocalCase(shape=(16, 7), dtype=torch.float64, alpha=0.3, alpha_tensor=True, reduction="none"),
        VarifocalCase(shape=(16, 7), gamma=0.5, gamma_tensor=True, reduction="sum"),
        VarifocalCase(shape=(16, 7), target_dtype=torch.float64, reduction="none"),
        VarifocalCase(shape=(16, 7), dtype=torch.bfloat16, target_dtype=torch.float32, reduction="none"),
        VarifocalCase(shape=(1, 80), reduction="none"),
        VarifocalCase(shape=(16, 1), reduction="none"),
    ]
    return _with_seeds(cases, 5000) + _with_seeds(more, 5060)


def negative_cases() -> list[VarifocalCase]:
    """Every target 0, the gradient the loss's derivative: the sigmoid focal loss's negative term (moderate and large
    logits, every gamma, alpha up to 1 and beyond)."""
    base = VarifocalCase(shape=(16, 7), targets="negatives", reduction="none")
    cases = [base.with_(gamma=g, alpha=a) for g, a in ((0.0, 0.75), (0.5, 0.25), (2.0, 0.75), (5.0, 1.0))]
    cases += [
        base.with_(alpha=2.5, reduction="sum"),
        base.with_(dtype=torch.float64, gamma=1.5),
        base.with_(scale=20.0, reduction="mean"),
    ]
    return _with_seeds(cases, 5100)


def positive_cases() -> list[VarifocalCase]:
    """Cases with positives of every kind (IoU-like, hard, soft, edge), ``reduction="none"``: their losses are
    ``q BCE(x, q)`` (or ``BCE`` unweighted), whatever alpha and gamma are."""
    base = VarifocalCase(shape=(16, 7), reduction="none", positives=0.5)
    cases = [
        base,
        base.with_(targets="hard", gamma=0.5, alpha=0.25),
        base.with_(targets="soft", iou_weighted=False),
        base.with_(targets="edge", dtype=torch.float64),
        base.with_(scale=20.0, gamma=5.0),
        base.with_(detach_weight=True, targets="soft"),
    ]
    return _with_seeds(cases, 5200)


def reduction_cases() -> list[VarifocalCase]:
    """One input of each kind under the three reductions, for the reductions' relations."""
    cases = [
        VarifocalCase(shape=(16, 7), reduction="none"),
        VarifocalCase(shape=(97, 13), positives=0.05, reduction="none"),
        VarifocalCase(shape=(3, 21, 5, 7), targets="soft", reduction="none", label="dense"),
        VarifocalCase(shape=(16, 7), dtype=torch.float64, iou_weighted=False, detach_weight=True, reduction="none"),
    ]
    return _with_seeds(cases, 5300)


def gradcheck_cases() -> list[VarifocalCase]:
    """Few float64 elements (gradgradcheck's cost grows with their square), each gradient the loss's derivative:
    every gamma kind, soft and edge targets, both weightings of the positives, each reduction."""
    cases = [
        VarifocalCase(shape=(2, 3), dtype=torch.float64, gamma=0.5, scale=1.5, positives=0.5, reduction="none"),
        VarifocalCase(shape=(1, 2, 2, 2), dtype=torch.float64, gamma=2.0, reduction="sum", label="dense"),
        VarifocalCase(shape=(2, 3), dtype=torch.float64, gamma=0.0, targets="soft", iou_weighted=False),
        VarifocalCase(shape=(3, 3), dtype=torch.float64, gamma=1.5, targets="edge", alpha=2.0, reduction="sum"),
        VarifocalCase(shape=(2, 3), dtype=torch.float64, gamma=5.0, targets="negatives", scale=2.0, reduction="none"),
    ]
    return derivative_cases(_with_seeds(cases, 5400))


def create_graph_cases() -> list[VarifocalCase]:
    """Small inputs for double backward (gradient penalties), the detached weight included (its second derivative
    is the constant weight times ``p (1 - p)``, as autograd gives RT-DETR's)."""
    cases = [
        VarifocalCase(shape=(6, 5), dtype=torch.float64, scale=1.5, reduction="none", positives=0.5),
        VarifocalCase(shape=(6, 5), dtype=torch.float64, gamma=0.5, reduction="sum", targets="soft"),
        VarifocalCase(shape=(6, 5), dtype=torch.float64, detach_weight=True, reduction="sum", positives=0.5),
        VarifocalCase(shape=(6, 5), dtype=torch.float32, gamma=2.0, reduction="mean", scale=1.5),
    ]
    return _with_seeds(cases, 5500)


def compile_cases() -> list[VarifocalCase]:
    """Inputs for ``torch.compile(fullgraph=True)``: the argument forms a traced call carries to the kernel."""
    cases = [
        VarifocalCase(shape=(6, 5), reduction="sum"),
        VarifocalCase(shape=(2, 4, 3, 2), gamma=0.5, iou_weighted=False, targets="soft", reduction="none"),
        VarifocalCase(shape=(6, 5), dtype=torch.float64, gamma=1.5, detach_weight=True),
    ]
    return _with_seeds(cases, 5600)


def extreme_cases(magnitudes=(1e4, 1e10, 1e20, "max"), gammas=(0.0, 0.5, 2.0, 5.0)) -> list[VarifocalCase]:
    """Saturated logits of both signs at every magnitude (``"max"``: +-3/4 of the dtype's largest number, per
    element: a sum of such losses overflows), IoU-like and edge targets, float32 and float64, the weight detached
    or not."""
    cases = [
        VarifocalCase(shape=(4, 9), dtype=dt, gamma=g, magnitude=m, targets=("iou", "edge")[i % 2], positives=0.5,
                      detach_weight=g == 5.0, reduction="none" if m == "max" else "sum")
        for dt in (torch.float32, torch.float64)
        for i, m in enumerate(magnitudes)
        for g in gammas
    ]  # fmt: skip
    return _with_seeds(cases, 5700)


def accuracy_cases() -> list[VarifocalCase]:
    """``reduction="none"`` elements for the relative-error bound, logits +-3 to +-100 (the accuracy sweep goes to
    1e20 against the mpmath oracle), and float64 at 20 to 22 (where ``F.softplus`` returns ``x`` itself)."""
    cases = [
        VarifocalCase(shape=(4, 9), dtype=dt, gamma=g, magnitude=m, targets=t, positives=0.5, reduction="none")
        for dt in (torch.float32, torch.float64)
        for m in (3.0, 17.0, 30.0, 100.0)
        for g, t in ((0.5, "edge"), (2.0, "iou"), (5.0, "negatives"))
    ]
    cases.append(VarifocalCase(shape=(4, 9), dtype=torch.float64, magnitude=20.0, targets="negatives", gamma=0.0,
                               reduction="none"))  # fmt: skip
    return _with_seeds(cases, 5800)


def half_cases() -> list[VarifocalCase]:
    """float16 and bfloat16 logits: computed in float32 (a float16 sum past 65504 overflows; bfloat16 beyond float16's
    range), returned in their dtype."""
    cases = [
        VarifocalCase(shape=(16, 16), dtype=torch.float16, magnitude=1e3, reduction="mean"),
        VarifocalCase(shape=(16, 16), dtype=torch.float16, magnitude=1e3, reduction="sum"),
        VarifocalCase(shape=(4, 6), dtype=torch.bfloat16, magnitude=1e5, reduction="none"),
        VarifocalCase(shape=(8, 1000), dtype=torch.bfloat16, magnitude=30.0, reduction="mean", label="wide"),
        VarifocalCase(
            shape=(16, 7), dtype=torch.float16, target_dtype=torch.float32, targets="edge", reduction="none"
        ),  # fmt: skip
    ]
    return _with_seeds(cases, 5900)


def detached_cases() -> list[VarifocalCase]:
    """``detach_weight=True`` (RT-DETR's weight): every gamma kind, both weightings, every reduction, large logits."""
    base = VarifocalCase(shape=(16, 7), detach_weight=True, reduction="none", positives=0.3)
    cases = [
        base,
        base.with_(gamma=0.5, alpha=0.25, reduction="sum"),
        base.with_(gamma=5.0, iou_weighted=False),
        base.with_(dtype=torch.float64, targets="edge", reduction="mean"),
        base.with_(magnitude=30.0),
        base.with_(gamma=0.0, targets="soft"),
    ]
    return _with_seeds(cases, 6000)


def nan_cases() -> list[VarifocalCase]:
    """NaN logits among finite ones."""
    base = VarifocalCase(shape=(16, 7), nan=0.2, reduction="none")
    cases = [
        base,
        base.with_(reduction="sum"),
        base.with_(alpha=0.0, gamma=0.0),
        base.with_(dtype=torch.float64, detach_weight=True, reduction="mean"),
    ]
    return _with_seeds(cases, 6100)


def empty_cases() -> list[VarifocalCase]:
    """No element: (0, 80) under every reduction, (0, 80, 4, 4), (0,) and (3, 0)."""
    cases = [VarifocalCase(shape=(0, 80), reduction=r) for r in ("none", "mean", "sum")]
    cases += [
        VarifocalCase(shape=(0, 80, 4, 4), reduction="mean", label="dense"),
        VarifocalCase(shape=(0,), reduction="sum"),
        VarifocalCase(shape=(3, 0), reduction="mean", detach_weight=True),
    ]
    return _with_seeds(cases, 6200)


def _target(device: str) -> torch.Tensor:
    return torch.tensor([[0.8, 0.0, 0.0]] * 4, device=device)


#: A valid call — logits (4, 3), one positive per row with score 0.8 — with what a bad input changes.
bad_call = valid_call(_target)


#: name -> (argument named in the message, exception, the call on a device)
_BAD_INPUTS: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]] = {
    "logits-int": ("logits", TypeError, lambda d: bad_call(d, logits=torch.ones(4, 3, dtype=torch.long, device=d))),
    "logits-list": ("logits", TypeError, lambda d: bad_call(d, logits=[[0.0, 1.0, 2.0]] * 4)),
    "target-list": ("target", TypeError, lambda d: bad_call(d, target=[[0.8, 0.0, 0.0]] * 4)),
    "target-int": ("target", TypeError, lambda d: bad_call(d, target=torch.tensor([[1, 0, 0]] * 4, device=d))),
    "target-bool": ("target", TypeError, lambda d: bad_call(d, target=_target(d).bool())),
    "target-shape": ("target", ValueError, lambda d: bad_call(d, target=_target(d)[:, :1])),
    "target-transposed": ("target", ValueError, lambda d: bad_call(d, target=_target(d).t().contiguous())),
    "target-above-one": ("target", ValueError, lambda d: bad_call(d, target=_target(d) * 2)),
    "target-negative": ("target", ValueError, lambda d: bad_call(d, target=-_target(d))),
    "target-nan": ("target", ValueError, lambda d: bad_call(d, target=_target(d).masked_fill(_target(d) > 0,
                                                                                              math.nan))),
    "target-meta-device": ("target", ValueError, lambda d: bad_call(d, target=torch.zeros(4, 3, device="meta"))),
    "target-device": ("target", ValueError, lambda d: bad_call(d, target=_target("cpu"))),
    "target-requires-grad": ("target", ValueError, lambda d: bad_call(d, target=_target(d).requires_grad_(True))),
    "alpha-negative": ("alpha", ValueError, lambda d: bad_call(d, alpha=-0.25)),
    "alpha-nan": ("alpha", ValueError, lambda d: bad_call(d, alpha=math.nan)),
    "alpha-inf": ("alpha", ValueError, lambda d: bad_call(d, alpha=math.inf)),
    "alpha-str": ("alpha", TypeError, lambda d: bad_call(d, alpha="0.75")),
    "alpha-bool": ("alpha", TypeError, lambda d: bad_call(d, alpha=True)),
    "alpha-1d-tensor": ("alpha", TypeError, lambda d: bad_call(d, alpha=torch.tensor([0.75]))),
    "gamma-negative": ("gamma", ValueError, lambda d: bad_call(d, gamma=-0.5)),
    "gamma-nan": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.nan)),
    "gamma-inf": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.inf)),
    "gamma-str": ("gamma", TypeError, lambda d: bad_call(d, gamma="2")),
    "gamma-bool": ("gamma", TypeError, lambda d: bad_call(d, gamma=True)),
    "gamma-1d-tensor": ("gamma", TypeError, lambda d: bad_call(d, gamma=torch.tensor([2.0]))),
    "iou_weighted-int": ("iou_weighted", TypeError, lambda d: bad_call(d, iou_weighted=1)),
    "iou_weighted-str": ("iou_weighted", TypeError, lambda d: bad_call(d, iou_weighted="False")),
    "detach_weight-int": ("detach_weight", TypeError, lambda d: bad_call(d, detach_weight=0)),
    "detach_weight-None": ("detach_weight", TypeError, lambda d: bad_call(d, detach_weight=None)),
    "detach_weight-tensor": ("detach_weight", TypeError, lambda d: bad_call(d, detach_weight=torch.tensor(True))),
    "reduction-unknown": ("reduction", ValueError, lambda d: bad_call(d, reduction="batchwise_mean")),
    "reduction-capitalized": ("reduction", ValueError, lambda d: bad_call(d, reduction="Mean")),
    "reduction-None": ("reduction", ValueError, lambda d: bad_call(d, reduction=None)),
}  # fmt: skip
_NEEDS_CUDA = {"target-device"}  # a target on the CPU with logits on CUDA
_DEVICE_VALUES = {"target-above-one", "target-negative", "target-nan"}  # wrong by a tensor's values


def bad_inputs() -> list[BadInput]:
    """Every invalid call of the family, with the error it must raise."""
    return error_inputs(_BAD_INPUTS, needs_cuda=_NEEDS_CUDA, device_values=_DEVICE_VALUES)
