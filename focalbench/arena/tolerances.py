"""One tolerance table, keyed by dtype, and the one helper that compares against it.

A tolerance is ``rtol`` relative to each expected element plus ``atol`` relative to the largest expected magnitude
(so a mean and a sum of the same losses are judged alike): ``|a - e| <= atol * max|e| + rtol * |e|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["ACCURACY_BOUND", "TOLERANCES", "Tolerance", "compare"]


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


#: Agreement with the float64 reference for ordinary (non-extreme) inputs. Half-precision results are rounded to
#: their dtype (unit roundoff 4.9e-4 for float16, 3.9e-3 for bfloat16), so their bounds are a few units of that.
TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(rtol=1e-10, atol=1e-12),
    torch.float32: Tolerance(rtol=2e-5, atol=2e-6),
    torch.float16: Tolerance(rtol=4e-3, atol=2e-3),
    torch.bfloat16: Tolerance(rtol=3e-2, atol=1.6e-2),
}

#: Accuracy claimed at extreme inputs (``accurate_at_extremes``): maximum relative error of each loss element and
#: normwise (max-norm, per row) relative error of the gradient against an exact answer. 2e-6 is about 16 float32 ulp.
ACCURACY_BOUND: dict[torch.dtype, float] = {torch.float32: 2e-6, torch.float64: 1e-12}


def compare(
    actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str, scale_floor: float = 0.0
) -> str | None:
    """``None`` when ``actual`` agrees with ``expected`` within ``TOLERANCES[dtype]``, else the worst element.

    Where ``expected`` rounded to ``dtype`` is not finite (+-inf, including a value beyond the dtype's range, or NaN),
    ``actual`` must hold exactly that; everywhere else it must be finite and within the tolerance, plus the dtype's
    smallest subnormal (its spacing below the normal range). ``scale_floor`` raises the magnitude ``atol`` is relative
    to: 1 judges a total of tiny losses on the scale of a unit loss.
    """
    tol = TOLERANCES[dtype]
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    if a.shape != e.shape:
        return f"{what}: shape {tuple(a.shape)} != expected {tuple(e.shape)}"
    if a.numel() == 0:
        return None
    limit = e.to(dtype).double()
    special = ~torch.isfinite(limit)
    mismatch = special & ~((a == limit) | (a.isnan() & limit.isnan()))
    if bool(mismatch.any()):
        i = int(mismatch.flatten().nonzero()[0])
        return f"{what}: {a.flatten()[i].item():.9g} where {limit.flatten()[i].item():.9g} is expected, flat index {i}"
    ordinary = ~special
    if not bool(torch.isfinite(a[ordinary]).all()):
        return f"{what}: {int((~torch.isfinite(a[ordinary])).sum())} non-finite value(s)"
    if not bool(ordinary.any()):
        return None
    scale = max(float(e[ordinary].abs().max()), scale_floor)
    finfo = torch.finfo(dtype)
    bound = tol.atol * scale + tol.rtol * e.abs() + finfo.smallest_normal * finfo.eps
    excess = torch.where(ordinary, (a - e).abs() - bound, -math.inf)
    if bool((excess > 0).any()):
        i = int(excess.argmax())
        return (
            f"{what}: |{a.flatten()[i].item():.9g} - {e.flatten()[i].item():.9g}| exceeds "
            f"rtol={tol.rtol:g}, atol={tol.atol:g}*{scale:.3g} at flat index {i}"
        )
    return None
