r"""The softmax family's mutant catalogue: a careful baseline written as a mutant schema, and its realistic bugs.

The baseline is the straightforward correct focal loss: its own guards, then, in float64 plain autograd, the
log-odds form of :mod:`focalbench.implementations.numpy_reference`,

.. math::

    d = \log \sum_{j \ne t} e^{z_j - z_t}, \qquad -\log p_t = \mathrm{softplus}(d), \qquad
    (1 - p_t)^\gamma = e^{-\gamma\, \mathrm{softplus}(-d)},

whose derivative ``dFL/dd = alpha_t (1 - p_t)^gamma [(1 - p_t) + gamma p_t softplus(d)]`` is a sum of positive terms
(autograd differentiates it to the accuracy bound), with the two rows where ``d`` is infinite guarded by
double-``where``: ``d = -inf`` (p_t = 1: every other class absent, or a gap beyond the range) gives 0, ``d = +inf``
(a target at -inf) gives ``alpha_t d``, the loss +inf with the gradient's finite limit. It passes every check with
nothing declared (``pytest -m mutants``).

Each ``bug("name")`` below is one mutant: the line as it would be written wrong. The catalogue (:data:`CATALOGUE`)
says what each gets wrong, where such a bug shipped, and the witness on which it is wrong.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import numpy
import torch
import torch.nn.functional as F

from focalbench.arena.families.softmax.cases import Case, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, Witness, call_witness
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_INT64 = torch.iinfo(torch.int64)
_REDUCTIONS = ("mean", "sum", "none")




def _alpha_weights(alpha: object, num_classes: int, bug) -> None | float | torch.Tensor:
    """None, a float, or float64 per-class weights (checked)."""
    if alpha is None or (bug("alpha-zero-means-none") and not alpha):
        return None
    if isinstance(alpha, bool) and not bug("alpha-bool-accepted"):
        raise TypeError(f"alpha must be None, a float or {num_classes} weights. Got: bool")
    if isinstance(alpha, torch.Tensor) and alpha.dim() == 0:
        alpha = float(alpha)
    if isinstance(alpha, numbers.Real) or (bug("alpha-str-accepted") and isinstance(alpha, str)):
        value = float(alpha)
        if not (value >= 0 or bug("alpha-negative-scalar-accepted")) or (math.isinf(value) and not bug("alpha-inf-accepted")):
            raise ValueError(f"alpha must be a finite float >= 0. Got: {value!r}")
        return value
    if isinstance(alpha, torch.Tensor):
        if bug("alpha-tensor-rejected"):
            raise TypeError("alpha must be a float or a list of floats. Got: Tensor")
        if alpha.is_complex() or alpha.dtype == torch.bool:
            raise TypeError(f"alpha must hold real numbers. Got: {alpha.dtype}")
        weights = alpha.detach().cpu().to(torch.float32 if bug("alpha-in-float32") else torch.float64)
    elif isinstance(alpha, numpy.ndarray):
        weights = torch.from_numpy(numpy.asarray(alpha, dtype=numpy.float64))
    elif isinstance(alpha, Sequence) and not isinstance(alpha, str):
        if not all(isinstance(a, numbers.Real) and not isinstance(a, bool) for a in alpha):
            raise TypeError(f"alpha must be a sequence of real numbers. Got: {alpha!r}")
        weights = torch.tensor([float(a) for a in alpha], dtype=torch.float64)
    else:
        raise TypeError(f"alpha must be None, a float or {num_classes} weights. Got: {type(alpha).__name__}")
    if weights.dim() != 1 and not bug("alpha-column-accepted"):
        raise ValueError(f"alpha must be 1-D with {num_classes} weights. Got: shape {tuple(weights.shape)}")
    if bug("alpha-length-at-least"):
        too_short = weights.numel() < num_classes
    else:
        too_short = weights.numel() != num_classes
    if too_short and not bug("alpha-length-unchecked"):
        raise ValueError(f"alpha must have {num_classes} weights. Got: {weights.numel()}")
    negative = bool((weights < 0).any()) and not bug("alpha-negative-accepted")
    if negative or (not bool(torch.isfinite(weights).all()) and not bug("alpha-nan-accepted")):
        raise ValueError(f"alpha must hold finite weights >= 0. Got: {weights.tolist()}")
    if bug("alpha-normalized"):
        weights = weights / weights.sum()
    return weights


def baseline(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: object = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    fault: str | None = None,
) -> torch.Tensor:
    """The softmax focal loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

    def bug(name: str) -> bool:
        return fault == name

    # --- guards: every argument checked before any work -------------------------------------------------------
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor. Got: {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor. Got: {type(target).__name__}")
    if not logits.is_floating_point() and not bug("logits-int-accepted"):
        raise TypeError(f"logits must be floating. Got: {logits.dtype}")
    if logits.dim() < 2:
        if not bug("logits-1d-accepted"):
            raise ValueError(f"logits must have shape (N, C, ...). Got: {tuple(logits.shape)}")
        logits, target = logits.unsqueeze(0), target.reshape(1)  # one sample's (C,) scores
    num_classes = logits.shape[1] if logits.dim() > 1 else 1
    if num_classes < 2 and not bug("one-class-accepted"):
        raise ValueError(f"logits must have at least 2 classes along dim 1. Got: {tuple(logits.shape)}")
    if target.is_floating_point() and not bug("float-target-accepted"):
        raise TypeError(f"target must hold class indices. Got: {target.dtype}")
    if target.dtype == torch.bool and not bug("bool-target-accepted"):
        raise TypeError(f"target must hold class indices. Got: {target.dtype}")
    if bug("target-int64-required") and target.dtype != torch.int64:
        raise TypeError(f"target must be int64. Got: {target.dtype}")
    expected = (logits.shape[0], *logits.shape[2:])
    if bug("target-numel-checked"):
        wrong_shape = target.numel() != math.prod(expected)
    else:
        wrong_shape = tuple(target.shape) != expected
    if wrong_shape and not bug("target-shape-unchecked"):
        raise ValueError(f"target must have shape {expected}. Got: {tuple(target.shape)}")
    if target.device != logits.device:
        raise ValueError(f"target must be on {logits.device}. Got: {target.device}")
    if isinstance(gamma, torch.Tensor) and not bug("gamma-tensor-rejected"):
        if gamma.dim() != 0 or not gamma.is_floating_point():
            raise TypeError(f"gamma must be a number or a 0-dim floating tensor. Got: {tuple(gamma.shape)}")
        gamma = float(gamma)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        if not (bug("gamma-str-accepted") and isinstance(gamma, str)):
            raise TypeError(f"gamma must be a real number. Got: {type(gamma).__name__}")
    gamma = float(gamma)
    if bug("gamma-nan-accepted"):
        gamma_wrong = gamma < 0
    else:
        gamma_wrong = not gamma >= 0
    if (gamma_wrong and not bug("gamma-negative-accepted")) or (math.isinf(gamma) and not bug("gamma-inf-accepted")):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {gamma!r}")
    if bug("integer-gamma"):
        gamma = float(int(gamma))
    if bug("reduction-lowercased") and isinstance(reduction, str):
        reduction = reduction.lower()
    if (not isinstance(reduction, str) or reduction not in _REDUCTIONS) and not bug("reduction-unknown-is-mean"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        if not bug("ignore-index-float-accepted"):
            raise TypeError(f"ignore_index must be an int. Got: {type(ignore_index).__name__}")
        ignore_index = int(ignore_index)
    if not _INT64.min <= ignore_index <= _INT64.max:
        raise ValueError(f"ignore_index must be an int64. Got: {ignore_index}")
    weights = _alpha_weights(alpha, num_classes, bug)
    if bug("ignore-index-hardcoded"):
        ignore_index = -100
    labels = target.long()
    counted = labels != ignore_index
    if bug("ignore-not-masked"):
        counted = torch.ones_like(counted)
    if bug("ignore-only-negative") and ignore_index >= 0:
        counted = torch.ones_like(counted)
    if bug("range-checks-ignored"):
        out_of_range = (labels < 0) | (labels >= num_classes)
    elif bug("range-check-off-by-one"):
        out_of_range = counted & ((labels < 0) | (labels > num_classes))
    elif bug("range-check-upper-only"):
        out_of_range = counted & (labels >= num_classes)
    else:
        out_of_range = counted & ((labels < 0) | (labels >= num_classes))
    if bool(out_of_range.any()) and not bug("range-unchecked"):
        raise ValueError(f"target must be in [0, {num_classes}) or ignore_index. Got: {labels[out_of_range][:4]}")
    if bug("zeroes-ignored-targets-in-place"):
        target.masked_fill_(~counted, 0)

    if bug("logits-sanitized-in-place"):
        logits.data.clamp_(min=-1e4)  # -inf made finite, in the caller's tensor

    # --- rows: (M, C) with the class dim last, float64 -----------------------------------------------------------
    if bug("computes-in-float32"):
        x = logits.float()
    elif bug("bfloat16-through-float16") and logits.dtype == torch.bfloat16:
        x = logits.half().double()
    else:
        x = logits.double()
    if bug("dense-flattened-by-view"):
        rows = x.reshape(-1, num_classes)
    elif bug("dense-class-dim-last"):
        rows = x.transpose(1, -1).reshape(-1, num_classes)
    elif bug("dense-4d-only"):
        rows = (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).reshape(-1, num_classes)
    elif bug("strides-ignored"):
        rows = torch.as_strided(x, x.shape, x.new_empty(x.shape).stride()).movedim(1, -1).reshape(-1, num_classes)
    else:
        rows = x.movedim(1, -1).reshape(-1, num_classes)
    if bug("target-through-logits-dtype"):
        t = labels.reshape(-1).to(logits.dtype).long()
    else:
        t = labels.reshape(-1)
    mask = counted.reshape(-1)
    safe = t if bug("ignored-target-indexed") else torch.where(mask, t, 0)
    if not bug("ignored-logits-kept") and not bug("ignore-by-multiplying"):
        rows = torch.where(mask.unsqueeze(1), rows, 0.0)  # nothing an ignored element holds reaches the result
    if bug("non-finite-logits-zeroed"):
        rows = torch.where(torch.isfinite(rows), rows, 0.0)
    if bug("logits-clamped"):
        rows = rows.clamp(-100, 100)

    # --- d = log sum_{j != t} exp(z_j - z_t), shifted by the largest other logit --------------------------------
    z_t = rows.gather(1, safe.unsqueeze(1))
    if bug("softmax-over-batch"):
        rows = rows.log_softmax(0)
        z_t = rows.gather(1, safe.unsqueeze(1))
    if bug("no-max-shift"):
        others = rows.scatter(1, safe.unsqueeze(1), -math.inf)
        d = others.exp().sum(1, keepdim=True).log() - z_t
    elif bug("shift-by-target"):
        others = rows.scatter(1, safe.unsqueeze(1), -math.inf)
        d = (others - z_t).exp().sum(1, keepdim=True).log()
    else:
        others = rows.scatter(1, safe.unsqueeze(1), -math.inf)
        top = others.amax(1, keepdim=True).detach()
        shift = torch.where(top == -math.inf, 0.0, top)  # no other class left: -inf - -inf would be NaN
        total = (others - shift).exp().sum(1, keepdim=True)
        alone = total == 0  # every other class absent (p_t = 1): log's backward there would be 0 / 0
        if bug("log-of-zero-sum"):
            d = (shift - z_t) + total.log()
        else:
            d = torch.where(alone, -math.inf, (shift - z_t) + torch.where(alone, 1.0, total).log())
    d = d.squeeze(1)

    # --- the focal loss per element -----------------------------------------------------------------------------
    sure = d == -math.inf  # p_t = 1: every other class absent, or a gap no number holds
    impossible = d == math.inf  # a target at -inf: p_t = 0
    guarded = sure if bug("no-guard-impossible") else sure | impossible
    d_safe = torch.where(guarded, 0.0, d)
    if bug("softmax-then-log"):
        p_t = rows.softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)
        ce = -p_t.log()
        one_minus_p_t = 1 - p_t
    elif bug("log-plus-eps"):
        p_t = rows.softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)
        ce = -(p_t + 1e-8).log()
        one_minus_p_t = 1 - p_t
    elif bug("p-clamped"):
        p_t = torch.exp(-_softplus(d_safe)).clamp(1e-7, 1 - 1e-7)
        ce = -p_t.log()
        one_minus_p_t = 1 - p_t
    else:
        ce = _softplus(d_safe)
        one_minus_p_t = torch.exp(-_softplus(-d_safe))
        if bug("one-minus-exp"):
            one_minus_p_t = 1 - torch.exp(-ce)
    if bug("pow-of-one-minus-p"):
        factor = (1 - torch.exp(-ce)).pow(gamma)
    elif bug("focal-factor-of-p"):
        factor = (1 - one_minus_p_t).pow(gamma)
    elif bug("focal-factor-detached"):
        factor = one_minus_p_t.detach().pow(gamma)
    else:
        factor = torch.exp(-gamma * _softplus(-d_safe)) if not bug("one-minus-exp") else one_minus_p_t.pow(gamma)
    focal = factor * ce
    if bug("ce-of-the-mean"):
        mean_ce = ce[mask].mean() if bool(mask.any()) else ce.sum() * 0
        focal = torch.full_like(ce, 1.0) * (1 - torch.exp(-mean_ce)) ** gamma * mean_ce
    if bug("every-class-term"):  # sum_j onehot_j (1 - p_j)^gamma (-log p_j): -inf at an absent class makes 0 * inf
        log_p = rows.log_softmax(1)
        onehot = F.one_hot(safe, num_classes).to(log_p.dtype)
        focal = -(onehot * (1 - log_p.exp()).pow(gamma) * log_p).sum(1)
    if bug("gamma-zero-is-cross-entropy") and gamma == 0:
        focal = F.cross_entropy(rows, safe, reduction="none")
        weights = None
    loss = torch.where(sure, 0.0, torch.where(impossible, d, focal))
    if bug("log-clamped") or bug("nan-to-num"):
        loss = loss.clamp(max=100.0) if bug("log-clamped") else torch.nan_to_num(loss)

    # --- weights ------------------------------------------------------------------------------------------------
    if weights is None:
        alpha_t = torch.ones_like(loss)
    elif isinstance(weights, float):
        if bug("scalar-alpha-as-binary"):
            alpha_t = torch.where(safe == 0, 1 - weights, weights).double()
        elif bug("scalar-alpha-dropped"):
            alpha_t = torch.ones_like(loss)
        else:
            alpha_t = torch.full_like(loss, weights)
    else:
        weights = weights.to(loss.device)
        if bug("alpha-column-accepted") and weights.dim() == 2:
            alpha_t = weights[safe]  # (M, 1): broadcast against the (M,) loss below
        elif bug("alpha-by-prediction"):
            alpha_t = weights[rows.argmax(1)].to(loss.dtype)
        else:
            alpha_t = weights[safe].to(loss.dtype)
    if bug("alpha-twice"):
        alpha_t = alpha_t * alpha_t
    loss = alpha_t * loss
    if bug("ignore-by-multiplying"):
        loss = loss * mask
    else:
        loss = torch.where(mask, loss, 0.0)

    # --- reduction ----------------------------------------------------------------------------------------------
    count = mask.sum()
    if reduction == "none" and not bug("reduction-unknown-is-mean"):
        if bug("none-flattened"):
            result = loss
        elif bug("none-squeezed"):
            result = loss.reshape(target.shape).squeeze()
        else:
            result = loss.reshape(target.shape)
    elif reduction == "sum":
        result = loss.mean() if bug("sum-is-mean") else loss.sum()
    elif bug("mean-over-elements"):
        result = loss.sum() / max(loss.numel(), 1)
    elif bug("mean-over-classes-too"):
        result = loss.sum() / max(loss.numel() * num_classes, 1)
    elif bug("mean-nan-when-all-ignored"):
        result = loss.sum() / count
    elif bug("mean-over-weights"):
        result = loss.sum() / (alpha_t * mask).sum().clamp_min(1e-300)
    elif bug("mean-of-image-means") and logits.dim() > 2:
        per_image = loss.reshape(target.shape[0], -1)
        counts = mask.reshape(target.shape[0], -1).sum(1)
        result = (per_image.sum(1) / counts.clamp_min(1)).mean()
    elif bug("mean-accumulated-in-dtype"):
        result = loss.to(logits.dtype).sum() / count.clamp_min(1)
    else:
        result = loss.sum() / count.clamp_min(1)
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
    return Witness(case=Case(**{"shape": (16, 7), "seed": 7000, **fields}))


