"""Seeded input generators: every case is a frozen description that builds the same tensors from its seed.

A :class:`Case` says what it needs from an implementation (:meth:`Case.needs`), so "not applicable" is decided from
declared capabilities, never by skipping silently. Suites of cases for each check are built here too, once.
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
    "BadInput",
    "Case",
    "absent_class_cases",
    "bad_call",
    "bad_inputs",
    "beyond_range_cases",
    "create_graph_cases",
    "differential_cases",
    "empty_cases",
    "extreme_cases",
    "garbage_cases",
    "impossible_target_cases",
    "poisoned_cases",
    "random_cases",
]

ALPHAS = ("none", "scalar", "per_class")
REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class Case(SampleCase):
    """One reproducible input: logits of ``shape`` and ``dtype``, targets, and the loss arguments.

    ``margin``/``shift`` make extreme rows: every row is ``shift + noise`` with one class raised by ``margin``;
    even rows target that class (confident, ``p_t -> 1``), odd rows another one (hopeless, ``p_t -> 0``).
    ``beyond_range`` makes the same rows with the raised class at ``+3/4`` of the dtype's largest number and the others
    at ``-3/4`` of it: gaps no number of the dtype can hold.

    Non-finite logits, placed after the rest is drawn (from their own generator, so the finite values stay those of
    the same case without them): ``masked`` is the fraction of non-target logits set to -inf (1.0: every non-target
    class); ``impossible`` the fraction of counted elements whose target logit is -inf (one other class is kept
    finite); ``poison`` puts one logit in every other counted element: ``"nan"`` / ``"inf"`` (+inf) at a non-target
    class, ``"nan-target"`` / ``"inf-target"`` at the target; ``garbage`` fills ignored elements with -inf (a whole row,
    or class 0 alone), NaN and +inf.
    """

    family: ClassVar[str] = "softmax"  # the loss family whose semantics the case is written in

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
    beyond_range: bool = False
    masked: float = 0.0
    impossible: float = 0.0
    poison: str = ""  # "" | nan | inf | nan-target | inf-target
    garbage: bool = False
    target_dtype: torch.dtype = torch.int64  # every integer dtype is accepted
    alpha_form: str = "list"  # how per-class weights are passed: list | tensor | tensor-fp32 | int-tensor | numpy
    gamma_tensor: bool = False  # gamma as a 0-dim float64 tensor (a schedule's)
    seed: int = 0
    label: str = ""

    @property
    def id(self) -> str:
        parts = [self.label] if self.label else []
        parts += ["x".join(map(str, self.shape)), DTYPE_NAMES[self.dtype], f"g{self.gamma:g}"]
        if self.gamma_tensor:
            parts.append("g-tensor")
        if self.alpha_kind != "none":
            parts.append(f"a-{self.alpha_kind}" + (f"-{self.alpha_form}" if self.alpha_form != "list" else ""))
        parts.append(self.reduction)
        if self.target_dtype != torch.int64:
            parts.append(str(self.target_dtype).removeprefix("torch."))
        if self.ignore_fraction:
            parts.append(f"ign{self.ignore_fraction:g}")
        if self.layout != "contiguous":
            parts.append("strided")
        if self.margin is not None:
            parts.append(f"m{self.margin:g}")
        if self.shift:
            parts.append(f"s{self.shift:+g}")
        if self.beyond_range:
            parts.append("beyond-range")
        if self.masked:
            parts.append(f"masked{self.masked:g}")
        if self.impossible:
            parts.append(f"impossible{self.impossible:g}")
        if self.poison:
            parts.append(self.poison)
        if self.garbage:
            parts.append("garbage")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    @property
    def num_classes(self) -> int:
        return self.shape[1]

    @property
    def loss_shape(self) -> tuple[int, ...]:
        """Shape of the ``reduction="none"`` loss: the target's."""
        return self.shape[:1] + self.shape[2:]

    def needs(self) -> set[str]:
        """Capabilities (:data:`focalbench.arena.families.softmax.CAPABILITIES`) an implementation needs here."""
        needs = set()
        if len(self.shape) > 2:
            needs.add("dense")
        if self.ignore_fraction:
            needs.add("ignore_index")
        if self.reduction == "none":
            needs.add("reduction:none")
        if self.alpha_kind != "none":
            needs.add("alpha:scalar" if self.alpha_kind == "zero" else f"alpha:{self.alpha_kind}")
        return needs

    def alpha(self):
        """The ``alpha`` argument: None, 0.25, 0.0 (``"zero"``: every element weighs nothing), or C seeded per-class
        weights in [0.1, 2), passed as :attr:`alpha_form` says (``int-tensor``: integer weights 0..3)."""
        if self.alpha_kind == "none":
            return None
        if self.alpha_kind in ("scalar", "zero"):
            return 0.25 if self.alpha_kind == "scalar" else 0.0
        g = torch.Generator().manual_seed(self.seed + 7919)
        weights = 0.1 + 1.9 * torch.rand(self.num_classes, generator=g, dtype=torch.float64)
        forms = {
            "list": weights.tolist,
            "tensor": lambda: weights,
            "tensor-fp32": lambda: weights.float(),
            "int-tensor": lambda: (weights * 2).round().long(),
            "numpy": weights.numpy,
        }
        return forms[self.alpha_form]()

    def kwargs(self) -> dict:
        gamma = torch.tensor(self.gamma, dtype=torch.float64) if self.gamma_tensor else self.gamma
        return dict(gamma=gamma, alpha=self.alpha(), reduction=self.reduction, ignore_index=self.ignore_index)

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
        if self.margin is None and not self.beyond_range:
            logits = torch.randn(gen_shape, generator=g, dtype=torch.float64)
            if self.layout == "non_contiguous":
                logits = logits.movedim(0, 1)
            logits = logits * self.scale + self.shift
        else:
            # one raised class per row; even rows target it, odd rows target the next class
            rows = torch.arange(n).view(n, *([1] * len(spatial)))
            raised = (rows + torch.zeros(target.shape, dtype=torch.long)) % c
            logits = noise + self.shift
            if self.beyond_range:
                big = 0.75 * torch.finfo(self.dtype).max
                logits = torch.full_like(logits, -big).scatter_(1, raised.unsqueeze(1), big)
            else:
                logits.scatter_add_(
                    1, raised.unsqueeze(1), torch.full_like(raised.unsqueeze(1), self.margin, dtype=logits.dtype)
                )
            target = torch.where(rows % 2 == 0, raised, (raised + 1) % c)
        if self.ignore_fraction:
            drop = torch.rand(target.shape, generator=g) < self.ignore_fraction
            target = torch.where(drop, torch.full_like(target, self.ignore_index), target)
        if self.masked or self.impossible or self.poison or self.garbage:
            logits = self._non_finite(logits, target)
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=self.target_dtype)

    def _non_finite(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits`` (float64, any layout) with this case's -inf, +inf and NaN placed (see the class docstring)."""
        g = torch.Generator().manual_seed(self.seed + 104729)
        logits = logits.clone()  # keeps the layout (strides) of non-contiguous cases
        rows = logits.movedim(1, -1)  # (..., C) view: writes land in ``logits``
        c = rows.shape[-1]
        counted = target != self.ignore_index
        safe = torch.where(counted, target, 0)
        classes = torch.arange(c)
        is_target = classes == safe.unsqueeze(-1)
        is_next = classes == ((safe + 1) % c).unsqueeze(-1)  # a non-target class every row has
        if self.masked:
            rows[(torch.rand(rows.shape, generator=g) < self.masked) & ~is_target] = -math.inf
        if self.impossible:
            hit = counted & (torch.rand(target.shape, generator=g) < self.impossible)
            kept = rows[hit.unsqueeze(-1) & is_next]
            rows[hit.unsqueeze(-1) & is_next] = torch.where(kept == -math.inf, 0.0, kept)
            rows[hit.unsqueeze(-1) & is_target] = -math.inf
        if self.poison:
            element = torch.arange(target.numel()).reshape(target.shape)
            hit = (counted & (element % 2 == 0)).unsqueeze(-1)
            value = math.nan if self.poison.startswith("nan") else math.inf
            rows[hit & (is_target if self.poison.endswith("-target") else is_next)] = value
        if self.garbage:
            ignored = ~counted
            kind = (ignored.flatten().cumsum(0).reshape(target.shape) - 1) % 4  # each kind in turn over the ignored
            rows[(ignored & (kind == 0)).unsqueeze(-1).expand_as(rows)] = -math.inf  # the whole row
            rows[(ignored & (kind == 1)).unsqueeze(-1) & (classes == 0)] = -math.inf  # the safe target's class
            rows[(ignored & (kind == 2)).unsqueeze(-1) & (classes == c - 1)] = math.nan
            rows[(ignored & (kind == 3)).unsqueeze(-1) & (classes <= 1)] = math.inf
        return logits


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
    forms = [  # every accepted form of every argument, and the shapes whose size-1 dims a squeeze would drop
        Case(shape=(16, 7), target_dtype=torch.int32, ignore_fraction=0.2, seed=130),
        Case(shape=(16, 7), target_dtype=torch.uint8, reduction="sum", seed=131),
        Case(shape=(4, 5, 3, 3), target_dtype=torch.int16, reduction="none", seed=132, label="seg"),
        Case(shape=(16, 7), gamma=0.5, gamma_tensor=True, alpha_kind="scalar", seed=133),
        Case(shape=(16, 7), alpha_kind="zero", reduction="sum", seed=134),
        *(Case(shape=(16, 7), dtype=torch.float64, alpha_kind="per_class", alpha_form=form, seed=135 + i)
          for i, form in enumerate(("tensor", "tensor-fp32", "int-tensor", "numpy"))),
        Case(shape=(1, 7), reduction="none", seed=140),
        Case(shape=(1, 7), alpha_kind="per_class", seed=141),
        Case(shape=(5, 3, 1), reduction="none", ignore_fraction=0.2, seed=142),
        Case(shape=(1, 4, 1, 3), reduction="none", seed=143, label="seg"),
        Case(shape=(2, 2, 1, 1), reduction="sum", seed=144, label="seg"),
    ]  # fmt: skip
    wide = [  # half precision at the widths and logit scales of real heads: ImageNet's 1000 classes, long rows
        Case(shape=(8, 1000), dtype=torch.bfloat16, seed=150),
        Case(shape=(8, 1000), dtype=torch.float16, scale=10.0, reduction="sum", seed=151),
        Case(shape=(16, 7), dtype=torch.bfloat16, scale=1e5, reduction="none", seed=152),
        Case(shape=(16, 7), dtype=torch.float16, scale=3e3, reduction="none", seed=153),
        Case(shape=(70000, 2), dtype=torch.float16, scale=10.0, seed=154, label="many"),
    ]
    return _merge(by_gamma_alpha, by_reduction, shapes, strided, dtypes, forms, wide)


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


def absent_class_cases() -> list[Case]:
    """-inf logits off the target: a few per row, most, or every non-target class; every gamma family, alpha form and
    reduction, dense, C = 200 (long rows), every dtype."""
    base = Case(shape=(16, 7), masked=0.3, seed=500)
    return [
        base,
        base.with_(gamma=0.0, seed=501),
        base.with_(gamma=0.5, alpha_kind="scalar", reduction="sum", seed=502),
        base.with_(alpha_kind="per_class", reduction="none", ignore_fraction=0.2, seed=503),
        base.with_(masked=0.8, gamma=5.0, seed=504),
        base.with_(masked=1.0, seed=505),
        base.with_(masked=1.0, gamma=0.25, reduction="none", seed=506),
        Case(shape=(5, 200), masked=0.5, seed=507),
        Case(shape=(4, 200), masked=1.0, reduction="sum", seed=508),
        Case(shape=(3, 7, 4, 5), masked=0.4, ignore_fraction=0.2, reduction="none", seed=509, label="seg"),
        base.with_(dtype=torch.float64, seed=510),
        base.with_(dtype=torch.float16, reduction="sum", seed=511),
        base.with_(dtype=torch.bfloat16, seed=512),
        base.with_(layout="non_contiguous", masked=0.5, seed=513),
        base.with_(masked=1.0, gamma=0.5, seed=514),
    ]


def impossible_target_cases() -> list[Case]:
    """Counted elements whose target logit is -inf (the loss is +inf, the gradient its finite limit)."""
    base = Case(shape=(16, 7), impossible=0.25, reduction="none", seed=520)
    return [
        base,
        base.with_(gamma=0.0, seed=521),
        base.with_(gamma=0.5, alpha_kind="per_class", seed=522),
        base.with_(gamma=5.0, alpha_kind="scalar", reduction="sum", seed=523),
        base.with_(reduction="mean", ignore_fraction=0.2, seed=524),
        base.with_(reduction="mean", seed=525),
        base.with_(masked=0.5, seed=526),
        Case(shape=(5, 200), impossible=0.5, reduction="none", seed=527),
        Case(shape=(3, 7, 4, 5), impossible=0.2, reduction="none", seed=528, label="seg"),
        base.with_(dtype=torch.float64, seed=529),
        base.with_(dtype=torch.float16, seed=530),
    ]


def poisoned_cases() -> list[Case]:
    """NaN or +inf in counted elements, off and at the target; C = 200 (long rows) and dense too."""
    base = Case(shape=(16, 7), reduction="none", seed=540)
    return [
        base.with_(poison="nan"),
        base.with_(poison="nan-target", seed=541),
        base.with_(poison="inf", seed=542),
        base.with_(poison="inf-target", seed=543),
        base.with_(poison="nan", reduction="mean", seed=544),
        base.with_(poison="inf", reduction="sum", gamma=0.5, seed=545),
        Case(shape=(5, 200), poison="nan", reduction="none", seed=546),
        Case(shape=(5, 200), poison="inf", reduction="none", seed=547),
        Case(shape=(3, 7, 4, 5), poison="nan", reduction="none", seed=548, label="seg"),
        base.with_(poison="inf", dtype=torch.float64, seed=549),
    ]


def garbage_cases() -> list[Case]:
    """Ignored elements holding -inf (a whole row, or class 0, the safe index, alone), NaN and +inf."""
    base = Case(shape=(16, 7), ignore_fraction=0.4, garbage=True, seed=560)
    return [
        base,
        base.with_(reduction="none", alpha_kind="per_class", seed=561),
        base.with_(reduction="sum", gamma=0.5, alpha_kind="scalar", seed=562),
        Case(shape=(6, 200), ignore_fraction=0.5, garbage=True, seed=563),
        Case(shape=(3, 7, 4, 5), ignore_fraction=0.3, garbage=True, reduction="none", seed=564, label="seg"),
        base.with_(dtype=torch.float64, seed=565),
        base.with_(dtype=torch.float16, seed=566),
    ]


def beyond_range_cases() -> list[Case]:
    """Gaps beyond the dtype's range: logits at +-3/4 of its largest number, confident and hopeless rows."""
    base = Case(shape=(8, 5), reduction="none", beyond_range=True, seed=580)
    return [
        base,
        base.with_(gamma=0.0, seed=581),
        base.with_(gamma=0.5, alpha_kind="scalar", seed=582),
        base.with_(alpha_kind="per_class", reduction="sum", seed=583),
        base.with_(dtype=torch.float64, seed=584),
        base.with_(dtype=torch.float64, gamma=0.5, alpha_kind="per_class", seed=585),
        base.with_(dtype=torch.float16, seed=586),
        base.with_(dtype=torch.bfloat16, gamma=0.5, seed=587),
    ]


def empty_cases() -> list[Case]:
    """No element at all: (0, C) and (0, C, 4, 4), every reduction."""
    flat, dense = Case(shape=(0, 5), seed=600), Case(shape=(0, 5, 4, 4), seed=603, label="seg")
    return [
        flat,
        flat.with_(reduction="sum", alpha_kind="per_class", seed=601),
        flat.with_(reduction="none", seed=602),
        dense.with_(alpha_kind="scalar"),
        dense.with_(reduction="sum", seed=604),
        dense.with_(reduction="none", alpha_kind="per_class", seed=605),
    ]


def create_graph_cases() -> list[Case]:
    """Small float64 and float32 inputs for double backward (gradient penalties)."""
    return [
        Case(shape=(6, 5), dtype=torch.float64, gamma=2.0, alpha_kind="per_class", scale=1.0, seed=620),
        Case(shape=(6, 5), dtype=torch.float64, gamma=0.5, reduction="sum", scale=1.0, seed=621),
        Case(shape=(2, 4, 3, 2), dtype=torch.float64, gamma=1.5, reduction="none", ignore_fraction=0.25, seed=622),
        Case(shape=(6, 5), dtype=torch.float32, gamma=2.0, alpha_kind="scalar", scale=1.0, seed=623),
        Case(shape=(2, 4, 3, 2), dtype=torch.float32, gamma=0.0, reduction="none", ignore_fraction=0.25, seed=624),
        Case(shape=(8, 5), dtype=torch.float64, gamma=2.0, masked=0.7, scale=1.0, seed=625),
    ]


def compile_cases() -> list[Case]:
    """Inputs for ``torch.compile(fullgraph=True)``: the argument forms a traced call must carry to the kernel."""
    return [
        Case(shape=(6, 5), dtype=torch.float32, gamma=2.0, alpha_kind="per_class", ignore_fraction=0.25, seed=640),
        Case(shape=(2, 4, 3, 2), dtype=torch.float32, gamma=0.5, reduction="none", alpha_kind="scalar", seed=641),
        Case(shape=(6, 5), dtype=torch.float64, gamma=1.5, reduction="sum", masked=0.4, seed=642),
    ]


def differential_cases(seed: int, count: int) -> list[Case]:
    """``count`` random cases drawn from ``seed``, each with its own seed (its repr reproduces it).

    Shapes from an empty batch and single rows to C = 200, dense ones with one or two spatial dims; every dtype, gamma
    family (plus a random one), alpha form and reduction; ignore masks (whole batches too) with or without garbage
    logits; -inf masks up to every non-target class, impossible targets; strided layouts; at most ~7k logits each.
    """
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        classes = rng.choice((2, 3, 5, 7, 20, 130, 200))
        rows = rng.choice((0, 1, 2, 5, 16, 33)) if classes < 100 else rng.choice((0, 1, 3, 5))
        dense = classes < 100 and rng.random() < 0.3
        spatial = tuple(rng.randint(1, 4) for _ in range(rng.choice((1, 2)))) if dense else ()
        ignore_fraction = rng.choice((0.0, 0.0, 0.2, 0.5, 1.0))
        cases.append(
            Case(
                shape=(rows, classes, *spatial),
                dtype=rng.choice((torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16)),
                gamma=rng.choice((*GAMMAS, round(rng.uniform(0.0, 5.0), 3))),
                alpha_kind=rng.choice(ALPHAS),
                reduction=rng.choice(REDUCTIONS),
                ignore_fraction=ignore_fraction,
                garbage=ignore_fraction > 0 and rng.random() < 0.5,
                masked=rng.choice((0.0, 0.0, 0.2, 0.6, 1.0)),
                impossible=rng.choice((0.0, 0.0, 0.3)),
                layout=rng.choice(("contiguous", "contiguous", "non_contiguous")),
                scale=rng.choice((1.0, 3.0)),
                seed=rng.randrange(2**31),
                label="random",
            )
        )
    return cases


#: A valid call — logits (4, 3), targets [0, 1, 2, 1] — with what a bad input changes.
bad_call = valid_call(lambda device: torch.tensor([0, 1, 2, 1], device=device))


#: name -> (argument named in the message, exception, the call on a device)
_BAD_INPUTS: dict[str, tuple[str, type[Exception], Callable[[str], tuple[object, object, dict]]]] = {
    "logits-int": ("logits", TypeError, lambda d: bad_call(d, logits=torch.ones(4, 3, dtype=torch.long, device=d))),
    "logits-list": ("logits", TypeError, lambda d: bad_call(d, logits=[[0.0, 1.0, 2.0]] * 4)),
    "logits-1d": ("logits", ValueError, lambda d: bad_call(d, logits=torch.randn(4, device=d))),
    "target-float": ("target", TypeError, lambda d: bad_call(d, target=torch.tensor([0.0, 1, 2, 1], device=d))),
    "target-shape": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, 1, 2, 1, 0], device=d))),
    "target-dense-shape": ("target", ValueError, lambda d: bad_call(
        d, logits=torch.randn(2, 3, 4, 5, device=d), target=torch.zeros(2, 5, 4, dtype=torch.long, device=d))),
    "target-too-large": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, 1, 3, 1], device=d))),
    "target-negative": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, -1, 2, 1], device=d))),
    "gamma-negative": ("gamma", ValueError, lambda d: bad_call(d, gamma=-0.5)),
    "gamma-nan": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.nan)),
    "reduction-unknown": ("reduction", ValueError, lambda d: bad_call(d, reduction="average")),
    "alpha-negative": ("alpha", ValueError, lambda d: bad_call(d, alpha=[0.5, -0.1, 1.0])),
    "alpha-negative-scalar": ("alpha", ValueError, lambda d: bad_call(d, alpha=-0.25)),
    "alpha-length": ("alpha", ValueError, lambda d: bad_call(d, alpha=[0.25, 0.75])),
    "alpha-shape": ("alpha", ValueError, lambda d: bad_call(d, alpha=torch.ones(3, 1))),  # the seed's (C, 1) column
    "ignore-index-int64": ("ignore_index", ValueError, lambda d: bad_call(d, ignore_index=2**70)),
    "target-device": ("target", ValueError, lambda d: bad_call(d, target=torch.tensor([0, 1, 2, 1]))),
    # the other misspellings of each argument: every type and boundary a wrong value comes in
    "logits-one-class": ("logits", ValueError, lambda d: bad_call(
        d, logits=torch.randn(4, 1, device=d), target=torch.zeros(4, dtype=torch.long, device=d))),
    "logits-complex": ("logits", TypeError, lambda d: bad_call(
        d, logits=torch.randn(4, 3, dtype=torch.cfloat, device=d))),
    "target-bool": ("target", TypeError, lambda d: bad_call(
        d, target=torch.tensor([True, False, True, True], device=d))),
    "target-list": ("target", TypeError, lambda d: bad_call(d, target=[0, 1, 2, 1])),
    "gamma-inf": ("gamma", ValueError, lambda d: bad_call(d, gamma=math.inf)),
    "gamma-str": ("gamma", TypeError, lambda d: bad_call(d, gamma="2")),
    "gamma-bool": ("gamma", TypeError, lambda d: bad_call(d, gamma=True)),
    "gamma-tensor-1d": ("gamma", TypeError, lambda d: bad_call(d, gamma=torch.tensor([2.0]))),
    "reduction-capitalized": ("reduction", ValueError, lambda d: bad_call(d, reduction="Mean")),
    "reduction-none-object": ("reduction", ValueError, lambda d: bad_call(d, reduction=None)),
    "ignore-index-float": ("ignore_index", TypeError, lambda d: bad_call(d, ignore_index=-100.0)),
    "alpha-bool": ("alpha", TypeError, lambda d: bad_call(d, alpha=True)),
    "alpha-str": ("alpha", TypeError, lambda d: bad_call(d, alpha="0.25")),
    "alpha-inf": ("alpha", ValueError, lambda d: bad_call(d, alpha=math.inf)),
    "alpha-nan-weight": ("alpha", ValueError, lambda d: bad_call(d, alpha=[0.5, math.nan, 1.0])),
    "alpha-too-long": ("alpha", ValueError, lambda d: bad_call(d, alpha=[0.25, 0.5, 0.75, 1.0])),
    "alpha-complex": ("alpha", TypeError, lambda d: bad_call(d, alpha=torch.ones(3, dtype=torch.cfloat))),
}  # fmt: skip
_NEEDS_CUDA = {"target-device"}  # a target on the CPU with logits on CUDA
_DEVICE_VALUES = {"target-too-large", "target-negative"}  # wrong by a tensor's values


def bad_inputs() -> list[BadInput]:
    """Every invalid call of the family, with the error it must raise."""
    return error_inputs(_BAD_INPUTS, needs_cuda=_NEEDS_CUDA, device_values=_DEVICE_VALUES)
