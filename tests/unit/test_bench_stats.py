"""Statistics of repeated measurements: medians, bootstrap intervals, CV, ratios to the host."""

from __future__ import annotations

import math

import pytest

from labctl.bench import stats


def test_summary_of_constant_values_has_a_zero_width_interval() -> None:
    summary = stats.summarise([5.0, 5.0, 5.0])
    assert (summary.n, summary.median, summary.low, summary.high, summary.cv) == (3, 5.0, 5.0, 5.0, 0.0)


def test_interval_contains_the_median_and_stays_within_the_data() -> None:
    values = [10.0, 11.0, 9.5, 10.2, 30.0, 10.1, 9.9]
    summary = stats.summarise(values)
    assert summary.median == 10.1
    assert min(values) <= summary.low <= summary.median <= summary.high <= max(values)
    # The outlier must not drag the median's interval up to it.
    assert summary.high < 30.0


def test_bootstrap_is_reproducible() -> None:
    values = [1.0, 2.0, 4.0, 8.0, 3.0]
    assert stats.summarise(values) == stats.summarise(values)


def test_cv_is_sample_standard_deviation_over_mean() -> None:
    assert stats.cv([2.0, 4.0]) == pytest.approx(math.sqrt(2) / 3)
    assert stats.cv([7.0]) == 0.0


def test_relative_performance_for_rates_and_for_latencies() -> None:
    slower = stats.relative([50.0, 50.0, 50.0], [100.0, 100.0, 100.0], higher_is_better=True)
    assert (slower.value, slower.low, slower.high) == (0.5, 0.5, 0.5)
    # Twice the latency is half the performance, so both read the same way in the report.
    laggy = stats.relative([200.0, 200.0], [100.0, 100.0], higher_is_better=False)
    assert laggy.value == 0.5


def test_relative_interval_brackets_the_ratio_of_medians() -> None:
    ratio = stats.relative([9.0, 10.0, 11.0, 10.5], [20.0, 19.0, 21.0, 20.5], higher_is_better=True)
    assert ratio.low <= ratio.value <= ratio.high
    assert ratio.value == pytest.approx(10.25 / 20.25)


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError):
        stats.summarise([])
    with pytest.raises(ValueError):
        stats.relative([], [1.0], higher_is_better=True)


def test_geometric_mean_ignores_missing_values() -> None:
    assert stats.geometric_mean([0.5, 2.0]) == pytest.approx(1.0)
    assert stats.geometric_mean([0.25, math.nan]) == pytest.approx(0.25)
    assert math.isnan(stats.geometric_mean([]))
