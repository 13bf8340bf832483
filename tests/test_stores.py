"""The PostgreSQL and Redis stores against real servers: schema, every table and stream, the fleet's reads.

The servers are real (tests/servers.py starts Debian's postgresql and redis-server on free ports);
spans come from the OpenTelemetry SDK's exporter, events through the runtime API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from tests import test_jsonl as journal_tests
from tests.otel import tracer
from tests.runtime_api import get_json, post_json
from tests.test_sessions_events import run_of_events
from tests.test_sessions_spans import own_session, span

ROOT = Path(__file__).resolve().parent.parent

SESSION_COLUMNS = {"session_id", "agent_id", "model_name", "provider", "start_timestamp", "end_timestamp", "status"}
METRICS_COLUMNS = {"duration_ms", "total_tool_calls", "total_phases", "total_errors", "total_recoveries",
                   "completion_status", "tool_calls_per_minute", "mean_tool_latency", "recovery_rate",
                   "completion_success_rate", "context_tokens_used", "context_tokens_available",
                   "context_utilization_percent", "memory_reads", "memory_writes", "checkpoint_count",
                   "context_resets"}
PHASE_COLUMNS = {"phase_id", "session_id", "phase_name", "start_time", "end_time", "duration_ms", "tool_calls",
                 "errors", "recoveries"}
TOOL_COLUMNS = {"tool_call_id", "session_id", "phase_id", "tool_name", "start_time", "end_time", "duration_ms",
                "success", "error_type", "retry_count", "input_size_bytes", "output_size_bytes"}


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """test_jsonl's, with more patience: a store's round trips and the shippers' process start."""
    return journal_tests.wait_for(predicate, timeout, what)


