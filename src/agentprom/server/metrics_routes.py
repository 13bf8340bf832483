"""``GET /metrics`` (Prometheus text or OpenMetrics) and the health endpoints.

The body is the series store rendered by ``metrics.exposition`` followed by the
standard process metrics from a private prometheus_client registry (never the
global one). OpenMetrics is chosen when the scraper's Accept header asks for
it, as Prometheus does when exemplar storage is on.

A scrape shares the event loop with ingestion, so it holds the loop as little
as it can: the store is read in one go (cached lines; the changed series that
are cheap to format formatted, copies of the others, histograms and, in
OpenMetrics, counters: ``exposition.Snapshot``), which keeps the counter set
consistent; the copies are then formatted ``_SERIES_PER_STEP`` at a time and the
body encoded a chunk at a time, with a yield to the loop between steps
(formatting 50,000 changed series took 80 to 230 ms, and one join, encode and
copy of a 26 MB body up to 60 ms, in one hold of the loop: bench/scrape.py).
Compression runs in a worker thread (zlib releases the GIL).

Scrapes are bounded, because a scraper that asks and never reads would
otherwise hold a full copy of a possibly large body per connection:

* at most ``max_concurrent`` scrapes are served at once; more are answered 503
  (with ``Retry-After``) and their connection closed;
* scrapes of the same format and encoding that overlap share one rendered body
  (rendered at most once per ``_SHARE_SECONDS`` while scrapes are in progress;
  a scrape that starts when none is in progress always renders afresh);
* the body is written in chunks, waiting for the client to read each (the
  transport buffers one chunk, not a copy of the body), and a client that has
  not read it all within ``write_timeout`` seconds has its connection aborted.

Both are counted in ``agentprom_scrapes_failed_total{reason}``. The health
endpoints are never limited.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agentprom.clock import Clock, SystemClock
from agentprom.metrics.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Renderer, Snapshot
from agentprom.metrics.series_store import SeriesStore

#: Bodies smaller than this are not worth compressing.
_GZIP_MIN_BYTES = 1024
#: Overlapping scrapes reuse a body rendered at most this long ago.
_SHARE_SECONDS = 1.0
#: Bytes handed to the transport at a time; the next waits until the client has read them.
_CHUNK_BYTES = 256 * 1024
#: Copied series formatted per turn of the loop (4 to 15 ms of work on a shared vCPU: bench/scrape.py).
_SERIES_PER_STEP = 500


def process_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def registry_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every family and sample name a prometheus_client registry exposes (to keep other names off them)."""
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def wants_openmetrics(accept: str) -> bool:
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == "application/openmetrics-text":
            return True
        if media in ("text/plain", "*/*"):
            return False
    return False


