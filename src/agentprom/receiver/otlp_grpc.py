"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Registered as a generic handler that receives the raw request bytes, so the
protobuf parse happens in our decoder (one place for errors and limits) and
the response is serialized once. gRPC itself decompresses ``grpc-encoding:
gzip`` and enforces ``max_receive_message_length`` on the decompressed size
(answering RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprom.receiver.ingest import PROTOBUF, Refusal, TraceIngest

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


class OtlpGrpcReceiver:
    def __init__(self, ingest: TraceIngest, address: str) -> None:
        self.ingest = ingest
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
            ]
        )
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": handler}),)
        )
        try:
            if self.credentials is not None:
                port = self.server.add_secure_port(self.address, self.credentials)
            else:
                port = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.address}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.address}")
        await self.server.start()
        host = self.address.rsplit(":", 1)[0]
        return f"{host}:{port}"

    async def stop(self, grace: float) -> None:
        if self.server is not None:
            await self.server.stop(grace)

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            batch = self.ingest.export(request, PROTOBUF, "grpc")
        except Refusal as refusal:
            await context.abort(refusal.mapping.grpc_code, refusal.message, refusal.grpc_trailers())
        except Exception:  # never let a bug take the agent's exporter down with a crash
            log.exception("internal error while handling an OTLP/gRPC export")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        if not batch.rejected:
            return _EMPTY_RESPONSE
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = batch.rejected_count
        response.partial_success.error_message = batch.error_message()
        return response.SerializeToString()