def query(dsn: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def store_config(tmp_path: Path, dsn: str | None = None, redis_url: str | None = None, source: str = "replica-a",
                 postgres: dict | None = None, redis: dict | None = None) -> dict:
    """The sidecar's configuration with the given stores (``postgres``/``redis``: more of their keys)."""
    storage: dict = {"source": source, "retry_max_seconds": 0.5}
    if dsn:
        storage["postgres"] = {"dsn": dsn, **(postgres or {})}
    if redis_url:
        storage["redis"] = {"url": redis_url, **(redis or {})}
    return {"storage": storage, "jsonl": {"directory": str(tmp_path / "journal")}}


def lag(sidecar, store: str) -> float:
    sidecar.call(sidecar.app.stores.publish)
    return sidecar.value("agentprom_store_lag_records", store=store)


def shipped(sidecar, store: str) -> float:
    sidecar.call(sidecar.app.stores.publish)
    return sidecar.value("agentprom_store_records_total", store=store, outcome="shipped")


def journal_records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "journal" / "invocations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def caught_up(sidecar, tmp_path: Path, store: str) -> bool:
    return shipped(sidecar, store) == len(journal_records(tmp_path)) > 0 and lag(sidecar, store) == 0


# -- schema ------------------------------------------------------------------------------


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentprom", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), **(env or {})})


def test_db_upgrade_creates_the_schema_from_empty_and_upgrades_it(pg_database):
    status = _cli("db", "status", "--dsn", pg_database)
    assert status.returncode == 1 and "applied: none; latest known: 2" in status.stdout
    first = _cli("db", "upgrade", "--dsn", pg_database, "--to", "1")
    assert first.returncode == 0 and "applied 1: runtime tables" in first.stdout, first.stderr
    assert query(pg_database, "SELECT version FROM agentprom_schema_migrations") == [(1,)]
    second = _cli("db", "upgrade", env={"AGENTPROM_POSTGRES_DSN": pg_database})  # the DSN from the environment
    assert second.returncode == 0 and "applied 2: lookup indexes" in second.stdout, second.stderr
    again = _cli("db", "upgrade", "--dsn", pg_database)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert _cli("db", "status", "--dsn", pg_database).returncode == 0
    columns = {table: {c for (c,) in query(pg_database, "SELECT column_name FROM information_schema.columns "
                                                        "WHERE table_name = %s", (table,))}
               for table in ("runtime_sessions", "runtime_metrics", "runtime_phases", "tool_calls", "llm_calls")}
    assert SESSION_COLUMNS <= columns["runtime_sessions"]
    assert METRICS_COLUMNS <= columns["runtime_metrics"]
    assert PHASE_COLUMNS <= columns["runtime_phases"]
    assert TOOL_COLUMNS <= columns["tool_calls"]
    assert {"llm_call_id", "model_name", "input_tokens", "output_tokens", "cost_usd"} <= columns["llm_calls"]
    assert ("tool_calls_session",) in query(pg_database, "SELECT indexname FROM pg_indexes")


def test_db_command_errors_are_clear_and_never_show_the_password(pg_database):
    wrong = pg_database.replace("secret-pw", "not-the-password")
    done = _cli("db", "upgrade", "--dsn", wrong)
    assert done.returncode == 1
    assert "cannot connect to PostgreSQL" in done.stderr and "authentication failed" in done.stderr, done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    assert _cli("db", "upgrade").returncode == 2  # no database named


# -- a session through spans and through events -------------------------------------------


def test_sessions_from_spans_and_events_reach_every_table_and_stream(make_sidecar, tmp_path, pg_database,
                                                                    redis_server):
    sidecar = make_sidecar(store_config(tmp_path, pg_database, redis_server.url))
    with tracer(sidecar.grpc_address) as t:
        own_session(t)
        with span(t, "invoke_agent builder", gen_ai__operation__name="invoke_agent", gen_ai__agent__name="builder",
                  agent__session__id="own-2"):
            with span(t, "execute_tool search", gen_ai__operation__name="execute_tool", gen_ai__tool__name="search",
                      agent__session__id="own-2"):
                pass
    assert post_json(sidecar, "/runtime/event", run_of_events())[0] == 200
    assert post_json(sidecar, "/runtime/event", [
        {"event_type": "tool_completed", "session_id": "sess_abc123", "tool_name": "late", "tool_call_id": "t9",
         "retry_count": 2, "input_size_bytes": 10, "output_size_bytes": 20, "duration_ms": 5}])[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "postgres") and caught_up(sidecar, tmp_path, "redis"),
             what="both stores to have every journal record")

    # PostgreSQL: the specification's tables and names
    sessions = {row[0]: row[1:] for row in query(pg_database, "SELECT session_id, agent_id, model_name, status, "
                                                              "source FROM runtime_sessions")}
    assert sessions["own-1"] == ("builder", "gpt-4o", "completed", "replica-a")
    assert sessions["sess_abc123"] == ("coder", "gpt-4o", "completed", "replica-a")
    assert sessions["own-2"][0] == "builder" and sessions["own-2"][2] == "active"  # still open: seen, not ended
    metrics = query(pg_database, "SELECT total_tool_calls, total_phases, total_errors, total_recoveries, "
                                 "completion_status, checkpoint_count, memory_reads, memory_writes, context_resets, "
                                 "context_utilization_percent FROM runtime_metrics WHERE session_id = 'own-1'")
    assert metrics == [(3, 2, 1, 1, "completed", 1, 1, 1, 1, 120.0)]
    phases = query(pg_database, "SELECT phase_id, phase_name, tool_calls, errors, recoveries FROM runtime_phases "
                                "WHERE session_id = 'own-1' ORDER BY start_time")
    assert phases == [("p1", "plan", 2, 1, 1), ("build", "build", 1, 0, 0)]
    tools = query(pg_database, "SELECT tool_name, phase_id, success, error_type, retry_count FROM tool_calls "
                               "WHERE session_id = 'own-1' ORDER BY start_time")
    assert tools == [("search", "p1", False, "ToolError", 0), ("search", "p1", True, None, 1),
                     ("write", "build", True, None, 0)]
    late = query(pg_database, "SELECT tool_call_id, retry_count, input_size_bytes, output_size_bytes FROM tool_calls "
                              "WHERE tool_name = 'late'")
    assert late == [("t9", 2, 10, 20)]
    llm = query(pg_database, "SELECT session_id, model_name, input_tokens, output_tokens, cached_tokens, cost_usd "
                             "FROM llm_calls ORDER BY session_id")
    # own-1: priced from the shipped table (gpt-4o: 2.50 and 10.00 USD per million input and output tokens)
    assert llm == [("own-1", "gpt-4o", 1200, 50, None, 0.0035), ("sess_abc123", "gpt-4o", 900, 100, 300, 0.01)]

    # Redis: every runtime event in order, with stable ids; agent invocations and LLM calls
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    events = [fields for _id, fields in r.xrange("runtime_events")]
    by_session = {}
    for e in events:
        by_session.setdefault(e["session_id"], []).append(e["event_type"])
    assert by_session["sess_abc123"] == [
        "session_started", "phase_started", "tool_started", "tool_completed", "tool_failed", "tool_completed",
        "checkpoint_created", "memory_read", "memory_write", "llm_call", "phase_completed", "context_reset",
        "phase_started", "tool_completed", "phase_completed", "session_completed", "tool_completed"]
    spans = by_session["own-1"]
    assert spans[0] == "session_started" and spans[-1] == "session_completed"
    assert spans.count("tool_started") == 3 and spans.count("phase_started") == 2
    assert len({e["event_id"] for e in events}) == len(events)  # one id per event
    done = [e for e in events if e["event_type"] == "session_completed" and e["session_id"] == "sess_abc123"][0]
    assert (done["status"], done["total_tool_calls"], done["completion_status"]) == ("completed", "4", "completed")
    agents = [fields for _id, fields in r.xrange("agent_events")]
    kinds = sorted(e["event_type"] for e in agents)
    assert kinds == ["agent_invocation", "llm_call", "llm_call"]
    assert [e["agent_id"] for e in agents if e["event_type"] == "agent_invocation"] == ["builder"]

    ok, checks = sidecar.app.readiness()
    assert ok and checks["postgres"] == "shipping: up to date" and checks["redis"] == "shipping: up to date"