class MetricsRoutes:
    def __init__(
        self,
        store: SeriesStore,
        ready: Callable[[], tuple[bool, dict[str, str]]],
        gzip_level: int = 1,
        extra_registry: CollectorRegistry | None = None,
        max_concurrent: int = 4,
        write_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.renderer = Renderer(store)
        self.registry = extra_registry or process_registry()
        self.ready = ready
        self.gzip_level = gzip_level
        self.max_concurrent = max_concurrent
        self.write_timeout = write_timeout
        self.clock = clock or SystemClock()
        self._failed = store.families["agentprom_scrapes_failed_total"]
        #: scrapes in progress (rendering or writing)
        self.active = 0
        #: (openmetrics, gzip) -> (monotonic time rendered, the task making the body); emptied when idle
        self._shared: dict[tuple[bool, bool], tuple[float, asyncio.Task]] = {}

    def install(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.metrics)
        for path in ("/-/healthy", "/health", "/healthz"):
            app.router.add_get(path, self.healthy)
        for path in ("/-/ready", "/ready", "/readyz"):
            app.router.add_get(path, self.readiness)

    def snapshot(self, openmetrics: bool) -> tuple[Snapshot, bytes]:
        """The store's exposition and the process metrics, read without an await (one instant's
        counter set). The OpenMetrics process metrics end with ``# EOF``."""
        self.store.expire()
        self.store.refresh_self_metrics()
        snapshot = self.renderer.snapshot(openmetrics)
        return snapshot, (generate_openmetrics if openmetrics else generate_text)(self.registry)

    async def _make_body(self, openmetrics: bool, gzip: bool) -> tuple[list[bytes], bool]:
        """The body in chunks and whether it is gzipped (small bodies are not)."""
        snapshot, extra = self.snapshot(openmetrics)
        try:
            while not snapshot.format(_SERIES_PER_STEP):
                await asyncio.sleep(0)  # ingestion runs between steps; the snapshot's values stay put
        finally:
            snapshot.abandon()  # nothing left to do after the last step; after a failure, its marks go
        chunks = await _encode(snapshot.parts)
        chunks.append(extra)
        if gzip and self.gzip_level and sum(map(len, chunks)) >= _GZIP_MIN_BYTES:
            loop = asyncio.get_running_loop()
            return [await loop.run_in_executor(None, _gzip, chunks, self.gzip_level)], True
        return chunks, False

    async def body(self, openmetrics: bool, gzip: bool) -> tuple[list[bytes], bool]:
        """The body for a scrape, shared with the scrapes in progress that asked for the same."""
        key = (openmetrics, gzip)
        now = self.clock.monotonic()
        entry = self._shared.get(key)
        if entry is None or now - entry[0] >= _SHARE_SECONDS:
            # a task of its own, so a scraper that goes away does not cancel the others' body
            entry = (now, asyncio.get_running_loop().create_task(self._make_body(openmetrics, gzip)))
            self._shared[key] = entry
        return await asyncio.shield(entry[1])

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        if self.active >= self.max_concurrent:
            self._failed.inc(("concurrency_limit",))
            response = web.Response(status=503, text="too many scrapes in progress; retry later\n",
                                    headers={"Retry-After": "1"})
            response.force_close()
            return response
        self.active += 1
        try:
            openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
            gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
            body, gzipped = await self.body(openmetrics, gzip)
            headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE}
            if gzipped:
                headers["Content-Encoding"] = "gzip"
            return await self._write(request, body, headers)
        finally:
            self.active -= 1
            if not self.active:
                self._shared.clear()  # hold no body between scrapes

    async def _write(self, request: web.Request, body: list[bytes], headers: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.content_length = sum(map(len, body))
        try:
            async with asyncio.timeout(self.write_timeout):
                await response.prepare(request)
                for chunk in body:
                    view = memoryview(chunk)
                    for start in range(0, len(view), _CHUNK_BYTES):
                        await response.write(view[start:start + _CHUNK_BYTES])  # waits while the client is behind
                await response.write_eof()
        except TimeoutError:
            self._failed.inc(("write_timeout",))
            if request.transport is not None:
                request.transport.abort()  # drops what the transport still buffers
        return response  # aiohttp sees the closed transport and ends the connection quietly

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def readiness(self, request: web.Request) -> web.Response:
        ok, checks = self.ready()
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        return web.json_response(body, status=200 if ok else 503)


async def _encode(parts: list[str]) -> list[bytes]:
    """The pieces joined and encoded about ``_CHUNK_BYTES`` at a time, yielding to the loop
    between chunks (ingestion runs in between; the pieces are immutable, so the body does not
    change)."""
    chunks = []
    start = size = 0
    for end, part in enumerate(parts, 1):
        size += len(part)
        if size >= _CHUNK_BYTES:
            chunks.append("".join(parts[start:end]).encode())
            start, size = end, 0
            await asyncio.sleep(0)
    if start < len(parts):
        chunks.append("".join(parts[start:]).encode())
    return chunks


def _gzip(chunks: list[bytes], level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([compressor.compress(chunk) for chunk in chunks] + [compressor.flush()])
