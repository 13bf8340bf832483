"""Turn one series' OTLP points into the cumulative values Prometheus expects.

Specification ("Sums", "Histograms"): delta points are accumulated into a
cumulative value; cumulative ones pass through. On top of that, per series:

* Out of order: a point older than the last accepted one is dropped; so is a
  delta point that overlaps time already counted (a retried export would
  otherwise be counted twice). A delta point after a gap is accepted.
* Epochs (counters and histograms): a cumulative point whose start time
  differs from the current epoch's, or whose count went down, starts a new
  epoch (the source restarted). What the old epoch counted is kept as a base
  and the new epoch's values are added to it, so the exposed counter never
  goes down and counts every increment once, even when the restarted source
  has already passed its old value by the next scrape (a reset Prometheus
  could not see). This assumes one writer per series: give concurrent
  processes distinct labels (``promote_resource_attributes``).
* Gauges, and non-monotonic cumulative sums, are the last value.
* Bucket bound: a histogram point whose accumulated value (the union of
  buckets, for converted exponential histograms) would have more than
  ``max_buckets`` bounds is dropped, leaving the series as it was.
* Range: a point that would take an accumulated counter or histogram sum past
  the largest double (to infinity, where it would stay for good) is dropped,
  leaving the series as it was.

Each function returns None when the point was applied, or a drop reason.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

from agentprom.metrics.dynamic import DynamicSeries

OUT_OF_ORDER = "out_of_order"
TOO_MANY_BUCKETS = "too_many_buckets"
#: an accumulated counter or histogram sum that would no longer be a finite number
OUT_OF_RANGE = "out_of_range"


def _stale(series: DynamicSeries, time_ns: int) -> bool:
    return time_ns < series.last_ns


def set_gauge(series: DynamicSeries, time_ns: int, value: float) -> str | None:
    if _stale(series, time_ns):
        return OUT_OF_ORDER
    series.value = value
    series.last_ns = time_ns
    return None


def _delta_rejected(series: DynamicSeries, start_ns: int, time_ns: int) -> bool:
    """A delta point that repeats or overlaps what was already added (never for a new series)."""
    if series.last_ns < 0:
        return False
    return time_ns <= series.last_ns or (start_ns != 0 and start_ns < series.last_ns)


def _new_epoch(series: DynamicSeries, start_ns: int, went_down: bool) -> bool:
    return went_down or (start_ns != 0 and series.start_ns != 0 and start_ns != series.start_ns)


def add_sum(series: DynamicSeries, start_ns: int, time_ns: int, value: float, cumulative: bool,
            monotonic: bool) -> str | None:
    """A Sum point: a counter (monotonic) or a gauge (non-monotonic) value."""
    if not cumulative:
        if _delta_rejected(series, start_ns, time_ns):
            return OUT_OF_ORDER
        total = series.value + value
        if not math.isfinite(total) and math.isfinite(value):
            return OUT_OF_RANGE
        series.value = total
    elif not monotonic:
        return set_gauge(series, time_ns, value)
    elif _stale(series, time_ns):
        return OUT_OF_ORDER
    elif series.raw is None:
        series.base, series.raw, series.start_ns = 0, value, start_ns
        series.value = value
    else:
        new_epoch = _new_epoch(series, start_ns, value < series.raw)
        base = series.base + series.raw if new_epoch else series.base
        if not math.isfinite(base + value) and math.isfinite(value):
            return OUT_OF_RANGE
        if new_epoch:
            series.base = base
            series.start_ns = start_ns
        series.raw = value
        series.value = base + value
    series.last_ns = time_ns
    return None


@dataclass(slots=True)
class Buckets:
    """A histogram value: ``counts`` per bucket (not cumulative), the last one +Inf."""

    bounds: tuple[float, ...]
    counts: list[int]
    sum: float
    has_sum: bool

    @property
    def total(self) -> int:
        return sum(self.counts)


def merge(a: Buckets | None, b: Buckets, union: bool) -> Buckets | None:
    """``a + b``. With different bounds, ``union`` merges onto the union of both
    (exact for bounds on one lattice, as converted exponential histograms are);
    without it the sum is undefined (None)."""
    if a is None:
        return Buckets(b.bounds, list(b.counts), b.sum, b.has_sum)
    if a.bounds == b.bounds:
        counts = [x + y for x, y in zip(a.counts, b.counts)]
        return Buckets(a.bounds, counts, a.sum + b.sum, a.has_sum and b.has_sum)
    if not union:
        return None
    bounds = tuple(sorted(set(a.bounds).union(b.bounds)))
    counts = [0] * (len(bounds) + 1)
    for part in (a, b):
        for i, count in enumerate(part.counts):
            # each count stays at its own upper bound (+Inf last)
            counts[bisect_left(bounds, part.bounds[i]) if i < len(part.bounds) else len(bounds)] += count
    return Buckets(bounds, counts, a.sum + b.sum, a.has_sum and b.has_sum)


def _expose(series: DynamicSeries, value: Buckets) -> None:
    series.bounds = value.bounds
    series.counts = value.counts
    series.sum = value.sum
    series.has_sum = value.has_sum


def add_histogram(series: DynamicSeries, start_ns: int, time_ns: int, point: Buckets, cumulative: bool,
                  union: bool, max_buckets: int = 0) -> str | None:
    """A histogram point (explicit, or converted from exponential with ``union``). Nothing changes
    unless the point is applied."""
    if not cumulative:
        if _delta_rejected(series, start_ns, time_ns):
            return OUT_OF_ORDER
        current = None if series.last_ns < 0 else Buckets(series.bounds, series.counts, series.sum, series.has_sum)
        # bounds changed on an explicit histogram: the sum is undefined, start again from this point
        exposed = merge(current, point, union) or merge(None, point, union)
        if max_buckets and len(exposed.bounds) > max_buckets:
            return TOO_MANY_BUCKETS
        if not math.isfinite(exposed.sum) and math.isfinite(point.sum):
            return OUT_OF_RANGE
        _expose(series, exposed)
    elif _stale(series, time_ns):
        return OUT_OF_ORDER
    else:
        base = series.base
        if series.raw is not None and _new_epoch(series, start_ns, point.total < series.raw.total):
            base = merge(base, series.raw, union)  # None (a fresh start) if bounds changed
        exposed = merge(base, point, union)
        if exposed is None:  # bounds changed on an explicit histogram: earlier epochs cannot be added
            base = None
            exposed = merge(None, point, union)
        if max_buckets and len(exposed.bounds) > max_buckets:
            return TOO_MANY_BUCKETS
        if not math.isfinite(exposed.sum) and math.isfinite(point.sum):
            return OUT_OF_RANGE
        series.base, series.raw, series.start_ns = base, point, start_ns
        _expose(series, exposed)
    series.last_ns = time_ns
    return None