def test_a_second_sidecar_process_answers_for_sessions_only_the_first_saw(make_sidecar, tmp_path, pg_database):
    first = make_sidecar(store_config(tmp_path / "a", pg_database))
    assert post_json(first, "/runtime/event", run_of_events())[0] == 200
    assert post_json(first, "/runtime/event", [
        {"event_type": "session_started", "session_id": "open-1", "agent_id": "planner", "model_name": "m"},
        {"event_type": "tool_completed", "session_id": "open-1", "tool_name": "x", "duration_ms": 3}])[0] == 200
    wait_for(lambda: caught_up(first, tmp_path / "a", "postgres"), what="the first sidecar's records shipped")
    expected = {path: get_json(first, path)[1] for path in (
        "/runtime/session/sess_abc123", "/runtime/session/sess_abc123/metrics",
        "/runtime/session/sess_abc123/phases", "/runtime/session/sess_abc123/tool_calls")}

    config = tmp_path / "second.yaml"
    config.write_text(json.dumps({
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        **store_config(tmp_path / "b", pg_database, source="replica-b")}))
    process = subprocess.Popen([sys.executable, "-m", "agentprom", "serve", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin",
                                                                       "PYTHONPATH": str(ROOT / "src")})
    try:
        url = None
        for line in process.stderr:
            if "listening: otlp_http on " in line:
                url = "http://" + line.split("listening: otlp_http on ")[1].split()[0]
                break
        assert url, "the second sidecar did not start"
        for path, body in expected.items():
            status, got = get_json(url, path)
            assert status == 200, got
            if path.endswith("sess_abc123"):
                assert got == {**body, "restored": True}
            else:
                assert got == body, path
        status, listed = get_json(url, "/runtime/sessions")
        assert status == 200
        assert sorted(s["session_id"] for s in listed["sessions"]) == ["open-1", "sess_abc123"]
        assert (listed["total"], listed["from_store"], listed["completion_success_rate"]) == (2, 2, 1.0)
        open_one = get_json(url, "/runtime/session/open-1")[1]
        assert (open_one["status"], open_one["agent_id"], open_one["tool_calls"]) == ("active", "planner", 1)
        assert get_json(url, "/runtime/sessions?agent=planner")[1]["total"] == 1
        assert get_json(url, "/runtime/session/never-seen")[0] == 404
    finally:
        process.terminate()
        process.wait(15)
        process.stderr.close()


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


# -- faults -------------------------------------------------------------------------------


def tool_events(session_id: str, start: int, n: int) -> list[dict]:
    return [{"event_type": "tool_completed", "session_id": session_id, "tool_name": f"t{i}", "duration_ms": 1}
            for i in range(start, start + n)]


