"""Seeded inputs of the dfl family (:mod:`focalbench.losses.dfl.semantics`): every case is a frozen description that
builds the same tensors from its seed; the suites of its checks are built here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from focalbench.arena.core import DTYPE_NAMES, BadInput, SampleCase, error_inputs, valid_call

__all__ = [
    "SATURATED",
    "SHIFTS",
    "DflCase",
    "absent_bin_cases",
    "accuracy_cases",
    "bad_call",
    "bad_inputs",
    "compile_cases",
    "create_graph_cases",
    "empty_cases",
    "end_cases",
    "entropy_cases",
    "gradcheck_cases",
    "half_cases",
    "integer_cases",
    "nan_cases",
    "random_cases",
    "reduction_cases",
    "saturated_cases",
    "shift_cases",
    "target_bins",
    "unchanged_cases",
]

#: Saturated logit magnitudes: a gap past ~104 underflows float32's softmax, past ~745 float64's.
SATURATED = (1e4, 1e10, 1e20)
#: Offsets added to every logit (translation invariance); exact in float32 for logits on a grid of 1/16 below 16.
SHIFTS = (88.0, -300.0, 1e4, 1e6)


def target_bins(y: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y_l, y_r, w_l, w_r)`` of targets ``y`` in ``[0, n - 1]``: int64 bins, weights in ``y``'s dtype."""
    left = y.floor().clamp(max=bins - 2).long()
    right = left + 1
    return left, right, right.to(y.dtype) - y, y - left.to(y.dtype)


