"""Statistics of repeated measurements: median, bootstrap 95% interval, coefficient of variation.

Intervals are percentile bootstrap intervals of the median (2,000 resamples, fixed seed so that
the same results file always gives the same report). The bootstrap makes no normality
assumption, which suits small, skewed samples such as latencies. With very few repeats (3) the
interval of the median cannot be narrower than the spread of the middle values: read it as
"the data allow this range", not as a precise bound.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RESAMPLES = 2000
SEED = 20150329  # any fixed value; the report must be reproducible from the results file
METHOD = f"percentile bootstrap of the median, {RESAMPLES} resamples, 95%"


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    low: float  # 95% interval of the median
    high: float
    cv: float  # sample standard deviation / mean; 0 for fewer than two values


@dataclass(frozen=True)
class Ratio:
    """A target's performance relative to the host: > 1 better, < 1 worse, 1 = the same."""

    value: float
    low: float
    high: float


def summarise(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarise")
    low, high = _interval(lambda rng: statistics.median(_resample(values, rng)))
    return Summary(len(values), statistics.median(values), low, high, cv(values))


def cv(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else 0.0


def relative(target: Sequence[float], host: Sequence[float], higher_is_better: bool) -> Ratio:
    """Relative performance target/host (inverted for lower-is-better metrics), with a bootstrap
    interval that resamples target and host independently."""
    if not target or not host:
        raise ValueError("relative performance needs values for both target and host")

    def ratio(t: Sequence[float], h: Sequence[float]) -> float:
        mt, mh = statistics.median(t), statistics.median(h)
        if higher_is_better:
            return mt / mh if mh else math.nan
        return mh / mt if mt else math.nan

    low, high = _interval(lambda rng: ratio(_resample(target, rng), _resample(host, rng)))
    return Ratio(ratio(target, host), low, high)


def geometric_mean(values: Sequence[float]) -> float:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return math.nan
    return math.exp(statistics.fmean(math.log(v) for v in positive))


def _resample(values: Sequence[float], rng: random.Random) -> list[float]:
    return rng.choices(values, k=len(values))


def _interval(statistic: Callable[[random.Random], float]) -> tuple[float, float]:
    rng = random.Random(SEED)  # noqa: S311 - reproducible resampling, not secrecy
    estimates = sorted(v for v in (statistic(rng) for _ in range(RESAMPLES)) if math.isfinite(v))
    if not estimates:
        return math.nan, math.nan
    return _quantile(estimates, 0.025), _quantile(estimates, 0.975)


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
