"""Helpers to emit spans with the real OpenTelemetry SDK and OTLP exporters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer


@contextmanager
def tracer(endpoint: str, protocol: str = "grpc", service: str = "test-agent", **exporter_kw) -> Iterator[Tracer]:
    """A tracer whose spans are exported (and flushed on exit) to the sidecar.

    ``endpoint`` is ``host:port`` for gRPC, or the base ``http://host:port`` for HTTP/protobuf.
    """
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter_kw.setdefault("insecure", "credentials" not in exporter_kw)
        exporter = OTLPSpanExporter(endpoint=endpoint, **exporter_kw)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", **exporter_kw)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    try:
        yield provider.get_tracer("agentprom-tests")
    finally:
        provider.force_flush()
        provider.shutdown()