@dataclass(frozen=True)
class DflCase(SampleCase):
    """One reproducible input of the dfl family: logits of ``shape`` (bins last) and ``dtype``, targets of the
    leading shape, the reduction.

    ``targets``: ``"mixed"`` (uniform in ``[0, n - 1]``, a quarter of them integers, some exactly 0 and ``n - 1``),
    ``"integer"`` (``0 .. n - 1``), ``"fractional"`` (never an integer), ``"ends"`` (0, ``n - 1`` and their
    neighbours in turn), ``"top"`` (in ``(n - 1.01, n - 1]``: ultralytics' clamp zone, ``n - 1`` included) or
    ``"matched"`` (fractional targets whose logits put the softmax on the two target bins in the target's weights:
    the loss is the weights' entropy). ``magnitude``: saturated logits, ``+-magnitude (1 + u / 10)``: confident
    elements (even ones: the target's nearer bin ahead of every other) and hopeless ones (odd: a bin away from the
    target's ahead). ``grid``: logits rounded to multiples of 1/16 (sums with :data:`SHIFTS` are exact). ``shift``:
    added to every logit. ``absent``: bins at ``-inf``: ``"off_target"`` (a third of the bins outside ``{y_l, y_r}``),
    ``"zero_weight"`` (the target bin of weight exactly 0 of integer targets), ``"target"`` (a target bin of positive
    weight: an infinite loss). ``nan``, ``posinf``: the fractions of logits replaced by NaN and by ``+inf`` (whose
    element has no defined loss either). ``layout="non_contiguous"``: the bins
    strided (the logits generated bins first and moved last) and the target a strided view.
    """

    family: ClassVar[str] = "dfl"

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    reduction: str = "mean"
    targets: str = "mixed"  # mixed | integer | fractional | ends | top | matched
    scale: float = 3.0
    magnitude: float | None = None
    grid: bool = False
    shift: float = 0.0
    absent: str = ""  # "" | off_target | zero_weight | target
    nan: float = 0.0
    posinf: float = 0.0
    layout: str = "contiguous"  # contiguous | non_contiguous
    target_dtype: torch.dtype | None = None
    seed: int = 0
    label: str = ""

    @property
    def bins(self) -> int:
        return self.shape[-1]

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)), DTYPE_NAMES[self.dtype]]
        if self.target_dtype is not None:
            parts.append(f"target-{DTYPE_NAMES[self.target_dtype]}")
        parts += [self.reduction, self.targets]
        if self.layout != "contiguous":
            parts.append("strided")
        if self.magnitude is not None:
            parts.append(f"m{self.magnitude:g}")
        elif self.scale != 3.0:
            parts.append(f"s{self.scale:g}")
        if self.shift:
            parts.append(f"shift{self.shift:g}")
        if self.absent:
            parts.append(f"absent-{self.absent}")
        if self.nan:
            parts.append(f"nan{self.nan:g}")
        if self.posinf:
            parts.append(f"posinf{self.posinf:g}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        return self.shape[:-1]

    def needs(self) -> set[str]:
        """Capabilities (:data:`focalbench.arena.families.dfl.CAPABILITIES`) this case needs."""
        return {"any_shape"} if len(self.shape) != 2 else set()

    def kwargs(self) -> dict:
        return {"reduction": self.reduction}

    def _targets(self, g: torch.Generator, lead: tuple[int, ...]) -> torch.Tensor:
        n = self.bins
        u = torch.rand(lead, generator=g, dtype=torch.float64)
        pick = torch.rand(lead, generator=g, dtype=torch.float64)
        index = torch.arange(u.numel()).reshape(lead)
        if self.targets == "mixed":
            y = u * (n - 1)
            y = torch.where(pick < 0.25, y.floor(), y)
            return torch.where(index % 7 == 3, 0.0, torch.where(index % 7 == 5, float(n - 1), y))
        if self.targets == "integer":
            return (u * n).floor().clamp(max=n - 1)
        if self.targets in ("fractional", "matched"):
            return (pick * (n - 1)).floor().clamp(max=n - 2) + 0.05 + 0.9 * u
        if self.targets == "ends":
            ends = torch.tensor([0.0, n - 1, 2.0**-20, n - 1 - 2.0**-19, n - 1.005, n - 2.0, 0.5, n - 1.5],
                                dtype=torch.float64)  # fmt: skip
            return ends[index % len(ends)]
        # "top": ultralytics' clamp zone (n - 1.01, n - 1], n - 1 itself at every third element
        return torch.where(index % 3 == 0, float(n - 1), n - 1 - 0.0099 * u)

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, target)`` on ``device``; the logits are a leaf that does not require grad."""
        g = torch.Generator().manual_seed(self.seed)
        lead, n = self.shape[:-1], self.bins
        strided = self.layout == "non_contiguous"
        z = torch.randn((n, *lead), generator=g, dtype=torch.float64).movedim(0, -1) * self.scale
        noise = torch.rand((*lead, n), generator=g, dtype=torch.float64)
        full_lead = (2 * lead[0], *lead[1:]) if strided and lead else lead
        y_full = self._targets(g, full_lead)
        y = y_full[::2] if strided and lead else y_full
        left, right, w_left, w_right = target_bins(y, n)
        bins = torch.arange(n).expand(*lead, n)
        is_left, is_right = bins == left.unsqueeze(-1), bins == right.unsqueeze(-1)
        if self.targets == "matched":  # S = (w_l, w_r) on the target bins, e^-30 of that elsewhere
            z = torch.where(is_left, w_left.log().unsqueeze(-1), torch.where(is_right, w_right.log().unsqueeze(-1),
                                                                             -30.0 + noise))  # fmt: skip
        if self.magnitude is not None:
            nearer = torch.where(w_right > w_left, right, left).unsqueeze(-1)
            away = (nearer + n // 2) % n  # a bin away from the target's (n >= 4), or the other end (n = 2, 3)
            index = torch.arange(y.numel()).reshape(lead).unsqueeze(-1)
            ahead = torch.where(index % 2 == 0, nearer, away)
            z = torch.where(bins == ahead, 1.0, -1.0) * self.magnitude * (1 + noise / 10)
        if self.grid:
            z = (z * 16).round() / 16
        z = z + self.shift
        if self.absent == "off_target":
            z = torch.where(~is_left & ~is_right & (noise < 1 / 3), -math.inf, z)
        elif self.absent == "zero_weight":
            zero = (is_left & (w_left == 0).unsqueeze(-1)) | (is_right & (w_right == 0).unsqueeze(-1))
            z = torch.where(zero, -math.inf, z)
        elif self.absent == "target":
            index = torch.arange(y.numel()).reshape(lead).unsqueeze(-1)
            positive = torch.where(w_left > 0, left, right).unsqueeze(-1)
            z = torch.where((bins == positive) & (index % 3 == 0), -math.inf, z)
        if self.nan:
            special = torch.Generator().manual_seed(self.seed + 104729)
            z = torch.where(torch.rand(z.shape, generator=special, dtype=torch.float64) < self.nan, math.nan, z)
        if self.posinf:
            special = torch.Generator().manual_seed(self.seed + 130363)
            z = torch.where(torch.rand(z.shape, generator=special, dtype=torch.float64) < self.posinf, math.inf, z)
        target_dtype = self.dtype if self.target_dtype is None else self.target_dtype
        # bins strided: the values laid out bins first (torch.where above gives contiguous tensors)
        z = z.movedim(-1, 0).contiguous().movedim(0, -1) if strided else z.contiguous()
        logits = z.to(device=device, dtype=self.dtype)
        target = y_full.to(device=device, dtype=target_dtype)
        return logits, target[::2] if strided and lead else target


def _with_seeds(cases: list[DflCase], first: int) -> list[DflCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def random_cases() -> list[DflCase]:
    """Every reduction on a YOLO head's positives (16 bins) and mmdet's (17), every target kind, (N, 4, n) box sides,
    a single distribution (n,), n = 2 and n = 1000, float64, targets of another dtype, strided bins and targets."""
    base = DflCase(shape=(32, 16))
    cases = [base.with_(reduction=r) for r in ("none", "sum", "mean")]
    cases += [
        base.with_(targets="fractional", reduction="none"),
        base.with_(targets="integer", reduction="sum"),
        base.with_(targets="ends", reduction="none"),
        DflCase(shape=(8, 4, 16), reduction="none", label="sides"),
        DflCase(shape=(2, 5, 4, 17), reduction="mean", label="sides"),
        DflCase(shape=(40, 17), reduction="sum", scale=1.0),
        DflCase(shape=(16,), reduction="none", label="one"),
        DflCase(shape=(16,), reduction="sum", targets="fractional", label="one"),
        DflCase(shape=(24, 2), reduction="none"),
        DflCase(shape=(6, 1000), reduction="none", scale=5.0),
        DflCase(shape=(32, 16), dtype=torch.float64, reduction="none"),
        DflCase(shape=(32, 16), dtype=torch.float64, reduction="mean", targets="ends"),
        DflCase(shape=(32, 16), target_dtype=torch.float64, reduction="none", targets="fractional"),
        DflCase(shape=(32, 16), layout="non_contiguous", reduction="none"),
        DflCase(shape=(6, 4, 17), layout="non_contiguous", reduction="sum", label="sides"),
        DflCase(shape=(1, 16), reduction="mean"),
    ]
    return _with_seeds(cases, 7000)


def integer_cases() -> list[DflCase]:
    """Integer targets ``0 .. n - 1`` (``n - 1`` included): the cross-entropy of the target bin."""
    cases = [
        DflCase(shape=(32, 16), targets="integer", reduction="none"),
        DflCase(shape=(32, 16), dtype=torch.float64, targets="integer", reduction="sum"),
        DflCase(shape=(8, 4, 17), targets="integer", reduction="mean", label="sides"),
        DflCase(shape=(24, 2), targets="integer", reduction="none"),
        DflCase(shape=(32, 16), targets="integer", reduction="none", scale=20.0),
    ]
    return _with_seeds(cases, 7100)


def end_cases() -> list[DflCase]:
    """Targets at the ends of ``[0, n - 1]`` and beside them: 0, ``n - 1`` (the last bin, weight 1), ``2^-20``,
    ``n - 1 - 2^-19``, ``n - 2``; and ultralytics' clamp zone ``(n - 1.01, n - 1]``."""
    cases = [
        DflCase(shape=(32, 16), targets="ends", reduction="none"),
        DflCase(shape=(32, 17), dtype=torch.float64, targets="ends", reduction="none"),
        DflCase(shape=(16, 2), targets="ends", reduction="none"),
        DflCase(shape=(32, 16), targets="top", reduction="none"),
        DflCase(shape=(32, 17), dtype=torch.float64, targets="top", reduction="sum"),
        DflCase(shape=(32, 16), targets="ends", reduction="mean", scale=15.0),
    ]
    return _with_seeds(cases, 7200)