def test_database_stopped_mid_stream_loses_and_duplicates_nothing(make_sidecar, tmp_path, fresh_postgres):
    dsn = fresh_postgres.create_database("faults")
    sidecar = make_sidecar(store_config(tmp_path, dsn, postgres={"batch_records": 7}))
    assert post_json(sidecar, "/runtime/event", tool_events("f", 0, 40))[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "postgres"), what="the first 40 records")
    fresh_postgres.stop()
    # ingestion goes on while the database is down: events accepted, counted, journaled
    for start in range(40, 200, 40):
        assert post_json(sidecar, "/runtime/event", tool_events("f", start, 40))[0] == 200
    wait_for(lambda: lag(sidecar, "postgres") == 160, what="the lag to grow to 160 records")
    sidecar.call(sidecar.app.stores.publish)
    assert sidecar.value("agentprom_store_up", store="postgres") == 0
    assert sidecar.value("agentprom_store_errors_total", store="postgres", reason="unavailable") >= 1
    assert sidecar.value("agentprom_store_lag_seconds", store="postgres") > 0
    ok, checks = sidecar.app.readiness()
    assert ok and checks["postgres"].startswith("behind: postgres"), checks  # still ready: metrics still work
    assert sidecar.value("agent_tool_calls_total", agent="unknown", tool="t199", status="ok") == 1

    fresh_postgres.start()
    wait_for(lambda: caught_up(sidecar, tmp_path, "postgres"), what="the lag to drain")
    rows = query(dsn, "SELECT tool_name, count(*) FROM tool_calls GROUP BY tool_name")
    assert len(rows) == 200 and all(n == 1 for _name, n in rows)
    assert query(dsn, "SELECT records_shipped FROM agentprom_journal_positions") == [(200,)]
    assert sidecar.app.readiness()[1]["postgres"] == "shipping: up to date"


def test_redis_stopped_and_restarted_gets_every_event(make_sidecar, tmp_path, make_redis_server):
    fresh_redis = make_redis_server(persistent=True)  # the append-only file keeps the streams and the position
    sidecar = make_sidecar(store_config(tmp_path, redis_url=fresh_redis.url, redis={"batch_records": 5}))
    assert post_json(sidecar, "/runtime/event", tool_events("r", 0, 30))[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "redis"), what="the first 30 records")
    fresh_redis.stop()
    assert post_json(sidecar, "/runtime/event", tool_events("r", 30, 30))[0] == 200
    wait_for(lambda: lag(sidecar, "redis") == 30, what="the lag to reach 30 records")
    assert sidecar.app.readiness()[0]
    fresh_redis.start()
    wait_for(lambda: caught_up(sidecar, tmp_path, "redis"), what="the lag to drain")
    events = [f for _id, f in fresh_redis.client(decode_responses=True).xrange("runtime_events")]
    completed = {e["tool_name"] for e in events if e["event_type"] == "tool_completed"}
    assert completed == {f"t{i}" for i in range(60)}  # at least once; the ids tell repeats apart
    assert len({e["event_id"] for e in events}) == 61  # 60 calls and the session's start


