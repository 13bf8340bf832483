"""The configured stores as one service of the sidecar: start, stop, self-metrics, readiness, reads.

Built by the App when ``storage:`` names a store (config/storage_schema.py).
The stores are subscribers of the journal, not of the pipeline: they read what
the journal writer has put on disk (stores/shipper.py), so ingestion never
waits for them. Readiness stays green whatever a store does (the sidecar's
metrics do not depend on it); /-/ready's detail says which store is behind and
why.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from agentprom.config.schema import Config
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions.api import StoreUnavailable
from agentprom.stores import postgres as pg
from agentprom.stores import redis_streams as rs
from agentprom.stores.cursor import JournalCursor
from agentprom.stores.shipper import Shipper, StoreRunner

log = logging.getLogger(__name__)


def source_name(config: Config) -> str:
    return config.storage.source or socket.gethostname() or "agentprom"


class Stores:
    def __init__(self, config: Config, store: SeriesStore) -> None:
        storage = config.storage
        self.source = source_name(config)
        cursor = JournalCursor(config.journal.directory)
        self.postgres: pg.PostgresStore | None = None
        shippers = []
        if storage.postgres.dsn:
            self.postgres = pg.PostgresStore(storage.postgres, self.source)
            shippers.append(Shipper(self.postgres, cursor, storage.postgres.batch_records, storage.retry_max_seconds,
                                    pg.failure_reason))
        if storage.redis.url:
            shippers.append(Shipper(rs.RedisStore(storage.redis, self.source), cursor, storage.redis.batch_records,
                                    storage.retry_max_seconds, rs.failure_reason))
        self.shippers = shippers
        self.query_timeout = storage.postgres.query_timeout_seconds
        self.runner = StoreRunner(shippers)
        f = store.families
        self._records = f["agentprom_store_records_total"]
        self._errors = f["agentprom_store_errors_total"]
        self._gaps = f["agentprom_store_journal_gaps_total"]
        self._lag = f["agentprom_store_lag_records"]
        self._lag_seconds = f["agentprom_store_lag_seconds"]
        self._up = f["agentprom_store_up"]
        self._published: dict[tuple[str, str], int] = {}

    def start(self) -> None:
        """Start shipping (after the journal is open: the stores read what it wrote)."""
        self.runner.start()
        for shipper in self.shippers:
            log.info("shipping the journal to %s %s as source %r", shipper.store.name, shipper.store.address,
                     self.source)

    async def stop(self, grace: float) -> None:
        """Ship what is left for up to ``grace`` seconds (call after the journal writer has drained)."""
        await asyncio.to_thread(self.runner.stop, grace)
        self.publish()

    def publish(self) -> None:
        """Copy the shippers' counters into the series store (periodic, and at every scrape)."""
        done = self._published
        for s in self.shippers:
            name = s.store.name
            counts = [(self._records, (name, "shipped"), s.shipped), (self._records, (name, "malformed"), s.malformed),
                      (self._gaps, (name,), s.skipped)]
            counts += [(self._errors, (name, reason), n) for reason, n in list(s.errors.items())]
            for family, labels, value in counts:
                key = (family.spec.name, *labels)
                before = done.get(key)
                if before is None or value > before:  # a first 0 too: the series exists before the first batch
                    family.inc(labels, value - (before or 0))
                    done[key] = value
            self._lag.set((name,), s.lag_records)
            self._lag_seconds.set((name,), round(s.lag_seconds, 3))
            self._up.set((name,), 1 if s.up else 0)

    def checks(self) -> dict[str, Any]:
        """name -> readiness check: always ready, with the store's state as the detail."""
        return {s.store.name: (lambda s=s: (True, s.detail())) for s in self.shippers}

    # -- reads for the runtime API -----------------------------------------------------

    async def read(self, what: str, method: str, *args: Any) -> Any:
        """Call a read of the PostgreSQL store on the store thread, within the query timeout."""
        assert self.postgres is not None
        call = getattr(self.postgres, method)
        future = self.runner.call(lambda: asyncio.wait_for(call(*args), self.query_timeout))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.query_timeout + 1.0)
        except (TimeoutError, asyncio.TimeoutError):
            future.cancel()
            raise StoreUnavailable(f"PostgreSQL did not answer {what} within {self.query_timeout:g}s") from None
        except Exception as exc:
            reason = pg.failure_reason(exc)
            raise StoreUnavailable(f"PostgreSQL could not answer {what} ({reason})") from None