def entropy_cases() -> list[DflCase]:
    """Ordinary and saturated logits, and logits matched to the targets (where the loss is the weights' entropy)."""
    cases = [
        DflCase(shape=(32, 16), targets="matched", reduction="none"),
        DflCase(shape=(32, 17), dtype=torch.float64, targets="matched", reduction="none"),
        DflCase(shape=(32, 16), reduction="none"),
        DflCase(shape=(32, 16), reduction="none", targets="ends", magnitude=1e4),
        DflCase(shape=(16, 2), targets="matched", reduction="none"),
    ]
    return _with_seeds(cases, 7300)


def shift_cases() -> list[DflCase]:
    """Logits on a grid of 1/16 (so that every shift is exact) and the same logits shifted."""
    cases = [DflCase(shape=(32, 16), grid=True, reduction="none", targets=t) for t in ("mixed", "ends")]
    cases += [DflCase(shape=(32, 17), dtype=torch.float64, grid=True, reduction="sum")]
    return _with_seeds(cases, 7400)


def reduction_cases() -> list[DflCase]:
    """Boxes of four sides and single rows: 'sum' over 'none', 'mean' over the count of elements."""
    cases = [
        DflCase(shape=(8, 4, 16), label="sides"),
        DflCase(shape=(40, 17), dtype=torch.float64),
        DflCase(shape=(3, 2)),
        DflCase(shape=(16,), label="one"),
    ]
    return _with_seeds(cases, 7500)


