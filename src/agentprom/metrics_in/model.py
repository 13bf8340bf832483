"""Our own OTLP metric records: what the metrics decoders produce and the translator reads.

No protobuf or JSON type crosses this line. The shapes follow
opentelemetry/proto/metrics/v1/metrics.proto, flattened to what a Prometheus
translation needs. ``validate_point`` holds the per-point validity rules, so
the protobuf and JSON decoders reject exactly the same points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Metric data kinds (the ``data`` oneof of ``Metric``).
GAUGE = "gauge"
SUM = "sum"
HISTOGRAM = "histogram"
EXPONENTIAL_HISTOGRAM = "exponential_histogram"
SUMMARY = "summary"

# AggregationTemporality values.
TEMPORALITY_UNSPECIFIED = 0
DELTA = 1
CUMULATIVE = 2

#: DataPointFlags.FLAG_NO_RECORDED_VALUE: the point only marks a stream as stale.
FLAG_NO_RECORDED_VALUE = 1

#: Exponential histogram scales the OTel data model allows.
MIN_SCALE, MAX_SCALE = -10, 20


@dataclass(slots=True)
class Exemplar:
    value: float
    time_ns: int
    trace_id: str  # lowercase hex, "" when absent
    span_id: str


@dataclass(slots=True)
class NumberPoint:
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    value: float | int | None
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass(slots=True)
class HistogramPoint:
    """An explicit-bucket point. ``counts`` are per bucket (not cumulative), one
    more than ``bounds`` (the last is +Inf); empty when the point has no buckets."""

    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    count: int
    sum: float | None
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass(slots=True)
class ExponentialHistogramPoint:
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    count: int
    sum: float | None
    scale: int
    zero_count: int
    zero_threshold: float
    positive_offset: int
    positive_counts: tuple[int, ...]
    negative_offset: int
    negative_counts: tuple[int, ...]
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass(slots=True)
class SummaryPoint:
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    count: int
    sum: float
    #: (quantile, value), as sent
    quantiles: tuple[tuple[float, float], ...]


Point = NumberPoint | HistogramPoint | ExponentialHistogramPoint | SummaryPoint


@dataclass(slots=True)
class Scope:
    name: str
    version: str
    schema_url: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class Metric:
    name: str
    description: str
    unit: str
    kind: str
    temporality: int
    monotonic: bool
    points: list[Point]
    scope: Scope
    #: every resource attribute; shared by all metrics of one ResourceMetrics
    resource: dict[str, Any]


_VALID_BOUNDS: set[tuple[float, ...]] = set()
#: bounds held by the cache at most (a sender's million-bound tuples must not be kept)
_VALID_BOUNDS_MAX = 65_536
_valid_bounds_held = 0


def _valid_bounds(bounds: tuple[float, ...]) -> bool:
    """Finite and strictly increasing; remembered, since a metric's points repeat one set of bounds."""
    global _valid_bounds_held
    if bounds in _VALID_BOUNDS:
        return True
    if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:])):
        return False
    if len(bounds) > 1000:
        return True  # valid, not remembered
    if len(_VALID_BOUNDS) >= 1000 or _valid_bounds_held + len(bounds) > _VALID_BOUNDS_MAX:
        _VALID_BOUNDS.clear()
        _valid_bounds_held = 0
    _VALID_BOUNDS.add(bounds)
    _valid_bounds_held += len(bounds)
    return True


def validate_point(metric: Metric, point: Point) -> str | None:
    """Why a point cannot be translated (a rejection reason), or None when it is fine."""
    if not metric.name:
        return "empty_metric_name"
    if metric.kind in (SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM) and metric.temporality not in (DELTA, CUMULATIVE):
        return "unspecified_temporality"
    if isinstance(point, NumberPoint):
        if point.value is None:
            return "missing_value"
        if metric.kind == SUM and metric.monotonic and not (point.value >= 0 and math.isfinite(point.value)):
            return "invalid_value"  # a monotonic sum is a count: finite and never negative
        return None
    if isinstance(point, HistogramPoint):
        if point.counts and len(point.counts) != len(point.bounds) + 1:
            return "invalid_buckets"
        if not point.counts and point.bounds:
            return "invalid_buckets"
        return None if _valid_bounds(point.bounds) else "invalid_buckets"
    if isinstance(point, ExponentialHistogramPoint):
        if not MIN_SCALE <= point.scale <= MAX_SCALE:
            return "invalid_scale"
        if not (point.zero_threshold >= 0 and math.isfinite(point.zero_threshold)):
            return "invalid_buckets"
        return None
    for quantile, _value in point.quantiles:
        if not 0 <= quantile <= 1:
            return "invalid_quantile"
    return None


@dataclass(slots=True)
class MetricBatch:
    """The outcome of decoding one metrics export request."""

    metrics: list[Metric] = field(default_factory=list)
    #: rejection (or drop) reason -> number of data points
    rejected: dict[str, int] = field(default_factory=dict)
    #: data points in the request, valid or not (stale markers excluded)
    received_points: int = 0

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + count

    def add(self, metric: Metric, points: list[Point]) -> None:
        """Keep a metric with its valid points; count the others under their reason."""
        self.received_points += len(points)
        valid = []
        for point in points:
            reason = validate_point(metric, point)
            if reason is None:
                valid.append(point)
            else:
                self.reject(reason)
        if valid:
            metric.points = valid
            self.metrics.append(metric)

    def error_message(self) -> str:
        return "; ".join(f"{n} data point(s) rejected: {reason}" for reason, n in sorted(self.rejected.items()))