def test_kill_9_mid_shipment_then_restart_ships_every_record_once(tmp_path, pg_database):
    config = tmp_path / "agentprom.yaml"
    config.write_text(json.dumps({
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        **store_config(tmp_path, pg_database, postgres={"batch_records": 1})}))

    def serve() -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen([sys.executable, "-m", "agentprom", "serve", "--config", str(config)],
                                   stderr=subprocess.PIPE, text=True,
                                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")})
        for line in process.stderr:
            if "listening: otlp_http on " in line:
                return process, "http://" + line.split("listening: otlp_http on ")[1].split()[0]
        pytest.fail("the sidecar did not start")

    def rows() -> int:
        try:
            return query(pg_database, "SELECT count(*) FROM tool_calls")[0][0]
        except psycopg.errors.UndefinedTable:  # the shipper has not created the tables yet
            return 0

    process, url = serve()
    try:
        for start in range(0, 2000, 500):
            assert post_json(url, "/runtime/event", tool_events("k", start, 500))[0] == 200
        # one record per transaction: the shipper is mid-way when the process dies
        wait_for(lambda: rows() >= 50, what="some rows")
        children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
        assert children  # the shippers' process
    finally:
        process.kill()
        process.wait(10)
        process.stderr.close()
    assert rows() < 2000  # killed mid-shipment
    # the shippers' process notices and ends: no orphan writes beside the next sidecar
    wait_for(lambda: not any(alive(pid) for pid in children), what="the orphaned shipper process to end")
    process, url = serve()
    try:
        wait_for(lambda: rows() == 2000, timeout=60,
                 what="every record after the restart")
        assert query(pg_database, "SELECT count(DISTINCT tool_name), count(*) FROM tool_calls") == [(2000, 2000)]
        assert query(pg_database, "SELECT records_shipped FROM agentprom_journal_positions")[0][0] >= 2000
    finally:
        process.terminate()
        process.wait(15)
        process.stderr.close()


def test_a_refused_password_is_reported_clearly_and_ingestion_goes_on(make_sidecar, tmp_path, pg_database, caplog,
                                                                       capfd, monkeypatch):
    monkeypatch.setenv("WRONG_PG_PASSWORD", "definitely-wrong-pw")
    sidecar = make_sidecar(store_config(tmp_path, pg_database, postgres={"password_env": "WRONG_PG_PASSWORD"}))
    assert post_json(sidecar, "/runtime/event", tool_events("p", 0, 5))[0] == 200
    wait_for(lambda: sidecar.call(sidecar.app.stores.publish) or
             sidecar.value("agentprom_store_errors_total", store="postgres", reason="auth") >= 1,
             what="the refused password to be counted")
    assert sidecar.value("agent_tool_calls_total", agent="unknown", tool="t4", status="ok") == 1
    ok, checks = sidecar.app.readiness()
    assert ok and "auth" in checks["postgres"] and "password authentication failed" in checks["postgres"]
    child_log = capfd.readouterr().err  # the shippers' process logs to the stderr it inherited
    assert "postgres store postgresql://agentprom:***@127.0.0.1" in child_log and "(auth: " in child_log, child_log
    shown = checks["postgres"] + caplog.text + sidecar.scrape() + child_log
    assert "definitely-wrong-pw" not in shown and "secret-pw" not in shown


def test_report_from_the_database_matches_the_report_from_the_journal(make_sidecar, tmp_path, pg_database):
    sidecar = make_sidecar(store_config(tmp_path, pg_database))
    with tracer(sidecar.grpc_address) as t:
        own_session(t)
    assert post_json(sidecar, "/runtime/event", run_of_events())[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "postgres"), what="every record in the database")
    from_journal = _cli("report", str(tmp_path / "journal"), "--format", "json")
    from_database = _cli("report", "--postgres", pg_database, "--format", "json")
    assert from_journal.returncode == from_database.returncode == 0, from_database.stderr
    a, b = json.loads(from_journal.stdout), json.loads(from_database.stdout)
    for key in ("totals", "by_agent", "by_phase", "period", "parallelism"):
        assert a[key] == b[key], key
    assert a["totals"]["sessions"] == 2 and a["totals"]["invocations"] == 9
    assert b["source"]["database"] == pg_database.replace(":secret-pw@", ":***@")
    table = _cli("report", "--postgres", pg_database)
    assert table.returncode == 0 and table.stdout.startswith("database: postgresql://agentprom:***@")
    assert "secret-pw" not in table.stdout + table.stderr


# -- what the review found ------------------------------------------------------------------


def test_values_postgres_cannot_hold_never_stop_the_journal(make_sidecar, tmp_path, pg_database):
    """NUL in text is replaced (PostgreSQL refuses it); a record the database still refuses (here: a
    constraint a DBA added) is skipped, logged and counted, and everything after it ships."""
    _cli("db", "upgrade", "--dsn", pg_database)
    query(pg_database, "ALTER TABLE tool_calls ADD CONSTRAINT no_forbidden CHECK (tool_name <> 'forbidden')")
    sidecar = make_sidecar(store_config(tmp_path, pg_database))
    events = tool_events("v", 0, 3) + [
        {"event_type": "tool_completed", "session_id": "v", "tool_name": "nul\u0000name", "duration_ms": 1},
        {"event_type": "tool_completed", "session_id": "v", "tool_name": "forbidden", "duration_ms": 1},
    ] + tool_events("v", 3, 3)
    assert post_json(sidecar, "/runtime/event", events)[0] == 200
    wait_for(lambda: lag(sidecar, "postgres") == 0 and shipped(sidecar, "postgres") == 7, what="the rest shipped")
    names = sorted(name for (name,) in query(pg_database, "SELECT tool_name FROM tool_calls"))
    assert names == ["nul\ufffdname", "t0", "t1", "t2", "t3", "t4", "t5"]
    stored = query(pg_database, "SELECT record->>'tool' FROM tool_calls WHERE tool_name LIKE 'nul%'")
    assert stored == [("nul\ufffdname",)]
    sidecar.call(sidecar.app.stores.publish)
    assert sidecar.value("agentprom_store_records_total", store="postgres", outcome="rejected") == 1
    assert sidecar.value("agentprom_store_errors_total", store="postgres", reason="rejected") == 0


