"""Pure statistics over timing samples: no I/O, no torch (scipy for the binomial and the Mann-Whitney test)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "RELIABLE_DISPERSION", "RELIABLE_FACTOR", "Interval", "Shift", "Summary", "holm", "median_interval",
    "paired_ratios", "quantile", "reliability", "shift", "summarize",
]  # fmt: skip


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


#: A ratio is unreliable when its 95 % interval spans more than this factor ...
RELIABLE_FACTOR = 1.25
#: ... or the samples of either side have an IQR above this fraction of their median.
RELIABLE_DISPERSION = 0.25


@dataclass(frozen=True)
class Interval:
    """A distribution-free confidence interval for a median: ``(low, high)`` at ``confidence`` (which may exceed the
    one asked for: order statistics take discrete levels)."""

    low: float
    high: float
    confidence: float

    @property
    def factor(self) -> float:
        """How many times the high end is the low end (inf when the low end is not positive)."""
        return self.high / self.low if self.low > 0 else math.inf


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Confidence interval for the median of ``values`` from their order statistics (the binomial(n, 1/2) ranks), with
    no assumption on the distribution: the widest pair of ranks ``(j, n - j + 1)`` whose coverage is at least
    ``confidence``; with too few values for that, the minimum and maximum (and the coverage they have).

    Example:
        >>> interval = median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
        >>> interval.low, interval.high, round(interval.confidence, 3)
        (2.0, 9.0, 0.979)
    """
    from scipy.stats import binom

    if not values:
        raise ValueError("values must be non-empty. Got: []")
    ordered = sorted(values)
    n = len(ordered)
    alpha = 1.0 - confidence
    j = 1  # ranks j and n - j + 1 (1-based): coverage 1 - 2 P(B <= j - 1)
    while j + 1 <= n // 2 and 2 * binom.cdf(j, n, 0.5) <= alpha:
        j += 1
    coverage = 1.0 - 2.0 * float(binom.cdf(j - 1, n, 0.5))
    return Interval(ordered[j - 1], ordered[n - j], coverage)


def paired_ratios(samples: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-round ratios of an implementation's samples to its baseline's taken in the same rounds."""
    if len(samples) != len(baseline) or not samples:
        raise ValueError(f"samples must pair with the baseline's, round by round. Got: {len(samples)} and "
                         f"{len(baseline)}")  # fmt: skip
    return [s / b for s, b in zip(samples, baseline, strict=True)]


@dataclass(frozen=True)
class Shift:
    """A change of per-round ratios from one run to another: ``change`` is the ratio of their medians minus 1,
    ``p_value`` one-sided (the new ratios are larger) by the Mann-Whitney U test, ``low`` the change at its interval's
    favourable end: the low end of the new median's 95 % interval over the high end of the old one's, minus 1 (the
    smallest change both intervals admit, at >= 90 % jointly)."""

    change: float
    p_value: float
    low: float = -math.inf

    def slower_beyond(self, threshold: float, alpha: float) -> bool:
        """A slowdown beyond ``threshold`` that is certain: the test rejects "no change" at ``alpha``, or even the
        favourable end of the change's interval is beyond the threshold (however noisy the samples: a 2.8x slowdown
        whose samples scatter is still a slowdown)."""
        return self.change > threshold and (self.p_value < alpha or self.low > threshold)


def shift(old: Sequence[float], new: Sequence[float]) -> Shift:
    """How much larger the ``new`` per-round ratios are than the ``old`` ones, and how surely (Mann-Whitney U,
    one-sided, exact for small samples): rank-based, so one stalled round moves it no more than any other large
    value, and it needs no assumption on the shape of the timing distribution (benchstat and asv use it too).

    Example:
        >>> result = shift([1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02], [2.0, 2.1, 1.9, 2.05, 1.95, 2.0, 2.02])
        >>> round(result.change, 2), result.p_value < 0.01
        (1.0, True)
    """
    from scipy.stats import mannwhitneyu

    if not old or not new:
        raise ValueError(f"old and new must be non-empty. Got: {len(old)} and {len(new)} values")
    change = statistics.median(new) / statistics.median(old) - 1
    p_value = float(mannwhitneyu(new, old, alternative="greater").pvalue)
    low = median_interval(new).low / median_interval(old).high - 1
    return Shift(change, p_value, low)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the order given: judging each adjusted value
    against alpha keeps the chance of any false rejection among all of them below alpha, however many there are.

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03, 0.5])]
        [0.04, 0.09, 0.09, 0.5]
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def reliability(ratios: list[float]) -> tuple[Interval, str | None]:
    """The 95 % interval of the median of per-round ``ratios``, and why the ratio is unreliable (None when it is
    not): an interval spanning more than :data:`RELIABLE_FACTOR`, or ratios dispersed beyond
    :data:`RELIABLE_DISPERSION` (IQR / median: stalls of a busy machine that hit one side of a round).

    Judged on the paired ratios, not on either side's times: pooling the runs of several processes (a merged baseline)
    spreads the absolute times by the processes' levels, which the pairing cancels."""
    interval = median_interval(ratios)
    reasons = []
    if interval.factor > RELIABLE_FACTOR:
        reasons.append(f"ratio interval {interval.low:.3g}-{interval.high:.3g} spans x{interval.factor:.2f}")
    spread = summarize(ratios)
    if spread.median > 0 and spread.iqr / spread.median > RELIABLE_DISPERSION:
        reasons.append(f"per-round ratios IQR/median {spread.iqr / spread.median:.2f}")
    return interval, "; ".join(reasons) or None
