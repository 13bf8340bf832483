"""OTLP/gRPC receiver: ``TraceService/Export``, ``MetricsService/Export`` and ``LogsService/Export``.

Registered as a generic handler that receives the raw request bytes, so the
protobuf parse happens in our decoder (one place for errors and limits) and
the response is serialized once. gRPC itself decompresses ``grpc-encoding:
gzip`` and enforces ``max_receive_message_length`` on the decompressed size
(answering RESOURCE_EXHAUSTED); a smaller limit of one service (logs:
``evaluations.max_request_bytes``) is checked by its ingest, before parsing.

Connections are bounded by gRPC core's own options (``ConnectionLimits``): a
cap on open connections (more are closed as they are accepted), streams per
connection, a handshake timeout and an idle timeout (GOAWAY), so idle or
half-open clients cannot exhaust the process's file descriptors.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import grpc

from agentprom.clock import Clock
from agentprom.log_limit import RateLimitedLog
from agentprom.receiver.ingest import PROTOBUF, Ingest, LogsIngest, MetricsIngest, Refusal, TraceIngest, export_response

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on connections (``server.grpc_*`` in the config)."""

    max_connections: int = 512
    max_concurrent_streams: int = 100
    idle_seconds: float = 300.0
    handshake_seconds: float = 10.0

    def options(self) -> list[tuple[str, int]]:
        """gRPC core channel arguments (grpc/include/grpc/impl/channel_arg_names.h)."""
        return [
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_connection_idle_ms", int(self.idle_seconds * 1000)),
            ("grpc.server_handshake_timeout_ms", int(self.handshake_seconds * 1000)),
        ]


class OtlpGrpcReceiver:
    def __init__(self, ingest: TraceIngest, address: str, metrics: MetricsIngest | None = None,
                 clock: Clock | None = None, limits: ConnectionLimits | None = None,
                 logs: LogsIngest | None = None) -> None:
        self.ingest = ingest
        self.logs = logs
        self.limits = limits or ConnectionLimits()
        #: any client can trigger a bug once per request: never log it once per request
        self.errors = RateLimitedLog(log, clock=clock)
        self.metrics = metrics
        self.address = address
        self.server: grpc.aio.Server | None = None
        #: TLS (server/security.py); None listens in plaintext
        self.credentials: grpc.ServerCredentials | None = None
        #: e.g. authentication; they wrap every service on this server
        self.interceptors: list[grpc.aio.ServerInterceptor] = []

    async def start(self) -> str:
        """Bind and start serving; return the bound ``host:port``. (grpc.aio servers
        belong to the loop they are created on, so the server is made here.)"""
        limit = self.ingest.max_request_bytes
        self.server = grpc.aio.server(
            interceptors=self.interceptors or None,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                *self.limits.options(),
            ]
        )
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        handlers = [grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": handler})]
        if self.metrics is not None:
            metrics_handler = grpc.unary_unary_rpc_method_handler(self._export_metrics)
            handlers.append(grpc.method_handlers_generic_handler(METRICS_SERVICE, {"Export": metrics_handler}))
        if self.logs is not None:
            logs_handler = grpc.unary_unary_rpc_method_handler(self._export_logs)
            handlers.append(grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": logs_handler}))
        self.server.add_generic_rpc_handlers(tuple(handlers))
        try:
            if self.credentials is not None:
                port = self.server.add_secure_port(self.address, self.credentials)
            else:
                port = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            code, reason = _bind_error(self.address) or (None, str(exc))
            raise OSError(code, f"cannot listen for OTLP/gRPC on {self.address}: {reason}") from None
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.address}")
        await self.server.start()
        host = self.address.rsplit(":", 1)[0]
        return f"{host}:{port}"

    async def stop(self, grace: float) -> None:
        if self.server is not None:
            await self.server.stop(grace)

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._handle(request, context, self.ingest)

    async def _export_metrics(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._handle(request, context, self.metrics)

    async def _export_logs(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._handle(request, context, self.logs)

    async def _handle(self, request: bytes, context: grpc.aio.ServicerContext, ingest: Ingest) -> bytes:
        try:
            batch = await ingest.receive(request, PROTOBUF, "grpc")
        except Refusal as refusal:
            await context.abort(refusal.mapping.grpc_code, refusal.message, refusal.grpc_trailers())
        except Exception:  # never let a bug take the agent's exporter down with a crash
            self.errors.exception("internal error while handling an OTLP/gRPC export")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return export_response(batch).SerializeToString()


def _bind_error(address: str) -> tuple[int, str] | None:
    """Why ``address`` cannot be bound (errno, reason), learnt by binding a plain socket: gRPC's own
    error says only "Failed to bind"."""
    from agentprom.config.schema import parse_address

    host, port = parse_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno:
            return exc.errno, os.strerror(exc.errno).lower()
    return None
