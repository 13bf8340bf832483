"""Ship the journal into one store: read a batch from the store's position, write it with the new position.

One ``Shipper`` per store reads the journal from the position the store
committed (stores/cursor.py) and hands each batch to the store, which writes it
and the new position in one transaction. A failure (the server down, a
refused password, a timeout) drops the connection and retries with backoff
from ``RETRY_MIN_SECONDS`` doubling to ``storage.retry_max_seconds``; the
journal keeps every record meanwhile, so a dead store only grows the lag.

The shippers run in a process of their own (stores/process.py): nothing they
do, not even parsing a batch, competes with the receivers for the interpreter.
Their counters are plain values, sent to the sidecar as ``snapshot()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from agentprom.sessions.timestamps import iso
from agentprom.stores.cursor import Batch, JournalCursor, Position
from agentprom.stores.secrets import scrub

log = logging.getLogger(__name__)

RETRY_MIN_SECONDS = 0.1
#: a batch not written within this long is abandoned (the connection dropped) and retried
SHIP_TIMEOUT_SECONDS = 60.0
#: how often a shipper that has caught up looks for new records
POLL_SECONDS = 0.2
#: how often the lag in records is counted again (it reads the unshipped part of the journal)
LAG_SECONDS = 2.0


class Store(Protocol):
    name: str
    address: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def drop_connection(self) -> None: ...
    async def position(self) -> Position: ...
    async def ship(self, records: list[dict[str, Any]], start: Position, end: Position) -> int: ...


# Timeouts here are ``asyncio.timeout`` blocks, not ``asyncio.wait_for``: on Python 3.11,
# ``wait_for`` returns the awaited call's result when a cancellation arrives just as that call
# finishes, and the cancellation is lost (CPython gh-86296, fixed in 3.12). A shipper whose cancel
# was lost so would go on shipping after its process was told to stop (stores/process.py).


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when ``stopping`` is set meanwhile."""
    try:
        async with asyncio.timeout(seconds):
            await stopping.wait()
    except TimeoutError:
        pass


class Shipper:
    def __init__(self, store: Store, cursor: JournalCursor, batch_records: int, retry_max_seconds: float,
                 failure_reason: Callable[[BaseException], str]) -> None:
        self.store = store
        self.cursor = cursor
        self.batch_records = batch_records
        self.retry_max = retry_max_seconds
        self.failure_reason = failure_reason
        # written by the shipper, read by its process's status writer (stores/process.py)
        self.shipped = 0
        self.malformed = 0
        self.rejected = 0
        self.gaps = 0
        self.errors: Counter[str] = Counter()
        self.up = False
        self.lag_records = 0
        #: wall time the store last had every record (None: not yet since start)
        self.caught_up_at: float | None = None
        self.started_at = time.time()
        self.last_error: str | None = None
        self.failing_since: float | None = None
        #: where the next batch starts; None until the store has said (again, after a failure)
        self.position: Position | None = None
        #: the last position the store confirmed: the lag is counted from it, failing or not
        self._confirmed = Position()
        self._lag_counted = 0.0

    @property
    def lag_seconds(self) -> float:
        if self.lag_records == 0 and self.failing_since is None and self.caught_up_at is not None:
            return 0.0
        return max(0.0, time.time() - (self.caught_up_at or self.started_at))

    def snapshot(self) -> dict[str, Any]:
        """The counters and the readiness detail, as the sidecar process publishes them."""
        return {"store": self.store.name, "shipped": self.shipped, "malformed": self.malformed,
                "rejected": self.rejected,
                "gaps": self.gaps, "errors": dict(self.errors), "up": self.up, "lag_records": self.lag_records,
                "lag_seconds": round(self.lag_seconds, 3), "detail": self.detail()}

    def detail(self) -> str:
        """One line for /-/ready: how far the store is and why."""
        where = f"{self.store.name} {self.store.address}"
        if self.failing_since is not None:
            return (f"behind: {where} failing since {iso(self.failing_since)} ({self.last_error}); "
                    f"{self.lag_records} records waiting in the journal, retrying")
        if self.position is None:
            return f"connecting to {where}"
        if self.lag_records:
            return f"catching up: {self.lag_records} records behind ({self.lag_seconds:.0f}s)"
        return "shipping: up to date"

    async def run(self, stopping: asyncio.Event) -> None:
        """Ship until ``stopping`` is set and the journal is shipped (or the store fails meanwhile)."""
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                at_end = await self._step()
                delay = RETRY_MIN_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the store: counted, retried
                self._failed(exc)
                await self.store.drop_connection()
                self.position = None  # the transaction may or may not have committed: ask the store
                await self._count_lag()
                if stopping.is_set():
                    return
                await _pause(stopping, delay)
                delay = min(2 * delay, self.retry_max)
                continue
            if at_end:
                if stopping.is_set():
                    return
                await _pause(stopping, POLL_SECONDS)

    async def _step(self) -> bool:
        """Ship one batch; True when there is nothing more to ship now (the journal's end, or a last
        line the writer has not finished)."""
        if self.position is None:
            await self.store.open()
            self.position = self._confirmed = await self.store.position()
            self._recovered()
        batch: Batch = await asyncio.to_thread(self.cursor.read, self.position, self.batch_records)
        if batch.gap:
            self.gaps += 1
            log.warning("%s: the journal file at the committed position is gone (rotated away while the store "
                        "was behind): going on from the oldest file left", self.store.name)
        moved = batch.position != self.position
        if moved:
            async with asyncio.timeout(SHIP_TIMEOUT_SECONDS):
                rejected = await self.store.ship(batch.records, self.position, batch.position)
            self.position = self._confirmed = batch.position
            self.shipped += len(batch.records) - rejected
            self.rejected += rejected
            self.malformed += batch.malformed
        self.up = True
        if batch.at_end:
            self.lag_records = 0
            self.caught_up_at = time.time()
        else:
            await self._count_lag()
        return batch.at_end or not moved

    async def _count_lag(self) -> None:
        """Count the records after the confirmed position again (at most every LAG_SECONDS: it reads
        the unshipped part of the journal, in a worker thread)."""
        now = time.time()
        if now - self._lag_counted < LAG_SECONDS:
            return
        self._lag_counted = now
        try:
            self.lag_records = await asyncio.to_thread(self.cursor.pending_records, self._confirmed)
        except OSError:
            pass  # the journal's directory cannot be read: the last count stands

    def _failed(self, exc: BaseException) -> None:
        reason = self.failure_reason(exc)
        self.errors[reason] += 1
        self.up = False
        message = scrub(f"{reason}: {str(exc).strip() or type(exc).__name__}".splitlines()[0])[:300]
        if self.failing_since is None:
            self.failing_since = time.time()
            log.warning("%s store %s failing (%s); records wait in the journal, retrying", self.store.name,
                        self.store.address, message)
        self.last_error = message

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.info("%s store %s available again after %.0fs", self.store.name, self.store.address,
                     time.time() - self.failing_since)
        self.failing_since = None
        self.last_error = None
