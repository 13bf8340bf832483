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
    """What every signal's ingest shares: the size limit and counted refusals."""

    def __init__(self, store: SeriesStore, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self._refused = store.families["agentprom_requests_refused_total"]

    def refuse(self, transport: str, reason: str, message: str) -> Refusal:
        """Count a refusal and return the exception to raise."""
        self._refused.inc((transport, reason))
        return Refusal(reason, message)

    def _decode(self, body: bytes, transport: str, decode: Callable[[bytes], Any]) -> Any:
        if len(body) > self.max_request_bytes:
            raise self.refuse(transport, "too_large", f"request exceeds {self.max_request_bytes} bytes")
        try:
            return decode(body)
        except DecodeError as exc:
            raise self.refuse(transport, "decode_error", str(exc)) from None


class TraceIngest(Ingest):
    """Decode and count one trace export request; the receivers only adapt transports."""

    def __init__(self, store: SeriesStore, translator: Translator, max_request_bytes: int) -> None:
        super().__init__(store, max_request_bytes)
        self.translator = translator

    def export(self, body: bytes, encoding: str, transport: str) -> Batch:
        batch = self._decode(body, transport, decode_traces if encoding == PROTOBUF else decode_traces_json)
        self.translator.consume(batch, transport)
        return batch


class MetricsIngest(Ingest):
    """Decode and count one metrics export request."""

    def __init__(self, store: SeriesStore, translator: MetricsTranslator, max_request_bytes: int) -> None:
        super().__init__(store, max_request_bytes)
        self.translator = translator

    def export(self, body: bytes, encoding: str, transport: str) -> MetricBatch:
        batch = self._decode(body, transport, decode_metrics if encoding == PROTOBUF else decode_metrics_json)
        self.translator.consume(batch, transport)
        return batch