_call = functools.partial(call_witness, bad_call)  # a witness calling bad_call with one argument changed


def _rows(gap: float, dtype: torch.dtype, **kwargs) -> Witness:
    """Four confident rows ``[gap, 0, 0]`` at target 0 (``1 - p_t`` near 2 exp(-gap)), ``reduction="none"``."""
    return Witness(call=lambda device: (
        torch.tensor([[gap, 0.0, 0.0]] * 4, dtype=dtype, device=device),
        torch.zeros(4, dtype=torch.long, device=device),
        {"reduction": "none", **kwargs},
    ))  # fmt: skip


_F64, _BF16, _F16 = torch.float64, torch.bfloat16, torch.float16
_FL_TORCH, _KORNIA, _MONAI, _SMP = "focal_loss_torch", "kornia", "MONAI", "segmentation_models_pytorch"
_SEED = "the blog post's FocalLoss (scatter_mask)"

#: (name, kind, bug, witness, seen in)
_MUTANTS: tuple[tuple[str, str, str, Witness, str], ...] = (
    # arguments: a bad one accepted, or a good one refused
    ("logits-int-accepted", "arguments", "integer logits computed on", _call(logits=torch.ones(4, 3, dtype=torch.long)), ""),
    ("logits-1d-accepted", "arguments", "1-D logits taken as one sample's scores", _call(logits=torch.randn(3), target=torch.tensor(1)), ""),
    ("one-class-accepted", "arguments", "C = 1 accepted: the loss is always 0", _call(logits=torch.randn(4, 1), target=torch.zeros(4, dtype=torch.long)), ""),
    ("float-target-accepted", "arguments", "float targets truncated to classes", _call(target=torch.tensor([0.0, 1.0, 2.0, 1.0])), ""),
    ("bool-target-accepted", "arguments", "boolean targets taken as classes 0/1", _call(target=torch.tensor([True, False, True, True])), ""),
    ("target-int64-required", "arguments", "int32/uint8 targets refused (only int64 taken)", _case(target_dtype=torch.int32), ""),
    ("target-numel-checked", "arguments", "the target's shape checked by its number of elements: transposed dense targets accepted", _call(logits=torch.randn(2, 3, 4, 5), target=torch.zeros(2, 5, 4, dtype=torch.long)), ""),
    ("target-shape-unchecked", "arguments", "the target's shape unchecked", _call(target=torch.tensor([0, 1, 2, 1, 0])), ""),
    ("range-unchecked", "arguments", "targets >= C unchecked (an index error deep inside, a device-side assert on CUDA)", _call(target=torch.tensor([0, 1, 3, 1])), ""),
    ("range-check-off-by-one", "arguments", "range checked with > C instead of >= C", _call(target=torch.tensor([0, 1, 3, 1])), ""),
    ("range-check-upper-only", "arguments", "negative targets unchecked", _call(target=torch.tensor([0, -1, 2, 1])), ""),
    ("gamma-negative-accepted", "arguments", "gamma < 0 accepted", _call(gamma=-0.5), ""),
    ("gamma-nan-accepted", "arguments", "gamma checked with gamma < 0: NaN passes", _call(gamma=math.nan), ""),
    ("gamma-inf-accepted", "arguments", "gamma = inf accepted", _call(gamma=math.inf), ""),
    ("gamma-str-accepted", "arguments", "gamma as a string converted with float()", _call(gamma="2"), ""),
    ("gamma-tensor-rejected", "arguments", "a 0-dim tensor gamma (a schedule's) refused", _case(gamma_tensor=True), ""),
    ("reduction-unknown-is-mean", "arguments", "an unknown reduction falls through to the mean", _call(reduction="average"), ""),
    ("reduction-lowercased", "arguments", "reduction compared case-insensitively ('Mean' accepted)", _call(reduction="Mean"), ""),
    ("ignore-index-float-accepted", "arguments", "a float ignore_index accepted", _call(ignore_index=-100.0), ""),
    ("alpha-bool-accepted", "arguments", "alpha=True taken as 1.0", _call(alpha=True), ""),
    ("alpha-str-accepted", "arguments", "alpha as a string converted with float()", _call(alpha="0.25"), ""),
    ("alpha-negative-scalar-accepted", "arguments", "a negative scalar alpha accepted", _call(alpha=-0.25), ""),
    ("alpha-inf-accepted", "arguments", "alpha = inf accepted", _call(alpha=math.inf), ""),
    ("alpha-negative-accepted", "arguments", "negative per-class weights accepted", _call(alpha=[0.5, -0.1, 1.0]), ""),
    ("alpha-nan-accepted", "arguments", "NaN per-class weights accepted", _call(alpha=[0.5, math.nan, 1.0]), ""),
    ("alpha-length-unchecked", "arguments", "too few per-class weights: an index error deep inside", _call(alpha=[0.25, 0.75]), ""),
    ("alpha-length-at-least", "arguments", "too many per-class weights accepted (checked with >=)", _call(alpha=[0.25, 0.5, 0.75, 1.0]), ""),
    ("alpha-column-accepted", "arguments", "a (C, 1) column of weights broadcasts (N,) x (N, 1) to (N, N)", _call(alpha=torch.ones(3, 1)), _SEED),
    ("alpha-tensor-rejected", "arguments", "per-class weights as a tensor refused", _case(alpha_kind="per_class", alpha_form="tensor"), ""),
    ("alpha-zero-means-none", "weights", "`if alpha:` makes alpha = 0 unweighted", _case(alpha_kind="zero"), ""),
    # reductions
    ("sum-is-mean", "reduction", "'sum' returns the mean", _case(reduction="sum"), ""),
    ("mean-over-elements", "reduction", "the mean divides by every element, ignored ones included", _case(ignore_fraction=0.2), ""),
    ("mean-over-classes-too", "reduction", "the mean divides by C x the elements (the mean of the (N, C) map)", _case(), _KORNIA),
    ("mean-nan-when-all-ignored", "reduction", "the mean of no counted element is 0 / 0 = NaN", _case(ignore_fraction=1.0), _FL_TORCH),
    ("mean-over-weights", "reduction", "the mean divides by the sum of alpha_t (F.cross_entropy's weighted mean)", _case(alpha_kind="per_class"), _FL_TORCH),
    ("mean-of-image-means", "reduction", "dense 'mean' averages each image, then the images", Witness(case=Case(shape=(4, 7, 5, 6), ignore_fraction=0.3, seed=7001)), _MONAI),
    ("mean-accumulated-in-dtype", "precision", "the mean summed in float16: overflows past 65504", Witness(case=Case(shape=(70000, 2), dtype=_F16, scale=10.0, seed=7002)), ""),
    ("none-flattened", "output", "'none' returns the flattened (N d1 ... dk,) loss", Witness(case=Case(shape=(3, 7, 4, 5), reduction="none", seed=7003)), ""),
    ("none-squeezed", "output", "'none' squeezed: a batch of one gives a 0-dim loss", _case(shape=(1, 7), reduction="none"), ""),
    # ignore_index
    ("ignore-index-hardcoded", "ignore", "ignore_index taken as -100 whatever is passed", _case(ignore_fraction=0.2, ignore_index=255), ""),
    ("ignore-not-masked", "ignore", "ignored elements counted as classes", _case(ignore_fraction=0.2), ""),
    ("ignore-only-negative", "ignore", "only a negative ignore_index masks anything", _case(ignore_fraction=0.2, ignore_index=255), ""),
    ("range-checks-ignored", "ignore", "the range check refuses ignore_index itself", _case(ignore_fraction=0.2), ""),
    ("ignored-target-indexed", "ignore", "ignore_index used as a class index", _case(ignore_fraction=0.2), ""),
    ("ignored-logits-kept", "ignore", "ignored elements computed on their logits: NaN or -inf there gives NaN gradients", _case(ignore_fraction=0.4, garbage=True), ""),
    ("ignore-by-multiplying", "ignore", "ignored elements multiplied by a 0/1 mask: 0 x inf = NaN", _case(ignore_fraction=0.4, garbage=True), _MONAI),
    ("zeroes-ignored-targets-in-place", "inputs", "ignored targets set to class 0 in the caller's tensor", _case(ignore_fraction=0.2), ""),
    ("logits-sanitized-in-place", "inputs", "-inf logits clamped in the caller's tensor", _case(masked=0.3), ""),
    # weights
    ("scalar-alpha-as-binary", "weights", "a scalar alpha taken as RetinaNet's: alpha for foreground classes, 1 - alpha for class 0", _case(alpha_kind="scalar"), ""),
    ("scalar-alpha-dropped", "weights", "a scalar alpha ignored", _case(alpha_kind="scalar"), ""),
    ("alpha-by-prediction", "weights", "alpha indexed by the predicted class", _case(alpha_kind="per_class"), ""),
    ("alpha-twice", "weights", "alpha_t applied twice", _case(alpha_kind="per_class"), ""),
    ("alpha-normalized", "weights", "per-class weights normalized to sum 1", _case(alpha_kind="per_class"), ""),
    ("alpha-in-float32", "precision", "a float64 weight tensor used in float32", _case(dtype=_F64, alpha_kind="per_class", alpha_form="tensor"), ""),
    # the focal term
    ("integer-gamma", "focal term", "gamma truncated to an int", _case(gamma=0.5), ""),
    ("focal-factor-of-p", "focal term", "p_t^gamma instead of (1 - p_t)^gamma", _case(), ""),
    ("focal-factor-detached", "gradient", "the focal factor detached (p_t.detach())", _case(), ""),
    ("ce-of-the-mean", "focal term", "the focal factor applied to the batch's mean cross-entropy", _case(), ""),
    ("gamma-zero-is-cross-entropy", "focal term", "gamma = 0 returns F.cross_entropy, dropping alpha", _case(gamma=0.0, alpha_kind="per_class"), ""),
    ("every-class-term", "stability", "every class's term times a one-hot target: 0 x -inf = NaN at an absent class", _case(masked=0.3), _MONAI),
    ("softmax-over-batch", "layout", "softmax over dim 0", _case(), ""),
    # stability
    ("softmax-then-log", "stability", "log(softmax(z)): p_t underflows to 0 and the loss to +inf", Witness(case=Case(shape=(8, 5), dtype=_F64, margin=1e3, reduction="none", seed=7004)), _SEED),
    ("log-plus-eps", "stability", "log(p_t + 1e-8)", _case(dtype=_F64), _FL_TORCH),
    ("p-clamped", "stability", "p clamped to [1e-7, 1 - 1e-7]", Witness(case=Case(shape=(8, 5), margin=30.0, reduction="none", seed=7005)), ""),
    ("no-max-shift", "stability", "exp(z) without subtracting the max: overflow", Witness(case=Case(shape=(8, 5), margin=3.0, shift=1e3, dtype=_F64, seed=7006)), ""),
    ("shift-by-target", "stability", "exp(z_j - z_t) without a max: overflow at hopeless rows", Witness(case=Case(shape=(8, 5), margin=1e3, dtype=_F64, reduction="none", seed=7007)), ""),
    ("log-of-zero-sum", "stability", "log of the other classes' sum unguarded: 0 / 0 = NaN gradients where they are all absent", _case(masked=1.0), ""),
    ("no-guard-impossible", "stability", "no guard where p_t = 0: NaN gradients at a target of -inf", _case(impossible=0.25, reduction="none"), ""),
    ("non-finite-logits-zeroed", "stability", "-inf logits replaced by 0", _case(masked=0.3), ""),
    ("logits-clamped", "stability", "logits clamped to [-100, 100]", Witness(case=Case(shape=(8, 5), margin=1e3, dtype=_F64, reduction="none", seed=7008)), ""),
    ("log-clamped", "stability", "the loss clamped at 100, as F.binary_cross_entropy clamps its log", _case(impossible=0.25, reduction="none"), ""),
    ("nan-to-num", "stability", "torch.nan_to_num on the loss: NaN hidden as 0", _case(poison="nan", reduction="none"), ""),
    ("one-minus-exp", "precision", "1 - p_t as 1 - exp(log p_t): its digits lost near p_t = 1", _rows(30.0, _F64), ""),
    ("pow-of-one-minus-p", "gradient", "(1 - exp(-CE))^gamma: NaN gradient for 0 < gamma < 1 where p_t rounds to 1", _rows(40.0, _F64, gamma=0.5), _SMP),
    # precision
    ("computes-in-float32", "precision", "computed in float32 whatever the logits' dtype", _case(dtype=_F64), _MONAI),
    ("bfloat16-through-float16", "precision", "bfloat16 logits converted to float16: inf beyond 65504", Witness(case=Case(shape=(8, 5), dtype=_BF16, beyond_range=True, reduction="none", seed=7009)), ""),
    ("target-through-logits-dtype", "precision", "targets converted through the logits' dtype: bfloat16 rounds classes above 256", Witness(case=Case(shape=(8, 1000), dtype=_BF16, seed=7010)), ""),
    ("result-in-float32", "output", "the result returned in float32", _case(dtype=_F64), ""),
    ("result-in-float64", "output", "the result returned in the compute dtype (float64)", _case(), ""),
    # layout
    ("dense-flattened-by-view", "layout", "(N, C, d...) flattened with reshape(-1, C) instead of moving C last", Witness(case=Case(shape=(4, 21, 5, 7), seed=7011)), ""),
    ("dense-class-dim-last", "layout", "transpose(1, -1) instead of movedim(1, -1): spatial dims swapped", Witness(case=Case(shape=(3, 7, 4, 5), reduction="none", seed=7012)), ""),
    ("dense-4d-only", "layout", "written for (N, C, H, W): other dense shapes flattened wrong", Witness(case=Case(shape=(2, 5, 3, 4, 5), seed=7013)), ""),
    ("strides-ignored", "layout", "the storage read as if contiguous", _case(layout="non_contiguous"), ""),
    # the returned object
    ("returns-python-float", "output", "the reduced loss returned as a Python float (.item())", _case(), ""),
    ("loss-detached", "gradient", "the loss returned detached: no gradient", _case(), ""),
)  # fmt: skip

#: The softmax family's catalogue: the baseline above and its mutants.
CATALOGUE = Catalogue(
    family="softmax",
    baseline=baseline,
    mutants=tuple(Mutant(name, kind, bug, witness, seen_in) for name, kind, bug, witness, seen_in in _MUTANTS),
)
