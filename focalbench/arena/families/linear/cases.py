"""Seeded inputs of the linear family (:mod:`focalbench.losses.linear.semantics`): hidden states, a head's weight and
bias, targets; every case is a frozen description that builds the same tensors from its seed, and the suites of the
family's checks are built here.

The generic case interface gives a loss its first two arguments from :meth:`LinearCase.make` (the hidden states and
the targets) and its keywords from :meth:`LinearCase.kwargs`; the head's weight and bias are keywords, built on the
device of the case's latest :meth:`~LinearCase.make` (every check makes a case before it reads its keywords).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar

import torch

from focalbench.arena.core import DTYPE_NAMES, BadInput, SampleCase, error_inputs

__all__ = [
    "LinearCase",
    "bad_call",
    "bad_inputs",
    "chunk_cases",
    "compile_cases",
    "extreme_cases",
    "gradcheck_cases",
    "half_cases",
    "ignore_cases",
    "memory_cases",
    "random_cases",
    "unfused_cases",
]

#: The device of the latest :meth:`LinearCase.make` of this thread (the keywords' tensors are built there).
_DEVICE = threading.local()


@dataclass(frozen=True)
class LinearCase(SampleCase):
    """One reproducible input of the linear family: ``lead`` rows (the hidden states' leading shape) of ``features``
    features, a head of ``vocabulary`` classes (``bias``: with a bias), the loss's keywords.

    The logits ``h W^T + b`` are about ``scale`` randn (``W`` scaled by ``scale / sqrt(features)``); ``alpha``:
    ``"none"``, ``"scalar"`` (0.25) or ``"per_class"`` (seeded weights in [0, 2)); ``ignore``: a quarter of the rows
    at ``ignore_index`` (their hidden states ``ignored_value``: what a padded token holds); ``chunk_size`` as the
    loss takes it; ``positive``: hidden states ``|randn| + 1``, so that the rows' contributions to a weight's
    gradient share their sign and a sum of them kept in half precision loses the later ones."""

    family: ClassVar[str] = "linear"

    lead: tuple[int, ...] = (12,)
    features: int = 8
    vocabulary: int = 11
    dtype: torch.dtype = torch.float32
    reduction: str = "mean"
    gamma: float = 2.0
    alpha: str = "none"  # none | scalar | per_class
    bias: bool = True
    ignore: bool = False
    ignored_value: float = 0.0
    chunk_size: int | None = 5
    scale: float = 3.0
    positive: bool = False  # hidden states |randn| + 1: every row adds to a weight's gradient with the same sign
    targets: str = "random"  # random | argmax (every row confident) | argmin (every row hopeless)
    ignore_every: bool = False  # every row at ignore_index
    ignore_index: int = -100
    strided: bool = False  # the hidden states a transposed view (rows not contiguous)
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.lead)) + f"h{self.features}v{self.vocabulary}", DTYPE_NAMES[self.dtype],
                  self.reduction, f"g{self.gamma:g}"]  # fmt: skip
        if self.alpha != "none":
            parts.append(f"alpha-{self.alpha}")
        parts.append("bias" if self.bias else "nobias")
        if self.ignore:
            parts.append("ignore" if not self.ignored_value else f"ignore{self.ignored_value:g}")
        parts.append(f"chunk{self.chunk_size}" if self.chunk_size is not None else "chunkdefault")
        if self.scale != 3.0:
            parts.append(f"s{self.scale:g}")
        if self.positive:
            parts.append("positive")
        if self.targets != "random":
            parts.append(self.targets)
        if self.ignore_every:
            parts.append("all-ignored")
        if self.ignore_index != -100:
            parts.append(f"ii{self.ignore_index}")
        if self.strided:
            parts.append("strided")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def loss_shape(self) -> tuple[int, ...]:
        return self.lead

    def needs(self) -> set[str]:
        return {"any_shape"} if len(self.lead) != 1 else set()

    def _tensors(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        h = torch.randn((*self.lead, self.features), generator=g, dtype=torch.float64)
        if self.positive:
            h = h.abs() + 1
        w = torch.randn((self.vocabulary, self.features), generator=g, dtype=torch.float64)
        w = w * (self.scale / math.sqrt(self.features))
        b = torch.randn(self.vocabulary, generator=g, dtype=torch.float64) * min(self.scale, 1.0)
        t = torch.randint(0, self.vocabulary, self.lead, generator=g)
        if self.targets != "random":
            logits = h @ w.T + (b if self.bias else 0)
            t = logits.argmax(-1) if self.targets == "argmax" else logits.argmin(-1)
        if self.ignore or self.ignore_every:
            rows = torch.arange(t.numel()).reshape(self.lead)
            ignored = torch.ones_like(rows, dtype=torch.bool) if self.ignore_every else rows % 4 == 1
            t = torch.where(ignored, self.ignore_index, t)
            h = torch.where(ignored.unsqueeze(-1), self.ignored_value, h)
        put = {"device": device, "dtype": self.dtype}
        hidden = h.to(**put)
        if self.strided:  # the same values, rows strided: features first in memory
            hidden = hidden.movedim(-1, 0).contiguous().movedim(0, -1)
        return hidden, t.to(device), w.to(**put), b.to(**put)

    def make(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, target)`` on ``device``; the hidden states are a leaf that does not require grad."""
        _DEVICE.value = device
        h, t, _, _ = self._tensors(device)
        return h, t

    def kwargs(self) -> dict:
        _, _, w, b = self._tensors(getattr(_DEVICE, "value", "cpu"))
        alpha = {"none": None, "scalar": 0.25}.get(self.alpha)
        if self.alpha == "per_class":
            g = torch.Generator().manual_seed(self.seed + 7)
            alpha = (torch.rand(self.vocabulary, generator=g, dtype=torch.float64) * 2).tolist()
        return {"weight": w, "bias": b if self.bias else None, "gamma": self.gamma, "alpha": alpha,
                "reduction": self.reduction, "ignore_index": self.ignore_index,
                "chunk_size": self.chunk_size}  # fmt: skip


def _seeded(cases: list[LinearCase], first: int) -> list[LinearCase]:
    return [case.with_(seed=first + i) for i, case in enumerate(cases)]


def random_cases() -> list[LinearCase]:
    """Float32 and float64 across reductions, gammas, alpha kinds, bias or none, ignored rows, chunk sizes (1, a
    divisor, one leaving a tail, the default) and leading shapes."""
    cases = []
    for i, (dtype, reduction) in enumerate(
        (d, r) for d in (torch.float64, torch.float32) for r in ("mean", "sum", "none")
    ):
        cases += [
            LinearCase(
                dtype=dtype,
                reduction=reduction,
                gamma=(0.0, 0.5, 2.0)[i % 3],
                alpha=("none", "scalar", "per_class")[(i + 1) % 3],
                ignore=i % 2 == 0,
                chunk_size=(5, 1, None)[i % 3],
            ),  # fmt: skip
            LinearCase(
                lead=(2, 7),
                dtype=dtype,
                reduction=reduction,
                gamma=(2.0, 5.0, 1.0)[i % 3],
                bias=i % 2 == 1,
                ignore=True,
                chunk_size=(4, 14, 3)[i % 3],
                strided=i % 2 == 0,
                ignore_index=(-100, -1)[i % 2],
            ),  # fmt: skip
        ]
    return _seeded(cases, 100)


def unfused_cases() -> list[LinearCase]:
    """Float64, every reduction: the loss must equal ``focal_loss(F.linear(h, W, b))`` to float64's tolerance."""
    cases = [LinearCase(dtype=torch.float64, reduction=r, alpha=a, ignore=True, chunk_size=c)
             for r in ("mean", "sum", "none") for a, c in (("per_class", 3), ("scalar", None))]  # fmt: skip
    return _seeded(cases, 200)


def gradcheck_cases() -> list[LinearCase]:
    """Small float64 heads for finite differences over the hidden states, the weight and the bias."""
    cases = [LinearCase(lead=(5,), features=3, vocabulary=4, dtype=torch.float64, reduction=r, ignore=True,
                        chunk_size=2, gamma=g) for r in ("mean", "sum", "none") for g in (0.5, 2.0)]  # fmt: skip
    return _seeded(cases, 300)


def chunk_cases() -> list[LinearCase]:
    """One input at every chunk size from 1 to past the rows: the result must not depend on it."""
    return [LinearCase(lead=(9,), dtype=torch.float64, reduction=r, chunk_size=c, ignore=True, seed=400)
            for r in ("mean", "none") for c in (1, 2, 4, 9, 64, None)]  # fmt: skip


def ignore_cases() -> list[LinearCase]:
    """Ignored rows whose hidden states are huge (1e30: a padded token's garbage): they must reach neither the loss
    nor any gradient; and every row ignored (a batch of padding: a mean of nothing is 0, not NaN)."""
    cases = [LinearCase(dtype=d, reduction=r, ignore=True, ignored_value=1e30, chunk_size=3)
             for d in (torch.float32, torch.float64) for r in ("mean", "sum", "none")]  # fmt: skip
    cases += [LinearCase(dtype=torch.float32, reduction=r, ignore_every=True, chunk_size=5) for r in ("mean", "none")]
    return _seeded(cases, 500)


def extreme_cases() -> list[LinearCase]:
    """Logits far beyond the softmax's range (gaps of 1e2 to 1e8), and every row confident or hopeless at gaps of
    about 30: finite, and as accurate as the reference."""
    cases = [LinearCase(dtype=d, reduction=r, scale=s, chunk_size=4)
             for d in (torch.float32, torch.float64) for s in (1e2, 1e4, 1e8) for r in ("sum", "none")]  # fmt: skip
    # every row confident (its loss e^-gap tiny: kept to its relative accuracy) or hopeless
    cases += [LinearCase(dtype=d, reduction="none", scale=30.0, targets=t, chunk_size=4)
              for d in (torch.float32, torch.float64) for t in ("argmax", "argmin")]  # fmt: skip
    return _seeded(cases, 600)


def half_cases() -> list[LinearCase]:
    """bfloat16 and float16 heads with many chunks (the weight's gradient summed over 16 of them; over 512 rows of
    one sign, where a sum kept in bfloat16 loses the later rows)."""
    cases = [LinearCase(lead=(32,), features=16, vocabulary=24, dtype=d, reduction=r, chunk_size=2, scale=2.0)
             for d in (torch.bfloat16, torch.float16) for r in ("mean", "none")]  # fmt: skip
    cases.append(LinearCase(lead=(512,), features=4, vocabulary=8, dtype=torch.bfloat16, reduction="sum",
                            chunk_size=1, scale=1.0, positive=True))  # fmt: skip
    return _seeded(cases, 700)


def memory_cases() -> list[LinearCase]:
    """A large vocabulary at two numbers of rows: the memory beyond the inputs and gradients must not grow with N."""
    return [LinearCase(lead=(64,), features=16, vocabulary=4096, dtype=torch.float32, chunk_size=16, seed=800),
            LinearCase(lead=(64,), features=16, vocabulary=4096, dtype=torch.float32, chunk_size=16, seed=801,
                       reduction="none")]  # fmt: skip


def compile_cases() -> list[LinearCase]:
    return [LinearCase(dtype=torch.float32, reduction="mean", alpha="per_class", seed=900),
            LinearCase(dtype=torch.float32, reduction="none", ignore=True, seed=901)]  # fmt: skip


def bad_call(device: str, hidden=None, target=None, **changes) -> tuple[object, object, dict]:
    """A valid call (hidden (4, 3), weight (5, 3), bias (5,)) with what a bad input changes."""
    hidden = torch.randn(4, 3, device=device) if hidden is None else hidden
    target = torch.tensor([0, 4, 2, -100], device=device) if target is None else target
    kwargs = {"weight": torch.randn(5, 3, device=device), "bias": torch.randn(5, device=device), **changes}
    return hidden, target, kwargs


def _cuda(device: str) -> str:
    return "cuda"


BAD_INPUTS = {
    "hidden_list": ("hidden", TypeError, lambda d: bad_call(d, hidden=[[0.0, 1.0, 2.0]] * 4)),
    "hidden_int": ("hidden", TypeError, lambda d: bad_call(d, hidden=torch.zeros(4, 3, dtype=torch.long, device=d))),
    "hidden_scalar": (
        "hidden",
        ValueError,
        lambda d: bad_call(d, hidden=torch.tensor(1.0, device=d), target=torch.tensor(0, device=d)),
    ),  # fmt: skip
    "weight_missing": ("weight", TypeError, lambda d: bad_call(d, weight=None)),
    "weight_features": ("weight", ValueError, lambda d: bad_call(d, weight=torch.randn(5, 4, device=d))),
    "weight_1d": ("weight", ValueError, lambda d: bad_call(d, weight=torch.randn(15, device=d))),
    "weight_one_class": (
        "weight",
        ValueError,
        lambda d: bad_call(
            d, weight=torch.randn(1, 3, device=d), bias=None, target=torch.zeros(4, dtype=torch.long, device=d)
        ),
    ),  # fmt: skip
    "weight_dtype": (
        "weight",
        TypeError,
        lambda d: bad_call(d, weight=torch.randn(5, 3, dtype=torch.float64, device=d)),
    ),
    "bias_shape": ("bias", ValueError, lambda d: bad_call(d, bias=torch.randn(1, device=d))),
    "bias_dtype": ("bias", TypeError, lambda d: bad_call(d, bias=torch.randn(5, dtype=torch.float64, device=d))),
    "bias_list": ("bias", TypeError, lambda d: bad_call(d, bias=[0.0] * 5)),
    "target_float": ("target", TypeError, lambda d: bad_call(d, target=torch.zeros(4, device=d))),
    "target_shape": ("target", ValueError, lambda d: bad_call(d, target=torch.zeros(2, 2, dtype=torch.long, device=d))),
    "target_range": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, 5, 1, 2], device=d))),
    "target_negative": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, -1, 1, 2], device=d))),
    "gamma_negative": ("gamma", ValueError, lambda d: bad_call(d, gamma=-1.0)),
    "alpha_length": ("alpha", ValueError, lambda d: bad_call(d, alpha=[0.5, 0.5])),
    "reduction": ("reduction", ValueError, lambda d: bad_call(d, reduction="avg")),
    "ignore_index_float": ("ignore_index", TypeError, lambda d: bad_call(d, ignore_index=-1.5)),
    "chunk_size_zero": ("chunk_size", ValueError, lambda d: bad_call(d, chunk_size=0)),
    "chunk_size_float": ("chunk_size", TypeError, lambda d: bad_call(d, chunk_size=2.5)),
    "chunk_size_bool": ("chunk_size", TypeError, lambda d: bad_call(d, chunk_size=True)),
    "weight_device": ("weight", ValueError, lambda d: bad_call("cpu", weight=torch.randn(5, 3, device=_cuda(d)))),
}


def bad_inputs() -> list[BadInput]:
    return error_inputs(BAD_INPUTS, needs_cuda=("weight_device",), device_values=("target_range", "target_negative"))
