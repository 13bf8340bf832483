"""The shippers' process: the stores are fed from a process of its own, beside the sidecar's.

Shipping costs CPU per record (reading and parsing the journal, building rows
and stream entries, the drivers' protocol work). In the sidecar's process it
would compete with the receivers for the interpreter lock, and a store catching
up after an outage would slow ingestion; in a process of its own it runs on
another core and the sidecar pays nothing (bench/stores.py measures both).

The child reads only the journal directory and the configuration, and reports
its shippers' counters through a small shared buffer (``snapshot``), which the
sidecar copies into its metrics (stores/service.py). The buffer takes no lock:
the child writes a sequence number before and after the data (odd while it
writes), and the reader keeps its last good snapshot when the two differ, so a
child killed mid-write can never block the sidecar's loop. It stops when told
to, after shipping what the journal holds (``stop``: within the shutdown grace,
then SIGTERM, then SIGKILL), and at once when the sidecar's process is gone
(``kill -9`` of the sidecar must not leave an orphan writing beside its
successor): its loop cancels the shippers (the transaction in flight rolls
back), and a watchdog thread ends the process ``ORPHAN_EXIT_SECONDS`` later
should the loop not have finished by then (a driver call that ignores the
cancellation, a blocked loop). SIGINT (a terminal's Ctrl-C reaches the whole
process group) is the sidecar's to handle: the child ignores it and waits for
the word.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

#: the shared status buffer (JSON of every shipper's snapshot)
STATUS_BYTES = 16 * 1024
#: how often the child publishes its counters and looks for the word to stop
TICK_SECONDS = 0.25
#: a process that died is started again at most this often
RESTART_SECONDS = 10.0
#: an orphan (the sidecar's process gone) still running this long after noticing exits at once
ORPHAN_EXIT_SECONDS = 5.0


def build_shippers(config: Any) -> list:
    """The shippers of the stores ``config`` (a Config) configures, reading its journal."""
    from agentprom.stores import postgres as pg
    from agentprom.stores import redis_streams as rs
    from agentprom.stores.cursor import JournalCursor, journal_id
    from agentprom.stores.shipper import Shipper

    storage = config.storage
    source = source_name(config)
    directory = config.journal.directory
    journal = journal_id(directory)
    cursor = JournalCursor(directory)
    shippers = []
    if storage.postgres.dsn:
        shippers.append(Shipper(pg.PostgresStore(storage.postgres, source, journal), cursor,
                                storage.postgres.batch_records, storage.retry_max_seconds, pg.failure_reason))
    if storage.redis.url:
        shippers.append(Shipper(rs.RedisStore(storage.redis, source, journal), cursor, storage.redis.batch_records,
                                storage.retry_max_seconds, rs.failure_reason))
    return shippers


def source_name(config: Any) -> str:
    import socket

    return config.storage.source or socket.gethostname() or "agentprom"


class _Status:
    """The shared buffer: a sequence number (odd while written) and the snapshot's JSON."""

    def __init__(self, ctx: Any) -> None:
        self.seq = ctx.Value(ctypes.c_uint64, 0, lock=False)
        self.data = ctx.Array(ctypes.c_char, STATUS_BYTES, lock=False)

    def write(self, shippers: list) -> None:
        data = json.dumps([s.snapshot() for s in shippers]).encode()[:STATUS_BYTES - 1]
        self.seq.value += 1
        self.data.raw = data + b"\0" * (STATUS_BYTES - len(data))
        self.seq.value += 1

    def read(self) -> list[dict[str, Any]] | None:
        """The snapshot, or None when it was being written (read again later)."""
        before = self.seq.value
        if before % 2:
            return None
        raw = self.data.raw
        if self.seq.value != before:
            return None
        text = raw.split(b"\0", 1)[0]
        try:
            return json.loads(text) if text else []
        except ValueError:
            return None


