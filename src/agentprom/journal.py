"""Connect the session tracker to the JSONL log: restore at start, write through, report health.

Start (``open``), before any receiver listens: repair the log's tail, replay
every record into the tracker (``SessionTracker.restore``: sessions, phases
and calls come back for the runtime API; Prometheus counters do not, see
docs/sessions.md), then start the writer thread. The replay runs on the
event loop in slices so the already-listening metrics endpoint keeps
answering health checks. Stop (``close``): drain the writer off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agentprom.config.schema import JsonlConfig
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions.timestamps import iso
from agentprom.sessions.tracker import SessionTracker
from agentprom.sessions.records import parse_record
from agentprom.sinks.jsonl import JsonlWriter, ReadStats, read_records

log = logging.getLogger(__name__)

#: records replayed between yields to the event loop
RESTORE_SLICE = 2000


class SessionJournal:
    def __init__(self, config: JsonlConfig, store: SeriesStore) -> None:
        self.writer = JsonlWriter(config.directory, config.rotate_bytes, config.keep_files, config.queue_records,
                                  store.clock)
        self.loaded = False
        f = store.families
        self._records = f["agentprom_jsonl_records_total"]
        self._errors = f["agentprom_jsonl_write_errors_total"]
        self._malformed = f["agentprom_jsonl_malformed_lines_total"]
        self._rotations = f["agentprom_jsonl_rotations_total"]
        self._writable = f["agentprom_jsonl_writable"]
        self._waiting = f["agentprom_jsonl_queue_records"]
        self._published = {"written": 0, "dropped": 0, "errors": 0, "rotations": 0}

    async def open(self, tracker: SessionTracker) -> ReadStats:
        started = time.monotonic()
        files, cut = self.writer.prepare(parse_record)
        stats = ReadStats()
        stats.malformed += cut  # the torn line counts as a malformed line skipped
        for n, record in enumerate(read_records(files, stats, parse_record), 1):
            tracker.restore(record)
            if n % RESTORE_SLICE == 0:
                await asyncio.sleep(0)
        self._records.inc(("restored",), stats.records)
        if stats.malformed:
            self._malformed.inc((), stats.malformed)
        tracker.expire()  # publish the restored sessions' gauges
        self.writer.start()
        self.loaded = True
        log.info(
            "JSONL log %s: restored %d records from %d file(s) in %.2fs (%d malformed lines skipped); "
            "%d open and %d ended sessions",
            self.writer.path, stats.records, len(files), time.monotonic() - started, stats.malformed,
            len(tracker.open), len(tracker.ended),
        )
        return stats

    async def close(self) -> None:
        await asyncio.to_thread(self.writer.stop)
        self.publish()

    def publish(self) -> None:
        """Copy the writer thread's counters into the series store (periodic and at every scrape,
        on the loop)."""
        w, done = self.writer, self._published
        self._writable.set((), 0 if w.failing_since is not None else 1)
        self._waiting.set((), w.waiting)
        for key, value, family, labels in (
            ("written", w.written, self._records, ("written",)),
            ("dropped", w.dropped + w.lost, self._records, ("dropped",)),
            ("errors", w.write_errors, self._errors, ()),
            ("rotations", w.rotations, self._rotations, ()),
        ):
            if value > done[key]:
                family.inc(labels, value - done[key])
                done[key] = value

    def check(self) -> tuple[bool, str]:
        """Readiness: the log is loaded and the writer runs.

        A failing disk is reported in the detail but leaves the sidecar ready: readiness
        gates traffic to the pod, and in sidecar mode the agent's own pod. Spans are still
        received and counted and /metrics still works; only the log waits (and, past
        ``queue_records``, drops records, counted). Turning unready would take the agent
        out of service for the sake of a log (docs/sessions.md, "Disk full")."""
        w = self.writer
        if not self.loaded:
            return False, "loading"
        if not w.alive:
            return False, "writer stopped"
        if w.failing_since is not None:
            return True, (f"degraded: writes failing since {iso(w.failing_since)} ({w.last_error}); "
                          f"{w.waiting} records waiting, retrying")
        if w.last_error:
            return True, f"writing (last error: {w.last_error})"
        return True, "writing"
