"""The shippers' process: the stores are fed from a process of its own, beside the sidecar's.

Shipping costs CPU per record (reading and parsing the journal, building rows
and stream entries, the drivers' protocol work). In the sidecar's process it
would compete with the receivers for the interpreter lock, and a store catching
up after an outage would slow ingestion; in a process of its own it runs on
another core and the sidecar pays nothing (bench/stores.py measures both).

The child reads only the journal directory and the configuration, and reports
its shippers' counters through a small shared buffer (``snapshot``), which the
sidecar copies into its metrics (stores/service.py). It stops when told to,
after shipping what the journal holds (``stop``, within the shutdown grace),
and at once when the sidecar's process is gone (``kill -9`` of the sidecar must
not leave an orphan writing beside its successor). SIGINT and SIGTERM are the
sidecar's to handle: the child ignores them and waits for the word.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import multiprocessing
import os
import signal
import time
from typing import Any

log = logging.getLogger(__name__)

#: the shared status buffer (JSON of every shipper's snapshot)
STATUS_BYTES = 16 * 1024
#: how often the child publishes its counters and looks for the word to stop
TICK_SECONDS = 0.25
#: a process that died is started again at most this often
RESTART_SECONDS = 10.0


def build_shippers(config: Any) -> list:
    """The shippers of the stores ``config`` (a Config) configures, reading its journal."""
    from agentprom.stores import postgres as pg
    from agentprom.stores import redis_streams as rs
    from agentprom.stores.cursor import JournalCursor
    from agentprom.stores.shipper import Shipper

    storage = config.storage
    source = source_name(config)
    cursor = JournalCursor(config.journal.directory)
    shippers = []
    if storage.postgres.dsn:
        shippers.append(Shipper(pg.PostgresStore(storage.postgres, source), cursor, storage.postgres.batch_records,
                                storage.retry_max_seconds, pg.failure_reason))
    if storage.redis.url:
        shippers.append(Shipper(rs.RedisStore(storage.redis, source), cursor, storage.redis.batch_records,
                                storage.retry_max_seconds, rs.failure_reason))
    return shippers


def source_name(config: Any) -> str:
    import socket

    return config.storage.source or socket.gethostname() or "agentprom"


def _write_status(status: Any, shippers: list) -> None:
    data = json.dumps([s.snapshot() for s in shippers]).encode()[:STATUS_BYTES - 1]
    with status.get_lock():
        status.raw = data + b"\0" * (STATUS_BYTES - len(data))


async def _run(shippers: list, status: Any, stop: Any, parent: int) -> None:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stopping), name=f"ship-{s.store.name}") for s in shippers]
    try:
        while not all(task.done() for task in tasks):
            _write_status(status, shippers)
            if os.getppid() != parent:  # the sidecar is gone: stop now, its successor takes over
                for task in tasks:
                    task.cancel()
                break
            if stop.is_set():
                stopping.set()
            await asyncio.sleep(TICK_SECONDS)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        _write_status(status, shippers)
        for shipper in shippers:
            try:
                await shipper.store.close()
            except Exception:  # closing a broken connection: it is gone either way
                pass


def child_main(document: dict[str, Any], status: Any, stop: Any, parent: int) -> None:
    """The process's entry point (spawned: it imports what it needs, inherits nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from agentprom.config.loader import validate
    from agentprom.logs import setup_logging

    config = validate(document)
    setup_logging(config.log.level, config.log.format)
    asyncio.run(_run(build_shippers(config), status, stop, parent))


class ShipperProcess:
    """The sidecar's handle on the shippers' process."""

    def __init__(self, document: dict[str, Any]) -> None:
        """``document``: the validated configuration as plain data (``Config.model_dump``)."""
        self.document = document
        self._ctx = multiprocessing.get_context("spawn")
        self.status = self._ctx.Array(ctypes.c_char, STATUS_BYTES)
        self.stop_event = self._ctx.Event()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.restarts = 0
        self._stopped = False
        self._started_at = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self.stop_event.clear()
        self.process = self._ctx.Process(target=child_main, name="agentprom-stores", daemon=True,
                                         args=(self.document, self.status, self.stop_event, os.getpid()))
        self.process.start()

    def check(self) -> None:
        """Start the process again if it died (periodic, on the sidecar's loop)."""
        process = self.process
        if process is None or self._stopped or process.is_alive():
            return
        if time.monotonic() - self._started_at < RESTART_SECONDS:
            return
        self.restarts += 1
        log.error("the store shipping process exited (code %s); starting it again", process.exitcode)
        self.start()

    def snapshot(self) -> list[dict[str, Any]]:
        """What the shippers reported last (empty until the process has started)."""
        with self.status.get_lock():
            raw = self.status.raw
        text = raw.split(b"\0", 1)[0]
        return json.loads(text) if text else []

    def stop(self, grace: float) -> None:
        """Let the process ship what the journal holds for up to ``grace`` seconds, then end it
        (blocking: call it off the event loop, after the journal writer has drained)."""
        self._stopped = True
        process = self.process
        if process is None:
            return
        self.stop_event.set()
        deadline = time.monotonic() + grace
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            behind = {s["store"]: s["lag_records"] for s in self.snapshot() if s["lag_records"]}
            log.warning("stores not up to date at shutdown (records waiting: %s); they resume from the journal "
                        "at the next start", behind or "unknown")
            process.terminate()
            process.join(5)
