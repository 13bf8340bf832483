"""Forward every accepted export request, unchanged, to an upstream OTLP endpoint (gRPC or HTTP).

So agents get metrics *and* traces from one exporter: the sidecar passes the
request bytes it accepted to a collector, Tempo or Jaeger. Design:

* ``offer`` (a ``TraceIngest.accepted`` sink) only appends to a bounded buffer
  and returns: forwarding never blocks or slows ingestion. When the buffer
  (``buffer_max_bytes``, counting batches being retried) is full the new
  request is dropped and counted (``agentprom_forward_dropped_spans_total``).
* One sender task merges buffered requests into batches of up to
  ``max_batch_bytes``. Serialized ``ExportTraceServiceRequest`` messages
  concatenate into one valid message (protobuf merges repeated fields), so a
  batch is the received bytes, unchanged, back to back. Only accepted spans
  are forwarded: a request with rejected spans (partial success) is rebuilt
  without them, and OTLP/JSON requests are converted to protobuf
  (``forward_payload.py``, in a worker thread). An accepted span that cannot
  be converted is counted as dropped (``unconvertible``), never as forwarded.
* Failures the OTLP specification calls retryable (gRPC UNAVAILABLE, ...,
  HTTP 429/502/503/504, connection errors) are retried with exponential
  backoff, honouring RetryInfo / Retry-After, until ``retry_max_elapsed_seconds``;
  then the batch is dropped and counted. Other failures drop it at once.
* ``stop(grace)`` sends what is buffered within the grace period and counts
  the rest as dropped (reason ``shutdown``).

The attribute deny-list does not apply here: forwarded requests are the
received bytes. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from collections import deque
from urllib.parse import urlsplit

import aiohttp
import grpc
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from agentprom.config.schema import ForwardConfig
from agentprom.log_limit import RateLimitedLog
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver.decode import Batch
from agentprom.sinks.forward_payload import Piece, accepted_payload

log = logging.getLogger(__name__)
#: for lines a client's request can cause

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACES_PATH = "/v1/traces"
RETRYABLE_GRPC = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})

OK, RETRY, REJECT = "ok", "retry", "reject"


def _retry_info_delay(seconds: int, nanos: int) -> float:
    return seconds + nanos / 1e9


class Forwarder:
    def __init__(self, config: ForwardConfig, store: SeriesStore) -> None:
        #: lines a sender can cause per request, rate-limited
        self._per_request = RateLimitedLog(log, clock=store.clock)
        self.config = config
        url = urlsplit(config.endpoint)
        self.secure = url.scheme == "https"
        default_port = 4317 if config.protocol == "grpc" else 4318
        self.target = f"{url.hostname}:{url.port or default_port}"
        if ":" in (url.hostname or ""):
            self.target = f"[{url.hostname}]:{url.port or default_port}"
        path = url.path if url.path not in ("", "/") else TRACES_PATH
        self.url = f"{url.scheme}://{self.target}{path}"
        self.gzip = config.compression == "gzip"
        self._pending: deque[Piece] = deque()
        self._pending_bytes = 0
        self._wakeup = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._channel: grpc.aio.Channel | None = None
        self._session: aiohttp.ClientSession | None = None
        f = store.families
        self._forwarded = f["agentprom_forwarded_spans_total"]
        self._dropped = f["agentprom_forward_dropped_spans_total"]
        self._retries = f["agentprom_forward_retries_total"]
        self._buffer = f["agentprom_forward_buffer_bytes"]
        self._forwarded.inc((), 0)
        self._retries.inc((), 0)
        self._buffer.set((), 0)

    # -- the ingestion side: never blocks ---------------------------------------

    def offer(self, body: bytes, encoding: str, batch: Batch) -> None:
        spans = len(batch.spans)  # what was accepted; rejected spans are never forwarded
        if not spans:
            return
        if self._closing.is_set():
            self._dropped.inc(("shutdown",), spans)
            return
        if self._pending_bytes + len(body) > self.config.buffer_max_bytes:
            self._dropped.inc(("buffer_full",), spans)
            return
        self._pending.append(Piece(body, encoding, spans, not batch.rejected))
        self._pending_bytes += len(body)
        self._buffer.set((), self._pending_bytes)
        self._wakeup.set()

    # -- the sender task ---------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        if cfg.protocol == "grpc":
            options = [("grpc.max_send_message_length", -1)]
            if self.secure:
                tls = cfg.tls
                credentials = grpc.ssl_channel_credentials(
                    _read(tls.ca_file), private_key=_read(tls.key_file), certificate_chain=_read(tls.cert_file))
                self._channel = grpc.aio.secure_channel(self.target, credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
        else:
            context: ssl.SSLContext | bool = False
            if self.secure:
                context = ssl.create_default_context(cafile=cfg.tls.ca_file or None)
                if cfg.tls.cert_file:
                    context.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)
            # trust_env=False: the upstream is named in the config, not by proxy variables
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), trust_env=False)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="trace-forwarder")
        log.info("forwarding traces to %s over %s", self.url if cfg.protocol == "http" else self.target, cfg.protocol)

    def _take_batch(self) -> tuple[list[Piece], int]:
        taken, size = [], 0
        while self._pending and (not taken or size + len(self._pending[0].body) <= self.config.max_batch_bytes):
            item = self._pending.popleft()
            taken.append(item)
            size += len(item.body)
        return taken, size

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing.is_set():
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if (self.config.flush_interval_seconds and not self._closing.is_set()
                    and self._pending_bytes < self.config.max_batch_bytes):
                await self._sleep(self.config.flush_interval_seconds)  # let a batch fill up
            items, size = self._take_batch()
            spans = sum(item.accepted for item in items)
            try:
                payload, spans = await self._payload(items)
                if spans:
                    await self._deliver(payload, spans)
            except asyncio.CancelledError:  # shutdown grace ran out mid-delivery
                self._dropped.inc(("shutdown",), spans)
                raise
            finally:
                self._pending_bytes -= size
                self._buffer.set((), self._pending_bytes)

    async def _payload(self, items: list[Piece]) -> tuple[bytes, int]:
        """The protobuf request of the accepted spans of ``items`` and how many spans it holds;
        accepted spans that cannot be converted are counted as dropped here."""
        if all(item.whole and item.encoding != "json" for item in items):
            return b"".join(item.body for item in items), sum(item.accepted for item in items)
        # parsing and re-encoding is CPU work: keep it off the event loop
        payload, kept, unconvertible = await asyncio.get_running_loop().run_in_executor(
            None, accepted_payload, items)
        if unconvertible:
            self._dropped.inc(("unconvertible",), unconvertible)
            self._per_request.warning("forwarding: %d accepted span(s) could not be converted to protobuf; dropped",
                                      unconvertible)
        return payload, kept

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if shutdown begins (an ``asyncio.timeout`` block: Python 3.11's
        ``wait_for`` can lose a cancellation that arrives as the wait ends, CPython gh-86296)."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            pass

    async def _deliver(self, payload: bytes, spans: int) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = cfg.retry_initial_seconds
        if self.gzip and cfg.protocol == "http":
            payload = await loop.run_in_executor(None, _gzip, payload)  # zlib releases the GIL
        while True:
            outcome, hint = await self._send(payload)
            if outcome == OK:
                self._forwarded.inc((), spans)
                return
            if outcome == REJECT:
                self._dropped.inc(("rejected",), spans)
                return
            wait = min(hint if hint is not None else delay, cfg.retry_max_seconds)
            if self._closing.is_set() or loop.time() - started + wait > cfg.retry_max_elapsed_seconds:
                self._dropped.inc(("shutdown" if self._closing.is_set() else "retries_exhausted",), spans)
                return
            self._retries.inc(())
            await self._sleep(wait)
            delay = min(delay * 2, cfg.retry_max_seconds)

    async def _send(self, payload: bytes) -> tuple[str, float | None]:
        """One attempt: (OK | RETRY | REJECT, server-suggested delay)."""
        cfg = self.config
        if self._channel is not None:
            call = self._channel.unary_unary(EXPORT_METHOD)
            try:
                await call(payload, timeout=cfg.timeout_seconds,
                           metadata=tuple((k.lower(), v) for k, v in cfg.headers.items()),
                           compression=grpc.Compression.Gzip if self.gzip else None)
                return OK, None
            except grpc.aio.AioRpcError as error:
                hint = _grpc_retry_delay(error)
                if error.code() in RETRYABLE_GRPC or (
                        error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and hint is not None):
                    log.debug("forwarding failed (%s); will retry", error.code().name)
                    return RETRY, hint
                log.warning("upstream refused forwarded spans: %s %s", error.code().name, error.details())
                return REJECT, None
        headers = {"Content-Type": "application/x-protobuf", **cfg.headers}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            async with self._session.post(self.url, data=payload, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=cfg.timeout_seconds)) as response:
                await response.read()
                if response.status == 200:
                    return OK, None
                if response.status in RETRYABLE_HTTP:
                    return RETRY, _retry_after(response.headers.get("Retry-After"))
                log.warning("upstream refused forwarded spans: HTTP %d", response.status)
                return REJECT, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.debug("forwarding failed (%s); will retry", type(exc).__name__)
            return RETRY, None

    async def stop(self, grace: float) -> None:
        """Send what is buffered within ``grace`` seconds; count the rest as dropped."""
        self._closing.set()
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
            self._task = None
        left = sum(item.accepted for item in self._pending)
        if left:
            self._dropped.inc(("shutdown",), left)
            log.warning("forwarding: %d spans not sent before shutdown", left)
        self._pending.clear()
        self._pending_bytes = 0
        self._buffer.set((), 0)
        if self._channel is not None:
            await self._channel.close()
        if self._session is not None:
            await self._session.close()


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as file:
        return file.read()


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _grpc_retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        try:
            if key == "google.rpc.retryinfo-bin":
                info = RetryInfo.FromString(value)
                return _retry_info_delay(info.retry_delay.seconds, info.retry_delay.nanos)
            if key == "grpc-status-details-bin":
                for detail in Status.FromString(value).details:
                    info = RetryInfo()
                    if detail.Unpack(info):
                        return _retry_info_delay(info.retry_delay.seconds, info.retry_delay.nanos)
        except DecodeError:
            continue
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
