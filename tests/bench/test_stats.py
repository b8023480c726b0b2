"""Nearest-rank percentiles and sample summaries."""

import math

import pytest
from bench.stats import distribution, percentile


def test_nearest_rank_on_ten_values():
    """p50 of 1..10 is the 5th value, p90 the 9th, p99 and p100 the 10th, p10 the 1st."""
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 10) == 1.0
    assert percentile(values, 11) == 2.0


def test_nearest_rank_on_hundred_values():
    """With 100 values the p-th percentile is the value of rank p exactly."""
    values = [v * 0.5 for v in range(100)]
    assert percentile(values, 99) == 49.0
    assert percentile(values, 90) == 44.5
    assert percentile(values, 50) == 24.5


def test_p0_is_the_minimum_and_one_value_is_every_percentile():
    """p0 is the smallest value; a one-value sample has that value at every percentile."""
    assert percentile([3.0, 7.0], 0) == 3.0
    assert {percentile([4.2], p) for p in (0, 1, 50, 99, 100)} == {4.2}


def test_percentile_rejects_empty_sample_and_bad_p():
    """An empty sample or a p outside 0..100 is an error, not a made-up number."""
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_distribution_sorts_and_summarizes():
    """distribution() sorts its input and reports count, percentiles, max and mean."""
    summary = distribution([9.0, 1.0, 5.0, 3.0, 7.0])
    assert summary.count == 5
    assert summary.p50 == 5.0
    assert summary.p90 == 9.0
    assert summary.max == 9.0
    assert summary.mean == 5.0
    scaled = summary.scaled(1000)
    assert scaled.p50 == 5000.0
    assert scaled.count == 5


def test_distribution_of_nothing_is_nan():
    """An empty sample summarizes to NaNs so a report shows a gap, not a zero."""
    summary = distribution([])
    assert summary.count == 0
    assert math.isnan(summary.p99)