def gradcheck_cases() -> list[DflCase]:
    """Few float64 elements: every reduction, integer, end and fractional targets."""
    cases = [
        DflCase(shape=(3, 5), dtype=torch.float64, reduction="none", targets="fractional", scale=1.5),
        DflCase(shape=(3, 5), dtype=torch.float64, reduction="sum", targets="ends"),
        DflCase(shape=(2, 2, 4), dtype=torch.float64, reduction="mean", label="sides"),
        DflCase(shape=(4, 2), dtype=torch.float64, reduction="sum", targets="fractional"),
    ]
    return _with_seeds(cases, 7600)


def create_graph_cases() -> list[DflCase]:
    """Small inputs for double backward (gradient penalties), compared with dfl_autograd."""
    cases = [
        DflCase(shape=(6, 5), dtype=torch.float64, reduction="none", scale=1.5),
        DflCase(shape=(6, 16), dtype=torch.float64, reduction="sum", targets="ends"),
        DflCase(shape=(6, 5), reduction="mean", targets="fractional"),
    ]
    return _with_seeds(cases, 7700)


def compile_cases() -> list[DflCase]:
    """Inputs for ``torch.compile(fullgraph=True)``."""
    cases = [
        DflCase(shape=(6, 16), reduction="sum"),
        DflCase(shape=(2, 4, 17), reduction="none", targets="ends", label="sides"),
        DflCase(shape=(6, 5), dtype=torch.float64, reduction="mean"),
    ]
    return _with_seeds(cases, 7800)


