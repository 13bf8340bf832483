"""What both OTLP receivers share: size limits, safe gunzip, decode, translate,
and the mapping of every failure onto HTTP and gRPC status codes (in one place).

OTLP specification, "Failures" and "Partial success": bad data is HTTP 400 /
INVALID_ARGUMENT, an oversize request 413 / RESOURCE_EXHAUSTED, an unsupported
content type 415, overload 503 / UNAVAILABLE (retryable). Individually invalid
spans or metric data points are not failures: they are reported through
``partial_success``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprom.conventions.profile import WANTED_KEYS
from agentprom.metrics.series_store import SeriesStore
from agentprom.metrics_in.model import MetricBatch
from agentprom.metrics_in.translator import MetricsTranslator
from agentprom.receiver.decode import Batch, DecodeError, decode_traces
from agentprom.receiver.metrics_decode import decode_metrics
from agentprom.receiver.metrics_json import decode_metrics_json
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.translator import Translator

PROTOBUF = "protobuf"
JSON = "json"


@dataclass(frozen=True)
class FailureMapping:
    http_status: int
    grpc_code: grpc.StatusCode


#: reason -> how each protocol says it
FAILURES: dict[str, FailureMapping] = {
    "decode_error": FailureMapping(400, grpc.StatusCode.INVALID_ARGUMENT),
    "too_large": FailureMapping(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "unsupported_media_type": FailureMapping(415, grpc.StatusCode.INVALID_ARGUMENT),
    "unsupported_encoding": FailureMapping(415, grpc.StatusCode.UNIMPLEMENTED),
    "overloaded": FailureMapping(503, grpc.StatusCode.UNAVAILABLE),
}


class Refusal(Exception):
    """The whole request is refused; ``reason`` is a key of ``FAILURES``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.mapping = FAILURES[reason]


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing (without inflating the rest) once it passes ``limit``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Refusal("decode_error", f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise Refusal("too_large", f"request exceeds {limit} bytes after decompression")
    if not inflater.eof:
        raise Refusal("decode_error", "gzip body is truncated")
    return data


class Ingest:
    """Decode and count one export request of a signal; the receivers only adapt transports.

    Subclasses name their decoders (by encoding) and the translator that counts a
    decoded batch: ``translator.consume(batch, transport)``, which never awaits.
    """

    decoders: dict[str, Callable[[bytes], Any]] = {}

    def __init__(self, store: SeriesStore, translator: Any, max_request_bytes: int) -> None:
        self.translator = translator
        self.max_request_bytes = max_request_bytes
        self._refused = store.families["agentprom_requests_refused_total"]

    def refuse(self, transport: str, reason: str, message: str) -> Refusal:
        """Count a refusal and return the exception to raise."""
        self._refused.inc((transport, reason))
        return Refusal(reason, message)

    def decode(self, body: bytes, encoding: str) -> Any:
        return self.decoders[encoding](body)

    def export(self, body: bytes, encoding: str, transport: str) -> Any:
        if len(body) > self.max_request_bytes:
            raise self.refuse(transport, "too_large", f"request exceeds {self.max_request_bytes} bytes")
        try:
            batch = self.decode(body, encoding)
        except DecodeError as exc:
            raise self.refuse(transport, "decode_error", str(exc)) from None
        self.translator.consume(batch, transport)
        return batch


class TraceIngest(Ingest):
    """Spans: ``Batch`` in, ``Translator`` counts."""

    translator: Translator
    decoders = {PROTOBUF: decode_traces, JSON: decode_traces_json}

    def __init__(self, store: SeriesStore, translator: Translator, max_request_bytes: int,
                 wanted_keys: frozenset[str] = WANTED_KEYS) -> None:
        super().__init__(store, translator, max_request_bytes)
        #: span attribute keys the decoders keep (the conventions' keys plus configured ones)
        self.wanted_keys = wanted_keys

    def decode(self, body: bytes, encoding: str) -> Batch:
        return self.decoders[encoding](body, self.wanted_keys)


class MetricsIngest(Ingest):
    """Metric data points: ``MetricBatch`` in, ``MetricsTranslator`` counts."""

    translator: MetricsTranslator
    decoders = {PROTOBUF: decode_metrics, JSON: decode_metrics_json}


def export_response(batch: Batch | MetricBatch) -> ExportTraceServiceResponse | ExportMetricsServiceResponse:
    """The protobuf Export response, with ``partial_success`` when something was rejected."""
    metrics = isinstance(batch, MetricBatch)
    response = ExportMetricsServiceResponse() if metrics else ExportTraceServiceResponse()
    if batch.rejected:
        if metrics:
            response.partial_success.rejected_data_points = batch.rejected_count
        else:
            response.partial_success.rejected_spans = batch.rejected_count
        response.partial_success.error_message = batch.error_message()
    return response
