r"""The sigmoid family's mutant catalogue: a careful baseline written as a mutant schema, and its realistic bugs.

The baseline is the straightforward correct sigmoid focal loss (torchvision's meaning,
:mod:`focalbench.losses.sigmoid.semantics`): its own guards, then, in float64 plain autograd, per element (logit ``x``,
target ``t``) the log-space form of :mod:`focalbench.implementations.sigmoid_reference`,

.. math::

    \log p = -\mathrm{softplus}(-x), \qquad \log(1 - p) = -\mathrm{softplus}(x), \qquad
    \mathrm{CE} = t\,\mathrm{softplus}(-x) + (1 - t)\,\mathrm{softplus}(x),

    \log(1 - p_t) = \log\big(p (1 - t) + (1 - p) t\big), \qquad
    \mathrm{FL} = \alpha_t\, e^{\gamma \log(1 - p_t)}\, \mathrm{CE}

with ``softplus(x) = logaddexp(x, 0)`` and ``log(1 - p_t)`` taken as ``log p`` or ``log(1 - p)`` for hard targets and
as ``logaddexp(log(1 - t) + log p, log t + log(1 - p))`` for soft ones: nothing is computed as one minus a number
close to 1, and the derivative of a hard target's loss is a sum of positive terms (``dFL/dx = alpha_t (1 - p_t)^gamma
[gamma p CE + p]`` at ``t = 0``), which autograd differentiates to the accuracy bound.

Where ``p`` or ``1 - p`` is exactly 0 in float64 (``|x|`` past ~745, +-inf included) the loss is linear in ``x`` to
the last bit: ``1 - p_t`` is ``1 - t`` (``x > 0``) or ``t`` (``x < 0``) and CE is ``(1 - t) x`` or ``-t x``, so

.. math::

    \mathrm{FL} = c\, x, \qquad c = \alpha_t\, m^\gamma \,\big(p (1 - t) - (1 - p) t\big), \quad m = 1 - p_t
    \text{ at the limit},

which gives the limits ``sigmoid_reference`` computes (loss 0 where ``c = 0``: the target agrees or the element
weighs nothing; +inf at an infinite logit that disagrees; the gradient ``c`` there), and never multiplies CE ~ x by
the focal factor's derivative 0 (``inf * 0``, or an overflow near the dtype's largest number times 0). Those elements
are taken out of the ordinary branch by double-``where`` (its input is 0 there), so their gradient is ``c`` alone. It
passes every check of the family with nothing declared (``pytest -m mutants``) and is differentiable twice.

Each ``bug("name")`` below is one mutant: the line as it would be written wrong. The catalogue (:data:`CATALOGUE`)
says what each gets wrong, where such a bug shipped, and the witness on which it is wrong.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F

from focalbench.arena.families.sigmoid.cases import SigmoidCase, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, Witness, call_witness
from focalbench.arena.mutation import contiguous_strides as _contiguous_strides
from focalbench.arena.mutation import elements_witness as _elements
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_REDUCTIONS = ("mean", "sum", "none")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)






def _check_alpha(alpha: object, bug) -> float:
    """A float <= 1, -1.0 for no weighting (checked)."""
    if isinstance(alpha, torch.Tensor) and alpha.dim() == 0 and alpha.is_floating_point():
        if bug("alpha-tensor-rejected"):
            raise TypeError("alpha must be a real number <= 1. Got: Tensor")
        if alpha.requires_grad and torch.is_grad_enabled():
            raise ValueError("alpha must not require grad")
        alpha = float(alpha.float()) if bug("alpha-tensor-in-float32") else float(alpha)
    if isinstance(alpha, bool):
        if not bug("alpha-bool-accepted"):
            raise TypeError(f"alpha must be a real number <= 1. Got: bool {alpha!r}")
    elif not isinstance(alpha, numbers.Real) and not (bug("alpha-str-accepted") and isinstance(alpha, str)):
        raise TypeError(f"alpha must be a real number <= 1. Got: {type(alpha).__name__}")
    value = float(alpha)  # type: ignore[arg-type]
    if (math.isnan(value) and not bug("alpha-nan-accepted")) or (value > 1 and not bug("alpha-above-one-accepted")):
        raise ValueError(f"alpha must be a number <= 1 (a negative alpha means no weighting). Got: {value!r}")
    return value


def _check_gamma(gamma: object, bug) -> float:
    """A finite float >= 0 (a 0-dim floating tensor read as one)."""
    if isinstance(gamma, torch.Tensor):
        if bug("gamma-tensor-rejected"):
            raise TypeError("gamma must be a real number >= 0. Got: Tensor")
        if (gamma.dim() != 0 and not bug("gamma-tensor-any-shape")) or not gamma.is_floating_point():
            raise TypeError(f"gamma must be a number or a 0-dim floating tensor. Got: shape {tuple(gamma.shape)}")
        if gamma.requires_grad and torch.is_grad_enabled():
            raise ValueError("gamma must not require grad")
        gamma = float(gamma)
    if isinstance(gamma, bool):
        if not bug("gamma-bool-accepted"):
            raise TypeError(f"gamma must be a real number >= 0. Got: bool {gamma!r}")
    elif not isinstance(gamma, numbers.Real) and not (bug("gamma-str-accepted") and isinstance(gamma, str)):
        raise TypeError(f"gamma must be a real number >= 0. Got: {type(gamma).__name__}")
    value = float(gamma)  # type: ignore[arg-type]
    wrong = value < 0 if bug("gamma-nan-accepted") else not value >= 0
    if (wrong and not bug("gamma-negative-accepted")) or (math.isinf(value) and not bug("gamma-inf-accepted")):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {value!r}")
    return float(int(value)) if bug("integer-gamma") else value


def baseline(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: object = 0.25,
    gamma: object = 2.0,
    reduction: str = "none",
    fault: str | None = None,
) -> torch.Tensor:
    """The sigmoid focal loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

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
    accepted = tuple(d for d in _FLOAT_DTYPES if d != torch.bfloat16) if bug("bfloat16-refused") else _FLOAT_DTYPES
    if logits.dtype not in accepted and not bug("logits-int-accepted"):
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64. Got: {logits.dtype}")
    integer_taken = bug("target-int-accepted") and target.dtype != torch.bool
    bool_taken = bug("target-bool-accepted") and target.dtype == torch.bool
    if not target.is_floating_point() and not (integer_taken or bool_taken):
        raise TypeError(f"target must be a floating-point tensor of probabilities in [0, 1]. Got: {target.dtype}")
    if bug("target-dtype-must-match") and target.dtype != logits.dtype:
        raise TypeError(f"target must have the logits' dtype {logits.dtype}. Got: {target.dtype}")
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
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device ({logits.device}). Got: {target.device}")
    if bug("reduction-lowercased") and isinstance(reduction, str):
        reduction = reduction.lower()
    if bug("reduction-none-object-accepted") and reduction is None:
        reduction = "none"
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        if bug("reduction-unknown-is-mean") or bug("reduction-unknown-is-none"):
            reduction = "mean" if bug("reduction-unknown-is-mean") else "none"
        else:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
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
        target.clamp_(1e-6, 1 - 1e-6)  # "for stability", in the caller's tensor
    if bug("logits-sanitized-in-place"):
        logits.data.nan_to_num_()

    # --- float64 elements ---------------------------------------------------------------------------------------
    if bug("computes-in-float32"):
        x = logits.float()
    elif bug("half-arithmetic") and logits.dtype in (torch.float16, torch.bfloat16):
        x = logits  # computed in its own dtype, as torchvision does
    elif bug("bfloat16-through-float16") and logits.dtype == torch.bfloat16:
        x = logits.half().double()
    else:
        x = logits.double()
    if bug("target-through-logits-dtype"):
        t = target.to(logits.dtype).to(x.dtype)
    elif bug("target-in-float32"):
        t = target.float().to(x.dtype)
    else:
        t = target.to(x.dtype)
    if bug("strides-ignored"):
        x = torch.as_strided(x, x.shape, _contiguous_strides(x.shape))
    if bug("target-read-as-contiguous"):
        t = torch.as_strided(t, t.shape, _contiguous_strides(t.shape))
    if bug("target-channels-last") and t.dim() > 2:
        t = t.movedim(1, -1).reshape(t.shape)  # permuted like a (N, H, W, C) map, then viewed as (N, C, H, W)
    if bug("scalar-unsqueezed") and x.dim() == 0:
        x, t = x.unsqueeze(0), t.unsqueeze(0)
    if bug("logits-clamped"):
        x = x.clamp(-100, 100)

    # --- where p or 1 - p is exactly 0 (|x| past ~745 in float64, +-inf): the loss is c x -----------------------
    if bug("no-guard-at-infinity"):
        far = torch.zeros_like(x, dtype=torch.bool)
    elif bug("guard-only-at-infinity"):
        far = torch.isinf(x.detach())
    else:
        far = torch.exp(-x.detach().abs()) == 0
    x_safe = x if bug("single-where") else torch.where(far, 0.0, x)  # the ordinary branch never sees them

    # --- the ordinary branch ------------------------------------------------------------------------------------
    if bug("log-of-sigmoid"):
        log_p, log_q = torch.sigmoid(x_safe).log(), torch.sigmoid(-x_safe).log()
    elif bug("log-plus-eps"):
        log_p, log_q = (torch.sigmoid(x_safe) + 1e-8).log(), (torch.sigmoid(-x_safe) + 1e-8).log()
    elif bug("p-clamped"):
        p = torch.sigmoid(x_safe).clamp(1e-7, 1 - 1e-7)
        log_p, log_q = p.log(), (1 - p).log()
    elif bug("softplus-default-threshold"):
        log_p, log_q = -F.softplus(-x_safe), -F.softplus(x_safe)  # F.softplus returns x itself past x = 20
    elif bug("softplus-naive"):
        log_p, log_q = -torch.log(1 + torch.exp(-x_safe)), -torch.log(1 + torch.exp(x_safe))
    else:
        log_p, log_q = -_softplus(-x_safe), -_softplus(x_safe)
    if bug("bce-monai-form"):
        ce = x_safe - x_safe * t - F.logsigmoid(x_safe)
    elif bug("bce-of-probabilities"):
        ce = F.binary_cross_entropy(torch.sigmoid(x_safe), t, reduction="none")
    else:
        ce = -(t * log_p + (1 - t) * log_q)
    # log(1 - p_t): log p or log(1 - p) for hard targets (logaddexp with a -inf argument: a NaN second derivative)
    soft = torch.where((t > 0) & (t < 1), t, 0.5)
    mixed = torch.logaddexp(torch.log1p(-soft) + log_p, torch.log(soft) + log_q)
    log_m = torch.where(t == 0, log_p, torch.where(t == 1, log_q, mixed))
    if bug("monai-soft-factor"):
        log_m = F.logsigmoid(-x_safe * (2 * t - 1))
    if bug("one-minus-exp-bce"):
        factor = (1 - torch.exp(-ce)).pow(gamma)
    elif bug("p-t-as-power"):
        p = torch.sigmoid(x_safe)
        factor = (1 - p.pow(t) * (1 - p).pow(1 - t)).pow(gamma)
    elif bug("one-minus-p-t"):
        p = torch.sigmoid(x_safe)
        factor = (1 - (p * t + (1 - p) * (1 - t))).pow(gamma)
    elif bug("focal-factor-of-p"):
        factor = (1 - log_m.exp()).pow(gamma)
    else:
        factor = torch.exp(gamma * log_m)
    if bug("focal-factor-detached"):
        factor = factor.detach()

    # --- weights ------------------------------------------------------------------------------------------------
    if bug("alpha-negative-used"):
        weighted = True
    elif bug("alpha-minus-one-only"):
        weighted = alpha != -1
    elif bug("alpha-zero-means-none"):
        weighted = bool(alpha) and alpha >= 0
    elif bug("alpha-ends-unweighted"):
        weighted = 0 < alpha < 1
    else:
        weighted = alpha >= 0
    if not weighted:
        alpha_t = torch.ones_like(t)
    elif bug("alpha-swapped"):
        alpha_t = (1 - alpha) * t + alpha * (1 - t)
    elif bug("alpha-hard-threshold"):
        alpha_t = torch.where(t >= 0.5, alpha, 1 - alpha)
    else:
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
    if bug("alpha-twice"):
        alpha_t = alpha_t * alpha_t
    if bug("kornia-two-terms"):  # t (1 - p)^gamma (-log p) + (1 - t) p^gamma (-log(1 - p)), each with its alpha
        alpha_pos, alpha_neg = (alpha, 1 - alpha) if weighted else (1.0, 1.0)
        ordinary = -(alpha_pos * t * torch.exp(gamma * log_q) * log_p + alpha_neg * (1 - t) * torch.exp(gamma * log_p)
                     * log_q)  # fmt: skip
    elif bug("gamma-zero-is-bce") and gamma == 0:
        ordinary = F.binary_cross_entropy_with_logits(x_safe, t, reduction="none")
    else:
        ordinary = alpha_t * factor * ce

    # --- the far elements: FL = c x, c = alpha_t m^gamma (p (1 - t) - (1 - p) t) at the limit -------------------
    p_limit = (x.detach() > 0).to(x.dtype)
    m_limit = p_limit * (1 - t) + (1 - p_limit) * t
    slope = alpha_t * m_limit.pow(gamma) * (p_limit * (1 - t) - (1 - p_limit) * t)
    linear = slope * (x.detach() if bug("far-branch-detached") else x)
    loss = torch.where(far, torch.where(slope != 0, linear, 0.0), ordinary)
    if bug("nan-to-num"):
        loss = torch.nan_to_num(loss)

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
        if bug("sum-is-mean"):
            result = loss.mean()
        elif bug("sum-of-spatial-means"):  # MONAI's "sum": each map's spatial mean first, (N, C) a mean
            result = loss.flatten(2).mean(2).sum() if loss.dim() > 2 else loss.mean()
        else:
            result = loss.sum()
    elif bug("mean-over-rows"):
        result = loss.sum() / max(loss.shape[0] if loss.dim() else 1, 1)
    elif bug("mean-over-positives"):
        result = loss.sum() / t.sum().clamp_min(1)
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
    return Witness(case=SigmoidCase(**{"shape": (16, 7), "seed": 7100, **fields}))


