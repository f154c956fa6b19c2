r"""The varifocal family's mutant catalogue: a careful baseline written as a mutant schema, and its realistic bugs.

The baseline is the straightforward correct varifocal loss (:mod:`focalbench.losses.varifocal.semantics`): its own
guards, then, in float64 plain autograd, per element (logit ``x``, target ``q``)

.. math::

    \log p = -\mathrm{softplus}(-x), \qquad \mathrm{BCE} = (1 - q)\,\mathrm{softplus}(x) + q\,\mathrm{softplus}(-x),

    w = \begin{cases} q \text{ (or 1)} & q > 0 \\ \alpha\, e^{\gamma \log p} & q = 0 \end{cases}, \qquad
    \mathrm{VFL} = w\, \mathrm{BCE}

with ``softplus(x) = logaddexp(x, 0)`` (exact at every finite logit) and, with ``detach_weight``, the weight detached
(RT-DETR). It passes every check of the family with nothing declared (``pytest -m mutants``) and is differentiable
twice.

Each ``bug("name")`` below is one mutant: the line as it would be written wrong. The catalogue (:data:`CATALOGUE`)
says what each gets wrong, where such a bug shipped, and the witness on which it is wrong.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F

from focalbench.arena.families.varifocal.cases import VarifocalCase, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, Witness, call_witness
from focalbench.arena.mutation import contiguous_strides as _contiguous_strides
from focalbench.arena.mutation import elements_witness as _elements
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_REDUCTIONS = ("mean", "sum", "none")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)






def _check_alpha(alpha: object, bug) -> float:
    """A finite float >= 0 (a 0-dim floating tensor read as one)."""
    if isinstance(alpha, torch.Tensor):
        if bug("alpha-tensor-rejected"):
            raise TypeError("alpha must be a real number >= 0. Got: Tensor")
        if alpha.dim() != 0 or not alpha.is_floating_point():
            raise TypeError(f"alpha must be a number or a 0-dim floating tensor. Got: shape {tuple(alpha.shape)}")
        alpha = float(alpha)
    if isinstance(alpha, bool):
        if not bug("alpha-bool-accepted"):
            raise TypeError(f"alpha must be a real number >= 0. Got: bool {alpha!r}")
    elif not isinstance(alpha, numbers.Real) and not (bug("alpha-str-accepted") and isinstance(alpha, str)):
        raise TypeError(f"alpha must be a real number >= 0. Got: {type(alpha).__name__}")
    value = float(alpha)  # type: ignore[arg-type]
    negative = value < 0 if bug("alpha-nan-accepted") else not value >= 0
    if (negative and not bug("alpha-negative-accepted")) or (math.isinf(value) and not bug("alpha-inf-accepted")):
        raise ValueError(f"alpha must be a finite number >= 0. Got: {value!r}")
    if bug("alpha-above-one-rejected") and value > 1:
        raise ValueError(f"alpha must be a number in [0, 1]. Got: {value!r}")
    return value


def _check_gamma(gamma: object, bug) -> float:
    """A finite float >= 0 (a 0-dim floating tensor read as one)."""
    if isinstance(gamma, torch.Tensor):
        if bug("gamma-tensor-rejected"):
            raise TypeError("gamma must be a real number >= 0. Got: Tensor")
        if gamma.dim() != 0 or not gamma.is_floating_point():
            raise TypeError(f"gamma must be a number or a 0-dim floating tensor. Got: shape {tuple(gamma.shape)}")
        gamma = float(gamma)
    if isinstance(gamma, bool):
        if not bug("gamma-bool-accepted"):
            raise TypeError(f"gamma must be a real number >= 0. Got: bool {gamma!r}")
    elif not isinstance(gamma, numbers.Real) and not (bug("gamma-str-accepted") and isinstance(gamma, str)):
        raise TypeError(f"gamma must be a real number >= 0. Got: {type(gamma).__name__}")
    value = float(gamma)  # type: ignore[arg-type]
    negative = value < 0 if bug("gamma-nan-accepted") else not value >= 0
    if (negative and not bug("gamma-negative-accepted")) or (math.isinf(value) and not bug("gamma-inf-accepted")):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {value!r}")
    return float(int(value)) if bug("integer-gamma") else value


def _check_flag(name: str, value: object, truthy: bool) -> bool:
    """A bool; ``truthy``: any value read with ``if value:`` (the mutant)."""
    if truthy:
        return bool(value)
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False). Got: {type(value).__name__} {value!r}")
    return value


def baseline(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: object = 0.75,
    gamma: object = 2.0,
    iou_weighted: object = True,
    detach_weight: object = False,
    reduction: str = "mean",
    fault: str | None = None,
) -> torch.Tensor:
    """The varifocal loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

    def bug(name: str) -> bool:
        return fault == name

    # --- guards: every argument checked before any work -------------------------------------------------------
    if not isinstance(logits, torch.Tensor):
        if not bug("logits-list-converted"):
            raise TypeError(f"logits must be a torch.Tensor. Got: {type(logits).__name__}")
        logits = torch.as_tensor(logits, dtype=torch.float32)
    if not isinstance(target, torch.Tensor):
        if not bug("target-list-converted"):
            raise TypeError(f"target must be a torch.Tensor. Got: {type(target).__name__}")
        target = torch.as_tensor(target, dtype=logits.dtype, device=logits.device)
    if logits.dtype not in _FLOAT_DTYPES and not bug("logits-int-accepted"):
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64. Got: {logits.dtype}")
    integer_taken = bug("target-int-accepted") and target.dtype != torch.bool
    bool_taken = bug("target-bool-accepted") and target.dtype == torch.bool
    if not target.is_floating_point() and not (integer_taken or bool_taken):
        raise TypeError(f"target must be a floating-point tensor of IoU-aware scores in [0, 1]. Got: {target.dtype}")
    if bug("target-numel-checked"):
        wrong_shape = target.numel() != logits.numel()
    elif bug("target-shape-broadcast"):
        wrong_shape = target.dim() != logits.dim() or any(
            a not in (b, 1) for a, b in zip(target.shape, logits.shape, strict=True)
        )
    else:
        wrong_shape = tuple(target.shape) != tuple(logits.shape)
    if wrong_shape:
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}. Got: {tuple(target.shape)}")
    if target.device != logits.device and not bug("target-device-ignored"):
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: {target.device}")
    if target.requires_grad and torch.is_grad_enabled() and not bug("target-requires-grad-accepted"):
        raise ValueError("target must not require grad: the loss is differentiable with respect to the logits only")
    if bug("reduction-lowercased") and isinstance(reduction, str):
        reduction = reduction.lower()
    if bug("reduction-none-object-accepted") and reduction is None:
        reduction = "none"
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        if not bug("reduction-unknown-is-mean"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
        reduction = "mean"
    iou_weighted = _check_flag("iou_weighted", iou_weighted, bug("iou-weighted-truthy"))
    detach_weight = _check_flag("detach_weight", detach_weight, bug("detach-weight-truthy"))
    alpha = _check_alpha(alpha, bug)
    gamma = _check_gamma(gamma, bug)
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
        target.data.clamp_(1e-6, 1 - 1e-6)  # "for stability", in the caller's tensor
    if bug("logits-sanitized-in-place"):
        logits.data.nan_to_num_()

    # --- float64 elements ---------------------------------------------------------------------------------------
    if bug("computes-in-float32"):
        x = logits.float()
    elif bug("half-arithmetic") and logits.dtype in (torch.float16, torch.bfloat16):
        x = logits  # computed in its own dtype
    else:
        x = logits.double()
    if bug("target-through-logits-dtype"):
        q = target.to(logits.dtype).to(x.dtype)
    elif bug("target-in-float32"):
        q = target.float().to(x.dtype)
    else:
        q = target.to(x.dtype)
    if bug("strides-ignored"):
        x = torch.as_strided(x, x.shape, _contiguous_strides(x.shape))
    if bug("target-read-as-contiguous"):
        q = torch.as_strided(q, q.shape, _contiguous_strides(q.shape))
    if bug("scalar-unsqueezed") and x.dim() == 0:
        x, q = x.unsqueeze(0), q.unsqueeze(0)
    if bug("logits-clamped"):
        x = x.clamp(-100, 100)

    # --- BCE(x, q) ---------------------------------------------------------------------------------------------
    if bug("softplus-naive"):
        softplus_x, softplus_minus_x = torch.log(1 + torch.exp(x)), torch.log(1 + torch.exp(-x))
    elif bug("softplus-default-threshold"):
        softplus_x, softplus_minus_x = F.softplus(x), F.softplus(-x)  # F.softplus returns x itself past x = 20
    else:
        softplus_x, softplus_minus_x = _softplus(x), _softplus(-x)
    if bug("bce-log-of-sigmoid"):
        bce = -(q * torch.sigmoid(x).log() + (1 - q) * (1 - torch.sigmoid(x)).log())
    elif bug("bce-log-plus-eps"):
        bce = -(q * (torch.sigmoid(x) + 1e-8).log() + (1 - q) * (1 - torch.sigmoid(x) + 1e-8).log())
    elif bug("bce-p-clamped"):
        p_clamped = torch.sigmoid(x).clamp(1e-7, 1 - 1e-7)
        bce = -(q * p_clamped.log() + (1 - q) * (1 - p_clamped).log())
    elif bug("bce-monai-form"):
        bce = x - x * q - F.logsigmoid(x)
    elif bug("bce-missing-log1p"):
        bce = x.clamp_min(0) - x * q
    elif bug("bce-wrong-sign"):
        bce = x * q - x.clamp_min(0) - torch.log1p(torch.exp(-x.abs()))
    elif bug("bce-target-swapped"):  # BCE(x, 1 - q): the target's complement
        bce = q * softplus_x + (1 - q) * softplus_minus_x
    else:
        bce = (1 - q) * softplus_x + q * softplus_minus_x

    # --- the weight --------------------------------------------------------------------------------------------
    # past x = 700, p^gamma = exp(-gamma e^-x) is 1 in float64 and its derivative times BCE (~x) below 1e-300: taken
    # as the constant 1 (double where), else the backward carries alpha gamma BCE ~ x to softplus(-x), whose
    # derivative is 0, and alpha gamma x overflows near the largest float64
    far = torch.zeros_like(x, dtype=torch.bool) if bug("no-guard-at-the-largest-logit") else x.detach() > 700
    log_p = -_softplus(-torch.where(far, 0.0, x))
    if bug("focal-pow-of-sigmoid"):
        focal = torch.sigmoid(x).pow(gamma)  # mmdet's |sigmoid(x) - 0|^gamma: pow's backward at p = 0
    elif bug("focal-of-one-minus-p"):
        focal = torch.exp(gamma * -softplus_x)
    elif bug("gamma-off-by-one"):
        focal = torch.where(far, 1.0, torch.exp((gamma + 1) * log_p))
    else:
        focal = torch.where(far, 1.0, torch.exp(gamma * log_p))
    detached = not detach_weight if bug("detach-flag-inverted") else detach_weight
    if bug("weight-always-detached"):
        detached = True
    if bug("weight-never-detached"):
        detached = False
    if detached:
        focal = focal.detach()
    if bug("alpha-complement"):
        negative_weight = (1 - alpha) * focal
    elif bug("alpha-twice"):
        negative_weight = alpha * alpha * focal
    else:
        negative_weight = alpha * focal
    if bug("iou-weighted-ignored"):
        positive_weight = q
    elif bug("iou-weighted-inverted"):
        positive_weight = torch.ones_like(q) if iou_weighted else q
    elif bug("positive-weight-one"):
        positive_weight = torch.ones_like(q)
    else:
        positive_weight = q if iou_weighted else torch.ones_like(q)
    if bug("alpha-on-positives"):
        positive_weight = alpha * positive_weight
    if bug("gamma-on-positives"):  # |p - q|^gamma at the positives too (the VarifocalNet#8 reading)
        positive_weight = positive_weight * (torch.sigmoid(x) - q).abs().pow(gamma)
    if bug("positive-only-at-one"):
        positive = q == 1
    elif bug("positive-above-epsilon"):
        positive = q > 1e-6
    else:
        positive = q > 0
    weight = torch.where(positive, positive_weight, negative_weight)
    loss = weight * bce

    # --- reduction ----------------------------------------------------------------------------------------------
    count = max(loss.numel(), 1)
    if reduction == "none":
        if bug("none-flattened"):
            result = loss.reshape(-1)
        elif bug("none-squeezed"):
            result = loss.squeeze()
        else:
            result = loss
    elif reduction == "sum":
        result = loss.mean() if bug("sum-is-mean") else loss.sum()
    elif bug("mean-over-positives"):  # mmdet's avg_factor (the number of positives) taken as the mean
        result = loss.sum() / (q > 0).sum().clamp_min(1)
    elif bug("mean-ultralytics"):  # ultralytics' .mean(1).sum() taken as the mean
        result = loss.mean(1).sum() if loss.dim() > 1 else loss.mean()
    elif bug("mean-with-eps"):  # mmdet's sum / (avg_factor + eps) with avg_factor the number of elements
        result = loss.sum() / (count + torch.finfo(torch.float32).eps)
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
    return Witness(case=VarifocalCase(**{"shape": (16, 7), "seed": 7100, **fields}))


_call = functools.partial(call_witness, bad_call)  # a witness calling bad_call with one argument changed




_F64, _F16, _BF16 = torch.float64, torch.float16, torch.bfloat16
_MMDET, _ULTRALYTICS, _VFNET, _MONAI = "mmdet", "ultralytics", "VarifocalNet", "MONAI"
_TARGET = [[0.8, 0.0, 0.0]] * 4

#: (name, kind, bug, witness, seen in)
_MUTANTS: tuple[tuple[str, str, str, Witness, str], ...] = (
    # arguments: a bad one accepted, or a good one refused
    ("logits-int-accepted", "arguments", "integer logits computed on", _call(logits=torch.ones(4, 3, dtype=torch.long)), ""),
    ("logits-list-converted", "arguments", "logits as a list converted with torch.as_tensor", _call(logits=[[0.0, 1.0, 2.0]] * 4), ""),
    ("target-list-converted", "arguments", "a target list converted with torch.as_tensor", _call(target=_TARGET), ""),
    ("target-int-accepted", "arguments", "integer targets taken as floats", _call(target=torch.tensor([[1, 0, 0]] * 4)), ""),
    ("target-bool-accepted", "arguments", "boolean targets (ultralytics' label alone) taken as 0/1", _call(target=torch.tensor(_TARGET).bool()), ""),
    ("target-shape-broadcast", "arguments", "a target of another shape broadcast silently ((4, 1) against (4, 3))", _call(target=torch.full((4, 1), 0.5)), ""),
    ("target-numel-checked", "arguments", "the target's shape checked by its number of elements: a transposed target accepted", _call(target=torch.zeros(3, 4)), ""),
    ("target-above-one-accepted", "arguments", "target values checked for >= 0 only", _call(target=torch.tensor(_TARGET) * 2), ""),
    ("target-negative-accepted", "arguments", "target values checked for <= 1 only", _call(target=-torch.tensor(_TARGET)), ""),
    ("target-nan-accepted", "arguments", "target range checked with (q < 0) | (q > 1): NaN passes", _call(target=torch.full((4, 3), math.nan)), ""),
    ("target-device-ignored", "arguments", "the target's device not checked: the call fails deep in the arithmetic", _call(target=torch.zeros(4, 3, device="meta")), ""),
    ("target-requires-grad-accepted", "arguments", "a target that requires grad accepted: its gradient silently dropped", _call(target=torch.tensor(_TARGET).requires_grad_(True)), ""),
    ("alpha-negative-accepted", "arguments", "alpha < 0 accepted (negatives pushed towards higher scores)", _call(alpha=-0.25), ""),
    ("alpha-nan-accepted", "arguments", "alpha checked with alpha < 0: NaN passes", _call(alpha=math.nan), ""),
    ("alpha-inf-accepted", "arguments", "alpha = inf accepted", _call(alpha=math.inf), ""),
    ("alpha-above-one-rejected", "arguments", "alpha > 1 refused, as if it were the sigmoid focal loss's fraction", _case(alpha=2.5, reduction="none"), ""),
    ("alpha-str-accepted", "arguments", "alpha as a string converted with float()", _call(alpha="0.75"), ""),
    ("alpha-bool-accepted", "arguments", "alpha=True taken as 1.0", _call(alpha=True), ""),
    ("alpha-tensor-rejected", "arguments", "a 0-dim tensor alpha (a module's buffer) refused", _case(alpha_tensor=True, alpha=0.3), ""),
    ("gamma-negative-accepted", "arguments", "gamma < 0 accepted", _call(gamma=-0.5), ""),
    ("gamma-nan-accepted", "arguments", "gamma checked with gamma < 0: NaN passes", _call(gamma=math.nan), ""),
    ("gamma-inf-accepted", "arguments", "gamma = inf accepted", _call(gamma=math.inf), ""),
    ("gamma-str-accepted", "arguments", "gamma as a string converted with float()", _call(gamma="2"), ""),
    ("gamma-bool-accepted", "arguments", "gamma=True taken as 1.0", _call(gamma=True), ""),
    ("gamma-tensor-rejected", "arguments", "a 0-dim tensor gamma (a schedule's) refused", _case(gamma_tensor=True, gamma=0.5), ""),
    ("iou-weighted-truthy", "arguments", "iou_weighted read with `if iou_weighted:`: the string 'False' weights by q", _call(iou_weighted="False"), ""),
    ("detach-weight-truthy", "arguments", "detach_weight read with `if detach_weight:`: 0 and None accepted", _call(detach_weight=0), ""),
    ("reduction-unknown-is-mean", "arguments", "an unknown reduction falls through to the mean", _call(reduction="average"), ""),
    ("reduction-lowercased", "arguments", "reduction compared case-insensitively ('Mean' accepted)", _call(reduction="Mean"), ""),
    ("reduction-none-object-accepted", "arguments", "reduction=None taken as 'none'", _call(reduction=None), ""),
    # reductions
    ("sum-is-mean", "reduction", "'sum' returns the mean", _case(reduction="sum"), ""),
    ("mean-over-positives", "reduction", "the mean divides by the number of positives (mmdet's avg_factor as the mean)", _case(reduction="mean"), _MMDET),
    ("mean-ultralytics", "reduction", "the mean as ultralytics' .mean(1).sum(): the sum over the size of dim 1", _case(reduction="mean"), _ULTRALYTICS),
    ("mean-with-eps", "reduction", "the mean as mmdet's sum / (avg_factor + eps): off by eps / n", _case(dtype=_F64, shape=(2, 2), reduction="mean"), _MMDET),
    ("mean-nan-when-empty", "reduction", "the mean of no element is 0 / 0 = NaN", _case(shape=(0, 80), reduction="mean"), ""),
    ("mean-accumulated-in-dtype", "precision", "the mean summed in float16: overflows past 65504", _case(shape=(16, 16), dtype=_F16, magnitude=1e3, reduction="mean"), ""),
    ("none-flattened", "output", "'none' returns the flattened loss", _case(reduction="none"), ""),
    ("none-squeezed", "output", "'none' squeezed: a row of one gives a (C,) loss", _case(shape=(1, 80), reduction="none"), ""),
    # weights
    ("alpha-complement", "weights", "negatives weighted by 1 - alpha (the sigmoid focal loss's convention)", _case(reduction="none"), ""),
    ("alpha-twice", "weights", "alpha applied twice at the negatives", _case(reduction="none"), ""),
    ("alpha-on-positives", "weights", "alpha multiplies the positives' weight too", _case(reduction="none"), ""),
    ("gamma-on-positives", "weights", "|p - q|^gamma applied to the positives too (the paper's p^gamma read as the code's |p - q|^gamma everywhere)", _case(reduction="none"), _VFNET),
    ("iou-weighted-ignored", "weights", "iou_weighted=False ignored: positives weighted by q", _case(iou_weighted=False, reduction="none"), ""),
    ("iou-weighted-inverted", "weights", "iou_weighted read inverted", _case(reduction="none"), ""),
    ("positive-weight-one", "weights", "positives weighted by 1 whatever iou_weighted says", _case(reduction="none"), ""),
    ("positive-only-at-one", "weights", "positives taken where q == 1: IoU scores below 1 weighted as negatives", _case(reduction="none"), ""),
    ("positive-above-epsilon", "weights", "positives taken where q > 1e-6: tiny scores weighted as negatives", _case(targets="edge", reduction="none"), ""),
    # the focal term
    ("focal-of-one-minus-p", "focal term", "negatives weighted by (1 - p)^gamma (the positives' focal factor)", _case(reduction="none"), ""),
    ("gamma-off-by-one", "focal term", "p^(gamma + 1) at the negatives", _case(reduction="none"), ""),
    ("integer-gamma", "focal term", "gamma truncated to an int", _case(gamma=0.5, reduction="none"), ""),
    ("bce-missing-log1p", "focal term", "BCE as max(x, 0) - x q: the log1p(exp(-|x|)) term missing", _case(reduction="none"), ""),
    ("bce-wrong-sign", "focal term", "BCE with its sign flipped: x q - max(x, 0) - log1p(exp(-|x|))", _case(reduction="none"), ""),
    ("bce-target-swapped", "focal term", "BCE(x, 1 - q): the target's complement", _case(reduction="none"), ""),
    # stability
    ("bce-log-of-sigmoid", "stability", "BCE as -(q log p + (1 - q) log(1 - p)): log(0) = -inf once p rounds to 1", _case(dtype=_F64, magnitude=1e4, reduction="none"), ""),
    ("bce-log-plus-eps", "stability", "BCE with log(p + 1e-8) and log(1 - p + 1e-8)", _case(dtype=_F64, reduction="none"), ""),
    ("bce-p-clamped", "stability", "p clamped to [1e-7, 1 - 1e-7] in BCE", _case(magnitude=30.0, reduction="none"), ""),
    ("bce-monai-form", "stability", "BCE as x - x q - logsigmoid(x): cancels at confident negatives", _elements(-30.0, 0.0, gamma=0.0), _MONAI),
    ("softplus-naive", "stability", "softplus as log(1 + exp(x)): inf past x ~ 709, 0 below exp(x) ~ 1e-16", _case(dtype=_F64, magnitude=1e3, reduction="none"), ""),
    ("softplus-default-threshold", "precision", "F.softplus, which returns x itself past x = 20: exp(-x) lost", _case(dtype=_F64, magnitude=20.0, targets="negatives", gamma=0.0, reduction="none"), ""),
    ("no-guard-at-the-largest-logit", "stability", "no constant branch for p^gamma at large logits: the backward's alpha gamma BCE ~ x overflows near the largest float64 and meets softplus(-x)'s derivative 0, a NaN gradient", _case(shape=(4, 9), dtype=_F64, magnitude="max", targets="negatives", reduction="none"), ""),
    ("focal-pow-of-sigmoid", "stability", "p^gamma as sigmoid(x).pow(gamma): 0 where p underflows, and pow's backward there inf * 0 = NaN for gamma < 1", _case(dtype=_F64, magnitude=1e4, gamma=0.5, targets="negatives", reduction="none"), _MMDET),
    ("logits-clamped", "stability", "logits clamped to [-100, 100]", _case(magnitude=1e3, reduction="none"), ""),
    # precision
    ("computes-in-float32", "precision", "computed in float32 whatever the logits' dtype", _case(dtype=_F64, reduction="none"), ""),
    ("half-arithmetic", "precision", "half-precision logits computed in their own dtype (a float16 sum overflows)", _case(shape=(16, 16), dtype=_F16, magnitude=1e3, reduction="mean"), ""),
    ("target-through-logits-dtype", "precision", "the target rounded through the logits' half dtype: 1e-30 becomes 0 (a positive turned negative)", _case(dtype=_F16, target_dtype=torch.float32, targets="edge", reduction="none"), ""),
    ("target-in-float32", "precision", "the target converted to float32: 1 - 1e-7 loses its digits in float64", _case(dtype=_F64, targets="edge", reduction="none"), ""),
    ("result-in-float32", "output", "the result returned in float32", _case(dtype=_F64), ""),
    ("result-in-float64", "output", "the result returned in the compute dtype (float64)", _case(), ""),
    # gradient
    ("weight-always-detached", "gradient", "the weight always detached (RT-DETR's choice without being asked): the negatives' gradient loses alpha gamma p^gamma (1 - p) BCE", _case(reduction="none"), "RT-DETR"),
    ("weight-never-detached", "gradient", "detach_weight=True ignored: the weight's derivative kept", _case(detach_weight=True, reduction="none"), ""),
    ("detach-flag-inverted", "gradient", "detach_weight read inverted", _case(reduction="none"), ""),
    ("loss-detached", "gradient", "the loss returned detached: no gradient", _case(), ""),
    # layout
    ("strides-ignored", "layout", "the logits' storage read as if contiguous", _case(layout="non_contiguous", reduction="none"), ""),
    ("target-read-as-contiguous", "layout", "the target's storage read as if contiguous", _case(layout="non_contiguous", reduction="none"), ""),
    ("scalar-unsqueezed", "output", "0-dim logits made (1,): the 'none' loss of a scalar is (1,)", _case(shape=(), reduction="none"), ""),
    # the returned object
    ("returns-python-float", "output", "the reduced loss returned as a Python float (.item())", _case(reduction="sum"), ""),
    # the caller's tensors
    ("target-clamped-in-place", "inputs", "the target clamped to [1e-6, 1 - 1e-6] in the caller's tensor", _case(), ""),
    ("logits-sanitized-in-place", "inputs", "NaN logits replaced in the caller's tensor (logits.data.nan_to_num_())", _case(nan=0.2), ""),
)  # fmt: skip

#: The varifocal family's catalogue: the baseline above and its mutants.
CATALOGUE = Catalogue(
    family="varifocal",
    baseline=baseline,
    mutants=tuple(Mutant(name, kind, bug, witness, seen_in) for name, kind, bug, witness, seen_in in _MUTANTS),
)
