"""``agentprom demo`` against a real sidecar: what it says it sent is what was counted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from agentprom.demo import plan as demo_plan
from tests.runtime_api import get_json


def demo(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "agentprom", "demo", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_demo(endpoint: str, *args: str, protocol: str = "grpc") -> dict:
    # The endpoint and protocol through the standard OTLP variables, as a real agent would get them.
    done = demo("--json", *args, env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                                            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sidecar_counts_what_the_demo_sent(make_sidecar, protocol):
    sidecar = make_sidecar()
    endpoint = "http://" + sidecar.grpc_address if protocol == "grpc" else sidecar.http_url
    summary = run_demo(endpoint, "--sessions", "12", "--seed", "7", protocol=protocol)

    assert summary["sessions_planned"] == 12
    assert summary["exported_spans"] == summary["spans"] > 12 and summary["failed_spans"] == 0
    transport = "grpc" if protocol == "grpc" else "http"
    assert sidecar.value("agentprom_spans_received_total", transport=transport) == summary["spans"]
    for row in summary["sessions"]:
        assert sidecar.value("agent_invocations_total", agent=row["agent"], status=row["status"]) == row["count"]
    for row in summary["llm_calls"]:
        labels = {k: row[k] for k in ("agent", "provider", "model", "status")}
        assert sidecar.value("agent_llm_calls_total", operation="chat", **labels) == row["count"], row
    for row in summary["tokens"]:
        labels = {k: row[k] for k in ("agent", "provider", "model", "type")}
        assert sidecar.value("agent_tokens_total", **labels) == row["count"], row
    assert summary["cost_usd"]
    for row in summary["cost_usd"]:
        labels = {k: row[k] for k in ("agent", "provider", "model")}
        assert sidecar.value("agent_llm_cost_usd_total", **labels) == pytest.approx(row["count"], rel=1e-9), row
    for row in summary["tool_calls"]:
        labels = {k: row[k] for k in ("agent", "tool", "status")}
        assert sidecar.value("agent_tool_calls_total", **labels) == row["count"], row
    for row in summary["tool_errors"]:
        labels = {k: row[k] for k in ("agent", "tool", "error_type")}
        assert sidecar.value("agent_tool_errors_total", **labels) == row["count"], row
    # session metrics: every session, phase, checkpoint, context reset, retry and recovery
    for key, metric in (("sessions_ended", "agent_sessions_total"), ("phases", "agent_phases_total"),
                        ("checkpoints", "agent_checkpoints_total"), ("context_resets", "agent_context_resets_total"),
                        ("tool_retries", "agent_tool_retries_total"), ("recoveries", "agent_recoveries_total")):
        expected = {tuple(v for k, v in row.items() if k != "count"): row["count"] for row in summary[key]}
        assert series(sidecar, metric) == expected, metric
    assert set(series(sidecar, "agent_sessions_active").values()) <= {0}  # every session ended
    status, listed = get_json(sidecar, "/runtime/sessions?limit=1000")
    assert status == 200 and listed["total"] == summary["sessions_planned"]
    # The run must exercise what the demo exists to show, or the comparisons above prove little.
    assert {row["status"] for row in summary["tool_calls"]} == {"ok", "error"}
    assert {row["status"] for row in summary["sessions_ended"]} == {"completed", "failed"}
    assert summary["tool_retries"] and summary["checkpoints"] and summary["phases"]
    assert summary["recoveries"] and summary["context_resets"]
    assert len({row["agent"] for row in summary["sessions"]}) == len(demo_plan.AGENTS)


def series(sidecar, name: str) -> dict[tuple[str, ...], float]:
    """Every non-zero series of a counter or gauge, by its label values (read on the loop)."""
    sidecar.settle()
    family = sidecar.app.store[name]
    return sidecar.call(lambda: {s.labels: s.value for s in family.all_series() if s.value})


def test_same_seed_plans_the_same_sessions():
    def plan(seed: int) -> dict:
        rng = random.Random(seed)
        return demo_plan.summarize([demo_plan.plan_session(rng, agent) for agent in demo_plan.AGENTS] * 3)

    assert plan(3) == plan(3)
    assert plan(3) != plan(4)


def test_sessions_are_well_formed():
    rng = random.Random(11)
    for _ in range(200):
        session = demo_plan.plan_session(rng, rng.choice(list(demo_plan.AGENTS)))
        end = 0
        for phase in session.phases:
            assert phase.start_ms >= end and phase.duration_ms > 0
            for call in phase.calls:
                assert phase.start_ms <= call.start_ms and call.start_ms + call.duration_ms <= phase.start_ms + phase.duration_ms
                if call.kind == "llm" and not call.error_type:
                    assert call.tokens["cache_read"] <= call.tokens["input"]
                    assert 0 < call.context_used <= call.context_available or call.context_reset
            end = phase.start_ms + phase.duration_ms
        assert end <= session.duration_ms


def test_context_window_pressure_produces_resets():
    rng = random.Random(5)
    sessions = [demo_plan.plan_session(rng, "demo-code-reviewer") for _ in range(300)]
    assert demo_plan.summarize(sessions)["context_resets"], "no context reset in 300 sessions"


@pytest.mark.parametrize("args, message", [
    (["--sessions", "0"], "must be bounded"),
    (["--sessions", "-1"], "must not be negative"),
    (["--agents", "nobody"], "unknown agent"),
    (["--endpoint", "127.0.0.1"], "expected http://HOST:PORT"),
])
def test_bad_arguments_are_refused(args, message):
    done = demo(*args, env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})  # never reached
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_sidecar_is_one_clear_line(unused_tcp_port, protocol):
    started = time.monotonic()
    done = demo("--endpoint", f"http://127.0.0.1:{unused_tcp_port}", "--protocol", protocol)
    assert time.monotonic() - started < 30
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"agentprom demo: cannot reach a sidecar at http://127.0.0.1:{unused_tcp_port}")
    assert "agentprom serve" in done.stderr and len(done.stderr.splitlines()) == 1


def test_demo_spans_are_marked_and_current(make_sidecar, tmp_path):
    sidecar = make_sidecar({"compat": {"span_metrics": True}})
    before = time.time()
    done = demo("--endpoint", sidecar.http_url, "--protocol", "http/protobuf", "--sessions", "3", "--seed", "2")
    assert done.returncode == 0, done.stderr
    assert "sent 3 sessions" in done.stdout and "service.name=agentprom-demo" in done.stdout
    text = sidecar.scrape()
    agents = {line.split('agent="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("agent_invocations_total{")}
    assert agents and all(agent.startswith("demo-") for agent in agents), agents
    assert 'service_name="agentprom-demo"' in text
    status, listed = get_json(sidecar, "/runtime/sessions?limit=10")
    assert status == 200 and listed["total"] == 3
    # current-dated: every session started within the last minute of wall-clock time
    from datetime import datetime

    for row in listed["sessions"]:
        start = datetime.fromisoformat(row["start"].replace("Z", "+00:00")).timestamp()
        assert before - 60 <= start <= time.time() + 1, row


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
