"""The synthetic agent against a real sidecar: its records match the seeded workload's ground truth.

The agent's spans go through the real OpenTelemetry SDK and OTLP/HTTP exporter
into a sidecar on port 0; the records come back from the sidecar's session API.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from agentprom.benchmark.plan import plan_session
from agentprom.benchmark.records import CHECKED
from agentprom.benchmark.runner import BenchError, Runner
from agentprom.benchmark.scenario import SyntheticScenario, parse_scenario
from agentprom.benchmark.synthetic import SyntheticAgent
from agentprom.clock import ManualClock
from tests.conftest import Sidecar

#: a workload that exercises everything the record counts: failures, retries, recoveries,
#: phase reruns (execution resets), failed sessions, context resets and context overflows
FLAKY = {
    "phases": [
        {"name": "plan", "llm_calls": 1, "tool_calls": {"min": 0, "max": 2}, "tools": ["read"]},
        {"name": "build", "llm_calls": {"min": 1, "max": 3}, "tool_calls": {"min": 2, "max": 6}, "reruns": 1},
        {"name": "verify", "llm_calls": 1, "tool_calls": 2, "tools": ["test"], "reruns": 1},
    ],
    "tools": {
        "read": {"weight": 3, "failure_probability": 0.15,
                 "duration_ms": {"distribution": "lognormal", "median": 40, "p95": 300}},
        "write": {"failure_probability": 0.05, "duration_ms": {"distribution": "uniform", "min": 5, "max": 50}},
        "test": {"failure_probability": 0.35, "error_type": "TestFailure",
                 "duration_ms": {"distribution": "normal", "mean": 2000, "stddev": 500, "min": 100}},
    },
    "llm": {"failure_probability": 0.1, "context_reset_probability": 0.15, "context_window": 100000,
            "input_tokens": {"distribution": "normal", "mean": 80000, "stddev": 30000},
            "output_tokens": {"distribution": "exponential", "mean": 300}},
    "retry": {"max_attempts": 2, "probability": 0.8, "backoff_ms": 100},
    "think_time_ms": {"distribution": "exponential", "mean": 30},
}


def scenario(**overrides: Any) -> SyntheticScenario:
    document = {"name": "flaky", "kind": "synthetic", "sessions": 40, "seed": 11, "workload": FLAKY,
                "record_timeout_seconds": 10}
    document.update(overrides)
    return parse_scenario(document)  # type: ignore[return-value]


def run(sidecar_url: str, sc: SyntheticScenario, **kw: Any) -> tuple[list[dict[str, Any]], Any]:
    records: list[dict[str, Any]] = []
    summary = Runner(sc, sidecar_url, records.append, **kw).run()
    return records, summary


def test_records_match_the_seeded_ground_truth(sidecar):
    sc = scenario()
    records, summary = run(sidecar.http_url, sc)
    assert len(records) == 40 and summary.ok, summary.text()

    for index, record in enumerate(records):
        # the truth is recomputed here from the seeded plan, independently of the run
        truth = plan_session(sc.workload, 11, index, 0).truth()
        assert record["expected"]["tool_calls"] == truth["tool_calls"]
        for field in CHECKED:
            got, want = record[field], truth[field]
            if field == "duration_ms":
                assert got == pytest.approx(want, abs=1.0), (index, field)
            else:
                assert got == want, (index, field, record)
        assert record["continuity_score"] == truth["continuity_score"], (index, record)
        assert record["success"] is truth["success"]
        assert record["mismatches"] == [] and record["seed"] == 11 and record["run_index"] == index
        assert record["failure_reason"] is None if record["success"] else "failed" in record["failure_reason"]

    # the workload really exercised what the records count (a test that can fail)
    total = {field: sum(r[field] for r in records) for field in
             ("tool_errors", "llm_errors", "recovery_count", "retries", "execution_resets", "context_resets")}
    assert all(total.values()), total
    assert 0 < sum(r["success"] for r in records) < 40
    assert len({r["session_id"] for r in records}) == 40
    assert len({r["continuity_score"] for r in records}) > 3
    assert any(r["phases"] > r["phases_completed"] and r["success"] for r in records)  # recovered by a rerun


def test_the_same_seed_gives_the_same_records_and_another_seed_others(sidecar):
    first, _ = run(sidecar.http_url, scenario(sessions=8))
    again, _ = run(sidecar.http_url, scenario(sessions=8))
    other, _ = run(sidecar.http_url, scenario(sessions=8, seed=12))
    strip = ("session_id", "run_id", "started_at", "wall_ms")

    def key(records):
        return [{k: v for k, v in r.items() if k not in strip} for r in records]

    assert key(first) == key(again)  # a rerun against the same sidecar: new session ids, same numbers
    assert {r["session_id"] for r in first}.isdisjoint(r["session_id"] for r in again)
    assert key(first) != key(other)


def test_duration_bound_stops_on_agent_time(sidecar):
    sc = scenario(sessions=None, duration_seconds=60, workload={**FLAKY, "session_gap_ms": 20000})
    records, summary = run(sidecar.http_url, sc)
    starts, t = [], 0
    while t < 60_000:
        starts.append(t)
        t = plan_session(sc.workload, 11, len(starts) - 1, t).next_start_ms
    assert len(records) == len(starts) >= 2 and summary.ok


def test_realtime_pacing_sends_each_span_at_its_planned_time():
    """With an injected clock: the agent waits for each planned end (divided by speed) and sends what
    has ended before every wait. The exporter is not reached (nothing listens), so only pacing is seen."""
    clock = ManualClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    sc = scenario(pacing="realtime", speed=4.0, export_timeout_seconds=0.2)
    agent = SyntheticAgent(f"http://127.0.0.1:{_free_port()}", sc, "r", clock=clock, sleep=sleep)
    plan = plan_session(sc.workload, 11, 0, 0)
    flushed_before_wait = []
    original_flush = agent.processor.flush

    def flush() -> None:
        flushed_before_wait.append(len(agent.processor.queue))
        original_flush()

    agent.pacer.before_wait = flush
    delivery = agent.emit(plan, "paced")
    agent.close()
    # the clock ends exactly at the session's planned end, scaled by speed
    assert clock.monotonic() == pytest.approx(plan.end_ms / 1000.0 / 4.0)
    assert sum(waits) == pytest.approx(plan.end_ms / 1000.0 / 4.0)
    assert len(waits) > len(plan.phases)
    assert sum(flushed_before_wait) + 1 == delivery.spans  # the session span goes in the final flush
    assert delivery.failed == delivery.spans and "not accepted" in delivery.error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_sidecar_fails_clearly_before_the_run():
    with pytest.raises(BenchError, match=r"cannot reach the sidecar at http://127\.0\.0\.1:\d+.*agentprom serve"):
        run(f"http://127.0.0.1:{_free_port()}", scenario(sessions=1))


def test_a_sidecar_without_the_session_api_is_named(make_sidecar):
    plain = make_sidecar({"sessions": {"enabled": False}})
    with pytest.raises(BenchError, match="sessions.enabled"):
        run(plain.http_url, scenario(sessions=1))


def test_a_sidecar_that_goes_away_fails_the_sessions_and_stops_the_run():
    sidecar = Sidecar().start()
    stopped = []

    def progress(line: str) -> None:
        if not stopped:
            sidecar.stop()
            stopped.append(line)

    try:
        records, summary = run(sidecar.http_url, scenario(sessions=10, export_timeout_seconds=0.3,
                                                          record_timeout_seconds=0.5), progress=progress)
    finally:
        if not stopped:
            sidecar.stop()
    assert records[0]["success"] is True
    assert len(records) == 1 + 3  # three sessions in a row without the sidecar stop the run
    for record in records[1:]:
        assert record["success"] is False and record["status"] is None and record["tool_calls"] is None
        assert "not accepted by the sidecar" in record["failure_reason"]
    assert not summary.ok and "could not be reached" in summary.aborted
