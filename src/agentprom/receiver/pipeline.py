"""The bounded queue between the receivers and translation, with its single consumer task.

Receivers decode a request (to validate it and to answer partial success),
``submit`` the batch here and answer at once; one task on the event loop
translates the queued batches in arrival order. Admission control lives here
too: while the queue holds ``max_spans`` spans, or the resident memory of the
sidecar's processes (``Resident``: this one, its decode workers and the stores'
shipper process, which share its container's memory limit) is above the
ceiling, or it would be once the requests being decoded
(each reserves an estimate of its decoded size) are decoded, new exports are
refused with a retryable refusal
(HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo: ``ingest.FAILURES``), so
the client's own retry takes over and nothing is dropped silently.

Fairness between transports: while another transport has exported within the
last ``ACTIVE_SECONDS``, one transport may hold at most ``transport_share`` of
the queue; past it, its exports are refused (``fair_share``, retryable) and
the rest stays for the other. A transport alone has the whole queue. Without it, aiohttp (which accepts many requests
per turn of the loop) filled the queue while grpc.aio (one call per turn)
waited: gRPC exports took 10 times as long as HTTP ones (bench/fairness.py).

Shutdown: ``stop()`` translates everything accepted before it returns; the App
calls it after the receivers have stopped, so no accepted span is lost.

The store's single-owner rule holds: the consumer translates a batch without
awaiting and yields to the loop only between batches.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agentprom.internal_errors import InternalErrors
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.receiver.decode import Batch
from agentprom.translator import Translator

log = logging.getLogger(__name__)
#: a bug a client's data can trigger would otherwise log once per batch

#: Spans translated per turn of the event loop before the consumer lets receivers run. Small, because
#: a grpc.aio call needs several turns of the loop to be answered: with 4096 (about 100 ms a turn under
#: backlog) gRPC exports took 10 times as long as HTTP ones (bench/fairness.py).
TURN_SPANS = 512

#: a transport that exported within this many seconds shares the queue with the others
ACTIVE_SECONDS = 10.0

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def private_bytes(pid: int) -> int:
    """The resident anonymous memory now of process ``pid`` (``RssAnon`` in Linux's
    ``/proc/<pid>/status``): what it adds to this process's, since the interpreter and libraries
    it maps from files are counted once by the container's memory controller, not once per process.
    0 where unavailable, or when the process has ended."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Resident:
    """Resident memory of the sidecar's processes, against ``queue.memory_limit_mib``: this process,
    read at every call (it grows with each request), plus the private (anonymous) resident memory of
    the helper processes ``helpers`` names (the decode workers, the stores' shipper process), read at
    most once per ``HELPERS_SECONDS``: they change slowly, and one read per helper per request would
    cost more than the request's admission. They count because they share the container's memory limit: without them, a sidecar
    with decode workers could pass its own ceiling's check and still be killed for memory."""

    #: how long the helper processes' sum is reused before it is read again
    HELPERS_SECONDS = 1.0

    def __init__(self, monotonic: Callable[[], float], helpers: Callable[[], Iterable[int]] = tuple) -> None:
        self._monotonic = monotonic
        self._helpers = helpers
        self._helpers_bytes = 0
        self._read_at: float | None = None

    def __call__(self) -> int:
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= self.HELPERS_SECONDS:
            self._helpers_bytes = sum(private_bytes(pid) for pid in self._helpers())
            self._read_at = now
        return resident_bytes() + self._helpers_bytes


@dataclass(frozen=True)
class QueueLimits:
    max_spans: int = 100_000
    #: refuse while resident memory (``Resident``) is above this many bytes (0 = no limit)
    memory_limit_bytes: int = 0
    #: the share of ``max_spans`` one transport may hold (1 = no fairness bound)
    transport_share: float = 0.5

    def transport_spans(self) -> int:
        return max(1, int(self.max_spans * self.transport_share))


class AttributeDeny:
    """Removes denied attribute keys from decoded spans before anything reads them.

    Entries are exact keys, or prefixes written with a trailing ``*``. Applied to
    span, resource, agentprom event and evaluation event attributes (and, through ``scrub``, to
    evaluation log records: evaluations/counter.py), so a denied value never reaches a label, the
    session tracker or a sink.
    """

    def __init__(self, entries: tuple[str, ...] | list[str]) -> None:
        self.exact = frozenset(e for e in entries if not e.endswith("*"))
        self.prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes)

    def denied(self, key: str) -> bool:
        return key in self.exact or (bool(self.prefixes) and key.startswith(self.prefixes))

    def scrub(self, attrs: dict) -> None:
        doomed = [key for key in attrs if self.denied(key)]
        for key in doomed:
            del attrs[key]

    def apply(self, spans: list[Span]) -> None:
        seen_resources: set[int] = set()
        for span in spans:
            self.scrub(span.attributes)
            if id(span.resource) not in seen_resources:  # decoders share one dict per resource
                seen_resources.add(id(span.resource))
                self.scrub(span.resource)
            for _name, _time, attrs in span.events:
                self.scrub(attrs)
            for attrs in span.evaluations:
                self.scrub(attrs)


