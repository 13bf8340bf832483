"""The journal cursor the stores read with: whole records from a committed position, across rotations."""

from __future__ import annotations

import json

from agentprom.sinks.jsonl import LOG_NAME, JsonlWriter
from agentprom.stores.cursor import JournalCursor, Position


def record(n: int) -> dict:
    return {"invocation_id": f"id{n:05d}", "kind": "tool_call", "session_id": "s", "tool": "t",
            "timestamp": "2026-02-20T02:15:00.000Z", "duration_ms": n, "success": True}


def ids(records: list[dict]) -> list[int]:
    return [int(r["invocation_id"][2:]) for r in records]


def write(tmp_path, numbers, rotate_bytes=1 << 20, keep_files=100) -> None:
    writer = JsonlWriter(tmp_path, rotate_bytes=rotate_bytes, keep_files=keep_files, queue_records=100_000)
    writer.prepare()
    writer.start()
    for n in numbers:
        assert writer.append(record(n))
    writer.stop()


def read_all(cursor: JournalCursor, position: Position, batch: int) -> tuple[list[int], Position]:
    got: list[int] = []
    while True:
        b = cursor.read(position, batch)
        got += ids(b.records)
        assert not b.gap
        if b.position == position:
            return got, position
        position = b.position


def test_batches_resume_from_the_position_across_rotations(tmp_path):
    write(tmp_path, range(300), rotate_bytes=4096)
    cursor = JournalCursor(tmp_path)
    assert len(list(tmp_path.glob(LOG_NAME + "*"))) > 3  # several rotated files
    got, position = read_all(cursor, Position(), 7)
    assert got == list(range(300))
    assert cursor.pending_records(position) == 0 and cursor.pending_bytes(position) == 0
    # more records, more rotations: the saved position still names its (renamed) file
    write(tmp_path, range(300, 500), rotate_bytes=4096)
    assert cursor.pending_records(position) == 200
    more, _ = read_all(cursor, position, 50)
    assert more == list(range(300, 500))


def test_an_unfinished_last_line_waits_and_malformed_lines_are_skipped(tmp_path):
    path = tmp_path / LOG_NAME
    lines = [json.dumps(record(1)), "{not json", json.dumps({"kind": "mystery"}), json.dumps(record(2))]
    path.write_text("\n".join(lines) + "\n" + json.dumps(record(3))[:20])
    cursor = JournalCursor(tmp_path)
    batch = cursor.read(Position(), 100)
    assert ids(batch.records) == [1, 2] and batch.malformed == 2
    assert batch.at_end is False  # the torn line: not a record yet
    with open(path, "a") as handle:  # the writer finishes the line
        handle.write(json.dumps(record(3))[20:] + "\n")
    again = cursor.read(batch.position, 100)
    assert ids(again.records) == [3] and again.at_end


def test_a_position_in_a_file_rotated_away_is_a_gap(tmp_path):
    write(tmp_path, range(100), rotate_bytes=2048, keep_files=1)
    cursor = JournalCursor(tmp_path)
    first = cursor.read(Position(), 5)
    write(tmp_path, range(100, 400), rotate_bytes=2048, keep_files=1)  # the first file is long gone
    later = cursor.read(first.position, 10)
    assert later.gap and ids(later.records)[0] > 100


def test_a_reused_inode_is_told_apart_by_the_head(tmp_path):
    write(tmp_path, range(10))
    cursor = JournalCursor(tmp_path)
    position = cursor.read(Position(), 4).position
    stale = Position(position.inode, b'{"invocation_id":"other"', position.offset)
    batch = cursor.read(stale, 100)
    assert batch.gap and ids(batch.records) == list(range(10))


def test_an_unterminated_tail_in_a_rotated_file_is_skipped(tmp_path):
    (tmp_path / (LOG_NAME + ".1")).write_text(json.dumps(record(1)) + "\n" + json.dumps(record(2))[:30])
    (tmp_path / LOG_NAME).write_text(json.dumps(record(3)) + "\n")
    batch = JournalCursor(tmp_path).read(Position(), 100)
    assert ids(batch.records) == [1, 3] and batch.malformed == 1 and batch.at_end


def test_the_journal_id_is_made_once(tmp_path):
    from agentprom.stores.cursor import journal_id

    first = journal_id(tmp_path / "j")
    assert len(first) == 32 and journal_id(tmp_path / "j") == first
    assert journal_id(tmp_path / "other") != first
