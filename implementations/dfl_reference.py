r"""``dfl_reference``: NumPy float64 with its own closed-form gradient: the dfl family's reference for the checks.

Per element (logits ``z`` over ``n`` bins, target ``y``; :mod:`focalbench.losses.dfl.semantics`), with ``y_l``,
``y_r``, ``w_l``, ``w_r`` as defined there and, for each target bin ``k``, the log-odds against the other bins

.. math::

    d_k = \log \sum_{j \ne k} e^{z_j - z_k} = \log \frac{1 - S_k}{S_k}, \qquad -\log S_k = \mathrm{softplus}(d_k),
    \qquad 1 - S_k = \mathrm{sigmoid}(d_k),

    \mathrm{DFL} = w_l \,\mathrm{softplus}(d_{y_l}) + w_r \,\mathrm{softplus}(d_{y_r}), \qquad
    \partial \mathrm{DFL} / \partial z_j = S_j - w_l [j = y_l] - w_r [j = y_r],

each ``d_k`` shifted by the largest of the other bins, so that nothing is one minus a number close to 1: a confident
bin's tiny loss keeps its digits, and ``S_k - w_k`` is taken as ``(1 - w_k) - (1 - S_k)`` where ``S_k > 1/2``. It is
itself checked against the arbitrary-precision oracle (:func:`focalbench.arena.families.dfl.oracle.dfl_row`, 60
digits).

Non-finite logits take their limits: a bin at ``-inf`` is absent (``S_j = 0``); a term whose weight is exactly 0 is
absent too (an integer target next to a bin at ``-inf`` has the cross-entropy of its bin, not ``0 x inf``); a target
bin of positive weight at ``-inf`` gives the loss ``+inf`` and the gradient's finite limit. A row with a NaN or a
``+inf`` logit, or with every bin at ``-inf``, gives NaN (its loss and its gradient). It runs on the CPU in NumPy
(inputs on another device are copied) and is differentiable once: ``create_graph=True`` raises a RuntimeError.
"""

from __future__ import annotations

import numpy as np
import torch

from focalbench.arena.registry import register
from focalbench.losses.common import reduce_loss, reduction_scale
from focalbench.losses.dfl.semantics import DflArgs

__all__ = ["reference_rows"]


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _log_odds(z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``d_k = log sum_{j != k} e^{z_j - z_k}`` per row, shifted by the largest other bin (``-inf`` when every other
    bin is absent, ``+inf`` when bin ``k`` is)."""
    rows = np.arange(z.shape[0])
    z_k = z[rows, k]
    others = z.copy()
    others[rows, k] = -np.inf
    largest = others.max(axis=1)
    shift = np.where(largest == -np.inf, 0.0, largest)  # -inf - (-inf) would be NaN
    total = np.exp(others - shift[:, None]).sum(axis=1)  # in [1, n - 1], or 0 when no other bin is left
    return (shift - z_k) + np.log(total)


def reference_rows(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 loss ``(M,)`` and gradient ``(M, n)`` of ``M`` rows of logits ``z`` ``(M, n)`` at targets ``y``
    ``(M,)`` in ``[0, n - 1]``."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rows, n = np.arange(z.shape[0]), z.shape[1]
    left = np.minimum(np.floor(y), n - 2).astype(np.int64)
    right = left + 1
    w_left, w_right = right - y, y - left
    with np.errstate(all="ignore"):  # inf - inf, 0 * inf and exp overflows below are selected away
        d_left, d_right = _log_odds(z, left), _log_odds(z, right)
        loss = np.where(w_left > 0, w_left * _softplus(d_left), 0.0) + np.where(
            w_right > 0, w_right * _softplus(d_right), 0.0
        )
        largest = z.max(axis=1, keepdims=True)
        shifted = z - largest
        s = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        grad = s.copy()
        for k, w, d, w_other in ((left, w_left, d_left, w_right), (right, w_right, d_right, w_left)):
            s_k = np.exp(-_softplus(d))  # S_k = sigmoid(-d_k)
            one_minus_s_k = np.exp(-_softplus(-d))  # 1 - S_k = sigmoid(d_k): the other bins' share
            grad[rows, k] = np.where(s_k > 0.5, w_other - one_minus_s_k, s_k - w)  # w_other = 1 - w
        undefined = np.isnan(z).any(axis=1) | (z == np.inf).any(axis=1) | (z == -np.inf).all(axis=1)
        loss = np.where(undefined, np.nan, loss)
        grad = np.where(undefined[:, None], np.nan, grad)
    return np.asarray(loss), np.asarray(grad)


class _ReferenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, args: DflArgs) -> torch.Tensor:
        n = args.bins
        z = logits.detach().cpu().double().reshape(-1, n).numpy()
        y = args.target.detach().cpu().double().reshape(-1).numpy()
        loss, grad = reference_rows(z, y)
        ctx.args = args
        grad = torch.from_numpy(grad).reshape(logits.shape) * reduction_scale(args)
        ctx.save_for_backward(grad)
        per_element = torch.from_numpy(loss).reshape(args.target.shape)
        return reduce_loss(per_element, args).to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "dfl_reference is differentiable once (its gradient is computed in NumPy): create_graph=True is not "
                "supported"
            )
        (grad,) = ctx.saved_tensors
        upstream = grad_output.detach().cpu().double()
        grad = grad * (upstream.unsqueeze(-1) if ctx.args.reduction == "none" else upstream)
        return grad.to(device=grad_output.device, dtype=ctx.args.logits.dtype), None


@register(
    "dfl_reference",
    family="dfl",
    description="NumPy float64 closed form with its own gradient (the dfl family's reference)",
    capabilities={"any_shape"},
)
def dfl_reference(args: DflArgs) -> torch.Tensor:
    """Float64 NumPy Distribution Focal Loss with a closed-form gradient."""
    return _ReferenceFunction.apply(args.logits, args)
