"""Faults: SIGTERM in the middle of load loses nothing that was accepted; a full disk stops only the log."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import set_span_in_context, use_span

from agentprom.sinks.jsonl import LOG_NAME, ReadStats, log_files, read_records
from bench.soak import Sender, Sidecar, export_request
from tests.conftest import workers_config
from tests.exposition import text_samples
from tests.otel import tracer
from tests.runtime_api import get_json, post_json
from tests.small_disk import fill, small_disk
from agentprom.demo import plan as demo_plan
from agentprom.demo.send import emit as demo_emit
from tests.test_jsonl import wait_for
from tests.test_sessions_spans import span

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_counts_every_accepted_span(tmp_path, workers):
    config = {
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0",
                   **workers_config(workers)},
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


def tool_events_for(session_id: str, names: list[str]) -> list[dict]:
    return [{"event_type": "tool_completed", "session_id": session_id, "agent": "a", "tool_name": name,
             "duration_ms": 1} for name in names]


def tool_events(names: list[str]) -> list[dict]:
    return tool_events_for("disk", names)


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


# -- SIGTERM under load with the JSONL log, then a restart -----------------------------------


class AckingExporter:
    """Wraps a real OTLP exporter and remembers every span the sidecar acknowledged, and when."""

    def __init__(self, inner, epoch: list[int]) -> None:
        self.inner, self.epoch = inner, epoch
        self.lock = threading.Lock()
        #: span id (hex) -> (session id, gen_ai.operation.name or agent.span.kind, instance that acked it)
        self.acked: dict[str, tuple[str, str, int]] = {}

    def export(self, spans):
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            with self.lock:
                for s in spans:
                    attrs = s.attributes or {}
                    what = attrs.get("gen_ai.operation.name") or attrs.get("agent.span.kind") or ""
                    if attrs.get("agent.span.kind") == "session":
                        what = "session"
                    self.acked[f"{s.context.span_id:016x}"] = (attrs.get("agent.session.id", ""), what,
                                                               self.epoch[0])
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class Agent:
    """A real SDK pipeline (BatchSpanProcessor + OTLP exporter) to the sidecar, acknowledging spans."""

    def __init__(self, addresses: dict[str, str], protocol: str, epoch: list[int]) -> None:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            inner = Grpc(endpoint=addresses["otlp_grpc"], insecure=True)
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

            inner = Http(endpoint=f"http://{addresses['otlp_http']}/v1/traces")
        self.exporter = AckingExporter(inner, epoch)
        self.provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{protocol}"}))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter, schedule_delay_millis=50))
        self.tracer = self.provider.get_tracer("agentprom-tests")

    def close(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()


class DemoLoad(threading.Thread):
    """The demo agent's sessions (agentprom demo), one after another until stopped."""

    def __init__(self, agent: Agent, seed: int) -> None:
        super().__init__(daemon=True)
        self.agent, self.seed = agent, seed
        self.halt = threading.Event()

    def run(self) -> None:
        rng = random.Random(self.seed)
        while not self.halt.wait(0.02):
            session = demo_plan.plan_session(rng, rng.choice(list(demo_plan.AGENTS)))
            demo_emit(self.agent.tracer, session, time.time_ns())


