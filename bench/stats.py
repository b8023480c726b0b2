"""Exact percentiles by the nearest-rank method, and the summary of a sample.

Nearest rank: the p-th percentile of n sorted values is the value at rank ``ceil(p / 100 * n)``
(1-based), so it is always an observed value and p100 is the maximum. No interpolation.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of values already sorted ascending."""
    if not sorted_values:
        msg = "percentile of an empty sample"
        raise ValueError(msg)
    if not 0 <= p <= 100:
        msg = f"percentile {p} is outside 0..100"
        raise ValueError(msg)
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Percentiles of one sample, in the sample's unit (seconds for latencies)."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    def scaled(self, factor: float) -> "Distribution":
        """The same distribution in another unit, e.g. ``scaled(1000)`` for milliseconds."""
        return Distribution(
            self.count,
            self.p50 * factor,
            self.p90 * factor,
            self.p99 * factor,
            self.max * factor,
            self.mean * factor,
        )


EMPTY = Distribution(0, math.nan, math.nan, math.nan, math.nan, math.nan)


def distribution(values: Iterable[float]) -> Distribution:
    """Summarize a sample; an empty one gives NaNs so tables show the gap instead of a zero."""
    ordered = sorted(values)
    if not ordered:
        return EMPTY
    return Distribution(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
        mean=math.fsum(ordered) / len(ordered),
    )
