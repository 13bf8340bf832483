"""The JSONL invocation log: record format, rotation, torn-line repair, restart and crash safety."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentprom.sessions.records import parse_record
from agentprom.sinks.jsonl import LOG_NAME, JsonlWriter, ReadStats, log_files, read_records, repair_tail
from tests.conftest import Sidecar
from tests.otel import tracer
from tests.runtime_api import get_json, post_json
from tests.test_sessions_events import run_of_events
from tests.test_sessions_spans import own_session

ROOT = Path(__file__).resolve().parent.parent
SPEC_KEYS = {"invocation_id", "kind", "agent", "phase", "session_id", "duration_ms", "success", "timestamp"}
CALL_KEYS = SPEC_KEYS | {"attempt", "error_class", "model"}
LLM_KEYS = CALL_KEYS | {"tokens", "input_tokens", "output_tokens", "cached_tokens", "cost"}


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def record(n: int, session: str = "s") -> dict:
    return {"invocation_id": f"id{n:04d}", "kind": "tool_call", "session_id": session, "tool": "t",
            "timestamp": "2026-02-20T02:15:00.000Z", "duration_ms": n, "success": True}


# -- the writer on its own ---------------------------------------------------------------


def test_writer_rotates_by_size_and_keeps_order(tmp_path):
    writer = JsonlWriter(tmp_path, rotate_bytes=4096, keep_files=2, queue_records=10_000)
    writer.prepare()
    writer.start()
    for n in range(300):
        assert writer.append(record(n))
    writer.stop()
    files = log_files(tmp_path)
    assert [f.name for f in files] == [f"{LOG_NAME}.2", f"{LOG_NAME}.1", LOG_NAME]
    assert not (tmp_path / f"{LOG_NAME}.3").exists()
    assert all(f.stat().st_size <= 4096 for f in files)
    kept = [r["duration_ms"] for r in read_records(files)]
    assert kept == list(range(300 - len(kept), 300))  # the newest records, in order, none missing
    assert writer.written == 300 and writer.rotations >= 3 and writer.write_errors == 0


def test_writer_drops_and_counts_when_its_queue_is_full(tmp_path):
    writer = JsonlWriter(tmp_path, rotate_bytes=1 << 20, keep_files=1, queue_records=2)
    writer.prepare()  # not started: nothing drains the queue
    assert writer.append(record(1)) and writer.append(record(2))
    assert not writer.append(record(3))
    assert not writer.append({"kind": "tool_call", "cost": float("nan")})  # not representable as JSON
    assert writer.dropped == 2
    writer.start()
    writer.stop()
    assert [r["duration_ms"] for r in read_records([tmp_path / LOG_NAME])] == [1, 2]


def test_failed_rotation_is_counted_and_nothing_is_lost(tmp_path):
    (tmp_path / f"{LOG_NAME}.1").mkdir()  # a directory where the rotated file must go
    (tmp_path / f"{LOG_NAME}.1" / "occupied").write_text("x")
    writer = JsonlWriter(tmp_path, rotate_bytes=4096, keep_files=1, queue_records=10_000)
    writer.prepare()
    writer.start()
    for n in range(100):
        writer.append(record(n))
    writer.stop()
    assert writer.write_errors >= 1 and writer.rotations == 0
    assert [r["duration_ms"] for r in read_records([tmp_path / LOG_NAME])] == list(range(100))


def test_directory_replaced_at_run_time_is_a_fault_until_it_is_usable_again(tmp_path):
    directory = tmp_path / "log"
    writer = JsonlWriter(directory, rotate_bytes=1 << 20, keep_files=1, queue_records=10_000)
    writer.prepare()
    writer.start()
    try:
        writer.append(record(0))
        wait_for(lambda: writer.written == 1, what="the first record")
        # an operator removes the directory and something else takes its name: records written
        # into the still-open, now unlinked file would vanish without a trace
        shutil.rmtree(directory)
        directory.write_text("not a directory")
        for n in range(1, 4):
            writer.append(record(n))
        wait_for(lambda: writer.failing_since is not None, what="the fault")
        assert writer.write_errors >= 1 and writer.waiting == 3 and writer.written == 1
        assert "exists" in writer.last_error or "directory" in writer.last_error.lower()
        writer.append(record(4))
        directory.unlink()  # usable again: the writer makes the directory and goes on
        wait_for(lambda: writer.written == 5, what="the waiting records")
        assert writer.failing_since is None and writer.last_error is None and writer.waiting == 0
    finally:
        writer.stop()
    assert [r["duration_ms"] for r in read_records([directory / LOG_NAME])] == [1, 2, 3, 4]
    assert writer.dropped == writer.lost == 0


def test_a_log_file_moved_away_is_opened_again(tmp_path):
    writer = JsonlWriter(tmp_path, rotate_bytes=1 << 20, keep_files=1, queue_records=10_000)
    writer.prepare()
    writer.start()
    writer.append(record(0))
    wait_for(lambda: writer.written == 1, what="the first record")
    (tmp_path / LOG_NAME).rename(tmp_path / "moved-by-logrotate")
    writer.append(record(1))
    writer.stop()
    assert [r["duration_ms"] for r in read_records([tmp_path / "moved-by-logrotate"])] == [0]
    assert [r["duration_ms"] for r in read_records([tmp_path / LOG_NAME])] == [1]
    assert writer.write_errors == 0


def test_stop_during_a_fault_gives_up_and_counts_what_was_not_written(tmp_path):
    directory = tmp_path / "log"
    writer = JsonlWriter(directory, rotate_bytes=1 << 20, keep_files=1, queue_records=10_000)
    writer.prepare()
    writer.start()
    shutil.rmtree(directory)
    directory.write_text("not a directory")
    for n in range(5):
        writer.append(record(n))
    wait_for(lambda: writer.failing_since is not None, what="the fault")
    writer.stop()
    assert not writer.alive  # it tried once more and gave up, rather than wait for the disk
    assert writer.lost == 5 and writer.written == 0 and writer.waiting == 0


def test_repair_tail_cuts_a_torn_line_and_terminates_a_whole_one(tmp_path):
    path = tmp_path / LOG_NAME
    good = json.dumps(record(1)) + "\n"
    path.write_text(good + json.dumps(record(2))[:25])
    assert repair_tail(path) == "cut"
    assert path.read_text() == good
    assert repair_tail(path) is None
    path.write_text(good + json.dumps(record(3)))  # complete, only the newline is missing
    assert repair_tail(path) == "terminated"
    assert path.read_text() == good + json.dumps(record(3)) + "\n"


def test_reader_skips_and_counts_malformed_lines(tmp_path):
    path = tmp_path / LOG_NAME
    path.write_text("\n".join([
        json.dumps(record(1)),
        "{not json",
        json.dumps({"kind": "mystery", "invocation_id": "x", "session_id": "s"}),
        "[1, 2]",
        json.dumps({**record(2), "future_key": {"nested": True}}),  # unknown keys are fine
        "",
        "\xff\xfe",
    ]) + "\n")
    stats = ReadStats()
    assert [r["duration_ms"] for r in read_records([path], stats, parse_record)] == [1, 2]
    assert (stats.records, stats.malformed) == (2, 4)


# -- through the sidecar -----------------------------------------------------------------


def jsonl_config(directory: Path, **extra) -> dict:
    return {"jsonl": {"enabled": True, "directory": str(directory), **extra}}


def test_records_from_spans_and_events_follow_the_documented_format(make_sidecar, tmp_path):
    sidecar = make_sidecar(jsonl_config(tmp_path))
    with tracer(sidecar.grpc_address) as t:
        own_session(t)
    post_json(sidecar, "/runtime/event", run_of_events())
    path = tmp_path / LOG_NAME
    # 7 call, phase and session records from spans, 8 from events, and the events' 8 event records
    wait_for(lambda: len(path.read_text().splitlines()) == 7 + 8 + 8, what="23 records")
    records = lines(path)
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    assert {k: len(v) for k, v in by_kind.items()} == {"tool_call": 7, "llm_call": 2, "phase": 4, "session": 2,
                                                       "event": 8}
    # the events that make no other record, in order, as they happened
    assert [(r["event_type"], r["session_id"], r["timestamp"][11:19]) for r in by_kind["event"]] == [
        ("session_started", "sess_abc123", "02:15:00"), ("phase_started", "sess_abc123", "02:15:01"),
        ("tool_started", "sess_abc123", "02:15:02"), ("checkpoint_created", "sess_abc123", "02:15:05"),
        ("memory_read", "sess_abc123", "02:15:05"), ("memory_write", "sess_abc123", "02:15:05"),
        ("context_reset", "sess_abc123", "02:15:08"), ("phase_started", "sess_abc123", "02:15:09"),
    ]
    assert by_kind["event"][0]["model"] == "gpt-4o" and by_kind["event"][2]["call_id"] == "c1"
    records = [r for r in records if r["kind"] != "event"]
    for r in records:
        assert SPEC_KEYS <= r.keys(), r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["timestamp"])
    for r in by_kind["tool_call"]:
        assert CALL_KEYS <= r.keys()
    for r in by_kind["llm_call"]:
        assert LLM_KEYS <= r.keys()

    spans = [r for r in records if r["session_id"] == "own-1"]
    # the calls below the "plan" span arrived before it; they were logged once it had, with their phase,
    # and then the phase, with its calls counted
    assert [(r["kind"], r.get("tool"), r["phase"], r["success"], r.get("attempt")) for r in spans] == [
        ("tool_call", "search", "plan", False, 1),
        ("tool_call", "search", "plan", True, 2),
        ("llm_call", None, "plan", True, 1),
        ("phase", None, "plan", True, None),
        ("tool_call", "write", "build", True, 1),
        ("phase", None, "build", True, None),
        ("session", None, None, True, None),
    ]
    assert (spans[3]["tool_calls"], spans[3]["llm_calls"], spans[3]["errors"], spans[3]["recoveries"]) == (2, 1, 1, 1)
    assert spans[0]["error_class"] == "ToolError" and spans[1]["recovered"] is True
    assert spans[2]["tokens"] == 1250 and spans[2]["model"] == "gpt-4o"
    session = by_kind["session"][0]
    assert (session["session_id"], session["status"], session["continuity_score"]) == ("own-1", "completed", 82.5)
    events_llm = [r for r in by_kind["llm_call"] if r["session_id"] == "sess_abc123"][0]
    assert (events_llm["tokens"], events_llm["cached_tokens"], events_llm["cost"]) == (1000, 300, 0.01)
    assert events_llm["timestamp"] == "2026-02-20T02:15:05.200Z"  # start = event time - duration
    sidecar.call(sidecar.app.journal.publish)
    assert sidecar.value("agentprom_jsonl_records_total", outcome="written") == 23
    ok, checks = sidecar.app.readiness()
    assert ok and checks["jsonl"] == "writing"


def test_restart_restores_sessions_and_survives_a_torn_last_line(make_sidecar, tmp_path):
    first = Sidecar(jsonl_config(tmp_path)).start()
    post_json(first, "/runtime/event", run_of_events("done"))
    post_json(first, "/runtime/event", [
        {"event_type": "session_started", "session_id": "open", "agent": "a"},
        {"event_type": "phase_started", "session_id": "open", "phase_id": "p", "phase_name": "work"},
        {"event_type": "tool_completed", "session_id": "open", "tool_name": "one", "duration_ms": 5},
        {"event_type": "tool_failed", "session_id": "open", "tool_name": "two", "duration_ms": 5},
        {"event_type": "tool_completed", "session_id": "open", "tool_name": "three", "duration_ms": 5},
    ])
    before = get_json(first, "/runtime/session/done")[1]
    before_phases = get_json(first, "/runtime/session/done/phases")[1]
    path = tmp_path / LOG_NAME
    # 8 + 3 records of calls, phases and sessions, and 8 + 2 of events that make none
    wait_for(lambda: len(path.read_text().splitlines()) == 8 + 3 + 8 + 2, what="21 records")
    first.stop()

    # a crash tore the last write: half of the last record ("three") is on disk
    data = path.read_bytes()
    last_line_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_line_start + (len(data) - last_line_start) // 2])

    second = make_sidecar(jsonl_config(tmp_path))
    after = get_json(second, "/runtime/session/done")[1]
    assert after == {**before, "restored": True}
    assert get_json(second, "/runtime/session/done/phases")[1] == before_phases
    assert len(get_json(second, "/runtime/session/done/tool_calls")[1]["tool_calls"]) == 4
    open_session = get_json(second, "/runtime/session/open")[1]
    assert (open_session["status"], open_session["tool_calls"], open_session["errors"]) == ("active", 2, 1)
    assert second.value("agentprom_jsonl_malformed_lines_total") == 1
    assert second.value("agentprom_jsonl_records_total", outcome="restored") == 20
    # Prometheus counters start again from zero after a restart; only gauges reflect restored state
    assert second.value("agent_sessions_total", agent="coder", status="completed") == 0
    assert second.value("agent_sessions_active", agent="a") == 1

    # the open session goes on and ends; the log stays one valid record per line
    post_json(second, "/runtime/event", [
        {"event_type": "tool_completed", "session_id": "open", "tool_name": "four", "duration_ms": 5},
        {"event_type": "session_completed", "session_id": "open"},
    ])
    ended = get_json(second, "/runtime/session/open")[1]
    assert (ended["status"], ended["tool_calls"], ended["phases"]) == ("completed", 3, 1)
    # a phase open across the restart is known only from its calls: it ends with its session
    assert second.value("agent_phases_total", agent="a", phase="work", status="completed") == 1
    wait_for(lambda: len(path.read_text().splitlines()) == 20 + 3, what="3 more records")
    stats = ReadStats()
    assert len(list(read_records([path], stats))) == 23 and stats.malformed == 0


def _serve(config: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentprom", "serve", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    for line in process.stderr:
        match = re.search(r"listening: otlp_http on (\S+)", line)
        if match:
            return process, "http://" + match.group(1)
    pytest.fail("the sidecar did not start")


def test_killed_process_loses_nothing_it_wrote(tmp_path):
    config = tmp_path / "agentprom.yaml"
    config.write_text(
        "server: {otlp_grpc: '127.0.0.1:0', otlp_http: '127.0.0.1:0', metrics: '127.0.0.1:0'}\n"
        f"jsonl: {{enabled: true, directory: '{tmp_path / 'log'}'}}\n"
    )
    process, url = _serve(config)
    try:
        events = [{"event_type": "tool_completed", "session_id": "k", "tool_name": f"t{i}", "duration_ms": i}
                  for i in range(50)]
        assert post_json(url, "/runtime/event", events)[0] == 200
        path = tmp_path / "log" / LOG_NAME
        wait_for(lambda: path.exists() and len(path.read_text().splitlines()) == 50, what="50 records")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process.stderr.close()
    with open(path, "ab") as handle:
        handle.write(b'{"invocation_id": "torn", "kind": "tool_')  # what a write cut short would leave

    process, url = _serve(config)
    try:
        session = get_json(url, "/runtime/session/k")[1]
        assert (session["status"], session["tool_calls"], session["restored"]) == ("active", 50, True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        process.stderr.close()
    assert len(lines(path)) == 50  # the torn tail was cut off, every whole record kept


def test_unusable_log_directory_fails_the_start_clearly(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")
    sidecar = Sidecar(jsonl_config(blocker))
    with pytest.raises(FileExistsError):  # an OSError: `agentprom serve` reports it and exits 1
        sidecar.start()
    assert sidecar.app.addresses.get("otlp_grpc") is None  # no receiver was left listening
    sidecar.loop.call_soon_threadsafe(sidecar.loop.stop)