class Pipeline:
    """Owns the queue, its consumer task, and the admission decision."""

    def __init__(
        self,
        translator: Translator,
        store: SeriesStore,
        limits: QueueLimits | None = None,
        deny: AttributeDeny | None = None,
        rss: Callable[[], int] | None = None,
        errors: InternalErrors | None = None,
    ) -> None:
        self.translator = translator
        self.errors = errors or InternalErrors(store)
        self.limits = limits or QueueLimits()
        self.deny = deny if deny else None
        #: resident memory against ``memory_limit_bytes`` (default: this process alone)
        self._rss = rss or Resident(store.clock.monotonic)
        self._queue: deque[tuple[Batch, str]] = deque()
        self.queued_spans = 0
        #: estimated decoded bytes of the requests being decoded now (``admit`` / ``release``)
        self.reserved_bytes = 0
        #: transport -> spans of it in the queue
        self.queued_by_transport: dict[str, int] = {}
        #: transport -> monotonic time of its latest export (a few transports: bounded)
        self._last_export: dict[str, float] = {}
        self._clock = store.clock
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._depth = store.families["agentprom_queue_spans"]
        self._depth.set((), 0)
        store.families["agentprom_queue_limit_spans"].set((), self.limits.max_spans)
        store.families["agentprom_memory_limit_bytes"].set((), self.limits.memory_limit_bytes)

    # -- admission (called by TraceIngest on the request path) -----------------

    def admit(self, transport: str = "", reserve: int = 0) -> str | None:
        """Why a new export must be refused now (a ``FAILURES`` reason), or None to accept it.

        Accepting reserves ``reserve`` bytes (the request's estimated decoded size) until
        ``release``: concurrent decodes share the memory budget. A request alone is admitted
        whenever resident memory is under the ceiling, or one larger than the budget could
        never get in (``server.max_request_bytes`` bounds it).
        """
        if self.queued_spans >= self.limits.max_spans:
            return "overloaded"
        now = self._clock.monotonic()
        self._last_export[transport] = now
        if self.queued_by_transport.get(transport, 0) >= self.limits.transport_spans() and self._shared(transport):
            return "fair_share"
        limit = self.limits.memory_limit_bytes
        if limit:
            resident = self._rss()
            if resident > limit or (self.reserved_bytes and resident + self.reserved_bytes + reserve > limit):
                return "memory_limit"
        self.reserved_bytes += reserve
        return None

    def release(self, reserved: int) -> None:
        """Give back what ``admit`` reserved, once the request is decoded and counted (or refused)."""
        self.reserved_bytes -= reserved

    def fits(self, spans: int, transport: str = "") -> str | None:
        """None if a decoded batch fits, else why not (a ``FAILURES`` reason). An empty queue takes
        any batch, or a request larger than the queue could never get in; likewise a transport
        with nothing queued."""
        if self._queue and self.queued_spans + spans > self.limits.max_spans:
            return "overloaded"
        held = self.queued_by_transport.get(transport, 0)
        if held and held + spans > self.limits.transport_spans() and self._shared(transport):
            return "fair_share"
        return None

    def _shared(self, transport: str) -> bool:
        """Whether another transport has exported recently (then the queue is shared fairly)."""
        now = self._clock.monotonic()
        return any(other != transport and now - seen < ACTIVE_SECONDS for other, seen in self._last_export.items())

    def submit(self, batch: Batch, transport: str) -> None:
        if self._task is None:  # not running (before start or after stop): translate now, lose nothing
            self._translate(batch, transport)
            return
        self._queue.append((batch, transport))
        self.queued_spans += len(batch.spans)
        self.queued_by_transport[transport] = self.queued_by_transport.get(transport, 0) + len(batch.spans)
        self._depth.set((), self.queued_spans)
        self._idle.clear()
        self._wakeup.set()

    # -- the consumer ------------------------------------------------------------

    def _translate(self, batch: Batch, transport: str) -> None:
        try:
            if self.deny is not None:
                self.deny.apply(batch.spans)
            self.translator.consume(batch, transport)
        except Exception:  # a bug must not stop the consumer: everything after it would be lost
            self.errors.record("pipeline", f"translation of a batch of {len(batch.spans)} spans")

    def _translate_some(self) -> None:
        budget = TURN_SPANS
        queue = self._queue
        while queue and budget > 0:
            batch, transport = queue.popleft()
            n = len(batch.spans)
            self.queued_spans -= n
            self.queued_by_transport[transport] -= n
            self._translate(batch, transport)
            budget -= max(n, 1)
        self._depth.set((), self.queued_spans)

    async def _consume(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                self._translate_some()
                if self._queue:
                    await asyncio.sleep(0)  # let receivers answer between chunks
            self._idle.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume(), name="translate-queue")

    async def drained(self) -> None:
        """Return once everything submitted so far has been translated."""
        if self._task is None or self._task.done():
            while self._queue:
                self._translate_some()
            self._idle.set()
            return
        await self._idle.wait()

    async def stop(self) -> int:
        """Translate everything still queued, then end the consumer; return how many spans were drained."""
        pending = self.queued_spans
        await self.drained()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        while self._queue:  # submitted after the last wake-up, should the task have been cancelled first
            self._translate_some()
        self._idle.set()
        return pending
