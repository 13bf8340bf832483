"""OTLP/HTTP receiver: ``POST /v1/traces`` with protobuf or JSON, optionally gzipped.

OTLP specification, "OTLP/HTTP": the response uses the request's content type;
errors carry a ``google.rpc.Status`` body in that encoding; unsupported content
types get 415. Request bodies are read raw (aiohttp's automatic decompression
is off) so a gzip bomb is refused after ``max_request_bytes`` of output, not
inflated in full.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprom.receiver.decode import Batch
from agentprom.receiver.ingest import JSON, PROTOBUF, Refusal, TraceIngest, gunzip

log = logging.getLogger(__name__)

CONTENT_TYPES = {"application/x-protobuf": PROTOBUF, "application/json": JSON}


def status_body(encoding: str, code: int, message: str, status: Status | None = None) -> tuple[bytes, str]:
    """A ``google.rpc.Status`` in the request's encoding (``status`` adds its details to protobuf bodies)."""
    if encoding == PROTOBUF:
        return (status or Status(code=code, message=message)).SerializeToString(), "application/x-protobuf"
    return json.dumps({"code": code, "message": message}).encode(), "application/json"


def success_body(encoding: str, batch: Batch) -> tuple[bytes, str]:
    if encoding == PROTOBUF:
        response = ExportTraceServiceResponse()
        if batch.rejected:
            response.partial_success.rejected_spans = batch.rejected_count
            response.partial_success.error_message = batch.error_message()
        return response.SerializeToString(), "application/x-protobuf"
    document: dict = {}
    if batch.rejected:
        # proto3 JSON mapping: int64 as a decimal string
        document["partialSuccess"] = {
            "rejectedSpans": str(batch.rejected_count),
            "errorMessage": batch.error_message(),
        }
    return json.dumps(document).encode(), "application/json"


def refusal_response(refusal: Refusal, encoding: str, headers: dict[str, str] | None = None) -> web.Response:
    body, content_type = status_body(encoding, refusal.mapping.grpc_code.value[0], refusal.message,
                                     refusal.status())
    headers = {**refusal.http_headers(), **(headers or {})}
    return web.Response(status=refusal.mapping.http_status, body=body, content_type=content_type,
                        headers=headers)


async def read_body(request: web.Request, ingest: TraceIngest, transport: str = "http") -> bytes:
    """Read a request body within the size limit, inflating gzip safely."""
    limit = ingest.max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ingest.refuse(transport, "too_large", f"request exceeds {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ingest.refuse(transport, "too_large", f"request exceeds {limit} bytes") from None
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding == "gzip":
        try:
            return gunzip(body, limit)
        except Refusal as refusal:
            raise ingest.refuse(transport, refusal.reason, refusal.message) from None
    if coding not in ("identity", ""):
        raise ingest.refuse(transport, "unsupported_encoding",
                            f"Content-Encoding {coding!r} is not supported (use gzip or none)")
    return body


class OtlpHttpHandlers:
    """The ``/v1/traces`` route; added to the HTTP application by ``app.py``."""

    def __init__(self, ingest: TraceIngest) -> None:
        self.ingest = ingest

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)

    def too_slow(self, request: web.Request) -> web.Response:
        """The answer to a request whose body did not arrive in time (server/slow_clients.py)."""
        refusal = self.ingest.refuse("http", "timeout", "request body not received within the time limit")
        return refusal_response(refusal, CONTENT_TYPES.get(request.content_type, JSON))

    async def traces(self, request: web.Request) -> web.Response:
        encoding = CONTENT_TYPES.get(request.content_type)
        if encoding is None:
            refusal = self.ingest.refuse(
                "http", "unsupported_media_type",
                f"Content-Type {request.content_type!r} is not supported; "
                "use application/x-protobuf or application/json",
            )
            return refusal_response(refusal, JSON)
        try:
            body = await read_body(request, self.ingest)
            batch = self.ingest.export(body, encoding, "http")
        except Refusal as refusal:
            return refusal_response(refusal, encoding)
        except Exception:  # never answer a bug with a dropped connection; say so in OTLP's terms
            log.exception("internal error while handling an OTLP/HTTP export")
            payload, content_type = status_body(encoding, 13, "internal error")  # 13 = INTERNAL
            return web.Response(status=500, body=payload, content_type=content_type)
        payload, content_type = success_body(encoding, batch)
        return web.Response(status=200, body=payload, content_type=content_type)
