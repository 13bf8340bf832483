"""The JSONL invocation log on disk: one appending writer thread, size-based rotation, reading back.

Files: ``DIR/invocations.jsonl`` is written; on rotation it becomes
``invocations.jsonl.1`` and older files shift up to ``.keep_files`` (beyond
that they are deleted). Readers go oldest first: ``.N`` ... ``.1``, then the
current file. Record format: ``sessions/records.py`` and docs/sessions.md.

Why a writer thread with a bounded queue rather than writing on the event
loop: the loop also receives every OTLP export, and a write can stall for
as long as the disk likes (a slow volume, a full disk, a rename during
rotation). On the loop a record costs one ``json.dumps`` and a
``put_nowait``; the thread drains whatever is queued and hands it to the
kernel with ``os.write`` on an ``O_APPEND`` descriptor, without user-space
buffering, so every record the thread has written survives a crash of the
process. Only whole lines are ever queued and one thread writes, so lines
never interleave, and a crash mid-write can tear at most the last line. When
the queue is full (the disk cannot keep up) new records are dropped and
counted rather than blocking ingestion or growing memory. No fsync: a power
loss can lose what the kernel had not yet written.

A failed write (disk full, file system gone read-only, directory removed or
replaced) loses nothing: the unwritten rest of the batch, possibly the second
half of a line the kernel took only in part, is kept and written first when
a retry succeeds, so a line cut short by the fault is completed and no
record is skipped. Retries back off from ``RETRY_MIN_SECONDS`` to ``RETRY_MAX_SECONDS``;
meanwhile new records wait in the queue, and beyond ``queue_records`` they
are dropped and counted. Before each write the descriptor is checked against
the path, so a file moved or deleted under the writer is opened again
rather than written into unseen. Only a stop during a fault abandons what is
still waiting (``lost``).

At start, before the writer runs, ``repair_tail`` makes the current file end
with a complete line: a torn last line is cut off (a valid JSON object
without its newline is kept and given one), so the next append does not
glue a new record onto a broken one. ``read_records`` then streams every
line back; malformed lines are skipped, warned about and counted.

The counters (``written``, ``write_errors``, ``rotations``, ``lost``) and
``failing_since``/``last_error`` are plain values written only by the thread
and read by the loop (``SessionJournal.publish`` copies them into the series
store); ``dropped`` is written only by the loop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from agentprom.clock import Clock, SystemClock

log = logging.getLogger(__name__)

#: checks one decoded line; raises ValueError when it is not a record
Parse = Callable[[Any], dict[str, Any]]

LOG_NAME = "invocations.jsonl"
#: the writer hands the kernel at most this much per write
CHUNK_BYTES = 256 * 1024
#: malformed lines warned about one by one; the rest only in the summary
WARN_LINES = 10


def log_files(directory: Path, keep_files: int | None = None) -> list[Path]:
    """The log's files in a directory, oldest first (all rotated files when keep_files is None)."""
    current = directory / LOG_NAME
    rotated = []
    for path in directory.glob(LOG_NAME + ".*"):
        suffix = path.name[len(LOG_NAME) + 1:]
        if suffix.isdigit() and (keep_files is None or int(suffix) <= keep_files):
            rotated.append((int(suffix), path))
    files = [path for _n, path in sorted(rotated, reverse=True)]
    if current.exists():
        files.append(current)
    return files


class ReadStats:
    def __init__(self) -> None:
        self.lines = 0
        self.records = 0
        self.malformed = 0


def json_object(value: Any) -> dict[str, Any]:
    """The least a line must be: a JSON object (``parse`` for readers that know no record format)."""
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def read_records(paths: Iterable[Path], stats: ReadStats | None = None,
                 parse: Parse = json_object) -> Iterator[dict[str, Any]]:
    """Every valid record of the given files, in order; malformed lines are skipped and counted.
    ``parse`` checks a decoded line (the record format: sessions/records.py) and raises
    ``ValueError`` for one that is not a record."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                stats.lines += 1
                if not line.strip():
                    continue
                try:
                    record = parse(json.loads(line))
                except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and record errors are ValueErrors
                    stats.malformed += 1
                    if stats.malformed <= WARN_LINES:
                        log.warning("%s line %d skipped: not a valid record (%s)", path, number, exc)
                    continue
                stats.records += 1
                yield record
    if stats.malformed > WARN_LINES:
        log.warning("%d malformed lines skipped in all", stats.malformed)


CUT = "cut"
TERMINATED = "terminated"


def repair_tail(path: Path, parse: Parse = json_object) -> str | None:
    """Make ``path`` end with a complete line: ``CUT`` when a torn last line was removed,
    ``TERMINATED`` when a whole last record (by ``parse``) only lacked its newline, None when all
    was well."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "r+b") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return None
        # find the start of the unterminated last line
        block = 64 * 1024
        start = size
        while start > 0:
            begin = max(0, start - block)
            handle.seek(begin)
            data = handle.read(start - begin)
            newline = data.rfind(b"\n")
            if newline >= 0:
                start = begin + newline + 1
                break
            start = begin
        handle.seek(start)
        tail = handle.read()
        try:
            parse(json.loads(tail))
        except ValueError:
            log.warning("%s: cutting off a torn last line (%d bytes) left by an interrupted write", path, len(tail))
            handle.truncate(start)
            return CUT
        handle.seek(size)
        handle.write(b"\n")
    return TERMINATED


