r"""The dfl family's mutant catalogue: a careful baseline written as a mutant schema, and its realistic bugs.

The baseline is the straightforward correct Distribution Focal Loss (:mod:`focalbench.losses.dfl.semantics`): its own
guards, then, in float64 plain autograd, per element (logits ``z`` over ``n`` bins, target ``y``)

.. math::

    y_l = \min(\lfloor y \rfloor, n - 2), \quad y_r = y_l + 1, \quad w_l = y_r - y, \quad w_r = y - y_l,

    d_k = \mathrm{logsumexp}_{j \ne k}(z_j) - z_k, \qquad
    \mathrm{DFL} = w_l \,\mathrm{softplus}(d_{y_l}) + w_r \,\mathrm{softplus}(d_{y_r})

(``-log S_k = softplus(d_k)``: a confident bin's loss ``e^{-gap}`` keeps its digits), a term of weight exactly 0 taken
away by ``torch.where`` (so a bin at ``-inf`` there gives no ``0 x inf``), and ``d_k`` as a difference (so a target bin
at ``-inf`` gives an infinite loss and autograd the gradient's finite limit). It passes every check of the family with
nothing declared (``pytest -m mutants``) and is differentiable twice.

Each ``bug("name")`` below is one mutant: the line as it would be written wrong. The catalogue (:data:`CATALOGUE`)
says what each gets wrong, where such a bug shipped, and the witness on which it is wrong.
"""

from __future__ import annotations

import functools
import math

import torch

