"""Read the JSONL journal from a position a store committed: whole records, across rotations.

A position names a byte offset in one journal file. Files are renamed by
rotation (``invocations.jsonl`` becomes ``.1``, ``.2`` ...), so a file is named
by what survives a rename: its inode and its first bytes (``head``: the inode
of a deleted file can be reused, its first record cannot). A store keeps the
position it reached in the same transaction as the rows it wrote
(stores/postgres.py, stores/redis_streams.py), so after a crash, a restart or
an outage it goes on from exactly there.

Only complete lines are read: a line the writer has not finished (no newline
yet) is left for the next read; in a rotated file, which the writer has left for
good, an unterminated tail (a crash) is skipped as malformed. Malformed lines are skipped and counted, as
every journal reader does (sinks/jsonl.py). When the file a position names is
gone (rotated past ``keep_files`` while a store was down), reading starts at
the oldest file still there and the gap is reported (``Batch.gap``).

Blocking file I/O: the shipper calls it in a worker thread, off its event loop.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentprom.sessions.records import parse_record
from agentprom.sinks.jsonl import log_files

#: bytes that name a file besides its inode
HEAD_BYTES = 64
#: the file in the journal directory that names the journal (positions are kept under its id)
JOURNAL_ID_FILE = "journal-id"


class PositionConflict(Exception):
    """The journal's position in a store is not where a batch starts: another process ships this journal."""


def journal_id(directory: str | Path) -> str:
    """The journal's id, made once (a random UUID in ``journal-id``): a store keeps a journal's
    position under it, so a sidecar that comes back with the same volume (a new pod name) goes on
    where it was, and a new journal starts from its beginning."""
    path = Path(directory) / JOURNAL_ID_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    Path(directory).mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex
    try:
        with open(path, "x", encoding="ascii") as handle:  # exclusive: two starting at once agree
            handle.write(new + "\n")
        return new
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
#: read this much at a time
READ_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Position:
    inode: int = 0
    head: bytes = b""
    offset: int = 0

    @property
    def is_start(self) -> bool:
        """Nothing has been read yet (no file named)."""
        return self.inode == 0


@dataclass(slots=True)
class Batch:
    records: list[dict[str, Any]] = field(default_factory=list)
    position: Position = Position()
    malformed: int = 0
    #: the committed position named a file that is gone: the records between were never shipped
    gap: bool = False
    #: the journal holds nothing past ``position``
    at_end: bool = True


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


class JournalCursor:
    """Reads batches of records from a journal directory, from a given position on."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        found = []
        for path in log_files(self.directory):
            try:
                found.append((path, path.stat()))
            except FileNotFoundError:
                continue  # rotated away between the listing and the stat
        return found

    def _locate(self, files: list[tuple[Path, os.stat_result]], position: Position) -> tuple[int, int, bool]:
        """The index of the file the position names and the offset in it; ``gap`` when it is gone."""
        if position.is_start:
            return 0, 0, False
        for index, (path, stat) in enumerate(files):
            if stat.st_ino != position.inode:
                continue
            try:
                head = _head(path)
            except FileNotFoundError:
                continue
            if head[:len(position.head)] == position.head and position.offset <= stat.st_size:
                return index, position.offset, False
        return 0, 0, True

    def read(self, position: Position, max_records: int) -> Batch:
        """Up to ``max_records`` records after ``position``, and the position after them."""
        files = self._files()
        batch = Batch(position=position)
        if not files:
            return batch
        index, offset, batch.gap = self._locate(files, position)
        while index < len(files):
            path, stat = files[index]
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                return self.read(position, max_records) if not batch.records else batch  # rotated: list again
            with handle:
                if os.fstat(handle.fileno()).st_ino != stat.st_ino:  # renamed since the listing: list again
                    return self.read(position, max_records) if not batch.records else batch
                head = handle.read(HEAD_BYTES)
                handle.seek(offset)
                offset = self._read_lines(handle, offset, batch, max_records)
                batch.position = Position(stat.st_ino, head, offset)
                size = os.fstat(handle.fileno()).st_size
            if len(batch.records) >= max_records:
                batch.at_end = offset >= size and index == len(files) - 1
                return batch
            if index == len(files) - 1:
                batch.at_end = offset >= size
                return batch  # the current file: an unfinished last line waits for the writer
            if offset < size:  # an unterminated tail in a rotated file: a crash's, never to be finished
                batch.malformed += 1
            index, offset = index + 1, 0
        return batch

    @staticmethod
    def _read_lines(handle: Any, offset: int, batch: Batch, max_records: int) -> int:
        """Parse whole lines from ``handle`` (at ``offset``) into ``batch``; return the offset after them."""
        buffer = b""
        while len(batch.records) < max_records:
            chunk = handle.read(READ_BYTES)
            if not chunk:
                break
            buffer += chunk
            start = 0
            while len(batch.records) < max_records:
                newline = buffer.find(b"\n", start)
                if newline < 0:
                    break
                line = buffer[start:newline]
                start = newline + 1
                if line.strip():
                    try:
                        batch.records.append(parse_record(json.loads(line)))
                    except ValueError:  # JSON, UTF-8 and record errors
                        batch.malformed += 1
            offset += start
            buffer = buffer[start:]
            if start == 0 and len(buffer) > 64 * 1024 * 1024:
                break  # a line longer than any record the writer makes: wait (it cannot be ours to finish)
        return offset

    def pending_bytes(self, position: Position) -> int:
        """Bytes of the journal after ``position`` (the lag a store has left)."""
        files = self._files()
        if not files:
            return 0
        index, offset, _gap = self._locate(files, position)
        return sum(stat.st_size for _path, stat in files[index:]) - offset

    def pending_records(self, position: Position, limit_bytes: int = 64 * 1024 * 1024) -> int:
        """Complete records after ``position`` (lines counted; past ``limit_bytes`` of reading, estimated
        from the average line length so far)."""
        files = self._files()
        if not files:
            return 0
        index, offset, _gap = self._locate(files, position)
        lines = read = 0
        total = sum(stat.st_size for _path, stat in files[index:]) - offset
        for path, _stat in files[index:]:
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    while read < limit_bytes:
                        chunk = handle.read(READ_BYTES)
                        if not chunk:
                            break
                        lines += chunk.count(b"\n")
                        read += len(chunk)
            except FileNotFoundError:
                pass
            offset = 0
            if read >= limit_bytes:
                return int(lines * total / read) if read else 0
        return lines
