"""``GET /metrics`` (Prometheus text or OpenMetrics) and the health endpoints.

The body is the series store rendered by ``metrics.exposition`` followed by the
standard process metrics from a private prometheus_client registry (never the
global one). OpenMetrics is chosen when the scraper's Accept header asks for
it, as Prometheus does when exemplar storage is on. Compression runs in a
worker thread (zlib releases the GIL), so a large scrape does not hold up
ingestion while it is gzipped.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agentprom.metrics.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Renderer
from agentprom.metrics.series_store import SeriesStore

#: Bodies smaller than this are not worth compressing.
_GZIP_MIN_BYTES = 1024


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
    ) -> None:
        self.store = store
        self.renderer = Renderer(store)
        self.registry = extra_registry or process_registry()
        self.ready = ready
        self.gzip_level = gzip_level

    def install(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.metrics)
        for path in ("/-/healthy", "/health", "/healthz"):
            app.router.add_get(path, self.healthy)
        for path in ("/-/ready", "/ready", "/readyz"):
            app.router.add_get(path, self.readiness)

    def render(self, openmetrics: bool) -> bytes:
        """The full exposition body (store + process metrics)."""
        self.store.expire()
        self.store.refresh_self_metrics()
        ours = self.renderer.render(openmetrics)
        if openmetrics:
            extra = generate_openmetrics(self.registry).decode()
            return (ours + extra).encode()  # extra ends with "# EOF\n"
        return ours.encode() + generate_text(self.registry)

    async def metrics(self, request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        body = self.render(openmetrics)
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE}
        if (
            self.gzip_level
            and len(body) >= _GZIP_MIN_BYTES
            and "gzip" in request.headers.get("Accept-Encoding", "").lower()
        ):
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, _gzip, body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def readiness(self, request: web.Request) -> web.Response:
        ok, checks = self.ready()
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        return web.json_response(body, status=200 if ok else 503)


def _gzip(body: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()