from focalbench.arena.families.dfl.cases import DflCase, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, UpstreamIgnored, Witness, call_witness, guarded_tensors
from focalbench.arena.mutation import contiguous_strides as _contiguous_strides
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_REDUCTIONS = ("mean", "sum", "none")
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def baseline(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    fault: str | None = None,
) -> torch.Tensor:
    """The Distribution Focal Loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

    def bug(name: str) -> bool:
        return fault == name

    # --- guards: every argument checked before any work -------------------------------------------------------
    logits, target = guarded_tensors(logits, target, bug)
    if logits.dim() < 1 and not bug("scalar-logits-unchecked"):
        raise ValueError(f"logits must have the bins along their last axis. Got: shape {tuple(logits.shape)}")
    bins = logits.shape[1] if bug("bins-from-dim-1") and logits.dim() >= 2 else logits.shape[-1]
    if bins < (1 if bug("one-bin-accepted") else 2):
        raise ValueError(f"logits must have at least 2 bins along their last axis. Got: shape {tuple(logits.shape)}")
    if (bug("target-int-accepted") and not target.is_floating_point() and target.dtype != torch.bool) or (
            bug("target-bool-accepted") and target.dtype == torch.bool):  # fmt: skip
        target = target.float()
    if not target.is_floating_point():
        raise TypeError(f"target must be a floating-point tensor of bin positions. Got: {target.dtype}")
    if bug("target-dtype-must-match") and target.dtype != logits.dtype:
        raise TypeError(f"target must have the logits' dtype {logits.dtype}. Got: {target.dtype}")
    lead = logits.shape[:-1]
    if bug("target-sides-squeezed") and target.shape != lead and target.numel() == math.prod(lead):
        target = target.reshape(lead)
    if target.shape != lead:
        raise ValueError(f"target must have the logits' shape without the bin axis {tuple(lead)}. Got: "
                         f"{tuple(target.shape)}")  # fmt: skip
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: {target.device}")
    if target.requires_grad and torch.is_grad_enabled() and not bug("target-requires-grad-accepted"):
        raise ValueError("target must not require grad")
    if bug("reduction-lowercased") and isinstance(reduction, str):
        reduction = reduction.lower()
    if bug("reduction-none-object-accepted") and reduction is None:
        reduction = "none"
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        if not bug("reduction-unknown-is-mean"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
        reduction = "mean"
    values, top = target.detach(), bins - 1
    if bug("target-nan-accepted"):
        outside = (values < 0) | (values > top)
    elif bug("target-above-range-accepted"):
        outside = ~(values >= 0)
    elif bug("target-negative-accepted"):
        outside = ~(values <= top)
    elif bug("target-last-bin-rejected"):
        outside = ~((values >= 0) & (values < top))  # "y_r = y_l + 1 must be a bin"
    else:
        outside = ~((values >= 0) & (values <= top))  # NaN fails both comparisons
    if bool(outside.any()):
        if not bug("target-range-clamped"):
            raise ValueError(f"target values must be in [0, {top}]. Got: {values[outside][:5].tolist()}")
        target = target.clamp(0, top)
    if bug("target-clamped-in-place"):
        target.clamp_(0, bins - 1 - 0.01)  # ultralytics' DFLoss: target.clamp_(0, reg_max - 1 - 0.01)
    if bug("logits-shifted-in-place"):
        logits.data.sub_(logits.data.amax(dim=-1, keepdim=True))  # "for stability", in the caller's tensor

    # --- float64 elements ---------------------------------------------------------------------------------------
    if bug("computes-in-float32"):
        x = logits.float()
    elif bug("half-arithmetic") and logits.dtype in _HALF_DTYPES:
        x = logits  # computed in its own dtype
    elif bug("bfloat16-through-float16") and logits.dtype == torch.bfloat16:
        x = logits.half().double()
    else:
        x = logits.double()
    if bug("target-read-as-contiguous"):
        target = torch.as_strided(target, target.shape, _contiguous_strides(target.shape))
    if bug("target-in-float32"):
        y = target.float().to(x.dtype)
    elif bug("weights-in-half"):
        y = target.half().to(x.dtype)
    else:
        y = target.to(x.dtype)
    if bug("strides-ignored"):
        x = torch.as_strided(x, x.shape, _contiguous_strides(x.shape))
    if bug("one-distribution-unsqueezed") and x.dim() == 1:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if bug("logits-clamped"):
        x = x.clamp(-100, 100)
    if bug("target-clamped-below-end"):
        y = y.clamp(max=bins - 1 - 0.01)  # ultralytics' clamp, on a copy

    # --- the target's two bins and their weights ------------------------------------------------------------------
    if bug("floor-as-round"):
        below = y.round()
    elif bug("left-is-ceil-minus-one"):
        below = y.ceil() - 1
    else:
        below = y.floor()
    if bug("no-clamp-at-end"):
        left = below.long()  # mmdet: y = n - 1 reads bin n
    elif bug("both-bins-last-at-end"):
        left = below.clamp(max=bins - 1).long()
    else:
        left = below.clamp(max=bins - 2).long()
    right = left + 1
    if bug("both-bins-last-at-end"):
        right = right.clamp(max=bins - 1)
    w_left, w_right = right.to(y.dtype) - y, y - left.to(y.dtype)
    if bug("weights-swapped"):
        w_left, w_right = w_right, w_left
    elif bug("left-weight-one"):
        w_left = torch.ones_like(w_left)
    elif bug("left-weight-as-fraction"):
        w_left = y - below

    # --- -log S_k per target bin ------------------------------------------------------------------------------
    n = x.shape[-1]
    axis = 1 if bug("softmax-over-dim-1") and x.dim() >= 3 else -1
    largest = x.detach().amax(dim=-1, keepdim=True) if n else x.detach().sum(dim=-1, keepdim=True)

    def neg_log_s(k: torch.Tensor) -> torch.Tensor:
        z_k = x.gather(-1, k.unsqueeze(-1)).squeeze(-1)
        if bug("log-of-softmax"):
            return -torch.softmax(x, dim=-1).log().gather(-1, k.unsqueeze(-1)).squeeze(-1)
        if bug("softmax-plus-eps"):
            return -(torch.softmax(x, dim=-1) + 1e-9).log().gather(-1, k.unsqueeze(-1)).squeeze(-1)
        if bug("softmax-over-dim-1"):
            return -torch.log_softmax(x, dim=axis).gather(-1, k.unsqueeze(-1)).squeeze(-1)
        if bug("missing-max-shift"):
            return torch.exp(x).sum(dim=-1).log() - z_k
        if bug("shift-by-first-bin"):
            first = x[..., :1]
            return (first.squeeze(-1) + torch.exp(x - first).sum(dim=-1).log()) - z_k
        if bug("lse-minus-logits"):
            return torch.logsumexp(x, dim=-1) - z_k
        if bug("normalized-over-target-bins"):
            pair = torch.stack([x.gather(-1, left.unsqueeze(-1)), x.gather(-1, right.unsqueeze(-1))], -1)
            return torch.logsumexp(pair.squeeze(-2), dim=-1) - z_k
        # the other bins and z_k each less the row's largest logit (a constant: exact differences on a grid)
        others = (x - largest).masked_fill(torch.arange(n, device=x.device) == k.unsqueeze(-1), -math.inf)
        z_k = z_k - largest.squeeze(-1)
        if bug("logsumexp-shifted-by-target"):
            d = torch.logsumexp(others - z_k.unsqueeze(-1), dim=-1)
        elif bug("lse-detached"):
            d = torch.logsumexp(others, dim=-1).detach() - z_k
        elif bug("logit-terms-detached"):
            d = torch.logsumexp(others, dim=-1) - z_k.detach()
        else:
            d = torch.logsumexp(others, dim=-1) - z_k
        return torch.log(1 + torch.exp(d)) if bug("log-without-log1p") else _softplus(d)

    def term(k: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if bug("zero-weight-term-nan") or bug("lse-minus-logits"):
            return w * neg_log_s(k)
        return torch.where(w > 0, w * neg_log_s(k), 0.0)  # a weight of exactly 0 takes its term away

    per_element = term(left, w_left)
    if not bug("right-term-missing"):
        per_element = per_element + term(right, w_right)
    if bug("entropy-subtracted"):
        per_element = per_element + torch.xlogy(w_left, w_left) + torch.xlogy(w_right, w_right)  # KL(w || S)
    if bug("loss-sign-flipped"):
        per_element = -per_element
    if bug("nan-to-num"):
        per_element = torch.nan_to_num(per_element)
    if bug("gradient-sign-flipped"):
        per_element = 2 * per_element.detach() - per_element  # the value kept, the gradient -(S - w)
    if bug("gradient-ignores-upstream"):
        per_element = UpstreamIgnored.apply(per_element)

    # --- reduction ----------------------------------------------------------------------------------------------
    count = max(per_element.numel(), 1)
    if reduction == "none":
        if bug("none-flattened"):
            result = per_element.reshape(-1)
        elif bug("none-mean-over-sides") and per_element.dim() >= 2:
            result = per_element.mean(-1, keepdim=True)  # ultralytics' .mean(-1, keepdim=True) over the 4 sides
        else:
            result = per_element
    elif reduction == "sum":
        result = per_element.mean() if bug("sum-is-mean") else per_element.sum()
    elif bug("mean-over-rows"):
        result = per_element.sum() / max(per_element.shape[0] if per_element.dim() else 1, 1)  # per box, not side
    elif bug("mean-over-bins"):
        result = per_element.sum() / max(x.numel(), 1)
    elif bug("mean-nan-when-empty"):
        result = per_element.mean()
    elif bug("mean-accumulated-in-dtype"):
        result = per_element.to(logits.dtype).sum() / count
    elif bug("mean-gradient-not-scaled"):
        total = per_element.sum()
        result = total.detach() / count + (total - total.detach())
    else:
        result = per_element.sum() / count
    if bug("result-in-float32"):
        return result.float()
    if bug("result-in-float64"):
        return result.double()
    if bug("returns-python-float") and result.dim() == 0:
        return result.item()  # type: ignore[return-value]
    if bug("loss-detached"):
        return result.detach().to(logits.dtype)
    return result.to(logits.dtype)


# --- the catalogue ----------------------------------------------------------------------------------------------------


def _case(**fields) -> Witness:
    return Witness(case=DflCase(**{"shape": (32, 16), "seed": 9100, **fields}))


_call = functools.partial(call_witness, bad_call)  # a witness calling bad_call with one argument changed

_F64, _BF16, _F16 = torch.float64, torch.bfloat16, torch.float16
_TARGET = [0.0, 0.5, 1.25, 2.0]
_ULTRALYTICS, _MMDET = "ultralytics", "mmdet"
_SIDES = dict(shape=(8, 4, 16), label="sides")
_FP16_MEAN = dict(shape=(64, 17), dtype=_F16, magnitude=2e3, reduction="mean")
#: Four confident float64 elements: bin 0 ahead by 40, the target 0 (the loss 3 e^-40, below float64's epsilon).
_CONFIDENT = Witness(call=lambda device: (
    torch.tensor([[40.0, 0.0, 0.0, 0.0]] * 4, dtype=torch.float64, device=device),
    torch.zeros(4, dtype=torch.float64, device=device),
    {"reduction": "none"},
))  # fmt: skip

#: (name, kind, bug, witness, seen in)
_MUTANTS: tuple[tuple[str, str, str, Witness, str], ...] = (
    # arguments: a bad one accepted, or a good one refused
    ("logits-int-accepted", "arguments", "integer logits computed on", _call(logits=torch.ones(4, 3, dtype=torch.long)), ""),
    ("logits-list-converted", "arguments", "logits as a list converted with torch.as_tensor", _call(logits=[[0.0, 1.0, 2.0]] * 4), ""),
    ("bfloat16-refused", "arguments", "bfloat16 logits refused (a dtype list without it)", _case(dtype=_BF16), ""),
    ("scalar-logits-unchecked", "arguments", "0-dim logits not refused: shape[-1] raises IndexError", _call(logits=torch.tensor(1.0), target=torch.tensor(0.0)), ""),
    ("one-bin-accepted", "arguments", "n >= 1 bins accepted: one bin reads bin -1", _call(logits=torch.zeros(4, 1), target=torch.zeros(4)), ""),
    ("bins-from-dim-1", "layout", "the bins read from dim 1 (reg_max of a (N, n) layout): (N, 4, n) sides take n = 4", _case(**_SIDES), ""),
    ("target-list-converted", "arguments", "a target list converted with torch.as_tensor", _call(target=_TARGET), ""),
    ("target-int-accepted", "arguments", "integer targets taken as bin positions", _call(target=torch.tensor([0, 1, 1, 2])), ""),
    ("target-bool-accepted", "arguments", "boolean targets taken as 0/1", _call(target=torch.tensor(_TARGET).bool()), ""),
    ("target-dtype-must-match", "arguments", "a target of another floating dtype than the logits' refused", _case(target_dtype=_F64), ""),
    ("target-sides-squeezed", "arguments", "a target of another shape with as many elements reshaped silently ((4, 1) for (4,))", _call(target=torch.tensor(_TARGET).view(4, 1)), ""),
    ("target-requires-grad-accepted", "arguments", "a target that requires grad accepted (its gradient silently dropped)", _call(target=torch.tensor(_TARGET).requires_grad_(True)), ""),
    ("target-above-range-accepted", "arguments", "target values checked for >= 0 only", _call(target=torch.tensor(_TARGET) + 0.5), _MMDET),
    ("target-negative-accepted", "arguments", "target values checked for <= n - 1 only", _call(target=torch.tensor(_TARGET) - 0.25), ""),
    ("target-nan-accepted", "arguments", "target range checked with (y < 0) | (y > n - 1): NaN passes", _call(target=torch.full((4,), math.nan)), ""),
    ("target-last-bin-rejected", "arguments", "y = n - 1 refused (y_r = y + 1 taken as a bin that must exist)", _case(targets="ends", reduction="none"), ""),
    ("target-range-clamped", "arguments", "a target outside [0, n - 1] clamped into it silently instead of refused", _call(target=torch.tensor(_TARGET) + 0.5), _ULTRALYTICS),
    ("reduction-unknown-is-mean", "arguments", "an unknown reduction falls through to the mean", _call(reduction="average"), ""),
    ("reduction-lowercased", "arguments", "reduction compared case-insensitively ('Mean' accepted)", _call(reduction="Mean"), ""),
    ("reduction-none-object-accepted", "arguments", "reduction=None taken as 'none'", _call(reduction=None), ""),
    # reductions
    ("sum-is-mean", "reduction", "'sum' returns the mean", _case(reduction="sum"), ""),
    ("mean-over-rows", "reduction", "'mean' divides by the number of boxes (the first dimension), not of sides", _case(**_SIDES), ""),
    ("mean-over-bins", "reduction", "'mean' divides by the number of logits (sides x bins)", _case(), ""),
    ("mean-nan-when-empty", "reduction", "the mean of no element is 0 / 0 = NaN", _case(shape=(0, 16)), _MMDET),
    ("mean-accumulated-in-dtype", "precision", "the mean summed in float16: overflows past 65504", _case(**_FP16_MEAN), ""),
    ("mean-gradient-not-scaled", "gradient", "the mean's gradient not divided by the number of elements", _case(), ""),
    ("none-flattened", "output", "'none' returns the flattened loss", _case(reduction="none", **_SIDES), ""),
    ("none-mean-over-sides", "output", "'none' returns the mean over the last leading axis (ultralytics' per-box .mean(-1, keepdim=True))", _case(reduction="none", **_SIDES), _ULTRALYTICS),
    # the target's bins and weights
    ("weights-swapped", "weights", "w_l and w_r swapped (w_l = y - y_l)", _case(targets="fractional"), ""),
    ("left-weight-one", "weights", "the left bin weighed 1 whatever the fraction", _case(targets="fractional"), ""),
    ("left-weight-as-fraction", "weights", "both weights y - floor(y)", _case(targets="fractional"), ""),
    ("floor-as-round", "weights", "y_l = round(y): the bins of a fraction above 1/2 one too high", _case(targets="fractional"), ""),
    ("left-is-ceil-minus-one", "weights", "y_l = ceil(y) - 1: y = 0 reads bin -1", _case(targets="ends", reduction="none"), ""),
    ("no-clamp-at-end", "weights", "y_l = floor(y) without the clamp to n - 2: y = n - 1 reads bin n", _case(targets="ends", reduction="none"), _MMDET),
    ("both-bins-last-at-end", "weights", "y_l and y_r both clamped to n - 1: y = n - 1 has weights 0 and 0 (loss 0)", _case(targets="ends", reduction="none"), ""),
    ("target-clamped-below-end", "weights", "the target clamped to n - 1.01 (a copy): y = n - 1 puts 0.01 on bin n - 2", _case(targets="top", reduction="none"), _ULTRALYTICS),
    ("weights-in-half", "precision", "the target converted to float16 for the weights: 14.9 becomes 14.8984", _case(), ""),
    ("target-in-float32", "precision", "the target converted to float32: a float64 target loses its digits", _case(dtype=_F64, reduction="none"), ""),
    # the softmax terms
    ("log-of-softmax", "stability", "log(softmax(z)) instead of log_softmax: -inf at a hopeless element's target bin", _case(magnitude=1e4, reduction="none"), ""),
    ("softmax-plus-eps", "stability", "log(softmax(z) + 1e-9)", _case(dtype=_F64, reduction="none"), ""),
    ("softmax-over-dim-1", "layout", "the softmax taken over dim 1: the sides of (N, 4, n), not the bins", _case(**_SIDES), ""),
    ("missing-max-shift", "stability", "logsumexp as log(sum(exp(z))): overflows past z = 709 (88 in float32)", _case(grid=True, shift=1e4), ""),
    ("shift-by-first-bin", "stability", "e^z shifted by the first bin instead of the largest: overflows where another bin is far ahead", _case(magnitude=1e4), ""),
    ("normalized-over-target-bins", "focal term", "the softmax normalized over the two target bins only", _case(), ""),
    ("right-term-missing", "focal term", "only w_l (-log S_l): the right bin's term missing", _case(targets="fractional"), ""),
    ("entropy-subtracted", "focal term", "KL(w || S) instead of the cross-entropy: the weights' entropy subtracted", _case(targets="fractional"), ""),
    ("loss-sign-flipped", "focal term", "the loss negated (log S instead of -log S)", _case(), ""),
    ("lse-minus-logits", "precision", "logsumexp(z) - w_l z_l - w_r z_r: a confident element's loss e^-gap cancels to 0, and 0 x -inf at an absent bin", _CONFIDENT, ""),
    ("log-without-log1p", "stability", "-log S_k as log(1 + e^d): 0 for a confident bin, inf past d = 709", _case(magnitude=1e4, reduction="none"), ""),
    ("logits-clamped", "stability", "logits clamped to [-100, 100]", _case(magnitude=1e4), ""),
    ("nan-to-num", "stability", "torch.nan_to_num on the loss: NaN hidden as 0", _case(nan=0.02, reduction="none"), ""),
    ("zero-weight-term-nan", "stability", "w x (-log S) where w = 0 and the bin is at -inf: 0 x inf = NaN", _case(absent="zero_weight", targets="integer", reduction="none"), "mmdet, ultralytics"),
    ("logsumexp-shifted-by-target", "gradient", "d_k as logsumexp(z - z_k): a NaN gradient where the target bin is at -inf", _case(absent="target", targets="fractional", reduction="none"), ""),
    # the gradient
    ("lse-detached", "gradient", "the log-sum-exp detached: the softmax missing from the gradient", _case(), ""),
    ("logit-terms-detached", "gradient", "the target bins' logits detached: -w missing from the gradient", _case(), ""),
    ("gradient-sign-flipped", "gradient", "the gradient w - S instead of S - w", _case(), ""),
    ("gradient-ignores-upstream", "gradient", "'none' gradient written for an upstream gradient of 1", _case(reduction="none"), ""),
    ("loss-detached", "gradient", "the loss returned detached: no gradient", _case(), ""),
    # precision
    ("computes-in-float32", "precision", "computed in float32 whatever the logits' dtype", _case(dtype=_F64), ""),
    ("half-arithmetic", "precision", "half-precision logits computed in their own dtype: the float16 sum of a mean overflows", _case(**_FP16_MEAN), ""),
    ("bfloat16-through-float16", "precision", "bfloat16 logits converted to float16: inf beyond 65504", _case(dtype=_BF16, magnitude=1e5, targets="integer", reduction="none"), ""),
    ("result-in-float32", "output", "the result returned in float32", _case(dtype=_F64), ""),
    ("result-in-float64", "output", "the result returned in the compute dtype (float64)", _case(), ""),
    ("returns-python-float", "output", "the reduced loss returned as a Python float (.item())", _case(reduction="sum"), ""),
    # layout
    ("strides-ignored", "layout", "the logits' storage read as if contiguous (bins strided)", _case(layout="non_contiguous", reduction="none"), ""),
    ("target-read-as-contiguous", "layout", "the target's storage read as if contiguous", _case(layout="non_contiguous", reduction="none"), ""),
    ("one-distribution-unsqueezed", "output", "(n,) logits made (1, n): the 'none' loss of one distribution is (1,)", _case(shape=(16,), reduction="none"), ""),
    # the caller's tensors
    ("target-clamped-in-place", "inputs", "the target clamped to [0, n - 1.01] in the caller's tensor (target.clamp_)", _case(targets="top", reduction="sum"), _ULTRALYTICS),
    ("logits-shifted-in-place", "inputs", "the largest logit subtracted in place from the caller's logits", _case(), ""),
)  # fmt: skip

#: The dfl family's catalogue: the baseline above and its mutants.
CATALOGUE = Catalogue(
    family="dfl",
    baseline=baseline,
    mutants=tuple(Mutant(name, kind, bug, witness, seen_in) for name, kind, bug, witness, seen_in in _MUTANTS),
)
