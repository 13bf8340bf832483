"""The shipper's loop on its own: a store double over a real journal, so the timing of cancellation is exact.

The end-to-end behaviour against real PostgreSQL and Redis servers is in tests/test_stores.py;
here are the races those runs hit only now and then.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentprom.stores.cursor import JournalCursor, Position
from agentprom.sinks.forward import Forwarder
from agentprom.stores.shipper import Shipper, _pause
from tests.test_store_cursor import write
from tests.test_stores import alive


class ListStore:
    """Keeps what it is sent; ``on_ship`` runs inside each ship call (the place to schedule a race)."""

    name = "list"
    address = "memory"

    def __init__(self, on_ship=None) -> None:
        self._position = Position()
        self.records: list[dict] = []
        self.on_ship = on_ship

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def drop_connection(self) -> None:
        pass

    async def position(self) -> Position:
        return self._position

    async def ship(self, records, start, end) -> int:
        if self.on_ship is not None:
            self.on_ship()
        self.records += records
        self._position = end
        return 0


def shipper(tmp_path, store) -> Shipper:
    return Shipper(store, JournalCursor(tmp_path), batch_records=1, retry_max_seconds=0.2,
                   failure_reason=lambda exc: type(exc).__name__)


async def run_until_cancelled(tmp_path, cancel_when) -> tuple[Shipper, ListStore]:
    """Run a shipper over a 20-record journal and cancel its task from inside ship call ``cancel_when``,
    scheduled to land just as that call returns; the task must end with the cancellation."""
    calls = 0
    task: asyncio.Task | None = None

    def on_ship() -> None:
        nonlocal calls
        calls += 1
        if calls == cancel_when:
            # runs before the ship call's completion wakes the shipper: the cancel and the result
            # arrive together, the race Python 3.11's asyncio.wait_for loses the cancel in
            asyncio.get_running_loop().call_soon(task.cancel)

    store = ListStore(on_ship)
    ship = shipper(tmp_path, store)
    task = asyncio.create_task(ship.run(asyncio.Event()))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5.0)
    return ship, store


def test_a_cancel_that_lands_as_a_batch_commits_ends_the_shipper(tmp_path):
    write(tmp_path, range(20))
    ship, store = asyncio.run(run_until_cancelled(tmp_path, cancel_when=3))
    # the third batch committed (its result is kept) and nothing after it was shipped
    assert len(store.records) == 3 and ship.shipped == 3
    assert ship.position == store._position


def test_the_shipper_ships_everything_then_ends_when_stopping(tmp_path):
    write(tmp_path, range(20))
    store = ListStore()
    ship = shipper(tmp_path, store)

    async def main() -> None:
        stopping = asyncio.Event()
        stopping.set()  # stop once the journal is shipped
        await asyncio.wait_for(ship.run(stopping), 5.0)

    asyncio.run(main())
    assert [r["invocation_id"] for r in store.records] == [f"id{n:05d}" for n in range(20)]
    assert ship.shipped == 20 and ship.lag_records == 0 and ship.detail() == "shipping: up to date"


def test_a_cancel_during_the_pause_between_polls_ends_the_shipper(tmp_path):
    write(tmp_path, range(2))
    store = ListStore()
    ship = shipper(tmp_path, store)

    async def main() -> None:
        task = asyncio.create_task(ship.run(asyncio.Event()))
        deadline = time.monotonic() + 20
        while ship.shipped < 2:  # caught up: then it polls every POLL_SECONDS
            assert time.monotonic() < deadline, "the shipper did not ship the journal's two records"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)

    asyncio.run(main())
    assert ship.shipped == 2


@pytest.mark.parametrize("pause", [
    _pause,
    lambda stopping, seconds: Forwarder._sleep(SimpleNamespace(_closing=stopping), seconds),  # sinks/forward.py
], ids=["shipper", "forwarder"])
def test_a_cancel_that_lands_as_a_pause_ends_is_not_lost(pause):
    """The stop signal and a cancellation in the same step: the pause must end cancelled (Python 3.11's
    asyncio.wait_for returns normally here, and the caller would go on)."""
    async def main() -> asyncio.Task:
        stopping = asyncio.Event()
        task = asyncio.create_task(pause(stopping, 10))
        await asyncio.sleep(0)  # waiting
        stopping.set()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return task

    assert asyncio.run(main()).cancelled()


def test_an_orphaned_shippers_process_exits_even_with_its_loop_blocked(tmp_path):
    """The watchdog thread of stores/process.py: the sidecar's process is killed while the shippers'
    process's main thread is stuck (a driver call that never returns); it still exits, soon."""
    # the "sidecar": starts the "shippers' process", prints its pid, then waits to be killed
    child = ("import sys, threading, time; from agentprom.stores import process;"
             "threading.Thread(target=process.exit_when_orphaned, args=(int(sys.argv[1]), 0.5), daemon=True).start();"
             "time.sleep(600)")
    parent = ("import subprocess, sys, os, time;"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]);"
              "print(p.pid, flush=True); time.sleep(600)")
    sidecar = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    try:
        orphan = int(sidecar.stdout.readline())
        time.sleep(2.5)  # five times the grace, start-up included
        assert alive(orphan)  # its parent is there: it keeps running, watched
    finally:
        os.kill(sidecar.pid, signal.SIGKILL)
        sidecar.wait(10)
        sidecar.stdout.close()
    deadline = time.monotonic() + 10
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(orphan):
        os.kill(orphan, signal.SIGKILL)
        pytest.fail("the orphan was still running 10 s after its parent died")