async def _run(shippers: list, status: _Status, stop: Any, parent: int) -> None:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stopping), name=f"ship-{s.store.name}") for s in shippers]
    try:
        while not all(task.done() for task in tasks):
            status.write(shippers)
            if os.getppid() != parent:  # the sidecar is gone: stop now, its successor takes over
                for task in tasks:
                    task.cancel()
                break
            if stop.is_set():
                stopping.set()
            await asyncio.sleep(TICK_SECONDS)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        status.write(shippers)
        for shipper in shippers:
            try:
                await shipper.store.close()
            except Exception:  # closing a broken connection: it is gone either way
                pass


def exit_when_orphaned(parent: int, grace: float = ORPHAN_EXIT_SECONDS) -> None:
    """Watch for the sidecar's process to be gone, then give the loop ``grace`` seconds to stop the
    shippers and end the process at once if it has not (a thread's watch, whatever the loop does)."""
    while os.getppid() == parent:
        time.sleep(TICK_SECONDS)
    time.sleep(grace)
    log.error("the sidecar's process is gone and the shippers did not stop within %.0fs: exiting", grace)
    os._exit(1)


def child_main(document: dict[str, Any], status: _Status, stop: Any, parent: int) -> None:
    """The process's entry point (spawned: it imports what it needs, inherits nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from agentprom.config.loader import validate
    from agentprom.logs import setup_logging

    config = validate(document)
    setup_logging(config.log.level, config.log.format)
    threading.Thread(target=exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True).start()
    asyncio.run(_run(build_shippers(config), status, stop, parent))


class ShipperProcess:
    """The sidecar's handle on the shippers' process."""

    def __init__(self, document: dict[str, Any]) -> None:
        """``document``: the validated configuration as plain data (``Config.model_dump``)."""
        self.document = document
        self._ctx = multiprocessing.get_context("spawn")
        #: the shared buffer and the word to stop: new for each process (``start``)
        self.status: _Status | None = None
        self.stop_event: Any = None
        self.process: multiprocessing.process.BaseProcess | None = None
        self._stopped = False
        self._started_at = 0.0
        self._last: list[dict[str, Any]] = []

    def start(self) -> None:
        self._started_at = time.monotonic()
        self.status = _Status(self._ctx)  # a buffer of its own: nothing a dead child left behind
        self._last = []
        self.stop_event = self._ctx.Event()
        self.process = self._ctx.Process(target=child_main, name="agentprom-stores", daemon=True,
                                         args=(self.document, self.status, self.stop_event, os.getpid()))
        self.process.start()

    def pid(self) -> int | None:
        """The process's id while it runs, else None."""
        process = self.process
        return process.pid if process is not None and process.is_alive() else None

    def exit_detail(self) -> str | None:
        """Why the process is not running (None while it runs)."""
        if self.process is None:
            return "not started"
        if self.process.is_alive():
            return None
        return f"the shipping process exited (code {self.process.exitcode}); starting it again"

    def check(self) -> bool:
        """Start the process again if it died (periodic, on the sidecar's loop); True when it did."""
        process = self.process
        if process is None or self._stopped or process.is_alive():
            return False
        if time.monotonic() - self._started_at < RESTART_SECONDS:
            return False
        log.error("the store shipping process exited (code %s); starting it again", process.exitcode)
        self.start()
        return True

    def snapshot(self) -> list[dict[str, Any]]:
        """What the shippers reported last (empty until the process has reported)."""
        snapshot = self.status.read() if self.status is not None else None
        if snapshot is not None:
            self._last = snapshot
        return self._last

    def stop(self, grace: float) -> None:
        """Let the process ship what the journal holds for up to ``grace`` seconds, then end it
        (blocking: call it off the event loop, after the journal writer has drained)."""
        self._stopped = True
        process = self.process
        if process is None:
            return
        self.stop_event.set()
        process.join(grace)
        if process.is_alive():
            behind = {s["store"]: s["lag_records"] for s in self.snapshot() if s["lag_records"]}
            log.warning("stores not up to date at shutdown (records waiting: %s); they resume from the journal "
                        "at the next start", behind or "unknown")
            process.terminate()  # SIGTERM: the default action, the transaction in flight rolls back
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