def test_two_processes_cannot_move_one_journal_position(pg_database, tmp_path):
    """A second shipper of the same journal (an orphan, a shared id) is refused, never moves it back."""
    import asyncio

    from agentprom.config.storage_schema import PostgresConfig
    from agentprom.stores.cursor import JournalCursor, Position, PositionConflict
    from agentprom.stores.postgres import PostgresStore

    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "invocations.jsonl").write_text("".join(json.dumps(
        {"invocation_id": f"c{i}", "kind": "tool_call", "session_id": "s", "tool": "t", "duration_ms": 1,
         "success": True, "timestamp": "2026-02-20T02:15:00.000Z"}) + "\n" for i in range(10)))
    batch = JournalCursor(journal).read(Position(), 4)

    async def run() -> None:
        first = PostgresStore(PostgresConfig(dsn=pg_database), "a", "journal-1")
        second = PostgresStore(PostgresConfig(dsn=pg_database), "b", "journal-1")
        await first.open()
        await second.open()
        try:
            assert await first.ship(batch.records, Position(), batch.position) == 0
            with pytest.raises(PositionConflict):
                await second.ship(batch.records, Position(), batch.position)  # it thinks nothing was shipped
            assert await second.position() == batch.position
        finally:
            await first.close()
            await second.close()

    asyncio.run(run())
    assert query(pg_database, "SELECT source, byte_offset, records_shipped FROM agentprom_journal_positions") == [
        ("a", batch.position.offset, 4)]


def test_the_shipper_process_is_restarted_and_a_stop_keeps_to_the_grace(make_sidecar, tmp_path, fresh_postgres,
                                                                         monkeypatch):
    import signal

    from agentprom.stores import process as store_process

    monkeypatch.setattr(store_process, "RESTART_SECONDS", 0.0)
    dsn = fresh_postgres.create_database("lifecycle")
    sidecar = make_sidecar({**store_config(tmp_path, dsn), "server": {"shutdown_grace_seconds": 2}})
    assert post_json(sidecar, "/runtime/event", tool_events("l", 0, 10))[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "postgres"), what="the first records")
    child = sidecar.app.stores.process.process
    assert sidecar.app.helper_pids() == [child.pid]  # its memory counts against queue.memory_limit_mib
    os.kill(child.pid, signal.SIGKILL)
    wait_for(lambda: not child.is_alive(), what="the shipper process to die")
    assert sidecar.app.helper_pids() == []
    assert "behind: the shipping process exited (code -9)" in sidecar.app.readiness()[1]["postgres"]
    sidecar.call(sidecar.app.stores.publish)  # the periodic check: started again, counted
    assert sidecar.value("agentprom_store_errors_total", store="postgres", reason="process_exit") == 1
    assert post_json(sidecar, "/runtime/event", tool_events("l", 10, 10))[0] == 200
    wait_for(lambda: query(dsn, "SELECT count(*) FROM tool_calls")[0][0] == 20, what="the new process to ship")
    assert sidecar.app.helper_pids() == [sidecar.app.stores.process.process.pid] != [child.pid]

    fresh_postgres.stop()  # a stop with the database down: shipping cannot finish, the grace bounds it
    assert post_json(sidecar, "/runtime/event", tool_events("l", 20, 10))[0] == 200
    wait_for(lambda: lag(sidecar, "postgres") == 10, what="the lag")
    child = sidecar.app.stores.process.process
    started = time.monotonic()
    sidecar.call(sidecar.app.stop(), timeout=30)
    assert time.monotonic() - started < 2 + 6 and not child.is_alive()


def test_a_redis_password_from_a_file_wins_over_the_url(make_sidecar, tmp_path, make_redis_server):
    server = make_redis_server(password="right-pw")
    secret = tmp_path / "redis-password"
    secret.write_text("right-pw\n")
    url = server.url.replace("right-pw", "stale-pw")  # an old password left in the address
    sidecar = make_sidecar(store_config(tmp_path, redis_url=url, redis={"password_file": str(secret)}))
    assert post_json(sidecar, "/runtime/event", tool_events("pw", 0, 3))[0] == 200
    wait_for(lambda: caught_up(sidecar, tmp_path, "redis"), what="the records in Redis")
    assert server.client().xlen("runtime_events") == 4  # the session's start and three calls
