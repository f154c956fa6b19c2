r"""The quality family's mutant catalogue: a careful baseline written as a mutant schema, and its realistic bugs.

The baseline is the straightforward correct Quality Focal Loss (:mod:`focalbench.losses.quality.semantics`): its own
guards, then, in float64 plain autograd, per element (logit ``x``, target ``y``) the log-space form

.. math::

    \log s = -\mathrm{softplus}(-x), \quad \log(1 - s) = -\mathrm{softplus}(x), \quad
    \mathrm{BCE} = -y \log s - (1 - y) \log(1 - s),

    d = s (1 - y) - (1 - s) y, \qquad \mathrm{QFL} = e^{\beta \log |d|}\, \mathrm{BCE} \text{ where } d \ne 0,
    \quad 0^\beta \, \mathrm{BCE} \text{ where } d = 0

with ``softplus(x) = logaddexp(x, 0)`` and ``1 - s = exp(log(1 - s))`` (never one minus a rounded probability). Where
``d = 0`` the factor is a constant taken on safe operands on both sides of ``torch.where``, so autograd's derivative
there is the family's definition (the second term 0); at saturated logits ``s`` or ``1 - s`` is exactly 0 and every
product autograd forms is finite (``BCE ~ |x|`` only ever meets a derivative that is exactly 0). It passes every check
of the family with nothing declared (``pytest -m mutants``) and is differentiable twice.

Each ``bug("name")`` below is one mutant: the line as it would be written wrong. The catalogue (:data:`CATALOGUE`)
says what each gets wrong, where such a bug shipped, and the witness on which it is wrong.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F

from focalbench.arena.families.quality.cases import QualityCase, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, Witness, call_witness, guarded_tensors
from focalbench.arena.mutation import contiguous_strides as _contiguous_strides
from focalbench.arena.mutation import elements_witness as _elements
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_REDUCTIONS = ("mean", "sum", "none")






def _check_beta(beta: object, bug) -> float:
    """A finite float >= 0 (a 0-dim floating tensor read as one)."""
    if isinstance(beta, torch.Tensor):
        if bug("beta-tensor-rejected"):
            raise TypeError("beta must be a real number >= 0. Got: Tensor")
        if (beta.dim() != 0 and not bug("beta-tensor-any-shape")) or not beta.is_floating_point():
            raise TypeError(f"beta must be a number or a 0-dim floating tensor. Got: shape {tuple(beta.shape)}")
        beta = float(beta)
    if isinstance(beta, bool):
        if not bug("beta-bool-accepted"):
            raise TypeError(f"beta must be a real number >= 0. Got: bool {beta!r}")
    elif not isinstance(beta, numbers.Real) and not (bug("beta-str-accepted") and isinstance(beta, str)):
        raise TypeError(f"beta must be a real number >= 0. Got: {type(beta).__name__}")
    value = float(beta)  # type: ignore[arg-type]
    wrong = value < 0 if bug("beta-nan-accepted") else not value >= 0
    if (wrong and not bug("beta-negative-accepted")) or (math.isinf(value) and not bug("beta-inf-accepted")):
        raise ValueError(f"beta must be a finite number >= 0. Got: {value!r}")
    return float(int(value)) if bug("integer-beta") else value


def baseline(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    beta: object = 2.0,
    reduction: str = "mean",
    fault: str | None = None,
) -> torch.Tensor:
    """The Quality Focal Loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

    def bug(name: str) -> bool:
        return fault == name

    # --- guards: every argument checked before any work -------------------------------------------------------
    logits, target = guarded_tensors(logits, target, bug)
    if bug("target-labels-one-hot") and not target.is_floating_point() and target.dim() == logits.dim() - 1:
        target = F.one_hot(target.long(), logits.shape[-1] + 1)[..., :-1].float()  # mmdet's background column
    if (bug("target-int-accepted") and not target.is_floating_point() and target.dtype != torch.bool) or (bug("target-bool-accepted")
                                                                       and target.dtype == torch.bool):  # fmt: skip
        target = target.float()
    if not target.is_floating_point():
        raise TypeError(f"target must be a floating-point tensor of scores in [0, 1]. Got: {target.dtype}")
    if bug("target-dtype-must-match") and target.dtype != logits.dtype:
        raise TypeError(f"target must have the logits' dtype {logits.dtype}. Got: {target.dtype}")
    if bug("target-shape-broadcast"):
        target = target.expand_as(logits) if target.dim() == logits.dim() else target
    if bug("target-numel-checked"):
        if target.numel() != logits.numel():
            raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}. Got: {tuple(target.shape)}")
        target = target.reshape(logits.shape)
    if target.shape != logits.shape:
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}. Got: {tuple(target.shape)}")
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: {target.device}")
    if bug("reduction-lowercased") and isinstance(reduction, str):
        reduction = reduction.lower()
    if bug("reduction-none-object-accepted") and reduction is None:
        reduction = "none"
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        if not bug("reduction-unknown-is-mean"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
        reduction = "mean"
    beta = _check_beta(beta, bug)
    values = target.detach()
    if bug("target-nan-accepted"):
        outside = (values < 0) | (values > 1)
    elif bug("target-above-one-accepted"):
        outside = ~(values >= 0)
    elif bug("target-negative-accepted"):
        outside = ~(values <= 1)
    else:
        outside = ~((values >= 0) & (values <= 1))  # NaN fails both comparisons
    if bool(outside.any()):
        raise ValueError(f"target values must be in [0, 1]. Got: {values[outside][:5].tolist()}")
    if bug("target-clamped-in-place"):
        target.clamp_(1e-6, 1 - 1e-6)  # "for stability", in the caller's tensor
    if bug("logits-sigmoid-in-place"):
        logits.data.sigmoid_()  # mmdet's pred.sigmoid(), written in place on the caller's tensor

    # --- float64 elements ---------------------------------------------------------------------------------------
    if bug("computes-in-float32"):
        x = logits.float()
    elif bug("half-arithmetic") and logits.dtype in (torch.float16, torch.bfloat16):
        x = logits  # computed in its own dtype, as mmdet's fp16 training did (mmdet#5090)
    elif bug("bfloat16-through-float16") and logits.dtype == torch.bfloat16:
        x = logits.half().double()
    else:
        x = logits.double()
    y = target.float().to(x.dtype) if bug("target-in-float32") else target.to(x.dtype)
    if bug("strides-ignored"):
        x = torch.as_strided(x, x.shape, _contiguous_strides(x.shape))
    if bug("target-read-as-contiguous"):
        y = torch.as_strided(y, y.shape, _contiguous_strides(y.shape))
    if bug("scalar-unsqueezed") and x.dim() == 0:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if bug("logits-clamped"):
        x = x.clamp(-100, 100)

    # --- log s, log(1 - s), BCE ---------------------------------------------------------------------------------
    if bug("log-of-sigmoid"):
        log_s, log_q = torch.sigmoid(x).log(), torch.sigmoid(-x).log()
    elif bug("log-plus-eps"):
        log_s, log_q = (torch.sigmoid(x) + 1e-8).log(), (torch.sigmoid(-x) + 1e-8).log()
    elif bug("s-clamped"):
        clamped = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
        log_s, log_q = clamped.log(), (1 - clamped).log()
    elif bug("softplus-default-threshold"):
        log_s, log_q = -F.softplus(-x), -F.softplus(x)  # F.softplus returns x itself past x = 20
    elif bug("softplus-naive"):
        log_s, log_q = -torch.log(1 + torch.exp(-x)), -torch.log(1 + torch.exp(x))
    else:
        log_s, log_q = -_softplus(-x), -_softplus(x)
    s, q = log_s.exp(), log_q.exp()
    hard = (y > 0).to(x.dtype)
    bce_target = hard if bug("hard-label-in-bce") else (1 - y if bug("bce-target-flipped") else y)
    if bug("bce-of-probabilities"):
        bce = F.binary_cross_entropy(torch.sigmoid(x), bce_target, reduction="none")  # log clamped at -100
    elif bug("bce-positive-term-only"):
        bce = -bce_target * log_s
    elif bug("bce-negative-term-only"):
        bce = -(1 - bce_target) * log_q
    else:
        bce = -(bce_target * log_s + (1 - bce_target) * log_q)
    if bug("bce-detached"):
        bce = bce.detach()

    # --- the quality factor |y - s|^beta --------------------------------------------------------------------------
    if bug("scale-by-sigmoid"):
        d = s  # mmdet's negatives' factor applied to every element
    elif bug("hard-label-in-factor"):
        d = s * (1 - hard) - q * hard
    elif bug("difference-as-y-minus-sigmoid"):
        d = y - torch.sigmoid(x)  # one minus a rounded probability at confident positives
    else:
        d = s * (1 - y) - q * y
    exponent = beta + 1 if bug("beta-plus-one") else beta - 1 if bug("beta-minus-one") else beta
    if bug("beta-ignored"):
        exponent = 2.0
    magnitude = d.abs()
    if bug("no-abs"):
        factor = d.pow(exponent)
    elif bug("pow-at-zero"):
        factor = magnitude.pow(exponent)  # pow's backward at 0 is inf for 0 < beta < 1, abs's 0: NaN
    elif bug("zero-power-nan"):
        factor = torch.exp(exponent * magnitude.log())  # 0^0 as exp(0 * -inf) = NaN; the backward 0 / 0
    else:
        nonzero = magnitude > 0
        at_zero = torch.zeros((), dtype=x.dtype, device=x.device).pow(exponent)
        factor = torch.where(nonzero, torch.exp(exponent * torch.where(nonzero, magnitude, 1.0).log()), at_zero)
    if bug("factor-detached"):
        factor = factor.detach()
    loss = factor * bce
    if bug("nan-to-num"):
        loss = torch.nan_to_num(loss)

    # --- reduction ----------------------------------------------------------------------------------------------
    count = max(loss.numel(), 1)
    if reduction == "none":
        if bug("none-flattened"):
            result = loss.reshape(-1)
        elif bug("none-summed-over-classes"):
            result = loss.sum(dim=1) if loss.dim() > 1 else loss  # mmdet's per-anchor loss
        else:
            result = loss
    elif reduction == "sum":
        result = loss.mean() if bug("sum-is-mean") else loss.sum()
    elif bug("mean-over-anchors"):
        result = loss.sum() / max(loss.shape[0] if loss.dim() else 1, 1)  # mmdet's "mean" without avg_factor
    elif bug("mean-over-positives"):
        result = loss.sum() / (y > 0).sum().clamp_min(1)  # GFL's avg_factor
    elif bug("mean-nan-when-empty"):
        result = loss.mean()
    elif bug("mean-accumulated-in-dtype"):
        result = loss.to(logits.dtype).sum() / count
    else:
        result = loss.sum() / count
    if bug("result-in-float32"):
        return result.float()
    if bug("result-in-float64"):
        return result
    if bug("returns-python-float") and result.dim() == 0:
        return result.item()  # type: ignore[return-value]
    if bug("loss-detached"):
        return result.detach().to(logits.dtype)
    return result.to(logits.dtype)


# --- the catalogue ----------------------------------------------------------------------------------------------------


def _case(**fields) -> Witness:
    return Witness(case=QualityCase(**{"shape": (16, 7), "seed": 7100, **fields}))


_call = functools.partial(call_witness, bad_call)  # a witness calling bad_call with one argument changed




_F64, _BF16, _F16 = torch.float64, torch.bfloat16, torch.float16
_MMDET = "mmdet"
_TARGET = [[0.75, 0.0, 0.0]] * 4
_EXPLOSION = dict(shape=(64, 80), dtype=_F16, magnitude=1e3, reduction="mean", positives=0.01)

#: (name, kind, bug, witness, seen in)
_MUTANTS: tuple[tuple[str, str, str, Witness, str], ...] = (
    # arguments: a bad one accepted, or a good one refused
    ("logits-int-accepted", "arguments", "integer logits computed on", _call(logits=torch.ones(4, 3, dtype=torch.long)), ""),
    ("logits-list-converted", "arguments", "logits as a list converted with torch.as_tensor", _call(logits=[[0.0, 1.0, 2.0]] * 4), ""),
    ("bfloat16-refused", "arguments", "bfloat16 logits refused (a dtype list without it)", _case(dtype=_BF16), ""),
    ("target-list-converted", "arguments", "a target list converted with torch.as_tensor", _call(target=_TARGET), ""),
    ("target-int-accepted", "arguments", "integer targets taken as floats", _call(target=torch.zeros(4, 3, dtype=torch.long)), ""),
    ("target-bool-accepted", "arguments", "boolean targets taken as 0/1", _call(target=torch.tensor(_TARGET).bool()), ""),
    ("target-labels-one-hot", "arguments", "class labels (N,) one-hot encoded silently, the scores dropped", _call(target=torch.tensor([0, 3, 1, 3])), _MMDET),
    ("target-dtype-must-match", "arguments", "a target of another floating dtype than the logits' refused", _case(target_dtype=_F64), ""),
    ("target-shape-broadcast", "arguments", "a target of another shape broadcast silently ((4, 1) against (4, 3))", _call(target=torch.full((4, 1), 0.5)), ""),
    ("target-numel-checked", "arguments", "the target's shape checked by its number of elements: a transposed target accepted", _call(target=torch.zeros(3, 4)), ""),
    ("target-above-one-accepted", "arguments", "target values checked for >= 0 only", _call(target=torch.tensor(_TARGET) * 2), ""),
    ("target-negative-accepted", "arguments", "target values checked for <= 1 only", _call(target=-torch.tensor(_TARGET)), ""),
    ("target-nan-accepted", "arguments", "target range checked with (t < 0) | (t > 1): NaN passes", _call(target=torch.full((4, 3), math.nan)), ""),
    ("beta-negative-accepted", "arguments", "beta < 0 accepted", _call(beta=-0.5), ""),
    ("beta-nan-accepted", "arguments", "beta checked with beta < 0: NaN passes", _call(beta=math.nan), ""),
    ("beta-inf-accepted", "arguments", "beta = inf accepted", _call(beta=math.inf), ""),
    ("beta-str-accepted", "arguments", "beta as a string converted with float()", _call(beta="2"), ""),
    ("beta-bool-accepted", "arguments", "beta=True taken as 1.0", _call(beta=True), ""),
    ("beta-tensor-rejected", "arguments", "a 0-dim tensor beta (a module's) refused", _case(beta=0.5, beta_tensor=True), ""),
    ("beta-tensor-any-shape", "arguments", "a beta tensor of one element and any shape read with float()", _call(beta=torch.tensor([2.0])), ""),
    ("reduction-unknown-is-mean", "arguments", "an unknown reduction falls through to the mean", _call(reduction="average"), ""),
    ("reduction-lowercased", "arguments", "reduction compared case-insensitively ('Mean' accepted)", _call(reduction="Mean"), ""),
    ("reduction-none-object-accepted", "arguments", "reduction=None taken as 'none'", _call(reduction=None), ""),
    # reductions
    ("sum-is-mean", "reduction", "'sum' returns the mean", _case(reduction="sum"), ""),
    ("mean-over-anchors", "reduction", "'mean' divides by the number of anchors (mmdet's mean of per-anchor sums), not of elements", _case(reduction="mean"), _MMDET),
    ("mean-over-positives", "reduction", "'mean' divides by the number of positives (GFL's avg_factor)", _case(reduction="mean"), _MMDET),
    ("mean-nan-when-empty", "reduction", "the mean of no element is 0 / 0 = NaN", _case(shape=(0, 80), reduction="mean"), ""),
    ("mean-accumulated-in-dtype", "precision", "the mean summed in float16: overflows past 65504", _case(**_EXPLOSION), ""),
    ("none-flattened", "output", "'none' returns the flattened loss", _case(reduction="none"), ""),
    ("none-summed-over-classes", "output", "'none' returns mmdet's per-anchor loss (summed over the classes)", _case(reduction="none"), _MMDET),
    # the quality factor
    ("beta-plus-one", "focal term", "the factor |y - s|^(beta + 1)", _case(), ""),
    ("beta-minus-one", "focal term", "the factor |y - s|^(beta - 1)", _case(), ""),
    ("beta-ignored", "focal term", "the factor squared whatever beta is (the paper's default baked in)", _case(beta=0.5), ""),
    ("integer-beta", "focal term", "beta truncated to an int", _case(beta=0.5), ""),
    ("scale-by-sigmoid", "focal term", "the factor sigmoid(x)^beta for every element (mmdet's negatives' factor at the positives too)", _case(), _MMDET),
    ("hard-label-in-factor", "focal term", "the factor |1[y > 0] - s|^beta: the focal loss's hard label, not the score", _case(), ""),
    ("hard-label-in-bce", "focal term", "BCE against 1[y > 0] instead of the soft score", _case(), ""),
    ("bce-target-flipped", "focal term", "BCE against 1 - y", _case(), ""),
    ("bce-positive-term-only", "focal term", "BCE as -y log s: the negative term missing", _case(), ""),
    ("bce-negative-term-only", "focal term", "BCE as -(1 - y) log(1 - s): the positive term missing", _case(), ""),
    ("no-abs", "focal term", "(y - s)^beta without the absolute value: NaN for a fractional beta where y < s", _case(beta=0.5), ""),
    ("zero-power-nan", "stability", "|y - s|^beta as exp(beta log|y - s|): NaN where s = y (0^0, and a 0 / 0 backward)", _case(targets="equal", beta=0.0, reduction="none"), ""),
    ("pow-at-zero", "gradient", "|y - s|^beta by pow under autograd: a NaN gradient where s = y for 0 < beta < 1", _case(targets="equal", beta=0.5, reduction="none"), _MMDET),
    ("difference-as-y-minus-sigmoid", "precision", "y - sigmoid(x) formed from the rounded probability: a confident positive's factor 0", _elements(40.0, 1.0), _MMDET),
    ("factor-detached", "gradient", "the quality factor detached: its derivative missing from the gradient", _case(), ""),
    ("bce-detached", "gradient", "BCE detached: only the factor's derivative left", _case(), ""),
    ("loss-detached", "gradient", "the loss returned detached: no gradient", _case(), ""),
    # stability
    ("log-of-sigmoid", "stability", "log(sigmoid(x)) instead of logsigmoid: -inf (and 0 * -inf) at saturated logits, digits lost before", _elements(30.0, 1.0), ""),
    ("log-plus-eps", "stability", "log(s + 1e-8)", _case(dtype=_F64), ""),
    ("s-clamped", "stability", "s clamped to [1e-7, 1 - 1e-7]", _case(magnitude=30.0), ""),
    ("bce-of-probabilities", "stability", "F.binary_cross_entropy(sigmoid(x), y): its log clamped at -100", _case(magnitude=1e3), ""),
    ("softplus-default-threshold", "precision", "F.softplus, which returns x itself past x = 20: exp(-x) lost", _case(dtype=_F64, magnitude=20.0, targets="hard", reduction="none"), ""),
    ("softplus-naive", "stability", "softplus as log(1 + exp(x)): inf at x = 1e4", _case(magnitude=1e4, targets="hard", reduction="sum"), ""),
    ("logits-clamped", "stability", "logits clamped to [-100, 100]", _case(magnitude=1e3), ""),
    ("nan-to-num", "stability", "torch.nan_to_num on the loss: NaN hidden as 0", _case(nan=0.2, reduction="none"), ""),
    # precision
    ("computes-in-float32", "precision", "computed in float32 whatever the logits' dtype", _case(dtype=_F64), ""),
    ("half-arithmetic", "precision", "half-precision logits computed in their own dtype: the fp16 loss explodes", _case(**_EXPLOSION), "mmdet#5090"),
    ("bfloat16-through-float16", "precision", "bfloat16 logits converted to float16: inf beyond 65504", _case(shape=(8, 100), dtype=_BF16, magnitude=1e5, reduction="sum"), ""),
    ("target-in-float32", "precision", "the target converted to float32: 1 - 1e-7 loses its digits in float64", _case(dtype=_F64, targets="edge", reduction="none"), ""),
    ("result-in-float32", "output", "the result returned in float32", _case(dtype=_F64), ""),
    ("result-in-float64", "output", "the result returned in the compute dtype (float64)", _case(), ""),
    # layout
    ("strides-ignored", "layout", "the logits' storage read as if contiguous", _case(layout="non_contiguous", reduction="none"), ""),
    ("target-read-as-contiguous", "layout", "the target's storage read as if contiguous", _case(layout="non_contiguous", reduction="none"), ""),
    ("scalar-unsqueezed", "output", "0-dim logits made (1,): the 'none' loss of a scalar is (1,)", _case(shape=(), reduction="none"), ""),
    ("returns-python-float", "output", "the reduced loss returned as a Python float (.item())", _case(reduction="sum"), ""),
    # the caller's tensors
    ("target-clamped-in-place", "inputs", "the target clamped to [1e-6, 1 - 1e-6] in the caller's tensor", _case(), ""),
    ("logits-sigmoid-in-place", "inputs", "sigmoid taken in place on the caller's logits (pred.sigmoid_())", _case(), ""),
)  # fmt: skip

#: The quality family's catalogue: the baseline above and its mutants.
CATALOGUE = Catalogue(
    family="quality",
    baseline=baseline,
    mutants=tuple(Mutant(name, kind, bug, witness, seen_in) for name, kind, bug, witness, seen_in in _MUTANTS),
)