def saturated_cases(reduction: str = "sum", magnitudes=SATURATED) -> list[DflCase]:
    """Confident and hopeless elements at saturated logits, every target kind, float32 and float64."""
    cases = [
        DflCase(shape=(12, n), dtype=dt, magnitude=m, reduction=reduction, targets=t)
        for dt in (torch.float32, torch.float64)
        for m in magnitudes
        for n, t in ((16, "mixed"), (17, "ends"), (2, "fractional"))
    ]
    return _with_seeds(cases, 7900)


def accuracy_cases() -> list[DflCase]:
    """``reduction="none"`` elements for the relative-error bound, from moderate to saturated logits: the confident
    elements' tiny losses and gradients, and the hopeless ones' large losses."""
    cases = [
        DflCase(shape=(8, n), dtype=dt, magnitude=m, reduction="none", targets=t)
        for dt in (torch.float32, torch.float64)
        for m in (3.0, 10.0, 20.0, 50.0, 1e4, 1e20)
        for n, t in ((16, "integer"), (17, "ends"))
    ]
    cases += [DflCase(shape=(8, 16), dtype=torch.float64, magnitude=m, reduction="none", targets="integer")
              for m in (40.0, 400.0)]  # fmt: skip
    return _with_seeds(cases, 8000)


def half_cases() -> list[DflCase]:
    """float16/bfloat16 logits, computed in float32: a float16 softmax of logits beyond ~11 overflows ``e^z``; the
    float16 sum of a mean of many large losses passes 65504 (the mean itself does not)."""
    cases = [
        DflCase(shape=(32, 16), dtype=torch.float16, reduction="none"),
        DflCase(shape=(32, 16), dtype=torch.bfloat16, reduction="mean", targets="fractional"),
        DflCase(shape=(32, 16), dtype=torch.float16, magnitude=3e3, reduction="none", targets="ends"),
        DflCase(shape=(64, 17), dtype=torch.float16, magnitude=2e3, reduction="mean"),
        DflCase(shape=(32, 16), dtype=torch.bfloat16, magnitude=1e5, reduction="none", targets="integer"),
        DflCase(shape=(32, 16), dtype=torch.float16, target_dtype=torch.float32, reduction="none", targets="ends"),
    ]
    return _with_seeds(cases, 8100)


def absent_bin_cases() -> list[DflCase]:
    """Bins at ``-inf`` (masked): outside the target bins, at an integer target's bin of weight 0, and at a target bin
    of positive weight (an infinite loss, a finite gradient)."""
    cases = [
        DflCase(shape=(32, 16), absent="off_target", reduction="none"),
        DflCase(shape=(32, 16), absent="zero_weight", targets="integer", reduction="none"),
        DflCase(shape=(32, 17), dtype=torch.float64, absent="zero_weight", targets="ends", reduction="sum"),
        DflCase(shape=(32, 16), absent="target", targets="fractional", reduction="none"),
        DflCase(shape=(32, 16), dtype=torch.float64, absent="off_target", targets="ends", reduction="mean"),
    ]
    return _with_seeds(cases, 8200)


def nan_cases() -> list[DflCase]:
    """NaN and ``+inf`` logits among finite ones."""
    base = DflCase(shape=(32, 16), nan=0.02, reduction="none")
    return _with_seeds([base, base.with_(reduction="mean"), base.with_(dtype=torch.float64, reduction="sum"),
                        base.with_(targets="ends"), base.with_(nan=0.0, posinf=0.02)], 8300)  # fmt: skip


def empty_cases() -> list[DflCase]:
    """No element: (0, 16) under every reduction, (0, 4, 17) and (4, 0, 16)."""
    cases = [DflCase(shape=(0, 16), reduction=r) for r in ("none", "mean", "sum")]
    cases += [DflCase(shape=(0, 4, 17), reduction="mean"), DflCase(shape=(4, 0, 16), reduction="none")]
    return _with_seeds(cases, 8400)


