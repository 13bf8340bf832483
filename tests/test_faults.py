"""Faults: SIGTERM in the middle of load loses nothing that was accepted; a full disk stops only the log."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from agentprom.sinks.jsonl import LOG_NAME, ReadStats, read_records
from bench.soak import Sender, Sidecar, export_request
from tests.exposition import text_samples
from tests.otel import tracer
from tests.runtime_api import post_json
from tests.small_disk import fill, small_disk
from tests.test_jsonl import wait_for


def test_sigterm_under_load_counts_every_accepted_span(tmp_path):
    config = {
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        "queue": {"max_spans": 4096},
    }
    sidecar = Sidecar(config, tmp_path / "sidecar.log")
    try:
        now = time.monotonic()
        # stop_retrying=now: after the SIGTERM a sender gives up at its first failure
        senders = [
            Sender(protocol, sidecar.addresses[f"otlp_{protocol}"], export_request(128, n), 128, now + 60, now)
            for n, protocol in enumerate(["grpc", "grpc", "http", "http", "http"])
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while sum(s.accepted for s in senders) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        exit_code = sidecar.stop()  # SIGTERM while the senders are still sending
    for sender in senders:
        sender.join(30)
        assert not sender.is_alive()
    log = (tmp_path / "sidecar.log").read_text()
    assert exit_code == 0, log
    accepted = sum(s.accepted for s in senders)
    sent = sum(s.sent for s in senders)
    counted = int(re.search(r"stopped: (\d+) spans received and counted in total", log)[1])
    assert accepted >= 20_000
    # every answered request was counted; at most the unanswered in-flight ones on top
    assert accepted <= counted <= sent, (accepted, counted, sent)
    assert "translation queue drained" in log


# -- disk full at run time -----------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def readiness(sidecar: Sidecar) -> tuple[int, str]:
    """/-/ready's status and its jsonl check's detail."""
    status, body = _get(f"http://{sidecar.addresses['metrics']}/-/ready")
    return status, json.loads(body)["checks"]["jsonl"]


def scrape(sidecar: Sidecar) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = _get(f"http://{sidecar.addresses['metrics']}/metrics")
    assert status == 200
    return {(name, labels): value for name, labels, value in text_samples(text)}


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def tool_events(names: list[str]) -> list[dict]:
    return [{"event_type": "tool_completed", "session_id": "disk", "agent": "a", "tool_name": name,
             "duration_ms": 1} for name in names]


def test_disk_full_at_run_time_keeps_serving_and_resumes_without_losing_a_record(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        config = {
            "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
            "jsonl": {"enabled": True, "directory": str(disk.mountpoint / "log"), "queue_records": 100},
        }
        sidecar = Sidecar(config, tmp_path / "sidecar.log", command_prefix=disk.command_prefix)
        try:
            seen = disk.visible(sidecar.process.pid)
            logfile = seen / "log" / LOG_NAME
            url = "http://" + sidecar.addresses["otlp_http"]
            posted: list[str] = []

            def post(n: int) -> None:
                names = [f"t{len(posted) + i:04d}" for i in range(n)]
                assert post_json(url, "/runtime/event", tool_events(names))[0] == 200
                posted.extend(names)

            def lines() -> list[bytes]:
                return logfile.read_bytes().splitlines()

            post(50)
            wait_for(lambda: len(lines()) == 50, what="50 records on disk")
            filler = fill(seen)
            # the log's last page may still take a record or two; the first that does not fit fails
            for _ in range(200):
                post(1)
                if "degraded" in readiness(sidecar)[1]:
                    break
            status, detail = wait_for(lambda: (lambda r: r if "degraded" in r[1] else None)(readiness(sidecar)),
                                      what="the fault in /-/ready")
            assert status == 200, detail  # still ready: spans are received and counted, only the log waits
            assert "No space left on device" in detail, detail
            during_fault = len(posted)

            # spans keep being received and counted, their records wait in the queue
            with tracer(sidecar.addresses["otlp_grpc"]) as t:
                for _ in range(20):
                    t.start_span("chat gpt-4o", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                        "gen_ai.agent.name": "a", "gen_ai.usage.input_tokens": 10}).end()
            llm = {"agent": "a", "provider": "unknown", "model": "gpt-4o", "operation": "chat", "status": "ok"}
            wait_for(lambda: sample(scrape(sidecar), "agent_llm_calls_total", **llm) == 20, what="20 LLM calls")
            # a burst beyond the writer queue: the oldest records wait, the newest are dropped and counted
            post(300)
            samples = scrape(sidecar)
            assert sample(samples, "agentprom_jsonl_writable") == 0
            assert sample(samples, "agentprom_jsonl_write_errors_total") >= 1
            dropped = sample(samples, "agentprom_jsonl_records_total", outcome="dropped")
            waiting = sample(samples, "agentprom_jsonl_queue_records")
            written = sample(samples, "agentprom_jsonl_records_total", outcome="written")
            assert waiting >= 100 and dropped > 0
            assert written + waiting + dropped == len(posted) + 40  # 20 LLM calls + 20 one-span sessions
            assert readiness(sidecar)[0] == 200

            filler.unlink()  # space returns
            wait_for(lambda: readiness(sidecar)[1] == "writing", what="writing to resume")
            post(10)
            wait_for(lambda: len(lines()) == written + waiting + 10, what="every waiting record on disk")
            samples = scrape(sidecar)
            assert sample(samples, "agentprom_jsonl_writable") == 1
            assert sample(samples, "agentprom_jsonl_queue_records") == 0
            assert sample(samples, "agentprom_jsonl_records_total", outcome="dropped") == dropped
            # read now: in a private mount namespace the disk goes away with the process
            final = logfile.read_bytes()
        finally:
            exit_code = sidecar.stop()
    records = [json.loads(line) for line in final.splitlines()]  # every line is one whole JSON object
    (tmp_path / LOG_NAME).write_bytes(final)
    stats = ReadStats()
    assert len(list(read_records([tmp_path / LOG_NAME], stats))) == len(records) and stats.malformed == 0
    kept = [r["tool"] for r in records if r["kind"] == "tool_call"]
    # nothing written before or during the fault was lost, in order; the drops are the newest of
    # the burst, exactly as many as counted
    cut = len(kept) - 10
    assert kept == posted[:cut] + posted[-10:]
    assert during_fault < cut < len(posted) - 10
    assert len(posted) - 10 - cut == dropped
    assert sum(r["kind"] == "llm_call" for r in records) == 20
    log = (tmp_path / "sidecar.log").read_text()
    assert exit_code == 0, log
    assert "JSONL log write failed" in log and "JSONL log writable again" in log
