"""Pure statistics over timing samples: no I/O, no torch."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "quantile", "summarize"]


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty sequence."""
    if not values:
        raise ValueError("values must be non-empty. Got: []")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    median: float
    q1: float
    q3: float
    minimum: float
    runs: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(samples: Sequence[float]) -> Summary:
    """Median, quartiles and minimum of per-call times (seconds)."""
    return Summary(
        median=statistics.median(samples),
        q1=quantile(samples, 0.25),
        q3=quantile(samples, 0.75),
        minimum=min(samples),
        runs=len(samples),
    )