def unchanged_cases() -> list[DflCase]:
    """Targets in ultralytics' clamp zone ``(n - 1.01, n - 1]`` of the logits' dtype (so the call receives the
    caller's own tensor), contiguous and strided, and at the ends."""
    cases = [
        DflCase(shape=(32, 16), targets="top", reduction="sum"),
        DflCase(shape=(8, 4, 16), targets="top", reduction="none", label="sides"),
        DflCase(shape=(32, 17), dtype=torch.float64, targets="ends", reduction="mean"),
        DflCase(shape=(32, 16), targets="top", layout="non_contiguous", reduction="none"),
    ]
    return _with_seeds(cases, 8500)


def _target(device: str) -> torch.Tensor:
    return torch.tensor([0.0, 0.5, 1.25, 2.0], device=device)


#: A valid call — logits (4, 3): 3 bins, targets in [0, 2] — with what a bad input changes.
bad_call = valid_call(_target)
_NAN, _INF = math.nan, math.inf

#: name -> (argument named in the message, exception, the call on a device)
_BAD_INPUTS: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]] = {
    "logits-int": ("logits", TypeError, lambda d: bad_call(d, logits=torch.ones(4, 3, dtype=torch.long, device=d))),
    "logits-list": ("logits", TypeError, lambda d: bad_call(d, logits=[[0.0, 1.0, 2.0]] * 4)),
    "logits-0dim": ("logits", ValueError, lambda d: bad_call(d, logits=torch.tensor(1.0, device=d),
                                                             target=torch.tensor(0.0, device=d))),
    "logits-one-bin": ("logits", ValueError, lambda d: bad_call(d, logits=torch.zeros(4, 1, device=d),
                                                                target=torch.zeros(4, device=d))),
    "target-list": ("target", TypeError, lambda d: bad_call(d, target=[0.0, 0.5, 1.25, 2.0])),
    "target-int": ("target", TypeError, lambda d: bad_call(d, target=torch.tensor([0, 1, 1, 2], device=d))),
    "target-bool": ("target", TypeError, lambda d: bad_call(d, target=_target(d).bool())),
    "target-with-bins": ("target", ValueError, lambda d: bad_call(d, target=torch.zeros(4, 3, device=d))),
    "target-shape": ("target", ValueError, lambda d: bad_call(d, target=_target(d)[:3])),
    "target-sides": ("target", ValueError, lambda d: bad_call(d, target=_target(d).view(4, 1))),
    "target-above-range": ("target", ValueError, lambda d: bad_call(d, target=_target(d) + 0.5)),
    "target-last-bin-index": ("target", ValueError, lambda d: bad_call(d, target=torch.full((4,), 3.0, device=d))),
    "target-negative": ("target", ValueError, lambda d: bad_call(d, target=_target(d) - 0.25)),
    "target-nan": ("target", ValueError, lambda d: bad_call(d, target=_target(d).masked_fill(_target(d) > 1, _NAN))),
    "target-inf": ("target", ValueError, lambda d: bad_call(d, target=_target(d).masked_fill(_target(d) > 1, _INF))),
    "target-requires-grad": ("target", ValueError, lambda d: bad_call(d, target=_target(d).requires_grad_(True))),
    "reduction-unknown": ("reduction", ValueError, lambda d: bad_call(d, reduction="batchwise_mean")),
    "reduction-capitalized": ("reduction", ValueError, lambda d: bad_call(d, reduction="Mean")),
    "reduction-None": ("reduction", ValueError, lambda d: bad_call(d, reduction=None)),
    "target-device": ("target", ValueError, lambda d: bad_call(d, target=_target("cpu"))),
}  # fmt: skip
_NEEDS_CUDA = {"target-device"}  # a target on the CPU with logits on CUDA
_DEVICE_VALUES = {"target-above-range", "target-last-bin-index", "target-negative", "target-nan", "target-inf"}


def bad_inputs() -> list[BadInput]:
    """Every invalid call of the family, with the error it must raise."""
    return error_inputs(_BAD_INPUTS, needs_cuda=_NEEDS_CUDA, device_values=_DEVICE_VALUES)