#: one encoder for every record: ``json.dumps`` with options builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class JsonlWriter:
    """Appends records to the log from a thread of its own (see the module docstring).

    The hand-off is a ``deque`` (append and popleft are atomic) plus an ``Event``
    set only when it is not set already, so the loop pays for a lock only when
    the writer sleeps; ``queue.Queue`` takes two locks per record."""

    #: the writer looks at the queue at least this often, whatever the wake-ups say
    POLL_SECONDS = 0.2
    #: after a failed write the next try waits this long, doubling up to RETRY_MAX_SECONDS
    RETRY_MIN_SECONDS = 0.1
    RETRY_MAX_SECONDS = 2.0

    def __init__(self, directory: str | Path, rotate_bytes: int, keep_files: int, queue_records: int,
                 clock: Clock | None = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOG_NAME
        self.rotate_bytes = rotate_bytes
        self.keep_files = keep_files
        self.queue_records = queue_records
        self.clock = clock or SystemClock()
        self._lines: deque[bytes] = deque()
        self._wakeup = threading.Event()
        self._stop_requested = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._size = 0
        #: rotate before the file passes this size (moved on after a failed rotation)
        self._rotate_at = rotate_bytes
        #: whole lines taken off the queue and not yet (completely) written: the rest of a
        #: failed write, written before anything else so a line the kernel took in part is completed
        self._pending = b""
        self._pending_lines = 0
        #: part of ``_pending``'s first line is already in the file
        self._pending_started = False
        self.written = 0
        self.write_errors = 0
        self.rotations = 0
        self.dropped = 0
        #: records abandoned by the writer thread (still unwritable at stop, or a line cut in two)
        self.lost = 0
        self.last_error: str | None = None
        #: wall time of the first failure of the current fault; None while writes succeed
        self.failing_since: float | None = None

    # -- loop side ----------------------------------------------------------------

    def prepare(self, parse: Parse = json_object) -> tuple[list[Path], bool]:
        """Create the directory and repair the current file's tail (a complete last line is one
        ``parse`` takes); return the files to load (oldest first) and whether a torn last line was
        cut off."""
        self.directory.mkdir(parents=True, exist_ok=True)
        cut = repair_tail(self.path, parse) == CUT
        return log_files(self.directory, self.keep_files), cut

    def start(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._stopping = False
        self._stop_requested.clear()
        self._thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> bool:
        """Queue one record; False (and counted as dropped) when it cannot be."""
        if len(self._lines) >= self.queue_records:
            self.dropped += 1
            return False
        try:
            line = _ENCODER.encode(record).encode("utf-8") + b"\n"
        except ValueError as exc:  # a non-finite number; UnicodeEncodeError (a lone surrogate) is one too
            log.warning("record not logged: %s", exc)
            self.dropped += 1
            return False
        self._lines.append(line)
        if not self._wakeup.is_set():
            self._wakeup.set()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread (blocking: call it off the loop). While the
        log is unwritable the thread tries once more, then gives up on what is left (``lost``)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._stop_requested.set()
        self._wakeup.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("JSONL writer did not drain its queue in %.0fs", timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Records queued or taken off the queue but not yet written."""
        return len(self._lines) + self._pending_lines

    # -- writer thread ------------------------------------------------------------

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        delay = self.RETRY_MIN_SECONDS
        try:
            while True:
                if self.failing_since is None:
                    self._wakeup.wait(self.POLL_SECONDS)
                    # cleared before draining: a record appended after this sets the event again
                    self._wakeup.clear()
                else:
                    # back off: new records must not turn a full disk into a busy loop
                    self._stop_requested.wait(delay)
                    delay = min(2 * delay, self.RETRY_MAX_SECONDS)
                if self._drain():
                    delay = self.RETRY_MIN_SECONDS
                    if self._stopping and not self._lines:
                        return
                elif self._stopping:
                    self._give_up()
                    return
        finally:
            self._close()

    def _drain(self) -> bool:
        """Write the rest of a failed write, then everything queued; False at the first failure."""
        while self._pending or self._lines:
            if not self._pending:
                self._take_batch()
            if self._pending and not self._write_pending():
                return False
        return True

    def _take_batch(self) -> None:
        """Move up to CHUNK_BYTES of queued lines into ``_pending``, rotating first when the
        next line would take the file past its size limit."""
        lines = self._lines
        batch: list[bytes] = []
        size = 0
        while lines and size < CHUNK_BYTES:
            line = lines[0]
            if self._size + size + len(line) > self._rotate_at and self._size + size > 0:
                if batch:
                    break  # write these first; the next batch starts with the rotation
                self._rotate()
                continue
            batch.append(lines.popleft())
            size += len(line)
        self._pending = b"".join(batch)
        self._pending_lines = len(batch)
        self._pending_started = False

    def _write_pending(self) -> bool:
        written = 0
        try:
            self._ensure_open()
            data = memoryview(self._pending)
            while written < len(data):
                n = os.write(self._fd, data[written:])
                written += n
                self._size += n
        except OSError as exc:
            if written:
                self._pending = self._pending[written:]
                self._pending_started = True
            self._failed(exc)
            return False
        self.written += self._pending_lines
        self._pending, self._pending_lines, self._pending_started = b"", 0, False
        self.last_error = None
        if self.failing_since is not None:
            log.warning("JSONL log writable again (%d failed writes so far); writing the %d waiting records",
                        self.write_errors, len(self._lines))
            self.failing_since = None
        return True

    def _failed(self, exc: OSError) -> None:
        self.write_errors += 1
        self.last_error = str(exc)
        if self.failing_since is None:
            self.failing_since = self.clock.now()
            log.error("JSONL log write failed, records wait in the queue and are retried: %s", exc)
        elif self.write_errors % 100 == 0:
            log.error("JSONL log still unwritable (%d failed writes so far): %s", self.write_errors, exc)

    def _ensure_open(self) -> None:
        """Open the log file unless the open descriptor is still the file at ``path``.

        Whatever replaced or removed the file or its directory while it was open (an operator,
        an external log rotator), records must not go on into a file nobody can see: the file
        is opened again, and the directory made again if it went away."""
        if self._fd is not None:
            try:
                here, mine = os.stat(self.path), os.fstat(self._fd)
                same = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
            except OSError:
                same = False
            if same:
                return
            log.warning("%s was moved or deleted while open: opening it again", self.path)
            self._close()
            if self._pending_started:
                # the start of this line went with the old file: the rest alone is no record
                cut = self._pending.find(b"\n") + 1
                self._pending = self._pending[cut:]
                self._pending_lines -= 1
                self._pending_started = False
                self.lost += 1
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._open()

    def _give_up(self) -> None:
        left = self.waiting
        self._lines.clear()
        self._pending, self._pending_lines, self._pending_started = b"", 0, False
        self.lost += left
        log.error("JSONL log still unwritable at stop (%s): %d records not written", self.last_error, left)

    def _rotate(self) -> None:
        self._close()
        try:
            if self.keep_files == 0:
                self.path.unlink(missing_ok=True)
            else:
                (self.directory / f"{LOG_NAME}.{self.keep_files}").unlink(missing_ok=True)
                for n in range(self.keep_files - 1, 0, -1):
                    older = self.directory / f"{LOG_NAME}.{n}"
                    if older.exists():
                        older.rename(self.directory / f"{LOG_NAME}.{n + 1}")
                self.path.rename(self.directory / f"{LOG_NAME}.1")
            self.rotations += 1
            self._rotate_at = self.rotate_bytes
        except OSError as exc:
            self.write_errors += 1
            self.last_error = f"rotation failed: {exc}"
            # keep appending to the current file; try again after another rotate_bytes
            self._rotate_at = self._size + self.rotate_bytes
            log.error("JSONL log rotation failed (next try after %d more bytes): %s", self.rotate_bytes, exc)
        try:
            self._open()
        except OSError as exc:
            # the next write opens it again (and reports the failure); until then the file is new
            self.last_error = str(exc)
            self._fd = None
            self._size = 0
