r"""The linear family's mutant catalogue: a careful chunked baseline written as a mutant schema, and its realistic
bugs.

The baseline is the fused linear focal loss as a careful user would write it without a kernel: its own guards, then
a chunk of rows at a time under ``torch.utils.checkpoint`` (non-reentrant: the chunk's logits are not kept for the
backward but computed again there, so the memory does not grow with the rows, and a double backward goes through),
each row in float64 from the logits' values as ``F.linear`` rounds them in the inputs' dtype and their exact float64
derivative (the gradients of the weight and bias summed over the chunks in float64):

.. math::

    d = \mathrm{logsumexp}_{j \ne t}(z_j) - z_t, \qquad -\log p_t = \mathrm{softplus}(d), \qquad
    1 - p_t = \mathrm{sigmoid}(d), \qquad \mathrm{FL} = \alpha_t (1 - p_t)^\gamma (-\log p_t)

(nothing is one minus a number close to 1: a confident row's tiny loss keeps its digits). It passes every check of
the family with nothing declared (``pytest -m mutants``).

Each ``bug("name")`` is one mutant: the line as it would be written wrong. The catalogue says what each gets wrong,
where such a bug shipped, and the witness on which it is wrong (judged on the loss, the three gradients and a second
backward: :func:`focalbench.arena.families.linear.checks.witness_judge`). Bugs of memory alone (logits held for every
row, a chunk size that grows with the rows) change no value, so no witness can show them: ``linear_memory`` is
shown to catch them by the tests instead (on ``linear_unfused`` and ``linear_reference``, which hold every logit).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from focalbench.arena.families.linear.cases import LinearCase, bad_call
from focalbench.arena.mutation import Catalogue, Mutant, UpstreamIgnored, Witness, call_witness
from focalbench.arena.mutation import contiguous_strides as _contiguous_strides
from focalbench.arena.mutation import softplus as _softplus

__all__ = ["CATALOGUE", "baseline"]

_REDUCTIONS = ("mean", "sum", "none")
_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class _ScaledInPlace(torch.autograd.Function):
    """The identity whose backward scales a factor it saved, in place, by the upstream gradient (Liger-Kernel's
    in-place reuse of saved gradients): right at the first backward, scaled twice at the second."""

    @staticmethod
    def forward(ctx, loss: torch.Tensor) -> torch.Tensor:
        ctx.factor = torch.ones_like(loss)
        return loss.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return ctx.factor.mul_(grad_output)


def _guards(hidden, target, weight, bias, alpha, reduction, ignore_index, chunk_size, bug):
    """Every argument checked before any work (``bug`` switches one wrong check on); returns the normalized ones."""
    if bug("hidden-list-converted") and isinstance(hidden, list):
        hidden = torch.as_tensor(hidden)
    for name, value in (("hidden", hidden), ("weight", weight), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor. Got: {type(value).__name__}")
    if bug("hidden-int-accepted") and not hidden.is_floating_point():
        hidden = hidden.float()
    if hidden.dtype not in _FLOAT:
        raise TypeError(f"hidden must be a floating tensor. Got: {hidden.dtype}")
    if bug("scalar-hidden-unsqueezed") and hidden.dim() == 0:
        hidden, target = hidden.reshape(1, 1), target.reshape(1)
    if hidden.dim() < 1:
        raise ValueError(f"hidden must have shape (..., H). Got: {tuple(hidden.shape)}")
    if bug("weight-1d-reshaped") and weight.dim() == 1 and weight.numel() % hidden.shape[-1] == 0:
        weight = weight.reshape(-1, hidden.shape[-1])
    if bug("weight-dtype-promoted"):
        weight = weight.to(hidden.dtype)
    if weight.dtype != hidden.dtype:
        raise TypeError(f"weight must have the hidden states' dtype. Got: {weight.dtype}")
    if weight.dim() != 2 or (weight.shape[1] != hidden.shape[-1] and not bug("weight-shape-unchecked")):
        raise ValueError(f"weight must have shape (V, {hidden.shape[-1]}). Got: {tuple(weight.shape)}")
    if weight.shape[0] < (1 if bug("one-class-accepted") else 2):
        raise ValueError(f"weight must have at least 2 rows. Got: {tuple(weight.shape)}")
    classes = weight.shape[0]
    if bias is not None:
        if bug("bias-list-converted") and isinstance(bias, list):
            bias = torch.as_tensor(bias, dtype=hidden.dtype)
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be None or a tensor. Got: {type(bias).__name__}")
        if bug("bias-dtype-promoted"):
            bias = bias.to(hidden.dtype)
        if bias.dtype != hidden.dtype:
            raise TypeError(f"bias must have the hidden states' dtype. Got: {bias.dtype}")
        if tuple(bias.shape) != (classes,) and not (bug("bias-broadcast") and tuple(bias.shape) == (1,)):
            raise ValueError(f"bias must have shape ({classes},). Got: {tuple(bias.shape)}")
    if chunk_size is not None:
        if bug("chunk-size-float-truncated") and isinstance(chunk_size, float):
            chunk_size = int(chunk_size)
        if bug("chunk-size-bool-accepted") and isinstance(chunk_size, bool):
            chunk_size = int(chunk_size)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be None or an int >= 1. Got: {chunk_size!r}")
        if chunk_size < 1:
            if not bug("chunk-size-zero-is-default"):
                raise ValueError(f"chunk_size must be None or an int >= 1. Got: {chunk_size}")
            chunk_size = None
    if bug("target-float-accepted") and target.is_floating_point():
        target = target.long()
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor. Got: {target.dtype}")
    lead = tuple(hidden.shape[:-1])
    if bug("target-flattened") and tuple(target.shape) != lead and target.numel() == math.prod(lead):
        target = target.reshape(lead)
    if tuple(target.shape) != lead:
        raise ValueError(f"target must have shape {lead}. Got: {tuple(target.shape)}")
    if bug("ignore-index-float-truncated") and isinstance(ignore_index, float):
        ignore_index = int(ignore_index)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int. Got: {ignore_index!r}")
    if bug("ignore-index-hardcoded"):
        ignore_index = -100
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        if not bug("reduction-unknown-is-mean"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none'. Got: {reduction!r}")
        reduction = "mean"
    valid = target != ignore_index
    if bug("target-negative-accepted"):
        valid = valid & (target >= 0)
    outside = valid & ((target < 0) | (target >= classes))
    if bool(outside.any()):
        if not bug("target-clamped"):
            raise ValueError(
                f"target values must be in [0, {classes}) or ignore_index. Got: {target[outside].tolist()}"
            )
        target = torch.where(valid, target.clamp(0, classes - 1), target)
    if alpha is None:
        weights = torch.ones(classes, dtype=torch.float64)
    elif isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        weights = torch.full((classes,), float(alpha), dtype=torch.float64)
    else:
        weights = torch.as_tensor(alpha, dtype=torch.float64)
        if weights.shape != (classes,) and not bug("alpha-length-unchecked"):
            raise ValueError(f"alpha must have one weight per class ({classes}). Got: {tuple(weights.shape)}")
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError(f"alpha must hold finite weights >= 0. Got: {weights.tolist()}")
    if bug("alpha-normalized"):
        weights = weights / weights.sum()
    return hidden, target, weight, bias, weights.to(hidden.device), reduction, ignore_index, chunk_size


def baseline(
    hidden,
    target,
    *,
    weight=None,
    bias=None,
    gamma=2.0,
    alpha=None,
    reduction="mean",
    ignore_index=-100,
    chunk_size=None,
    fault: str | None = None,
) -> torch.Tensor:
    """The fused linear focal loss, ``fault=None``: correct; ``fault="name"``: the catalogue's mutant ``name``."""

    def bug(name: str) -> bool:
        return fault == name

    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or math.isnan(gamma) or math.isinf(gamma):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {gamma!r}")
    if gamma < 0 and not bug("gamma-negative-accepted"):
        raise ValueError(f"gamma must be a finite number >= 0. Got: {gamma!r}")
    if bug("gamma-int-cast"):
        gamma = int(gamma)
    hidden, target, weight, bias, weights, reduction, ignore_index, chunk_size = _guards(
        hidden, target, weight, bias, alpha, reduction, ignore_index, chunk_size, bug)  # fmt: skip
    if bug("hidden-clamped-in-place"):
        hidden.data.clamp_(-1e4, 1e4)  # "for stability", in the caller's tensor
    if bug("weight-normalized-in-place"):
        weight.data.div_(weight.data.norm(dim=1, keepdim=True).clamp_min(1e-12))  # in the caller's parameter
    if bug("target-replaced-in-place"):
        target.masked_fill_(target == ignore_index, 0)  # the safe index, written into the caller's tensor
    if bug("batch-dims-swapped") and hidden.dim() == 3:
        hidden = hidden.transpose(0, 1)  # (T, B, H) read as (B, T, H)
    if bug("strided-hidden-assumed-contiguous"):
        hidden = torch.as_strided(hidden, hidden.shape, _contiguous_strides(hidden.shape))
    features = hidden.shape[-1]
    h = hidden.reshape(-1, features)
    t = target.reshape(-1)
    n, classes = h.shape[0], weight.shape[0]
    valid = t != ignore_index
    if bug("ignored-as-class-0"):
        valid = torch.ones_like(valid)
    safe = torch.where(t != ignore_index, t, 0)
    alpha_t = weights[torch.arange(n, device=h.device) % classes] if bug("alpha-by-row") else weights[safe]
    if bug("alpha-ignored"):
        alpha_t = torch.ones_like(alpha_t)
    if bug("alpha-scalar-as-binary") and isinstance(alpha, float):
        alpha_t = torch.where(safe == 0, alpha, 1 - alpha).to(alpha_t.dtype)  # RetinaNet's alpha / 1 - alpha
    compute = torch.float32 if bug("float32-for-float64") else torch.float64
    if bug("half-arithmetic") and hidden.dtype in (torch.float16, torch.bfloat16):
        compute = hidden.dtype
    # the weight and bias in float64 once: every chunk's gradient sums into them in float64
    w_exact = weight if bug("weight-grad-in-half") or bug("half-arithmetic") else weight.to(compute)
    if bug("weight-detached"):
        w_exact = w_exact.detach()
    b_exact = None if bias is None else (bias.detach() if bug("bias-detached") else bias).to(compute)
    if bug("bias-broadcast") and b_exact is not None:
        b_exact = b_exact.expand(classes)
    if chunk_size is None:
        chunk_size = max(64, (1 << 24) // classes)

    def rows_loss(h_chunk, w_chunk, b_chunk, t_chunk, valid_chunk, alpha_chunk):
        exact = F.linear(h_chunk.to(w_chunk.dtype), w_chunk, None if b_chunk is None else b_chunk.to(w_chunk.dtype))
        with torch.no_grad():
            rounded = F.linear(h_chunk, weight, None if b_chunk is None else b_chunk.to(weight.dtype).expand(classes))
        z = (rounded.to(exact.dtype) + (exact - exact.detach())).to(compute)
        if bug("logits-clamped"):
            z = z.clamp(-100, 100)
        hot = torch.arange(classes, device=z.device) == t_chunk.unsqueeze(1)
        if bug("p-of-argmax"):
            t_chunk = z.detach().argmax(1)
            hot = torch.arange(classes, device=z.device) == t_chunk.unsqueeze(1)
        z_t = z.gather(1, t_chunk.unsqueeze(1)).squeeze(1)
        if bug("nll-from-log-softmax"):
            d = torch.log(torch.expm1(-torch.log_softmax(z, 1).gather(1, t_chunk.unsqueeze(1)).squeeze(1)))
        elif bug("no-max-shift"):
            lse = torch.exp(z).masked_fill(hot, 0).sum(1).log()
            d = lse - z_t
        elif bug("log-of-softmax"):
            neg_log_p = -torch.softmax(z, 1).gather(1, t_chunk.unsqueeze(1)).squeeze(1).log()
            d = torch.log(torch.expm1(neg_log_p))
        else:
            d = torch.logsumexp(z.masked_fill(hot, -math.inf), 1) - z_t
        neg_log_p_t = _softplus(d)  # log(1 + e^d) without F.softplus's linear cut at 20 (e^-20 relative)
        one_minus = torch.sigmoid(d)
        if bug("one-minus-p-subtracted"):
            one_minus = 1 - torch.exp(-neg_log_p_t)
        elif bug("p-t-for-one-minus"):
            one_minus = torch.exp(-neg_log_p_t)
        if bug("gamma-ignored") or gamma == 0:
            focal = torch.ones_like(one_minus)
        else:
            focal = one_minus.pow(gamma)
            if bug("focal-factor-detached"):
                focal = focal.detach()
        per_row = alpha_chunk.to(compute) * focal * neg_log_p_t
        return torch.where(valid_chunk, per_row, 0.0)

    last = n - n % chunk_size if bug("last-chunk-dropped") and n % chunk_size else n
    step = chunk_size - 1 if bug("chunks-overlap") and chunk_size > 1 else chunk_size
    pieces = []
    for start in range(0, last, step):
        stop = min(last, start + chunk_size)
        w_chunk = w_exact if not bug("weight-grad-last-chunk") or stop == last else w_exact.detach()
        h_chunk = h[start:stop]
        if bug("hidden-grad-scaled-twice") and reduction == "mean" and h_chunk.requires_grad:
            count = max(int(valid.sum()), 1)
            h_chunk = h_chunk * 1.0
            h_chunk.register_hook(lambda g, count=count: g / count)
        piece = checkpoint(rows_loss, h_chunk, w_chunk, b_exact, safe[start:stop], valid[start:stop],
                           alpha_t[start:stop], use_reentrant=False)  # fmt: skip
        if bug("mean-of-chunk-means") and reduction == "mean":
            piece = piece / max(int(valid[start:stop].sum()), 1)
        pieces.append(piece)
    per_row = torch.cat(pieces) if pieces else h.new_zeros(0, dtype=compute)
    if per_row.shape[0] < n:
        per_row = torch.cat([per_row, per_row.new_zeros(n - per_row.shape[0])])
    per_row = per_row[:n]  # (chunks-overlap: a boundary row twice, every later row shifted)
    if bug("grad-sign-flipped"):
        per_row = 2 * per_row.detach() - per_row

    if bug("upstream-ignored") and reduction == "none":
        per_row = UpstreamIgnored.apply(per_row)
    if reduction == "none":
        if bug("none-counted-rows-only"):
            result = per_row[valid]
        else:
            result = per_row if bug("none-flattened") else per_row.reshape(target.shape)
    elif bug("loss-accumulated-in-half") and hidden.dtype in (torch.float16, torch.bfloat16):
        result = torch.zeros((), dtype=hidden.dtype, device=h.device)
        for piece in pieces:  # a running total in the inputs' dtype, chunk by chunk
            result = result + piece.sum().to(hidden.dtype)
        if reduction == "mean":
            result = result / max(int(valid.sum()), 1)
    elif reduction == "sum" or bug("mean-of-chunk-means"):
        result = per_row.sum()
        if bug("mean-of-chunk-means") and reduction == "mean":
            result = result / max(len(pieces), 1)
        if bug("sum-is-mean") and reduction == "sum":
            result = result / max(int(valid.sum()), 1)
    else:
        count = n if bug("mean-counts-ignored") else int(valid.sum())
        if bug("alpha-in-mean-divisor"):  # F.cross_entropy's weighted mean: divided by the weights' sum
            result = per_row.sum() / alpha_t[valid].sum().to(per_row.dtype)
        elif bug("mean-all-ignored-nan"):
            result = per_row.sum() / count
        else:
            result = per_row.sum() / max(count, 1)
        if bug("mean-returns-1d"):
            result = result.reshape(1)
    if bug("upstream-scalar-ignored") and reduction != "none":
        result = UpstreamIgnored.apply(result)
    if bug("scaled-in-place") and reduction != "none":
        result = _ScaledInPlace.apply(result)
    if bug("loss-detached"):
        result = result.detach()
    return result if bug("loss-in-float64") else result.to(hidden.dtype)



def _confident(device: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Four float64 rows, each with its target 40 ahead of every other class (1 - p_t = 4 e^-40: losses of about
    1e-50, each judged on its own scale)."""
    target = torch.tensor([0, 3, 1, 4], device=device)
    hidden = torch.nn.functional.one_hot(target, 5).to(torch.float64) * 40
    return hidden, target, {"weight": torch.eye(5, dtype=torch.float64, device=device), "bias": None,
                            "reduction": "none"}  # fmt: skip


def _case(**fields) -> Witness:
    return Witness(case=LinearCase(**fields))


MUTANTS = (
    Mutant("weight-shape-unchecked", "arguments", "a weight of the wrong feature count is not refused: the matrix "
           "product raises a RuntimeError from deep inside", call_witness(bad_call, weight=torch.randn(5, 4))),
    Mutant("bias-broadcast", "arguments", "a bias of shape (1,) is broadcast to every class instead of refused",
           call_witness(bad_call, bias=torch.randn(1))),
    Mutant("weight-dtype-promoted", "arguments", "a weight of another dtype is converted silently",
           call_witness(bad_call, weight=torch.randn(5, 3, dtype=torch.float64))),
    Mutant("chunk-size-float-truncated", "arguments", "chunk_size 2.5 is truncated to 2 instead of refused",
           call_witness(bad_call, chunk_size=2.5)),
    Mutant("chunk-size-zero-is-default", "arguments", "chunk_size 0 means the default instead of an error",
           call_witness(bad_call, chunk_size=0)),
    Mutant("target-clamped", "arguments", "an out-of-range target is clamped into [0, V) instead of refused",
           call_witness(bad_call, target=torch.tensor([0, 5, 1, 2]))),
    Mutant("target-flattened", "arguments", "a target of the wrong shape but the right size is reshaped",
           call_witness(bad_call, target=torch.zeros(2, 2, dtype=torch.long))),
    Mutant("mean-of-chunk-means", "reduction", "the mean averages the chunks' means: uneven chunks weigh unequally",
           _case(ignore=True, chunk_size=5, reduction="mean")),
    Mutant("mean-counts-ignored", "reduction", "the mean divides by every row, ignored ones included",
           _case(ignore=True, reduction="mean")),
    Mutant("sum-is-mean", "reduction", "reduction='sum' divides by the count", _case(reduction="sum")),
    Mutant("none-flattened", "reduction", "reduction='none' returns (N,) for (B, T, H) hidden states",
           _case(lead=(2, 7), reduction="none", chunk_size=4)),
    Mutant("ignored-as-class-0", "ignore", "ignored rows are scored as class 0 (the safe index) and counted",
           _case(ignore=True, reduction="sum")),
    Mutant("alpha-ignored", "weights", "alpha has no effect", _case(alpha="per_class")),
    Mutant("alpha-by-row", "weights", "alpha indexed by the row's position instead of its target class",
           _case(alpha="per_class")),
    Mutant("gamma-ignored", "focal term", "the focal factor is left out: cross-entropy", _case(gamma=2.0)),
    Mutant("focal-factor-detached", "focal term", "(1 - p_t)^gamma detached: the gradient misses its derivative",
           _case(gamma=2.0, reduction="sum")),
    Mutant("no-max-shift", "stability", "the log-sum-exp without its maximum: exp overflows at large logits",
           _case(scale=1e4, reduction="none", dtype=torch.float64, chunk_size=4)),
    Mutant("log-of-softmax", "stability", "-log p_t as log of the softmax: log(0) at hopeless rows",
           _case(scale=1e4, reduction="none", dtype=torch.float64, chunk_size=4)),
    Mutant("float32-for-float64", "precision", "float64 inputs computed in float32",
           _case(dtype=torch.float64, reduction="none")),
    Mutant("weight-grad-in-half", "precision", "the weight's gradient summed over the chunks in its half precision "
           "(each chunk's product rounded, then added in bfloat16)",
           _case(lead=(512,), features=4, vocabulary=8, dtype=torch.bfloat16, reduction="sum", chunk_size=1, scale=1.0,
                 positive=True)),
    Mutant("last-chunk-dropped", "layout", "the rows after the last whole chunk are left out",
           _case(lead=(12,), chunk_size=5, reduction="none")),
    Mutant("bias-detached", "gradient", "the bias gets no gradient", _case(bias=True)),
    Mutant("weight-grad-last-chunk", "gradient", "only the last chunk's rows reach the weight's gradient (the others "
           "see a detached weight)", _case(chunk_size=5)),
    Mutant("hidden-grad-scaled-twice", "gradient", "the mean's 1 / count applied again to the hidden states' "
           "gradient", _case(reduction="mean")),
    Mutant("upstream-ignored", "gradient", "reduction='none': the upstream gradient is ignored (Liger-Kernel's "
           "FusedLinearCrossEntropy, reduction='none')", _case(reduction="none"), "Liger-Kernel"),
    Mutant("scaled-in-place", "gradient", "the backward scales a saved tensor in place by the upstream gradient: a "
           "second backward is scaled twice (Liger-Kernel's in-place gradient reuse)", _case(reduction="sum"),
           "Liger-Kernel"),
    Mutant("hidden-list-converted", "arguments", "a list of hidden states is converted instead of refused",
           call_witness(bad_call, hidden=[[0.0, 1.0, 2.0]] * 4)),
    Mutant("hidden-int-accepted", "arguments", "integer hidden states are converted to float instead of refused",
           call_witness(bad_call, hidden=torch.ones(4, 3, dtype=torch.long))),
    Mutant("scalar-hidden-unsqueezed", "arguments", "a 0-dim hidden state is taken as one row of one feature",
           call_witness(bad_call, hidden=torch.tensor(1.0), target=torch.tensor(0), weight=torch.randn(5, 1))),
    Mutant("weight-1d-reshaped", "arguments", "a flat weight is reshaped to (V, H) instead of refused",
           call_witness(bad_call, weight=torch.randn(15))),
    Mutant("one-class-accepted", "arguments", "a head of one class is accepted (its loss is 0 whatever the input)",
           call_witness(bad_call, weight=torch.randn(1, 3), bias=None, target=torch.zeros(4, dtype=torch.long))),
    Mutant("bias-dtype-promoted", "arguments", "a bias of another dtype is converted silently",
           call_witness(bad_call, bias=torch.randn(5, dtype=torch.float64))),
    Mutant("bias-list-converted", "arguments", "a list bias is converted instead of refused",
           call_witness(bad_call, bias=[0.0] * 5)),
    Mutant("target-float-accepted", "arguments", "floating targets are truncated to class indices",
           call_witness(bad_call, target=torch.tensor([0.0, 4.0, 2.0, 1.0]))),
    Mutant("target-negative-accepted", "arguments", "a negative target other than ignore_index is ignored silently",
           call_witness(bad_call, target=torch.tensor([0, -1, 1, 2]))),
    Mutant("gamma-negative-accepted", "arguments", "a negative gamma is accepted", call_witness(bad_call, gamma=-1.0)),
    Mutant("alpha-length-unchecked", "arguments", "alpha of the wrong length is indexed anyway: an IndexError from "
           "inside instead of a ValueError naming alpha", call_witness(bad_call, alpha=[0.5, 0.5])),
    Mutant("reduction-unknown-is-mean", "arguments", "an unknown reduction means 'mean'",
           call_witness(bad_call, reduction="avg")),
    Mutant("ignore-index-float-truncated", "arguments", "ignore_index -1.5 is truncated to -1",
           call_witness(bad_call, ignore_index=-1.5)),
    Mutant("chunk-size-bool-accepted", "arguments", "chunk_size=True is taken as 1", call_witness(bad_call, chunk_size=True)),
    Mutant("mean-all-ignored-nan", "reduction", "a mean over no counted row is 0 / 0 = NaN instead of 0",
           _case(ignore_every=True, reduction="mean")),
    Mutant("none-counted-rows-only", "reduction", "reduction='none' returns the counted rows only",
           _case(ignore=True, reduction="none")),
    Mutant("alpha-in-mean-divisor", "reduction", "the mean divides by the sum of alpha_t (F.cross_entropy's weighted "
           "mean) instead of the count", _case(alpha="per_class", reduction="mean"), "torch.nn.functional.cross_entropy"),
    Mutant("ignore-index-hardcoded", "ignore", "ignore_index is taken as -100 whatever is given",
           _case(ignore=True, ignore_index=-1, reduction="sum")),
    Mutant("alpha-scalar-as-binary", "weights", "a float alpha weighs class 0 by alpha and the others by 1 - alpha "
           "(RetinaNet's binary alpha)", _case(alpha="scalar"), "torchvision sigmoid_focal_loss"),
    Mutant("alpha-normalized", "weights", "per-class alpha divided by its sum", _case(alpha="per_class")),
    Mutant("gamma-int-cast", "focal term", "gamma truncated to an int (0.5 becomes 0)", _case(gamma=0.5)),
    Mutant("p-t-for-one-minus", "focal term", "the focal factor p_t^gamma instead of (1 - p_t)^gamma", _case()),
    Mutant("p-of-argmax", "focal term", "the loss of the most likely class instead of the target's", _case()),
    Mutant("one-minus-p-subtracted", "stability", "1 - p_t as 1 - exp(log p_t): 0 at a confident row, whose loss "
           "is then 0", Witness(call=lambda device: _confident(device))),
    Mutant("nll-from-log-softmax", "stability", "-log p_t from log_softmax: a confident row's tiny loss rounds away",
           Witness(call=lambda device: _confident(device))),
    Mutant("logits-clamped", "stability", "logits clamped to [-100, 100] 'for stability'",
           _case(dtype=torch.float64, reduction="none", scale=1e4, chunk_size=4)),
    Mutant("half-arithmetic", "precision", "half-precision inputs computed in their own dtype (the per-row terms and "
           "their sum in bfloat16)", _case(lead=(512,), features=4, vocabulary=8, dtype=torch.bfloat16, reduction="sum",
                                            chunk_size=1, scale=1.0, positive=True)),
    Mutant("loss-accumulated-in-half", "precision", "the chunks' losses added to a running total kept in the half "
           "dtype",
           _case(lead=(512,), features=4, vocabulary=8, dtype=torch.bfloat16, reduction="sum", chunk_size=1, scale=1.0,
                 positive=True)),
    Mutant("chunks-overlap", "layout", "chunks stepping by chunk_size - 1: a boundary row twice, the later rows "
           "shifted", _case(chunk_size=5, reduction="none")),
    Mutant("strided-hidden-assumed-contiguous", "layout", "the hidden states read as if contiguous",
           _case(strided=True, lead=(2, 7), chunk_size=4)),
    Mutant("batch-dims-swapped", "layout", "(B, T, H) hidden states read as (T, B, H): rows paired with other "
           "rows' targets", _case(lead=(2, 7), chunk_size=4)),
    Mutant("grad-sign-flipped", "gradient", "the gradient's sign flipped (the loss kept)", _case()),
    Mutant("weight-detached", "gradient", "the weight gets no gradient", _case()),
    Mutant("upstream-scalar-ignored", "gradient", "a scalar reduction's upstream gradient ignored (the gradient of "
           "the loss, not of 0.5 x the loss)", _case(reduction="sum")),
    Mutant("mean-returns-1d", "output", "the mean returned with shape (1,)", _case(reduction="mean")),
    Mutant("loss-detached", "output", "the loss returned detached: no gradient reaches anything", _case()),
    Mutant("weight-normalized-in-place", "inputs", "the caller's weight row-normalized in place", _case()),
    Mutant("target-replaced-in-place", "inputs", "ignored targets replaced by 0 in the caller's tensor",
           _case(ignore=True)),
    Mutant("hidden-clamped-in-place", "inputs", "the caller's hidden states clamped in place 'for stability'",
           _case(ignore=True, ignored_value=1e30, reduction="sum")),
    Mutant("loss-in-float64", "output", "a float64 loss returned for float32 inputs", _case(dtype=torch.float32)),
)  # fmt: skip

CATALOGUE = Catalogue(family="linear", baseline=baseline, mutants=MUTANTS)
