"""Shipping to the stores: records per second into PostgreSQL and Redis, and ingest with stores on and off.

Part 1 writes a journal of N records (the sidecar's own writer and record format: tool calls, LLM
calls, phases, sessions, events) and ships it from the start with the real shippers, one store at a
time: records per second from the first batch to the last commit.

Part 2 runs the sidecar (its own process) three times under the same OTLP/gRPC load as
bench/ingest.py: journal off, journal on, journal and both stores on; spans acknowledged per second
and the sidecar's CPU per 1,000 spans, the shippers' process's CPU beside it, the stores' lag at the
end, and the ratios, in one run.

Servers: ``--postgres DSN`` and ``--redis URL``, or, by default, throwaway ones started from the
Debian binaries the test command installs (tests/servers.py).

    python3 bench/stores.py [--quick] [--records N] [--seconds S] [--postgres DSN] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from workload import SidecarProcess, cpu_seconds, emit, http_get  # noqa: E402


def journal_of(directory: Path, records: int) -> int:
    """Write ``records`` records as the sidecar writes them: sessions of 8 tool calls, 2 LLM calls,
    one phase, a start event and the session record (13 records each)."""
    from agentprom.sessions.timestamps import iso
    from agentprom.sinks.jsonl import JsonlWriter

    writer = JsonlWriter(directory, rotate_bytes=64 << 20, keep_files=100, queue_records=records + 100)
    writer.prepare()
    writer.start()
    n = 0
    t0 = 1_780_000_000.0
    session = 0
    while n < records:
        sid = f"bench-{session:07d}"
        base = {"agent": "coder", "session_id": sid, "phase": "work", "phase_id": "p1"}
        batch = [{"invocation_id": f"{sid}-start", "kind": "event", "event_type": "session_started",
                  "timestamp": iso(t0), "duration_ms": 0.0, "success": True, **base}]
        for i in range(8):
            batch.append({"invocation_id": f"{sid}-t{i}", "kind": "tool_call", "tool": f"tool{i % 3}",
                          "timestamp": iso(t0 + i), "duration_ms": 12.5, "success": i != 3, "attempt": 1,
                          "error_class": "Timeout" if i == 3 else None, "model": None,
                          "trace_id": f"{session:032x}", "span_id": f"{i:016x}", **base})
        for i in range(2):
            batch.append({"invocation_id": f"{sid}-l{i}", "kind": "llm_call", "model": "gpt-4o", "provider": "openai",
                          "timestamp": iso(t0 + 10 + i), "duration_ms": 800.0, "success": True, "attempt": 1,
                          "error_class": None, "tokens": 1100, "input_tokens": 1000, "output_tokens": 100,
                          "cached_tokens": 0, "cost": 0.0035, **base})
        batch.append({"invocation_id": f"{sid}-p1", "kind": "phase", "status": "completed", "timestamp": iso(t0),
                      "end_timestamp": iso(t0 + 12), "duration_ms": 12000.0, "success": True, "tool_calls": 8,
                      "llm_calls": 2, "errors": 1, "recoveries": 0, **base})
        batch.append({"invocation_id": sid, "kind": "session", "status": "completed", "timestamp": iso(t0),
                      "end_timestamp": iso(t0 + 13), "duration_ms": 13000.0, "success": True, "tool_calls": 8,
                      "tool_errors": 1, "llm_calls": 2, "llm_errors": 0, "recoveries": 0, "phases": 1,
                      "phases_completed": 1, "tool_latency_ms": 100.0, "model": "gpt-4o", "provider": "openai",
                      "continuity_score": 90.0, **{**base, "phase": None}})
        for record in batch[:records - n]:
            writer.append(record)
            n += 1
        session += 1
        t0 += 20
    writer.stop(60)
    return n


async def ship_all(store, directory: Path, batch_records: int, expected: int) -> dict:
    from agentprom.stores.cursor import JournalCursor, Position

    cursor = JournalCursor(directory)
    await store.open()
    position = Position()
    shipped = 0
    t0 = time.perf_counter()
    while True:
        batch = await asyncio.to_thread(cursor.read, position, batch_records)
        if batch.position == position:
            break
        await store.ship(batch.records, position, batch.position)
        shipped += len(batch.records)
        position = batch.position
    seconds = time.perf_counter() - t0
    await store.close()
    assert shipped == expected, (shipped, expected)
    return {"records": shipped, "seconds": round(seconds, 2), "records_per_s": round(shipped / seconds)}


def count_in_postgres(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("tool_calls", "llm_calls", "runtime_phases"))


def shipping(dsn: str, url: str, records: int, batch_records: int) -> dict:
    from agentprom.config.storage_schema import PostgresConfig, RedisConfig
    from agentprom.stores.postgres import PostgresStore
    from agentprom.stores.redis_streams import RedisStore

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        written = journal_of(directory, records)
        pg = asyncio.run(ship_all(PostgresStore(PostgresConfig(dsn=dsn, batch_records=batch_records), "bench", "bench-shipping"),
                                  directory, batch_records, written))
        calls_and_phases = sum(1 for line in (directory / "invocations.jsonl").open()
                               if json.loads(line)["kind"] in ("tool_call", "llm_call", "phase"))
        rows = count_in_postgres(dsn)
        rd = asyncio.run(ship_all(RedisStore(RedisConfig(url=url, maxlen=10 * written, batch_records=batch_records),
                                             "bench", "bench-shipping"), directory, batch_records, written))
    return {"journal_records": written, "batch_records": batch_records, "postgres": pg, "redis": rd,
            "postgres_rows_match": rows == calls_and_phases}


def ingest(seconds: float, senders: int, dsn: str, url: str) -> dict:
    from ingest import run_load

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # one process (server.workers 1): the only child process is then the shippers', whose CPU is
        # reported apart; cpu_s_per_1000_spans counts the whole process tree
        one = {"server": {"workers": 1}}
        configs = {
            "journal_off": json.dumps(one),
            "journal_on": json.dumps({**one, "jsonl": {"enabled": True, "directory": f"{tmp}/j1"}}),
            "stores_on": json.dumps({**one, "jsonl": {"directory": f"{tmp}/j2"},
                                     "storage": {"source": "bench-ingest", "postgres": {"dsn": dsn}, "redis": {"url": url}}}),
        }
        for name, config in configs.items():
            sidecar = SidecarProcess(config)
            try:
                run_load(sidecar.grpc, sidecar.pid, min(seconds, 2.0), senders, 4)  # warm-up
                children = [int(p) for p in Path(f"/proc/{sidecar.pid}/task/{sidecar.pid}/children").read_text().split()]
                before, t0 = sum(cpu_seconds(pid) for pid in children), time.monotonic()
                results[name] = run_load(sidecar.grpc, sidecar.pid, seconds, senders, 4)
                if children:  # the shippers' process: its CPU is the stores' cost, beside the sidecar's
                    spent = sum(cpu_seconds(pid) for pid in children) - before
                    results[name]["shipper_process_cpu_cores_used"] = round(spent / (time.monotonic() - t0), 2)
                if name == "stores_on":
                    time.sleep(1.0)
                    text = http_get(f"http://{sidecar.metrics}/metrics").decode()
                    results[name]["store_lag_records"] = {
                        line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("agentprom_store_lag_records{")}
            finally:
                sidecar.stop()
    off, on = results["journal_off"], results["stores_on"]
    results["stores_on_vs_journal_off_throughput"] = round(on["spans_per_s"] / off["spans_per_s"], 3)
    results["stores_on_vs_journal_on_throughput"] = round(on["spans_per_s"] / results["journal_on"]["spans_per_s"], 3)
    if off["cpu_s_per_1000_spans"] and on["cpu_s_per_1000_spans"]:
        results["stores_on_vs_journal_off_cpu_per_span"] = round(on["cpu_s_per_1000_spans"]
                                                                 / off["cpu_s_per_1000_spans"], 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--records", type=int, default=None, help="journal records to ship (default 100000)")
    parser.add_argument("--batch-records", type=int, default=500, help="records per transaction (default 500)")
    parser.add_argument("--seconds", type=float, default=None, help="ingest load per configuration (default 10)")
    parser.add_argument("--senders", type=int, default=None, help="sender processes (default 2)")
    parser.add_argument("--postgres", metavar="DSN", help="an empty database to use (default: a throwaway server)")
    parser.add_argument("--redis", metavar="URL", help="a Redis to use (default: a throwaway server)")
    args = parser.parse_args()
    records = args.records or (2000 if args.quick else 100_000)
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    senders = args.senders or (1 if args.quick else 2)

    with tempfile.TemporaryDirectory() as tmp:
        servers = []
        dsn, url = args.postgres, args.redis
        if dsn is None or url is None:
            from tests.servers import PostgresServer, RedisServer

            if dsn is None:
                servers.append(PostgresServer(Path(tmp) / "pg"))
                dsn = servers[-1].create_database("bench_shipping")
            if url is None:
                servers.append(RedisServer(Path(tmp) / "redis"))
                url = servers[-1].url
        try:
            from agentprom.stores import migrations
            from agentprom.config.storage_schema import PostgresConfig
            from agentprom.stores.postgres import PostgresStore

            async def prepare() -> None:  # the schema once, so the measured shipping is upserts only
                store = PostgresStore(PostgresConfig(dsn=dsn), "bench")
                await store.open()
                await store.close()

            asyncio.run(prepare())
            result = {"bench": "stores", "latest_schema": migrations.LATEST,
                      "shipping": shipping(dsn, url, records, args.batch_records),
                      "ingest": ingest(seconds, senders, dsn, url)}
        finally:
            for server in servers:
                server.close()
    emit(result)


if __name__ == "__main__":
    main()
