"""Helpers to record metrics with the real OpenTelemetry SDK: over OTLP, and into the reference Prometheus exporter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

DELTA_EVERYTHING = {
    kind: AggregationTemporality.DELTA
    for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
}


@contextmanager
def otlp_meter_provider(endpoint: str, protocol: str = "grpc", resource: Resource | None = None,
                        temporality: str = "cumulative", views=(), **exporter_kw) -> Iterator[MeterProvider]:
    """A MeterProvider exporting over OTLP to the sidecar only when flushed (``force_flush``).

    ``endpoint`` is ``host:port`` for gRPC, or the base ``http://host:port`` for HTTP/protobuf.
    ``temporality="delta"`` asks for delta on every instrument that has a temporality.
    """
    if temporality == "delta":
        exporter_kw["preferred_temporality"] = DELTA_EVERYTHING
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True, **exporter_kw)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics", **exporter_kw)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=10**9)  # flushes only
    provider = MeterProvider(metric_readers=[reader], resource=resource or Resource.create({"service.name": "test"}),
                             views=list(views))
    try:
        yield provider
    finally:
        provider.shutdown()
