"""What both OTLP receivers share: size limits, safe gunzip, decode, translate,
and the mapping of every failure onto HTTP and gRPC status codes (in one place).

OTLP specification, "Failures" and "Partial success": bad data is HTTP 400 /
INVALID_ARGUMENT, an oversize request 413 / RESOURCE_EXHAUSTED, an unsupported
content type 415, overload 503 / UNAVAILABLE (retryable). Individually invalid
spans or metric data points are not failures: they are reported through
``partial_success``.

Retryable refusals carry a delay: HTTP ``Retry-After`` and, for gRPC, a
``google.rpc.RetryInfo`` both inside the standard ``grpc-status-details-bin``
trailer (read by Go and Java clients and collectors) and as the
``google.rpc.retryinfo-bin`` trailer the Python SDK reads.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as PbAny
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
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
from agentprom.receiver.pipeline import Pipeline
from agentprom.translator import Translator

PROTOBUF = "protobuf"
JSON = "json"


@dataclass(frozen=True)
class FailureMapping:
    http_status: int
    grpc_code: grpc.StatusCode
    #: the client should retry later (HTTP Retry-After, gRPC RetryInfo)
    retryable: bool = False


#: reason -> how each protocol says it
FAILURES: dict[str, FailureMapping] = {
    "decode_error": FailureMapping(400, grpc.StatusCode.INVALID_ARGUMENT),
    "too_large": FailureMapping(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "unsupported_media_type": FailureMapping(415, grpc.StatusCode.INVALID_ARGUMENT),
    "unsupported_encoding": FailureMapping(415, grpc.StatusCode.UNIMPLEMENTED),
    "overloaded": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    "memory_limit": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    # this transport holds its share of the queue (receiver/pipeline.py, fairness between transports)
    "fair_share": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    # a body that does not arrive in time (slowloris); not retryable in OTLP on purpose
    "timeout": FailureMapping(408, grpc.StatusCode.DEADLINE_EXCEEDED),
    "unauthenticated": FailureMapping(401, grpc.StatusCode.UNAUTHENTICATED),
}

_OVERLOAD_MESSAGES = {
    "overloaded": "the sidecar's queue is full; retry later",
    "memory_limit": "the sidecar is above its memory limit; retry later",
    "fair_share": "this transport's share of the sidecar's queue is full; retry later",
}


class Refusal(Exception):
    """The whole request is refused; ``reason`` is a key of ``FAILURES``."""

    def __init__(self, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.mapping = FAILURES[reason]
        #: seconds the client should wait before retrying (retryable refusals only)
        self.retry_after = retry_after if self.mapping.retryable else None

    def http_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    def retry_info(self) -> RetryInfo | None:
        if self.retry_after is None:
            return None
        return RetryInfo(retry_delay=Duration(seconds=self.retry_after))

    def status(self) -> Status:
        """The ``google.rpc.Status`` for this refusal, with RetryInfo when retryable."""
        status = Status(code=self.mapping.grpc_code.value[0], message=self.message)
        info = self.retry_info()
        if info is not None:
            detail = PbAny()
            detail.Pack(info)
            status.details.append(detail)
        return status

    def grpc_trailers(self) -> tuple[tuple[str, bytes], ...]:
        info = self.retry_info()
        if info is None:
            return ()
        return (
            ("grpc-status-details-bin", self.status().SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()),
        )


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
    With a ``pipeline``, admission (queue bound, memory ceiling) is checked before
    decoding, so refusing under load stays cheap.
    """

    decoders: dict[str, Callable[[bytes], Any]] = {}

    def __init__(self, store: SeriesStore, translator: Any, max_request_bytes: int,
                 pipeline: Pipeline | None = None, retry_after_seconds: int = 1) -> None:
        self.translator = translator
        self.max_request_bytes = max_request_bytes
        #: the bounded queue to translation; None translates synchronously
        self.pipeline = pipeline
        self.retry_after_seconds = retry_after_seconds
        #: called with (decompressed body, encoding, batch) for every accepted request, e.g. trace
        #: forwarding; each must return at once (never block the receivers)
        self.accepted: list[Callable[[bytes, str, Batch], None]] = []
        self._refused = store.families["agentprom_requests_refused_total"]

    def refuse(self, transport: str, reason: str, message: str) -> Refusal:
        """Count a refusal and return the exception to raise."""
        self._refused.inc((transport, reason))
        return Refusal(reason, message, self.retry_after_seconds)

    def decode(self, body: bytes, encoding: str) -> Any:
        return self.decoders[encoding](body)

    def export(self, body: bytes, encoding: str, transport: str) -> Any:
        if len(body) > self.max_request_bytes:
            raise self.refuse(transport, "too_large", f"request exceeds {self.max_request_bytes} bytes")
        pipeline = self.pipeline
        if pipeline is not None:
            reason = pipeline.admit(transport)  # before decoding: refusing under load must be cheap
            if reason is not None:
                raise self.refuse(transport, reason, _OVERLOAD_MESSAGES[reason])
        try:
            batch = self.decode(body, encoding)
        except DecodeError as exc:
            raise self.refuse(transport, "decode_error", str(exc)) from None
        self.count(batch, transport)
        for sink in self.accepted:
            sink(body, encoding, batch)
        return batch

    def count(self, batch: Any, transport: str) -> None:
        """Translate a decoded batch now (subclasses may queue it instead)."""
        self.translator.consume(batch, transport)


class TraceIngest(Ingest):
    """Spans: ``Batch`` in, ``Translator`` counts."""

    translator: Translator
    decoders = {PROTOBUF: decode_traces, JSON: decode_traces_json}

    def __init__(self, store: SeriesStore, translator: Translator, max_request_bytes: int,
                 pipeline: Pipeline | None = None, retry_after_seconds: int = 1,
                 wanted_keys: frozenset[str] = WANTED_KEYS) -> None:
        super().__init__(store, translator, max_request_bytes, pipeline, retry_after_seconds)
        #: span attribute keys the decoders keep (the conventions' keys plus configured ones)
        self.wanted_keys = wanted_keys

    def decode(self, body: bytes, encoding: str) -> Batch:
        return self.decoders[encoding](body, self.wanted_keys)

    def count(self, batch: Batch, transport: str) -> None:
        """Queue the batch for the translation task (or translate now without a pipeline)."""
        pipeline = self.pipeline
        if pipeline is None:
            self.translator.consume(batch, transport)
        else:
            reason = pipeline.fits(len(batch.spans), transport)
            if reason is not None:
                raise self.refuse(transport, reason, _OVERLOAD_MESSAGES[reason])
            pipeline.submit(batch, transport)


class MetricsIngest(Ingest):
    """Metric data points: ``MetricBatch`` in, ``MetricsTranslator`` counts (admission
    through the pipeline's limits, translation synchronous: points are cheap to count)."""

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