_call = functools.partial(call_witness, bad_call)  # a witness calling bad_call with one argument changed




_F64, _BF16, _F16 = torch.float64, torch.bfloat16, torch.float16
_KORNIA, _MONAI, _SMP, _TORCHVISION = "kornia", "MONAI", "segmentation_models_pytorch", "torchvision"
_TARGET = [[1.0, 0.0, 0.0]] * 4

#: (name, kind, bug, witness, seen in)
_MUTANTS: tuple[tuple[str, str, str, Witness, str], ...] = (
    # arguments: a bad one accepted, or a good one refused
    ("logits-int-accepted", "arguments", "integer logits computed on", _call(logits=torch.ones(4, 3, dtype=torch.long)), ""),
    ("logits-list-converted", "arguments", "logits as a list converted with torch.as_tensor", _call(logits=[[0.0, 1.0, 2.0]] * 4), ""),
    ("target-list-converted", "arguments", "a target list converted with torch.as_tensor", _call(target=_TARGET), ""),
    ("bfloat16-refused", "arguments", "bfloat16 logits refused (a dtype list without it)", _case(dtype=_BF16), ""),
    ("target-int-accepted", "arguments", "integer targets taken as floats", _call(target=torch.tensor(_TARGET).long()), ""),
    ("target-bool-accepted", "arguments", "boolean targets taken as 0/1", _call(target=torch.tensor(_TARGET).bool()), ""),
    ("target-dtype-must-match", "arguments", "a target of another floating dtype than the logits' refused", _case(target_dtype=_F64), ""),
    ("target-shape-broadcast", "arguments", "a target of another shape broadcast silently ((4, 1) against (4, 3))", _call(target=torch.ones(4, 1)), ""),
    ("target-numel-checked", "arguments", "the target's shape checked by its number of elements: a transposed target accepted", _call(target=torch.zeros(3, 4)), ""),
    ("target-above-one-accepted", "arguments", "target values checked for >= 0 only", _call(target=torch.tensor(_TARGET) * 2), ""),
    ("target-negative-accepted", "arguments", "target values checked for <= 1 only", _call(target=-torch.tensor(_TARGET)), ""),
    ("target-nan-accepted", "arguments", "target range checked with (t < 0) | (t > 1): NaN passes", _call(target=torch.full((4, 3), math.nan)), ""),
    ("alpha-above-one-accepted", "arguments", "alpha > 1 accepted (negative weights for negatives)", _call(alpha=1.5), ""),
    ("alpha-nan-accepted", "arguments", "alpha checked with alpha > 1: NaN passes", _call(alpha=math.nan), ""),
    ("alpha-str-accepted", "arguments", "alpha as a string converted with float()", _call(alpha="0.25"), ""),
    ("alpha-bool-accepted", "arguments", "alpha=True taken as 1.0", _call(alpha=True), ""),
    ("alpha-tensor-rejected", "arguments", "a 0-dim tensor alpha (a module's buffer) refused", _case(alpha_tensor=True), ""),
    ("gamma-negative-accepted", "arguments", "gamma < 0 accepted", _call(gamma=-0.5), ""),
    ("gamma-nan-accepted", "arguments", "gamma checked with gamma < 0: NaN passes", _call(gamma=math.nan), ""),
    ("gamma-inf-accepted", "arguments", "gamma = inf accepted", _call(gamma=math.inf), ""),
    ("gamma-str-accepted", "arguments", "gamma as a string converted with float()", _call(gamma="2"), ""),
    ("gamma-bool-accepted", "arguments", "gamma=True taken as 1.0", _call(gamma=True), ""),
    ("gamma-tensor-rejected", "arguments", "a 0-dim tensor gamma (a schedule's) refused", _case(gamma_tensor=True), ""),
    ("gamma-tensor-any-shape", "arguments", "a gamma tensor of one element and any shape read with float()", _call(gamma=torch.tensor([2.0])), ""),
    ("reduction-unknown-is-mean", "arguments", "an unknown reduction falls through to the mean", _call(reduction="average"), ""),
    ("reduction-unknown-is-none", "arguments", "an unknown reduction falls through to the default 'none'", _call(reduction="average"), ""),
    ("reduction-lowercased", "arguments", "reduction compared case-insensitively ('Mean' accepted)", _call(reduction="Mean"), ""),
    ("reduction-none-object-accepted", "arguments", "reduction=None taken as 'none'", _call(reduction=None), ""),
    # reductions
    ("sum-is-mean", "reduction", "'sum' returns the mean", _case(reduction="sum"), ""),
    ("sum-of-spatial-means", "reduction", "'sum' averages each map over its spatial dims first ((N, C): a mean)", _case(reduction="sum"), _MONAI),
    ("mean-over-rows", "reduction", "the mean divides by the number of rows (anchors), not of elements", _case(reduction="mean"), ""),
    ("mean-over-positives", "reduction", "the mean divides by the number of positives (RetinaNet's normalizer)", _case(reduction="mean"), ""),
    ("mean-nan-when-empty", "reduction", "the mean of no element is 0 / 0 = NaN", _case(shape=(0, 80), reduction="mean"), _TORCHVISION),
    ("mean-accumulated-in-dtype", "precision", "the mean summed in float16: overflows past 65504", _case(shape=(16, 16), dtype=_F16, magnitude=1e3, reduction="mean"), ""),
    ("none-flattened", "output", "'none' returns the flattened loss", _case(reduction="none"), ""),
    ("none-squeezed", "output", "'none' squeezed: a row of one gives a (C,) loss", _case(shape=(1, 80), reduction="none"), ""),
    # weights
    ("alpha-swapped", "weights", "alpha weights the negatives and 1 - alpha the positives", _case(), ""),
    ("alpha-hard-threshold", "weights", "alpha_t chosen by t >= 0.5: soft targets weighted as hard ones", _case(targets="soft"), ""),
    ("alpha-negative-used", "weights", "a negative alpha used as a weight instead of meaning no weighting", _case(alpha=-1.0), ""),
    ("alpha-minus-one-only", "weights", "only alpha = -1 means no weighting: another negative alpha weights", _case(alpha=-0.5), ""),
    ("alpha-zero-means-none", "weights", "`if alpha:` makes alpha = 0 unweighted", _case(alpha=0.0), ""),
    ("alpha-ends-unweighted", "weights", "alpha = 1 (and 0) taken as no weighting (0 < alpha < 1 tested)", _case(alpha=1.0), ""),
    ("alpha-twice", "weights", "alpha_t applied twice", _case(), ""),
    ("alpha-tensor-in-float32", "precision", "a float64 alpha tensor read through float32", _case(dtype=_F64, alpha=0.3, alpha_tensor=True), ""),
    # the focal term
    ("one-minus-exp-bce", "focal term", "1 - p_t as 1 - exp(-BCE): p^t (1 - p)^(1 - t) for soft targets, NaN gradients for 0 < gamma < 1 where it rounds to 0", _case(targets="soft"), _SMP),
    ("p-t-as-power", "focal term", "p_t = p^t (1 - p)^(1 - t): not p t + (1 - p)(1 - t) for soft targets", _case(targets="soft"), ""),
    ("kornia-two-terms", "focal term", "t (1 - p)^gamma (-log p) + (1 - t) p^gamma (-log(1 - p)): a soft target weights two terms", _case(targets="soft"), _KORNIA),
    ("monai-soft-factor", "focal term", "the focal factor sigmoid(-x (2t - 1)): not 1 - p_t for soft targets", _case(targets="soft"), _MONAI),
    ("focal-factor-of-p", "focal term", "p_t^gamma instead of (1 - p_t)^gamma", _case(), ""),
    ("focal-factor-detached", "gradient", "the focal factor detached", _case(), ""),
    ("integer-gamma", "focal term", "gamma truncated to an int", _case(gamma=0.5), ""),
    ("gamma-zero-is-bce", "focal term", "gamma = 0 returns F.binary_cross_entropy_with_logits, dropping alpha", _case(gamma=0.0), ""),
    ("one-minus-p-t", "precision", "1 - p_t computed as one minus p t + (1 - p)(1 - t): its digits lost at confident elements", _elements(-30.0, 0.0), _TORCHVISION),
    # stability
    ("log-of-sigmoid", "stability", "log(sigmoid(x)) instead of logsigmoid: CE 0 at confident elements", _elements(-30.0, 0.0), ""),
    ("log-plus-eps", "stability", "log(p + 1e-8)", _case(dtype=_F64), ""),
    ("p-clamped", "stability", "p clamped to [1e-7, 1 - 1e-7]", _case(magnitude=30.0), ""),
    ("softplus-default-threshold", "precision", "F.softplus, which returns x itself past x = 20: exp(-x) lost", _case(dtype=_F64, magnitude=20.0), ""),
    ("softplus-naive", "stability", "softplus as log(1 + exp(x)): 0 below exp(x) ~ 1e-16", _elements(-30.0, 0.0), ""),
    ("bce-monai-form", "stability", "BCE as x - x t - logsigmoid(x): cancels at confident negatives", _elements(-30.0, 0.0), _MONAI),
    ("bce-of-probabilities", "stability", "F.binary_cross_entropy(sigmoid(x), t): p rounds to 1, its log clamped at -100", _case(dtype=_F64, magnitude=30.0), ""),
    ("no-guard-at-infinity", "stability", "no limit branch: inf - inf and 0 * inf give NaN at infinite logits", _case(infinite=0.3), ""),
    ("guard-only-at-infinity", "stability", "the limit branch for +-inf only: CE ~ x times gamma overflows near the largest float64, times 0", _case(shape=(4, 6), dtype=_F64, gamma=5.0, magnitude="max"), ""),
    ("single-where", "gradient", "infinite logits masked by one where: the ordinary branch's 0 * inf reaches the gradient", _case(infinite=0.3), ""),
    ("far-branch-detached", "gradient", "the limit branch's loss c x detached: no gradient at infinite logits", _case(infinite=0.3), ""),
    ("logits-clamped", "stability", "logits clamped to [-100, 100]", _case(magnitude=1e3, gamma=0.0, alpha=-1.0), ""),
    ("nan-to-num", "stability", "torch.nan_to_num on the loss: NaN hidden as 0, +inf as the largest float", _case(nan=0.2), ""),
    # precision
    ("computes-in-float32", "precision", "computed in float32 whatever the logits' dtype", _case(dtype=_F64), _MONAI),
    ("half-arithmetic", "precision", "half-precision logits computed in their own dtype (a float16 sum overflows)", _case(shape=(16, 16), dtype=_F16, magnitude=1e3, reduction="mean"), ""),
    ("bfloat16-through-float16", "precision", "bfloat16 logits converted to float16: inf beyond 65504", _case(shape=(4, 6), dtype=_BF16, magnitude=1e5), ""),
    ("target-through-logits-dtype", "precision", "the target rounded through the logits' half dtype: 1e-30 becomes 0, 1 - 1e-7 becomes 1 (an infinite logit's limit flips)", _case(dtype=_F16, target_dtype=torch.float32, targets="edge", infinite=0.3), ""),
    ("target-in-float32", "precision", "the target converted to float32: 1 - 1e-7 loses its digits in float64", _case(dtype=_F64, targets="edge"), ""),
    ("result-in-float32", "output", "the result returned in float32", _case(dtype=_F64), ""),
    ("result-in-float64", "output", "the result returned in the compute dtype (float64)", _case(), ""),
    # layout
    ("strides-ignored", "layout", "the logits' storage read as if contiguous", _case(layout="non_contiguous"), ""),
    ("target-read-as-contiguous", "layout", "the target's storage read as if contiguous", _case(layout="non_contiguous"), ""),
    ("target-channels-last", "layout", "a dense target permuted to (N, H, W, C) and viewed back as (N, C, H, W)", _case(shape=(3, 21, 5, 7)), ""),
    ("scalar-unsqueezed", "output", "0-dim logits made (1,): the 'none' loss of a scalar is (1,)", _case(shape=()), ""),
    # the returned object
    ("returns-python-float", "output", "the reduced loss returned as a Python float (.item())", _case(reduction="sum"), ""),
    ("loss-detached", "gradient", "the loss returned detached: no gradient", _case(), ""),
    # the caller's tensors
    ("target-clamped-in-place", "inputs", "the target clamped to [1e-6, 1 - 1e-6] in the caller's tensor", _case(), ""),
    ("logits-sanitized-in-place", "inputs", "NaN and +-inf logits replaced in the caller's tensor (logits.data.nan_to_num_())", _case(nan=0.2), ""),
)  # fmt: skip

#: The sigmoid family's catalogue: the baseline above and its mutants.
CATALOGUE = Catalogue(
    family="sigmoid",
    baseline=baseline,
    mutants=tuple(Mutant(name, kind, bug, witness, seen_in) for name, kind, bug, witness, seen_in in _MUTANTS),
)
