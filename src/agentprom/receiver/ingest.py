"""What both OTLP receivers share: size limits, safe gunzip, decode, translate,
and the mapping of every failure onto HTTP and gRPC status codes (in one place).

OTLP specification, "Failures" and "Partial success": bad data is HTTP 400 /
INVALID_ARGUMENT, an oversize request 413 / RESOURCE_EXHAUSTED, an unsupported
content type 415, overload 503 / UNAVAILABLE (retryable). Individually invalid
spans, metric data points or evaluation log records are not failures: they are
reported through ``partial_success``.

Retryable refusals carry a delay: HTTP ``Retry-After`` and, for gRPC, a
``google.rpc.RetryInfo`` both inside the standard ``grpc-status-details-bin``
trailer (read by Go and Java clients and collectors) and as the
``google.rpc.retryinfo-bin`` trailer the Python SDK reads.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as PbAny
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprom.bounds import AmountLimits, SpanBounds
from agentprom.conventions.profile import WANTED_KEYS, WANTED_RESOURCE_KEYS
from agentprom.evaluations.counter import Evaluations
from agentprom.evaluations.model import LogBatch
from agentprom.metrics.series_store import SeriesStore
from agentprom.metrics_in.model import MetricBatch
from agentprom.metrics_in.translator import MetricsTranslator
from agentprom.receiver.decode import NO_LIMITS, Batch, DecodeError, DecodeLimits, LimitExceeded
from agentprom.receiver.decode_workers import (  # noqa: F401 - PROTOBUF and JSON: the receivers' names
    JSON,
    PROTOBUF,
    DecodeWorkers,
    TraceDecoder,
    WorkerLost,
    decode_pool,
)
from agentprom.receiver.logs_decode import decode_logs
from agentprom.receiver.logs_json import decode_logs_json
from agentprom.receiver.metrics_decode import decode_metrics
from agentprom.receiver.metrics_json import decode_metrics_json
from agentprom.receiver.pipeline import Pipeline
from agentprom.translator import Translator



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
    # more spans than server.max_spans_per_request: refused whole before they are built
    "too_many_spans": FailureMapping(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    # likewise, log records of a logs export
    "too_many_log_records": FailureMapping(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    # a JSON array (or a span's events) longer than server.max_items_per_array
    "too_many_items": FailureMapping(400, grpc.StatusCode.INVALID_ARGUMENT),
    "unsupported_media_type": FailureMapping(415, grpc.StatusCode.INVALID_ARGUMENT),
    "unsupported_encoding": FailureMapping(415, grpc.StatusCode.UNIMPLEMENTED),
    "overloaded": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    "memory_limit": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    # this transport holds its share of the queue (receiver/pipeline.py, fairness between transports)
    "fair_share": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    # the decode worker holding the request died (receiver/decode_workers.py); nothing of it was counted
    "worker_lost": FailureMapping(503, grpc.StatusCode.UNAVAILABLE, retryable=True),
    # a body that does not arrive in time (slowloris); not retryable in OTLP on purpose
    "timeout": FailureMapping(408, grpc.StatusCode.DEADLINE_EXCEEDED),
    "unauthenticated": FailureMapping(401, grpc.StatusCode.UNAUTHENTICATED),
}

_OVERLOAD_MESSAGES = {
    "overloaded": "the sidecar's queue is full; retry later",
    "memory_limit": "the sidecar is above its memory limit; retry later",
    "fair_share": "this transport's share of the sidecar's queue is full; retry later",
}


#: longest error message sent back; messages name a path and a rule, never a value from the request
MAX_MESSAGE_CHARS = 512


class Refusal(Exception):
    """The whole request is refused; ``reason`` is a key of ``FAILURES``."""

    def __init__(self, reason: str, message: str, retry_after: int | None = None) -> None:
        message = message[:MAX_MESSAGE_CHARS]
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
    """Inflate a gzip body, refusing (without inflating the rest) once it passes ``limit``.

    RFC 1952 section 2.2: a gzip file is a series of members, so every member is
    inflated (``gzip(a) + gzip(b)`` is ``a + b``) within the one ``limit``.
    Anything after the last member that is not another member is refused:
    nothing is ever dropped silently.
    """
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise Refusal("decode_error", f"body is not valid gzip: {exc}") from None
        size += len(data)
        if size > limit:
            raise Refusal("too_large", f"request exceeds {limit} bytes after decompression")
        if not inflater.eof:
            raise Refusal("decode_error", "gzip body is truncated")
        out.append(data)
        rest = inflater.unused_data
        if not rest:
            return out[0] if len(out) == 1 else b"".join(out)
        if not rest.startswith(b"\x1f\x8b"):
            raise Refusal("decode_error", "gzip body has trailing data after its last member")


#: Bodies at least this large are decoded in a worker thread, so the event loop (health,
#: /metrics, other requests) keeps running during the decode; smaller ones decode inline.
OFFLOAD_BYTES = 256 * 1024
#: Decoded memory per body byte, reserved against ``queue.memory_limit_mib`` while a request
#: decodes (measured: agent spans about 7x protobuf and 8x JSON, empty JSON spans 25x; empty
#: protobuf spans cost more, which ``server.max_spans_per_request`` bounds before parsing).
DECODED_BYTES_PER_BYTE = {PROTOBUF: 8, JSON: 25}

@dataclass(frozen=True)
class RequestLimits:
    """Per-request bounds (``server.*`` in the config)."""

    max_request_bytes: int
    #: JSON bodies (a parsed JSON document costs far more memory than its bytes); 0 = as above
    max_json_request_bytes: int = 0
    decode: DecodeLimits = NO_LIMITS

    def max_bytes(self, encoding: str) -> int:
        if encoding == JSON and self.max_json_request_bytes:
            return min(self.max_request_bytes, self.max_json_request_bytes)
        return self.max_request_bytes


class Ingest:
    """Decode and count one export request of a signal; the receivers only adapt transports.

    Subclasses name their decoders (by encoding) and the translator that counts a
    decoded batch: ``translator.consume(batch, transport)``, which never awaits.
    With a ``pipeline``, admission (queue bound, memory ceiling, and a reservation of
    the decoded size against it) is checked before decoding, so refusing under load
    stays cheap. ``receive`` decodes large bodies off the event loop; counting and
    everything that touches the store stays on the loop.
    """

    decoders: dict[str, Callable[..., Any]] = {}

    def __init__(self, store: SeriesStore, translator: Any, limits: RequestLimits | int,
                 pipeline: Pipeline | None = None, retry_after_seconds: int = 1) -> None:
        self.translator = translator
        self.limits = limits if isinstance(limits, RequestLimits) else RequestLimits(limits)
        self.max_request_bytes = self.limits.max_request_bytes
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

    def max_bytes(self, encoding: str) -> int:
        return self.limits.max_bytes(encoding)

    def limit_key(self, encoding: str) -> str:
        """The config key whose limit ``max_bytes(encoding)`` is."""
        return "server.max_json_request_bytes" if self.limits.max_bytes(encoding) < self.max_request_bytes \
            else "server.max_request_bytes"

    def too_large(self, transport: str, encoding: str) -> Refusal:
        return self.refuse(transport, "too_large",
                           f"request exceeds {self.max_bytes(encoding)} bytes ({self.limit_key(encoding)})")

    def decode(self, body: bytes, encoding: str) -> Any:
        """Runs in a worker thread for large bodies: must not touch the store."""
        return self.decoders[encoding](body)

    def _admit(self, body: bytes, encoding: str, transport: str) -> int:
        """Check size and admission; return the bytes reserved (give them back with ``_release``)."""
        if len(body) > self.max_bytes(encoding):
            raise self.too_large(transport, encoding)
        pipeline = self.pipeline
        if pipeline is None:
            return 0
        reserve = len(body) * DECODED_BYTES_PER_BYTE.get(encoding, DECODED_BYTES_PER_BYTE[JSON])
        reason = pipeline.admit(transport, reserve)  # before decoding: refusing under load must be cheap
        if reason is not None:
            raise self.refuse(transport, reason, _OVERLOAD_MESSAGES[reason])
        return reserve

    def _release(self, reserved: int) -> None:
        if reserved and self.pipeline is not None:
            self.pipeline.release(reserved)

    def _refuse_decode_error(self, exc: DecodeError, transport: str) -> Refusal:
        reason = exc.reason if isinstance(exc, LimitExceeded) else "decode_error"
        return self.refuse(transport, reason, str(exc))

    def _accept(self, body: bytes, encoding: str, batch: Any, transport: str) -> Any:
        self.count(batch, transport)
        for sink in self.accepted:
            sink(body, encoding, batch)
        return batch

    def export(self, body: bytes, encoding: str, transport: str) -> Any:
        """Admit, decode (on this thread) and count one request."""
        reserved = self._admit(body, encoding, transport)
        try:
            try:
                batch = self.decode(body, encoding)
            except DecodeError as exc:
                raise self._refuse_decode_error(exc, transport) from None
            return self._accept(body, encoding, batch, transport)
        finally:
            self._release(reserved)

    def off_loop(self, body: bytes) -> bool:
        """Whether ``receive`` decodes this body off the event loop."""
        return len(body) >= OFFLOAD_BYTES

    async def decode_off_loop(self, body: bytes, encoding: str) -> Any:
        return await asyncio.get_running_loop().run_in_executor(decode_pool(), self.decode, body, encoding)

    async def receive(self, body: bytes, encoding: str, transport: str) -> Any:
        """``export`` for the receivers: a large body is decoded off the loop (a worker thread, or
        the decode workers' processes) while the loop serves others; refusals, counting and sinks
        run on the loop."""
        if not self.off_loop(body):
            return self.export(body, encoding, transport)
        reserved = self._admit(body, encoding, transport)
        try:
            try:
                batch = await self.decode_off_loop(body, encoding)
            except DecodeError as exc:
                raise self._refuse_decode_error(exc, transport) from None
            except WorkerLost as exc:
                raise self.refuse(transport, "worker_lost", str(exc)) from None
            return self._accept(body, encoding, batch, transport)
        finally:
            self._release(reserved)

    def count(self, batch: Any, transport: str) -> None:
        """Translate a decoded batch now (subclasses may queue it instead)."""
        self.translator.consume(batch, transport)


class TraceIngest(Ingest):
    """Spans: ``Batch`` in, ``Translator`` counts. Spans whose amounts or sampling weight break a
    bound (bounds.py) are rejected right after decoding, so ``partial_success`` reports them.
    With ``workers`` above 1, large bodies are decoded in worker processes (decode_workers.py)."""

    translator: Translator

    def __init__(self, store: SeriesStore, translator: Translator, limits: RequestLimits | int,
                 pipeline: Pipeline | None = None, retry_after_seconds: int = 1,
                 wanted_keys: frozenset[str] = WANTED_KEYS, bounds: SpanBounds | None = None,
                 resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS, workers: int = 1,
                 worker_min_bytes: int = 0) -> None:
        super().__init__(store, translator, limits, pipeline, retry_after_seconds)
        #: span and resource attribute keys the decoders keep (the conventions' keys plus configured ones)
        self.decoder = TraceDecoder(wanted_keys, self.limits.decode, resource_keys,
                                    bounds or SpanBounds(AmountLimits.defaults(), translator.weights))
        self.workers = DecodeWorkers(self.decoder, workers, worker_min_bytes,
                                     store.families["agentprom_decode_worker_restarts_total"],
                                     store.families["agentprom_decode_workers"]) if workers > 1 else None

    def decode(self, body: bytes, encoding: str) -> Batch:
        return self.decoder(body, encoding)

    def off_loop(self, body: bytes) -> bool:
        return (self.workers is not None and self.workers.wants(body)) or super().off_loop(body)

    async def decode_off_loop(self, body: bytes, encoding: str) -> Batch:
        workers = self.workers
        if workers is not None and workers.wants(body):
            return await workers.decode(body, encoding)
        return await super().decode_off_loop(body, encoding)

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

    def decode(self, body: bytes, encoding: str) -> MetricBatch:
        if encoding == JSON:
            return decode_metrics_json(body, self.limits.decode)
        return decode_metrics(body)


class LogsIngest(Ingest):
    """Log records: ``LogBatch`` in (only evaluation results kept), ``Evaluations`` counts (admission
    through the pipeline's limits, counting synchronous, as for metrics). Bodies are bounded by
    ``evaluations.max_request_bytes`` as well as the ``server.*`` limits."""

    translator: Evaluations
    decoders = {PROTOBUF: decode_logs, JSON: decode_logs_json}

    def __init__(self, store: SeriesStore, translator: Evaluations, limits: RequestLimits | int,
                 pipeline: Pipeline | None = None, retry_after_seconds: int = 1,
                 max_logs_bytes: int = 2**62) -> None:
        super().__init__(store, translator, limits, pipeline, retry_after_seconds)
        self.max_logs_bytes = max_logs_bytes

    def max_bytes(self, encoding: str) -> int:
        return min(self.limits.max_bytes(encoding), self.max_logs_bytes)

    def limit_key(self, encoding: str) -> str:
        if self.max_logs_bytes < self.limits.max_bytes(encoding):
            return "evaluations.max_request_bytes"
        return super().limit_key(encoding)

    def decode(self, body: bytes, encoding: str) -> LogBatch:
        return self.decoders[encoding](body, self.limits.decode)


#: batch type -> (response type, its partial success field, the field's OTLP/JSON name)
RESPONSES: dict[type, tuple[type, str, str]] = {
    Batch: (ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
    MetricBatch: (ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
    LogBatch: (ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
}


def export_response(batch: Batch | MetricBatch | LogBatch) -> Any:
    """The protobuf Export response, with ``partial_success`` when something was rejected."""
    response_type, field, _json_field = RESPONSES[type(batch)]
    response = response_type()
    if batch.rejected:
        setattr(response.partial_success, field, batch.rejected_count)
        response.partial_success.error_message = batch.error_message()
    return response
