"""The composition root: builds every component from the config and owns start/stop order.

Lifecycle contract (after the OTel Collector's ``component`` package):

* ``start()`` is quick: it binds every listener and returns; readiness turns
  true only when all receivers listen.
* ``stop()`` is safe to call twice, or before ``start()``. It stops the
  receivers first (no new requests; in-flight ones get the grace period), then
  translates everything still queued (nothing accepted is lost), then
  periodic work, then the metrics endpoint, so a final scrape can still see
  what was counted during shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from agentprom import __version__
from agentprom.bounds import AmountLimits, SpanBounds
from agentprom.clock import Clock, SystemClock
from agentprom.config.schema import Config, parse_address
from agentprom.context.scope import PhaseRules
from agentprom.context.stage import TraceContext
from agentprom.conventions.profile import WANTED_KEYS, WANTED_RESOURCE_KEYS
from agentprom.dimensions import with_dimensions
from agentprom.guardrails import Guardrails
from agentprom.evaluations.counter import Evaluations
from agentprom.internal_errors import InternalErrors
from agentprom.metrics.catalog import COUNTER, MetricSpec, active_catalog, all_exposed_names
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.metrics_in.translator import MetricsInSettings, MetricsTranslator
from agentprom.pricing import Pricing
from agentprom.receiver.decode import DecodeLimits
from agentprom.receiver.ingest import LogsIngest, MetricsIngest, RequestLimits, TraceIngest
from agentprom.receiver.otlp_grpc import ConnectionLimits, OtlpGrpcReceiver
from agentprom.receiver.otlp_http import OtlpHttpHandlers
from agentprom.receiver.pipeline import AttributeDeny, Pipeline, QueueLimits, Resident
from agentprom.runs import Runs
from agentprom.sampling import SamplingWeights
from agentprom.server import security, slow_clients
from agentprom.server.request_errors import RequestErrorLog
from agentprom.server.metrics_routes import MetricsRoutes, registry_names
from agentprom.sinks.forward import Forwarder
from agentprom.sessions.api import RuntimeApi
from agentprom.journal import SessionJournal
from agentprom.sessions.tracker import SessionTracker
from agentprom.translator import Translator

if TYPE_CHECKING:
    from agentprom.stores.fleet import Fleet
    from agentprom.stores.service import Stores

log = logging.getLogger(__name__)

#: How often periodic work (series expiry, session timeouts) runs.
HOUSEKEEPING_SECONDS = 5.0


def store_limits(config: Config) -> StoreLimits:
    s = config.store
    return StoreLimits(
        max_series_per_metric=s.max_series_per_metric,
        max_folded_label_sets=s.max_folded_label_sets,
        max_label_value_length=s.max_label_value_length,
        series_ttl_seconds=s.series_ttl_seconds,
        exemplars=s.exemplars,
        label_allow=dict(s.label_allow),
        max_label_values=s.max_label_values,
        label_values=dict(s.label_values),
    )


def metrics_in_settings(config: Config) -> MetricsInSettings:
    c = config.metrics_in
    return MetricsInSettings(
        translate_names=c.translate_names,
        series_ttl_seconds=c.series_ttl_seconds,
        max_metric_families=c.max_metric_families,
        promote_resource_attributes=tuple(c.promote_resource_attributes),
        scope_labels=c.scope_labels,
        target_info=c.target_info,
        exponential_histograms=c.exponential_histograms,
        max_histogram_buckets=c.max_histogram_buckets,
        max_memory_bytes=int(c.max_memory_mib * 1024 * 1024),
    )


def reserved_names(catalog: tuple[MetricSpec, ...], extra: frozenset[str] = frozenset()) -> frozenset[str]:
    """Names incoming metrics may not take: every sample and family name of the active
    catalog (OpenMetrics names counters without ``_total``), plus ``extra``."""
    families = {spec.name for spec in catalog}
    families |= {spec.name[: -len("_total")] for spec in catalog if spec.type == COUNTER}
    return all_exposed_names(catalog) | families | extra


class App:
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        server = config.server
        catalog = with_dimensions(active_catalog(config.compat.enabled()), config.dimensions)
        self.store = SeriesStore(store_limits(config), self.clock, catalog)
        self.store["agentprom_build_info"].set((__version__,), 1)
        for dimension in config.dimensions:
            self.store["agentprom_dimension_info"].set((dimension.label,), 1)
        #: contained failures of subscribers and stages (internal_errors.py)
        self.errors = InternalErrors(self.store)
        sampling = config.sampling
        weights = SamplingWeights(sampling.tracestate, sampling.probability_attribute)
        #: the trace-context stage: agents, invocations and nested calls resolved from the trace tree
        self.context = TraceContext(config.attribution, self.store, PhaseRules(config.sessions.phase_spans))
        self.translator = Translator(self.store, weights, self.errors, self.context, config.dimensions)
        #: the price table for LLM calls without a cost of their own; ``reload_pricing`` on SIGHUP
        self.pricing = Pricing.from_config(config, self.store)
        self.translator.pricing = self.pricing
        wanted = WANTED_KEYS | {sampling.probability_attribute} if sampling.probability_attribute else WANTED_KEYS
        # the attributes the configured dimensions read, wherever they are (dimensions.py)
        dimension_keys = frozenset(key for d in config.dimensions for key in d.attributes)
        queue = config.queue
        deny = AttributeDeny(config.security.attribute_deny)
        self.pipeline = Pipeline(
            self.translator, self.store,
            QueueLimits(queue.max_spans, queue.memory_limit_mib * 1024 * 1024, queue.transport_share),
            deny, rss=Resident(self.clock.monotonic, self.helper_pids), errors=self.errors,
        )
        self.amount_limits = AmountLimits.from_config(config)
        bounds = SpanBounds(self.amount_limits, weights, deny.denied)
        limits = RequestLimits(
            server.max_request_bytes, server.max_json_request_bytes,
            DecodeLimits(server.max_spans_per_request, server.max_items_per_array, server.max_string_bytes),
        )
        self.ingest = TraceIngest(self.store, self.translator, limits, self.pipeline, queue.retry_after_seconds,
                                  wanted | dimension_keys, bounds, WANTED_RESOURCE_KEYS | dimension_keys,
                                  server.decode_workers, server.worker_min_bytes)
        self.metrics_app = web.Application()
        self.metrics_routes = MetricsRoutes(self.store, self.readiness, server.metrics_gzip_level,
                                            max_concurrent=server.max_concurrent_scrapes,
                                            write_timeout=server.scrape_write_timeout_seconds, clock=self.clock)
        self.metrics_routes.install(self.metrics_app)

        self.metrics_ingest: MetricsIngest | None = None
        self.metrics_translator: MetricsTranslator | None = None
        if config.metrics_in.enabled:
            reserved = reserved_names(catalog, registry_names(self.metrics_routes.registry))
            self.metrics_translator = MetricsTranslator(self.store, metrics_in_settings(config), reserved)
            self.metrics_ingest = MetricsIngest(self.store, self.metrics_translator, limits,
                                                self.pipeline, queue.retry_after_seconds)

        #: evaluation results from OTLP logs and span events (evaluations/), for the evaluated span's agent
        evaluations = config.evaluations
        self.evaluations = Evaluations(self.store, self.clock, self.context, evaluations.max_abs_score,
                                       evaluations.max_wait_seconds, evaluations.max_waiting, deny)
        self.logs_ingest: LogsIngest | None = None
        if evaluations.enabled:
            self.logs_ingest = LogsIngest(self.store, self.evaluations, limits, self.pipeline,
                                          queue.retry_after_seconds, evaluations.max_request_bytes)
            self.translator.listeners.append(self.errors.contain("evaluations", self.evaluations.on_resolved))

        self.grpc = OtlpGrpcReceiver(self.ingest, server.otlp_grpc, self.metrics_ingest, self.clock, ConnectionLimits(
            server.grpc_max_connections, server.grpc_max_concurrent_streams,
            server.grpc_max_connection_idle_seconds, server.http_header_timeout_seconds), self.logs_ingest)
        self.http_app = web.Application(client_max_size=server.max_request_bytes)
        self.http_handlers = OtlpHttpHandlers(self.ingest, self.metrics_ingest, self.clock, self.logs_ingest)
        self.http_handlers.install(self.http_app)
        self._secure_listeners()
        #: optional trace forwarding to an upstream collector (sinks/forward.py)
        self.forwarder: Forwarder | None = None
        if config.forward.endpoint:
            self.forwarder = Forwarder(config.forward, self.store)
            self.ingest.accepted.append(self.forwarder.offer)

        #: per-run fan-out, from the runs the trace context settles (a listener, like sessions)
        attribution = config.attribution
        self.runs = Runs(self.store, self.clock, attribution.run_grace_seconds, attribution.max_open_runs)
        self.translator.listeners.append(self.errors.contain("runs", self.runs.on_resolved))
        self.translator.listeners.append(self.errors.contain("guardrails", Guardrails(self.store).on_resolved))
        #: called every HOUSEKEEPING_SECONDS on the event loop (must not block)
        self.periodic: list[Callable[[], None]] = [self.store.expire, self.translator.expire, self.runs.expire,
                                                   self.evaluations.expire]
        #: name -> "host:port" actually bound (port 0 resolved)
        self.addresses: dict[str, str] = {}
        #: extra readiness checks: name -> () -> (ok, detail)
        self.checks: dict[str, Callable[[], tuple[bool, str]]] = {}

        # runtime sessions (fed by spans and the /runtime API) and their JSONL log
        self.journal = SessionJournal(config.journal, self.store) if config.journal.enabled else None
        sink = self.errors.contain("jsonl", self.journal.writer.append) if self.journal else None
        #: PostgreSQL and Redis, fed from the journal by a process of their own (stores/)
        self.stores: Stores | None = None
        if config.storage.configured:
            from agentprom.stores import service  # psycopg and redis-py only when a store is configured

            self.stores = service.Stores(config, self.store)
            self.periodic.append(self.stores.publish)
            self.store.expiry_hooks.append(self.stores.publish)
            self.checks.update(self.stores.checks())
        self.tracker = SessionTracker(self.store, config.sessions, self.clock,
                                      sink=sink, errors=self.errors)
        if config.sessions.enabled:
            self.translator.listeners.append(self.errors.contain("sessions", self.tracker.on_resolved))
            self.translator.sessions = self.tracker  # runtime events enter where spans do
            RuntimeApi(self.tracker, self.store, config.sessions.max_events_per_request,
                       self.amount_limits, config.sessions.max_request_bytes,
                       apply=self.translator.event, end=self.translator.end_session,
                       fleet=self._fleet()).install(self.http_app)
            self.periodic.append(self.tracker.expire)
        if self.journal is not None:
            self.periodic.append(self.journal.publish)
            self.store.expiry_hooks.append(self.journal.publish)  # every scrape sees the writer's state
            self.checks["jsonl"] = self.journal.check
        self._receivers_ready = False
        self._started = False
        self._stopped = False
        self._start_failed = False
        self._runners: dict[str, web.AppRunner] = {}
        self._housekeeping: asyncio.Task | None = None

    def helper_pids(self) -> list[int]:
        """The sidecar's helper processes running now (decode workers, the stores' shipper process):
        their memory counts against ``queue.memory_limit_mib`` with this process's."""
        pids = self.ingest.workers.pids() if self.ingest.workers is not None else []
        if self.stores is not None:
            pid = self.stores.process.pid()
            if pid is not None:
                pids.append(pid)
        return pids

    def _fleet(self) -> Fleet | None:
        """The runtime API's reads of sessions other processes saw (a PostgreSQL store is configured)."""
        if self.stores is None or self.stores.postgres is None:
            return None
        from agentprom.stores.fleet import Fleet

        return Fleet(self.stores, self.config.sessions, self.clock)

    def _secure_listeners(self) -> None:
        """TLS, authentication and slow-client limits on every listener (server/security.py)."""
        sec = self.config.security
        failures = self.store["agentprom_auth_failures_total"]
        #: listener name -> SSL context for its aiohttp site
        self.ssl_contexts: dict[str, ssl.SSLContext | None] = {
            "otlp_http": security.server_ssl_context(sec.receivers.tls),
            "metrics": security.server_ssl_context(sec.metrics.tls),
        }
        self.grpc.credentials = security.grpc_server_credentials(sec.receivers.tls)
        receivers = security.Credentials.from_config(sec.receivers.bearer_token_file)
        if receivers is not None:
            self.http_app.middlewares.append(security.http_auth_middleware(receivers, failures, "otlp_http"))
            self.grpc.interceptors.append(
                security.BearerTokenInterceptor(receivers, lambda: failures.inc(("otlp_grpc",)))
            )
        self.http_app.middlewares.append(
            slow_clients.request_deadline(self.config.server.http_request_timeout_seconds,
                                          self.http_handlers.too_slow)
        )
        scrapers = security.Credentials.from_config(sec.metrics.bearer_token_file, sec.metrics.basic_auth)
        if scrapers is not None:
            # probes rarely carry credentials and health says nothing about spans
            open_paths = [r.resource.canonical for r in self.metrics_app.router.routes() if r.method == "GET"
                          and r.resource is not None and r.resource.canonical != "/metrics"]
            self.metrics_app.middlewares.append(
                security.http_auth_middleware(scrapers, failures, "metrics", exempt=open_paths)
            )

    # -- readiness ---------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, str]]:
        checks = {"receivers": "listening" if self._receivers_ready else "not listening"}
        ok = self._receivers_ready
        for name, check in self.checks.items():
            passed, detail = check()
            checks[name] = detail
            ok = ok and passed
        return ok, checks

    # -- lifecycle ---------------------------------------------------------

    async def _serve(self, name: str, app: web.Application, address: str) -> str:
        host, port = parse_address(address)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            auto_decompress=False,  # we inflate request bodies ourselves, within limits
            shutdown_timeout=self.config.server.shutdown_grace_seconds,
            # aiohttp's own per-request error lines: counted, rate-limited, no tracebacks for bad input
            logger=RequestErrorLog(name, self.store["agentprom_malformed_requests_total"], self.clock),
            **slow_clients.runner_options(self.config.server.http_header_timeout_seconds),
        )
        await runner.setup()
        self._runners[name] = runner
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=self.ssl_contexts.get(name))
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            what = "/metrics" if name == "metrics" else "OTLP/HTTP"
            raise OSError(exc.errno, f"cannot listen for {what} on {address}: {reason}") from None
        bound = runner.addresses[0]
        actual = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        self.addresses[name] = actual
        return actual

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        server = self.config.server
        self.pipeline.start()
        try:
            if self.forwarder is not None:
                await self.forwarder.start()
            await self._serve("metrics", self.metrics_app, server.metrics)
            if self.journal is not None:
                await self.journal.open(self.tracker)  # before any span or event arrives
            if self.stores is not None:
                self.stores.start()
            if self.ingest.workers is not None:
                await self.ingest.workers.start()  # spawned before the first large request, which need not wait
            self.addresses["otlp_grpc"] = await self.grpc.start()
            await self._serve("otlp_http", self.http_app, server.otlp_http)
        except Exception:
            self._start_failed = True  # the caller reports why; stopping what did start is routine
            await self.stop()
            raise
        self._receivers_ready = True
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep(), name="housekeeping")
        for name in ("otlp_grpc", "otlp_http", "metrics"):
            log.info("listening: %s on %s", name, self.addresses[name])

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            for task in self.periodic:
                try:
                    task()
                except Exception:
                    log.exception("periodic task %r failed", task)

    async def stop(self) -> None:
        if self._stopped or not self._started:
            self._stopped = self._stopped or not self._started
            return
        self._stopped = True
        self._receivers_ready = False
        grace = self.config.server.shutdown_grace_seconds
        say = log.debug if self._start_failed else log.info
        say("shutting down: finishing in-flight requests (grace %.1fs)", grace)
        receivers = [self.grpc.stop(grace)]
        if "otlp_http" in self._runners:
            receivers.append(self._runners.pop("otlp_http").cleanup())
        await asyncio.gather(*receivers, return_exceptions=True)
        if self.ingest.workers is not None:
            await self.ingest.workers.close()  # the receivers have finished their decodes
        drained = await self.pipeline.stop()
        waiting = len(self.context.pending)
        self.translator.drain()  # spans still waiting for their ancestors are counted as they are
        self.runs.drain()
        self.evaluations.drain()  # log results still waiting for their span: counted for their service
        say("translation queue drained (%d spans were queued, %d waited for their ancestors)", drained, waiting)
        if self.forwarder is not None:
            await self.forwarder.stop(grace)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            try:
                await self._housekeeping
            except asyncio.CancelledError:
                pass
        self.tracker.flush()
        if self.journal is not None:
            await self.journal.close()
        if self.stores is not None:
            await self.stores.stop(grace)  # what the journal holds now, shipped within the grace
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
        received = sum(s.value for s in self.store["agentprom_spans_received_total"].all_series())
        say("stopped: %d spans received and counted in total", received)