def split_session_part(t, root, session_id: str, phase: str) -> None:
    """One phase with a failed tool call, its retry and an LLM call, below an open session span."""
    sid = {"agent__session__id": session_id, "gen_ai__agent__name": "splitter"}
    tool = {"gen_ai__operation__name": "execute_tool", "gen_ai__tool__name": "search", **sid}
    with use_span(root, end_on_exit=False):
        with span(t, f"phase {phase}", agent__span__kind="phase", agent__phase__name=phase, **sid):
            with span(t, "execute_tool search", fail=True, **tool):
                pass
            with span(t, "execute_tool search", agent__retry__attempt=2, **tool):
                pass
            with span(t, "chat gpt-4o", gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
                       gen_ai__usage__input_tokens=100, gen_ai__usage__output_tokens=10, **sid):
                pass


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_flushes_the_log_and_a_restart_counts_each_invocation_once(tmp_path, workers):
    log_dir = tmp_path / "log"
    config = {
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0",
                   **workers_config(workers)},
        "jsonl": {"enabled": True, "directory": str(log_dir)},
        # While the sidecar restarts, the agents' SDK batch processors fill their queues and drop
        # spans (the SDK's choice): a dropped session root leaves acknowledged calls waiting for
        # it. Their wait is short here, and the checks below start once nothing waits.
        "attribution": {"max_wait_seconds": 2},
    }
    first = Sidecar(config, tmp_path / "first.log")
    addresses = dict(first.addresses)
    epoch = [1]  # which instance acknowledges: 1 before the restart, 2 after
    agents = [Agent(addresses, protocol, epoch) for protocol in ("grpc", "grpc", "http")]
    loads = [DemoLoad(agent, seed) for seed, agent in enumerate(agents)]
    split = Agent(addresses, "grpc", epoch)
    second = None
    try:
        # sessions that span the restart: half before it (flushed to the first instance), half after
        roots = [split.tracer.start_span("session", attributes={
            "agent.session.id": f"split-{n}", "agent.span.kind": "session", "gen_ai.agent.name": "splitter"})
            for n in range(3)]
        straddling = []
        for n, root in enumerate(roots):
            split_session_part(split.tracer, root, f"split-{n}", "before")
            # a phase open across the restart, with a call that ended before it: that call is
            # waiting for its phase span when the SIGTERM comes
            sid = {"agent.session.id": f"split-{n}", "gen_ai.agent.name": "splitter"}
            phase = split.tracer.start_span("phase straddle", context=set_span_in_context(root), attributes={
                "agent.span.kind": "phase", "agent.phase.name": "straddle", **sid})
            split.tracer.start_span("execute_tool fetch", context=set_span_in_context(phase), attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch", **sid}).end()
            straddling.append(phase)
        assert split.provider.force_flush()
        url = "http://" + addresses["otlp_http"]
        assert post_json(url, "/runtime/event", [
            {"event_type": "session_started", "session_id": "split-events", "agent": "evented"},
            *tool_events_for("split-events", ["e1", "e2"]),
        ])[0] == 200

        for load in loads:
            load.start()
        acked = lambda: sum(len(a.exporter.acked) for a in agents)  # noqa: E731
        wait_for(lambda: acked() >= 1500, timeout=60, what="load on the first instance")
        first_exit = first.stop()  # SIGTERM while the agents go on exporting
        epoch[0] = 2
        config["server"] = {name: addresses[name] for name in ("otlp_grpc", "otlp_http", "metrics")}
        second = Sidecar(config, tmp_path / "second.log")  # the same addresses: the agents' retries reach it
        at_restart = acked()
        wait_for(lambda: acked() >= at_restart + 1500, timeout=60, what="load on the second instance")
        for load in loads:
            load.halt.set()
            load.join(30)
        for agent in agents:
            agent.close()
        for n, root in enumerate(roots):
            straddling[n].end()
            split_session_part(split.tracer, root, f"split-{n}", "after")
            root.end()
        split.close()
        assert post_json(url, "/runtime/event", [
            *tool_events_for("split-events", ["e3"]),
            {"event_type": "session_completed", "session_id": "split-events"},
        ])[0] == 200

        # every acknowledged span resolved (calls whose session root was dropped by the SDK: after
        # the short wait, as fallbacks), so each session the calls name is known
        wait_for(lambda: sample(scrape(second), "agentprom_attribution_pending_spans") == 0, timeout=60,
                 what="no span waiting for its ancestors")
        spans = {sid: v for agent in [*agents, split] for sid, v in agent.exporter.acked.items()}
        calls: dict[str, Counter] = {}
        for session_id, what, _instance in spans.values():
            if what in ("execute_tool", "chat"):
                calls.setdefault(session_id, Counter())[what] += 1
        # the restarted instance knows every session through the log: each call exactly once
        for session_id, counts in calls.items():
            status, body = get_json(url, f"/runtime/session/{session_id}")
            assert status == 200, session_id
            assert (body["tool_calls"], body["llm_calls"]) == (counts["execute_tool"], counts["chat"]), session_id
        for n in range(3):
            body = get_json(url, f"/runtime/session/split-{n}")[1]
            assert (body["status"], body["tool_calls"], body["llm_calls"], body["retries"]) == ("completed", 5, 2, 2)
            assert (body["phases"], body["restored"]) == (3, True)
        body = get_json(url, "/runtime/session/split-events")[1]
        assert (body["status"], body["tool_calls"], body["restored"]) == ("completed", 3, True)
    finally:
        for load in loads:
            load.halt.set()
        exits = [first.stop() if first.process.poll() is None else first.process.returncode]
        if second is not None:
            exits.append(second.stop())
    logs = [(tmp_path / name).read_text() for name in ("first.log", "second.log")]
    assert first_exit == 0 and exits == [0, 0], logs
    assert "translation queue drained" in logs[0]
    # the SIGTERM came under load: the first instance acknowledged spans, and so did the second
    assert {instance for _s, _w, instance in spans.values()} == {1, 2}

    records = [json.loads(line) for path in log_files(log_dir) for line in path.read_bytes().splitlines()]
    call_records = [r for r in records if r["kind"] in ("tool_call", "llm_call")]
    assert all(n == 1 for n in Counter(r["invocation_id"] for r in call_records).values())
    # every acknowledged call is in the log once: in-flight requests finished, the queue was
    # translated and the log flushed before the first instance exited; nothing was written twice
    acked_calls = {sid for sid, (_s, what, _i) in spans.items() if what in ("execute_tool", "chat")}
    assert sorted(r["span_id"] for r in call_records if r.get("span_id")) == sorted(acked_calls)
    session_records = Counter(r["session_id"] for r in records if r["kind"] == "session")
    acked_roots = {session_id for session_id, what, _i in spans.values() if what == "session"}
    assert session_records == Counter(acked_roots | {"split-events"})

    report = subprocess.run([sys.executable, "-m", "agentprom", "report", str(log_dir), "--format", "json"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert report.returncode == 0, report.stderr
    totals = json.loads(report.stdout)["totals"]
    tools = sum(c["execute_tool"] for c in calls.values()) + 3  # + the event-fed session's
    llms = sum(c["chat"] for c in calls.values())
    assert (totals["tool_calls"], totals["llm_calls"], totals["invocations"]) == (tools, llms, tools + llms)
    assert totals["sessions"] == len(acked_roots) + 1
