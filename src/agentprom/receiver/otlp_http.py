"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` with protobuf or JSON, optionally gzipped.

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

from agentprom.clock import Clock
from agentprom.log_limit import RateLimitedLog
from agentprom.evaluations.model import LogBatch
from agentprom.metrics_in.model import MetricBatch
from agentprom.receiver.decode import Batch
from agentprom.receiver.ingest import (
    JSON,
    PROTOBUF,
    RESPONSES,
    Ingest,
    LogsIngest,
    MetricsIngest,
    Refusal,
    TraceIngest,
    export_response,
    gunzip,
)
from agentprom.server.bodies import read_limited

log = logging.getLogger(__name__)

CONTENT_TYPES = {"application/x-protobuf": PROTOBUF, "application/json": JSON}


def status_body(encoding: str, code: int, message: str, status: Status | None = None) -> tuple[bytes, str]:
    """A ``google.rpc.Status`` in the request's encoding (``status`` adds its details to protobuf bodies)."""
    if encoding == PROTOBUF:
        return (status or Status(code=code, message=message)).SerializeToString(), "application/x-protobuf"
    return json.dumps({"code": code, "message": message}).encode(), "application/json"


def success_body(encoding: str, batch: Batch | MetricBatch | LogBatch) -> tuple[bytes, str]:
    """The Export response, with ``partial_success`` when something was rejected."""
    if encoding == PROTOBUF:
        return export_response(batch).SerializeToString(), "application/x-protobuf"
    document: dict = {}
    if batch.rejected:
        # proto3 JSON mapping: int64 as a decimal string
        document["partialSuccess"] = {
            RESPONSES[type(batch)][2]: str(batch.rejected_count),
            "errorMessage": batch.error_message(),
        }
    return json.dumps(document).encode(), "application/json"


def refusal_response(refusal: Refusal, encoding: str, headers: dict[str, str] | None = None) -> web.Response:
    body, content_type = status_body(encoding, refusal.mapping.grpc_code.value[0], refusal.message,
                                     refusal.status())
    headers = {**refusal.http_headers(), **(headers or {})}
    return web.Response(status=refusal.mapping.http_status, body=body, content_type=content_type,
                        headers=headers)


async def read_body(request: web.Request, ingest: Ingest, encoding: str, transport: str = "http") -> bytes:
    """Read a request body within the encoding's size limit, inflating gzip safely."""
    limit = ingest.max_bytes(encoding)
    body = await read_limited(request, limit)
    if body is None:
        raise ingest.too_large(transport, encoding)
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding == "gzip":
        try:
            return gunzip(body, limit)
        except Refusal as refusal:
            if refusal.reason == "too_large":
                raise ingest.too_large(transport, encoding) from None
            raise ingest.refuse(transport, refusal.reason, refusal.message) from None
    if coding not in ("identity", ""):
        raise ingest.refuse(transport, "unsupported_encoding",
                            "this Content-Encoding is not supported (use gzip or none)")
    return body


class OtlpHttpHandlers:
    """The ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` routes; added to the HTTP application by ``app.py``."""

    def __init__(self, ingest: TraceIngest, metrics: MetricsIngest | None = None, clock: Clock | None = None,
                 logs: LogsIngest | None = None) -> None:
        self.ingest = ingest
        self.metrics = metrics
        self.logs = logs
        #: any client can trigger a bug once per request: never log it once per request
        self.errors = RateLimitedLog(log, clock=clock)

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)
        if self.metrics is not None:
            app.router.add_post("/v1/metrics", self.metrics_export)
        if self.logs is not None:
            app.router.add_post("/v1/logs", self.logs_export)

    def too_slow(self, request: web.Request) -> web.Response:
        """The answer to a request whose body did not arrive in time (server/slow_clients.py)."""
        refusal = self.ingest.refuse("http", "timeout", "request body not received within the time limit")
        return refusal_response(refusal, CONTENT_TYPES.get(request.content_type, JSON))

    async def traces(self, request: web.Request) -> web.Response:
        return await self._export(request, self.ingest)

    async def metrics_export(self, request: web.Request) -> web.Response:
        return await self._export(request, self.metrics)

    async def logs_export(self, request: web.Request) -> web.Response:
        return await self._export(request, self.logs)

    async def _export(self, request: web.Request, ingest: Ingest) -> web.Response:
        encoding = CONTENT_TYPES.get(request.content_type)
        if encoding is None:
            refusal = ingest.refuse(
                "http", "unsupported_media_type",
                "this Content-Type is not supported; use application/x-protobuf or application/json",
            )
            return refusal_response(refusal, JSON)
        try:
            body = await read_body(request, ingest, encoding)
            batch = await ingest.receive(body, encoding, "http")
        except Refusal as refusal:
            return refusal_response(refusal, encoding)
        except Exception:  # never answer a bug with a dropped connection; say so in OTLP's terms
            self.errors.exception("internal error while handling an OTLP/HTTP export")
            payload, content_type = status_body(encoding, 13, "internal error")  # 13 = INTERNAL
            return web.Response(status=500, body=payload, content_type=content_type)
        payload, content_type = success_body(encoding, batch)
        return web.Response(status=200, body=payload, content_type=content_type)
