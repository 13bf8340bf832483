"""Decode OTLP/protobuf metrics requests into our own metric records.

The last place protobuf metric types are seen (opentelemetry/proto/metrics/v1).
Unlike spans, every attribute is kept: each one becomes a Prometheus label.
Points flagged ``FLAG_NO_RECORDED_VALUE`` only mark a stream as stale; they are
skipped (Prometheus marks staleness itself when a series stops being exposed).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError as _PbDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from agentprom.metrics_in.model import (
    EXPONENTIAL_HISTOGRAM,
    FLAG_NO_RECORDED_VALUE,
    GAUGE,
    HISTOGRAM,
    SUM,
    SUMMARY,
    Exemplar,
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    NumberPoint,
    Point,
    Scope,
    SummaryPoint,
)
from agentprom.receiver.decode import DecodeError, any_value


def attribute_value(value: Any) -> Any:
    """A scalar, or a list of scalars for ``array_value``; kvlists and deeper
    nesting become None (and are dropped) so hostile nesting costs nothing."""
    which = value.WhichOneof("value")
    if which == "string_value":  # by far the most common: skip the second WhichOneof
        return value.string_value
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    return any_value(value)


def attributes(items: Any) -> dict[str, Any]:
    out = {}
    for kv in items:
        value = attribute_value(kv.value)
        if value is not None:
            out[kv.key] = value
    return out


def _exemplars(items: Any) -> list[Exemplar]:
    out = []
    for e in items:
        value = e.as_double if e.WhichOneof("value") == "as_double" else e.as_int
        out.append(Exemplar(value, e.time_unix_nano, e.trace_id.hex(), e.span_id.hex()))
    return out


def _number_points(points: Any) -> list[Point]:
    out: list[Point] = []
    for p in points:
        if p.flags & FLAG_NO_RECORDED_VALUE:
            continue
        which = p.WhichOneof("value")
        value = p.as_double if which == "as_double" else p.as_int if which == "as_int" else None
        out.append(NumberPoint(attributes(p.attributes), p.start_time_unix_nano, p.time_unix_nano, value,
                               _exemplars(p.exemplars) if p.exemplars else []))
    return out


def _histogram_points(points: Any) -> list[Point]:
    out: list[Point] = []
    for p in points:
        if p.flags & FLAG_NO_RECORDED_VALUE:
            continue
        out.append(HistogramPoint(
            attributes(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.count,
            p.sum if p.HasField("sum") else None, tuple(p.explicit_bounds), tuple(p.bucket_counts),
            _exemplars(p.exemplars) if p.exemplars else [],
        ))
    return out


def _exponential_points(points: Any) -> list[Point]:
    out: list[Point] = []
    for p in points:
        if p.flags & FLAG_NO_RECORDED_VALUE:
            continue
        out.append(ExponentialHistogramPoint(
            attributes(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.count,
            p.sum if p.HasField("sum") else None, p.scale, p.zero_count, p.zero_threshold,
            p.positive.offset, tuple(p.positive.bucket_counts), p.negative.offset, tuple(p.negative.bucket_counts),
            _exemplars(p.exemplars) if p.exemplars else [],
        ))
    return out


def _summary_points(points: Any) -> list[Point]:
    out: list[Point] = []
    for p in points:
        if p.flags & FLAG_NO_RECORDED_VALUE:
            continue
        out.append(SummaryPoint(
            attributes(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.count, p.sum,
            tuple((q.quantile, q.value) for q in p.quantile_values),
        ))
    return out


def decode_metrics(data: bytes) -> MetricBatch:
    """Parse an ``ExportMetricsServiceRequest`` body; raise ``DecodeError`` if it is not one."""
    try:
        request = ExportMetricsServiceRequest.FromString(data)
    except (_PbDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"cannot parse ExportMetricsServiceRequest: {exc}") from None
    batch = MetricBatch()
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            s = scope_metrics.scope
            scope = Scope(s.name, s.version, scope_metrics.schema_url, attributes(s.attributes))
            for m in scope_metrics.metrics:
                which = m.WhichOneof("data")
                if which is None:
                    continue  # no data, nothing to count
                temporality, monotonic = 0, False
                if which == GAUGE:
                    points = _number_points(m.gauge.data_points)
                elif which == SUM:
                    points = _number_points(m.sum.data_points)
                    temporality, monotonic = m.sum.aggregation_temporality, m.sum.is_monotonic
                elif which == HISTOGRAM:
                    points = _histogram_points(m.histogram.data_points)
                    temporality = m.histogram.aggregation_temporality
                elif which == EXPONENTIAL_HISTOGRAM:
                    points = _exponential_points(m.exponential_histogram.data_points)
                    temporality = m.exponential_histogram.aggregation_temporality
                else:
                    assert which == SUMMARY
                    points = _summary_points(m.summary.data_points)
                metric = Metric(m.name, m.description, m.unit, which, temporality, monotonic, [], scope, resource)
                batch.add(metric, points)
    return batch
