"""The configured stores as one service of the sidecar: start, stop, self-metrics, readiness, reads.

Built by the App when ``storage:`` names a store (config/storage_schema.py).
The stores are subscribers of the journal, not of the pipeline: a process of
their own (stores/process.py) reads what the journal writer has put on disk,
so ingestion never waits for them. Readiness stays green whatever a store does
(the sidecar's metrics do not depend on it); /-/ready's detail says which
store is behind and why. The runtime API's reads of the PostgreSQL store run
here, on the sidecar's loop, over a connection of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from agentprom.config.schema import Config
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions.api import StoreUnavailable
from agentprom.stores import postgres as pg
from agentprom.stores.process import ShipperProcess, source_name
from agentprom.stores.secrets import redacted

log = logging.getLogger(__name__)

#: the stores' names, in the order the shippers run
NAMES = ("postgres", "redis")


class Stores:
    def __init__(self, config: Config, store: SeriesStore) -> None:
        storage = config.storage
        self.source = source_name(config)
        self.names = [name for name, on in zip(NAMES, (storage.postgres.dsn, storage.redis.url)) if on]
        self.addresses = {"postgres": redacted(storage.postgres.dsn), "redis": redacted(storage.redis.url)}
        #: the runtime API's reads (None without PostgreSQL)
        self.postgres = pg.PostgresStore(storage.postgres, self.source) if storage.postgres.dsn else None
        self.query_timeout = storage.postgres.query_timeout_seconds
        self.process = ShipperProcess({"storage": storage.model_dump(mode="json"),
                                       "jsonl": config.journal.model_dump(mode="json"),
                                       "log": config.log.model_dump(mode="json")})
        f = store.families
        self._records = f["agentprom_store_records_total"]
        self._errors = f["agentprom_store_errors_total"]
        self._gaps = f["agentprom_store_journal_gaps_total"]
        self._lag = f["agentprom_store_lag_records"]
        self._lag_seconds = f["agentprom_store_lag_seconds"]
        self._up = f["agentprom_store_up"]
        self._published: dict[tuple[str, ...], int] = {}
        self._last: dict[str, dict[str, Any]] = {}
        for name in self.names:  # every series exists from the start: rate() sees the first batch
            for family, labels in ((self._records, (name, "shipped")), (self._records, (name, "malformed")),
                                   (self._records, (name, "rejected")), (self._gaps, (name,))):
                family.inc(labels, 0)
            self._up.set((name,), 0)

    def start(self) -> None:
        """Start shipping (after the journal is open: the stores read what it wrote)."""
        self.process.start()
        for name in self.names:
            log.info("shipping the journal to %s %s as source %r (a process of its own)", name, self.addresses[name],
                     self.source)

    async def stop(self, grace: float) -> None:
        """Ship what is left for up to ``grace`` seconds (call after the journal writer has drained)."""
        await asyncio.to_thread(self.process.stop, grace)
        self.publish()
        if self.postgres is not None:
            await self.postgres.close()

    def publish(self) -> None:
        """Copy the shippers' counters into the series store (periodic, and at every scrape)."""
        if self.process.check():  # it died and was started again: every store's shipping was interrupted
            for name in self.names:
                self._errors.inc((name, "process_exit"))
        done = self._published
        for s in self.process.snapshot():
            name = s["store"]
            self._last[name] = s
            counts = [(self._records, (name, outcome), s[outcome]) for outcome in ("shipped", "malformed", "rejected")]
            counts.append((self._gaps, (name,), s["gaps"]))
            counts += [(self._errors, (name, reason), n) for reason, n in s["errors"].items()]
            for family, labels, value in counts:
                key = (family.spec.name, *labels)
                before = done.get(key, 0)
                if value > before:
                    family.inc(labels, value - before)
                    done[key] = value
                elif value < before:  # the process started again: its counters did too
                    family.inc(labels, value)
                    done[key] = value
            self._lag.set((name,), s["lag_records"])
            self._lag_seconds.set((name,), s["lag_seconds"])
            self._up.set((name,), 1 if s["up"] else 0)

    def checks(self) -> dict[str, Any]:
        """name -> readiness check: always ready, with the store's state as the detail."""
        def check(name: str) -> tuple[bool, str]:
            down = self.process.exit_detail()
            if down is not None:
                return True, f"behind: {down}"
            last = self._last.get(name)
            return True, last["detail"] if last else f"starting: {name} {self.addresses[name]}"

        return {name: (lambda name=name: check(name)) for name in self.names}

    # -- reads for the runtime API -----------------------------------------------------

    async def read(self, what: str, query: Awaitable[Any]) -> Any:
        """A read of the PostgreSQL store (``query``: a coroutine of ``self.postgres``), within the query
        timeout; StoreUnavailable saying ``what`` could not be read otherwise."""
        try:
            return await asyncio.wait_for(query, self.query_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise StoreUnavailable(f"PostgreSQL did not answer {what} within {self.query_timeout:g}s") from None
        except Exception as exc:
            reason = pg.failure_reason(exc)
            raise StoreUnavailable(f"PostgreSQL could not answer {what} ({reason})") from None

