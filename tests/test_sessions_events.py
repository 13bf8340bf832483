"""The runtime event API over real HTTP: session lifecycle, validation, 404s, timeouts, eviction."""

from __future__ import annotations

import json

import pytest

from agentprom.clock import ManualClock
from tests.runtime_api import get_json, post_json

T0 = "2026-02-20T02:15:00Z"


def ts(seconds: float) -> str:
    whole = int(seconds)
    return f"2026-02-20T02:{15 + whole // 60:02d}:{whole % 60:02d}.{int(round((seconds - whole) * 1000)):03d}Z"


def run_of_events(session_id: str = "sess_abc123") -> list[dict]:
    """A coding session: two phases, a failure that is recovered, memory and context activity."""
    base = {"session_id": session_id}
    return [
        {**base, "event_type": "session_started", "timestamp": ts(0), "agent": "coder", "model": "gpt-4o",
         "provider": "openai"},
        {**base, "event_type": "phase_started", "timestamp": ts(1), "phase_id": "phase_1", "phase_name": "plan"},
        {**base, "event_type": "tool_started", "timestamp": ts(2), "tool_name": "file_read", "call_id": "c1"},
        {**base, "event_type": "tool_completed", "timestamp": ts(2.042), "tool_name": "file_read", "call_id": "c1",
         "duration_ms": 42, "success": True},
        {**base, "event_type": "tool_failed", "timestamp": ts(3), "tool_name": "file_write", "duration_ms": 10,
         "error_type": "PermissionError"},
        {**base, "event_type": "tool_completed", "timestamp": ts(4), "tool_name": "file_write", "duration_ms": 20,
         "attempt": 2},
        {**base, "event_type": "checkpoint_created", "timestamp": ts(5)},
        {**base, "event_type": "memory_read", "timestamp": ts(5)},
        {**base, "event_type": "memory_write", "timestamp": ts(5)},
        {**base, "event_type": "llm_call", "timestamp": ts(6), "duration_ms": 800, "input_tokens": 900,
         "output_tokens": 100, "cached_tokens": 300, "cost": 0.01, "context_tokens_used": 900,
         "context_tokens_available": 1000},
        {**base, "event_type": "phase_completed", "timestamp": ts(7), "phase_id": "phase_1"},
        {**base, "event_type": "context_reset", "timestamp": ts(8)},
        {**base, "event_type": "phase_started", "timestamp": ts(9), "phase_id": "phase_2", "phase_name": "build"},
        {**base, "event_type": "tool_completed", "timestamp": ts(10), "tool_name": "compile", "duration_ms": 8},
        {**base, "event_type": "phase_completed", "timestamp": ts(11), "phase_id": "phase_2", "success": False},
        {**base, "event_type": "session_completed", "timestamp": ts(120)},
    ]


def test_event_lifecycle_feeds_session_model_and_metrics(sidecar):
    status, body = post_json(sidecar, "/runtime/event", run_of_events())
    assert (status, body) == (200, {"accepted": 16, "rejected": 0})

    status, s = get_json(sidecar, "/runtime/session/sess_abc123")
    assert status == 200
    assert s["status"] == "completed"
    assert (s["agent"], s["model"], s["provider"]) == ("coder", "gpt-4o", "openai")
    assert s["start"] == "2026-02-20T02:15:00.000Z" and s["end"] == "2026-02-20T02:17:00.000Z"
    assert s["duration_seconds"] == 120
    assert (s["tool_calls"], s["tool_errors"], s["llm_calls"], s["errors"]) == (4, 1, 1, 1)
    assert (s["recoveries"], s["retries"], s["checkpoints"], s["context_resets"]) == (1, 1, 1, 1)
    assert (s["memory_reads"], s["memory_writes"]) == (1, 1)
    assert (s["phases"], s["phases_completed"]) == (2, 1)
    assert s["tokens"] == {"total": 1000, "input": 900, "output": 100, "cached": 300}
    assert s["peak_context_utilization"] == 0.9
    # hand-computed (default weights 0.30/0.25/0.15/0.10/0.20):
    # phase_completion 1/2, error_recovery 1/1, context_resets 1 - 1/2, utilization 1/1, execution_resets 1
    assert s["continuity"] == {"phase_completion": 0.5, "error_recovery": 1.0, "context_resets": 0.5,
                               "context_utilization": 1.0, "execution_resets": 1.0}
    assert s["continuity_score"] == 77.5 and s["continuity_final"] is True

    status, m = get_json(sidecar, "/runtime/session/sess_abc123/metrics")
    assert status == 200
    assert m["tool_calls_per_minute"] == 2.0  # 4 calls in 2 minutes
    assert m["mean_tool_latency_ms"] == 20.0  # (42 + 10 + 20 + 8) / 4
    assert m["recovery_rate"] == 1.0
    assert m["completion_status"] == "completed" and m["continuity_score"] == 77.5

    status, p = get_json(sidecar, "/runtime/session/sess_abc123/phases")
    plan, build = p["phases"]
    assert (plan["phase_id"], plan["phase_name"], plan["status"]) == ("phase_1", "plan", "completed")
    assert (plan["tool_calls"], plan["llm_calls"], plan["errors"], plan["recoveries"]) == (3, 1, 1, 1)
    assert plan["duration_seconds"] == 6.0
    assert (build["phase_name"], build["status"], build["tool_calls"]) == ("build", "failed", 1)

    status, calls = get_json(sidecar, "/runtime/session/sess_abc123/tool_calls")
    assert [(c["tool_name"], c["phase_id"], c["success"], c["recovered"]) for c in calls["tool_calls"]] == [
        ("file_read", "phase_1", True, False),
        ("file_write", "phase_1", False, False),
        ("file_write", "phase_1", True, True),
        ("compile", "phase_2", True, False),  # no phase_id: the phase running at the time
    ]
    assert calls["tool_calls"][0]["start"] == "2026-02-20T02:15:02.000Z"

    v = sidecar.value
    assert v("agent_sessions_total", agent="coder", status="completed") == 1
    assert v("agent_sessions_active", agent="coder") == 0
    assert v("agent_phases_total", agent="coder", phase="plan", status="completed") == 1
    assert v("agent_phases_total", agent="coder", phase="build", status="failed") == 1
    assert v("agent_recoveries_total", agent="coder", component="tool") == 1
    assert v("agent_tool_retries_total", agent="coder", tool="file_write") == 1
    assert v("agent_checkpoints_total", agent="coder") == 1
    assert v("agent_context_resets_total", agent="coder") == 1
    assert v("agent_memory_operations_total", agent="coder", operation="read") == 1
    assert v("agent_memory_operations_total", agent="coder", operation="write") == 1
    assert v("agent_tool_calls_in_flight", agent="coder") == 0
    # the same core metrics as spans produce
    assert v("agent_tool_calls_total", agent="coder", tool="file_write", status="error") == 1
    assert v("agent_tool_calls_total", agent="coder", tool="file_write", status="ok") == 1
    assert v("agent_tool_errors_total", agent="coder", tool="file_write", error_type="PermissionError") == 1
    llm = dict(agent="coder", provider="openai", model="gpt-4o")
    assert v("agent_llm_calls_total", **llm, operation="chat", status="ok") == 1
    assert v("agent_tokens_total", **llm, type="input") == 900
    assert v("agent_tokens_total", **llm, type="cache_read") == 300
    assert v("agentprom_runtime_events_total", outcome="accepted") == 16

    text = sidecar.scrape()
    assert 'agent_session_duration_seconds_bucket{agent="coder",status="completed",le="120.0"} 1\n' in text
    assert 'agent_session_continuity_score_bucket{agent="coder",le="70.0"} 0\n' in text
    assert 'agent_session_continuity_score_bucket{agent="coder",le="80.0"} 1\n' in text
    assert 'agent_session_tool_calls_bucket{agent="coder",le="4.0"} 1\n' in text
    assert 'agent_context_utilization_ratio_bucket{agent="coder",le="0.9"} 1\n' in text
    assert 'agent_phase_duration_seconds_sum{agent="coder",phase="plan"} 6\n' in text


def test_bad_events_get_400_naming_fields_and_good_ones_still_apply(sidecar):
    events = [
        {"event_type": "session_started", "session_id": "s1", "agent": "a"},
        {"event_type": "tool_exploded", "session_id": "s1"},
        {"event_type": "tool_completed", "session_id": "s1", "duration_ms": -1, "sucess": True,
         "timestamp": "yesterday"},
        {"event_type": "tool_completed", "session_id": "s1", "tool_name": "grep", "duration_ms": 5},
        "not an object",
        {"event_type": "tool_failed", "session_id": "s1", "tool_name": "grep", "success": True,
         "input_tokens": 3},
        {"event_type": "phase_started", "session_id": ""},
    ]
    status, body = post_json(sidecar, "/runtime/event", events)
    assert status == 400
    assert body["accepted"] == 2 and body["rejected"] == 5
    assert "the 2 valid event(s) of this request were applied" in body["message"]
    problems = {(e["index"], e["field"]) for e in body["errors"]}
    assert problems == {
        (1, "event_type"),
        (2, "duration_ms"), (2, "sucess"), (2, "timestamp"), (2, "tool_name"),
        (4, ""),
        (5, "success"), (5, "input_tokens"),
        (6, "session_id"), (6, "phase_id"),
    }
    messages = {(e["index"], e["field"]): e["message"] for e in body["errors"]}
    assert messages[(2, "sucess")] == "unknown field"
    assert messages[(5, "input_tokens")] == "not a field of tool_failed events"
    assert "ISO 8601" in messages[(2, "timestamp")]

    status, s = get_json(sidecar, "/runtime/session/s1")
    assert status == 200 and s["tool_calls"] == 1 and s["agent"] == "a"
    assert sidecar.value("agentprom_runtime_events_total", outcome="rejected") == 5
    assert sidecar.value("agent_tool_calls_total", agent="a", tool="grep", status="ok") == 1


@pytest.mark.parametrize(
    "body, content_type, status, fragment",
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"42", "application/json", 400, "one event object or a JSON array"),
        (b'{"event_type": "checkpoint_created", "session_id": "x"}', "text/plain", 415, "application/json"),
    ],
)
def test_unusable_bodies(sidecar, body, content_type, status, fragment):
    got, _headers, raw = sidecar.post("/runtime/event", body, {"Content-Type": content_type})
    assert got == status
    assert fragment in raw.decode()


def test_too_many_events_in_one_request(make_sidecar):
    sidecar = make_sidecar({"sessions": {"max_events_per_request": 2}})
    status, body = post_json(sidecar, "/runtime/event", [{"event_type": "checkpoint_created", "session_id": "x"}] * 3)
    assert status == 400 and body["accepted"] == 0 and body["errors"][0]["index"] is None
    assert get_json(sidecar, "/runtime/session/x")[0] == 404


def test_unknown_session_is_404(sidecar):
    for path in ("", "/metrics", "/phases", "/tool_calls"):
        status, body = get_json(sidecar, "/runtime/session/nope" + path)
        assert status == 404 and body["error"] == "unknown session"  # never echoes the id (docs/security.md)
    status, body = post_json(sidecar, "/runtime/session/end", {"session_id": "nope"})
    assert status == 404


def test_session_start_and_end_endpoints(sidecar):
    status, body = post_json(sidecar, "/runtime/session/start", {"agent": "writer", "timestamp": T0})
    assert status == 201
    session_id = body["session"]["session_id"]
    assert session_id.startswith("sess_") and body["session"]["status"] == "active"
    assert sidecar.value("agent_sessions_active", agent="writer") == 1

    status, body = post_json(sidecar, "/runtime/session/end",
                             {"session_id": session_id, "status": "failed", "timestamp": "2026-02-20T02:16:00Z"})
    assert status == 200
    assert body["session"]["status"] == "failed" and body["session"]["duration_seconds"] == 60
    status, again = post_json(sidecar, "/runtime/session/end", {"session_id": session_id})
    assert status == 200 and again["session"]["status"] == "failed"  # ending twice changes nothing
    assert sidecar.value("agent_sessions_total", agent="writer", status="failed") == 1
    assert sidecar.value("agent_sessions_active", agent="writer") == 0

    status, body = post_json(sidecar, "/runtime/session/start", {"agent": 7, "colour": "red"})
    assert status == 400
    assert {e["field"] for e in body["errors"]} == {"agent", "colour"}
    status, body = post_json(sidecar, "/runtime/session/end", {"session_id": session_id, "status": "great"})
    assert status == 400 and body["errors"][0]["field"] == "status"


def test_sessions_list_filters_and_pages(sidecar):
    events = []
    for i in range(5):
        agent = "even" if i % 2 == 0 else "odd"
        events.append({"event_type": "session_started", "session_id": f"s{i}", "agent": agent, "timestamp": ts(i)})
    events.append({"event_type": "session_completed", "session_id": "s0", "timestamp": ts(10)})
    assert post_json(sidecar, "/runtime/event", events)[0] == 200

    status, page = get_json(sidecar, "/runtime/sessions?limit=2")
    assert status == 200 and page["total"] == 5 and page["next_offset"] == 2
    assert [s["session_id"] for s in page["sessions"]] == ["s4", "s3"]  # newest first
    status, page = get_json(sidecar, "/runtime/sessions?limit=2&offset=4")
    assert [s["session_id"] for s in page["sessions"]] == ["s0"] and page["next_offset"] is None
    status, page = get_json(sidecar, "/runtime/sessions?agent=even&status=active")
    assert [s["session_id"] for s in page["sessions"]] == ["s4", "s2"]
    status, page = get_json(sidecar, "/runtime/sessions?status=completed")
    assert [s["session_id"] for s in page["sessions"]] == ["s0"]

    status, body = get_json(sidecar, "/runtime/sessions?limit=0&status=done&page=2")
    assert status == 400
    assert {e["field"] for e in body["errors"]} == {"limit", "status", "page"}


def test_reads_carry_the_runtime_specifications_names(sidecar):
    """Every Runtime Session, phase and tool call field under the specification's name, beside ours;
    the list's completion_success_rate is over the sessions the filter chose (ended ones only)."""
    events = [
        {"event_type": "session_started", "session_id": "a", "agent": "coder", "model": "m1", "provider": "p",
         "timestamp": ts(0)},
        {"event_type": "phase_started", "session_id": "a", "phase_id": "p1", "phase_name": "plan", "timestamp": ts(1)},
        {"event_type": "tool_failed", "session_id": "a", "phase_id": "p1", "tool_name": "grep", "call_id": "c1",
         "duration_ms": 200, "error_type": "Timeout", "timestamp": ts(2)},
        {"event_type": "tool_completed", "session_id": "a", "phase_id": "p1", "tool_name": "grep", "call_id": "c2",
         "duration_ms": 100, "attempt": 2, "timestamp": ts(3)},
        {"event_type": "phase_completed", "session_id": "a", "phase_id": "p1", "timestamp": ts(4)},
        {"event_type": "session_completed", "session_id": "a", "timestamp": ts(5)},
        {"event_type": "session_started", "session_id": "b", "agent": "coder", "timestamp": ts(0)},
        {"event_type": "session_completed", "session_id": "b", "status": "failed", "timestamp": ts(6)},
        {"event_type": "session_started", "session_id": "c", "agent": "coder", "timestamp": ts(7)},  # still active
        {"event_type": "session_started", "session_id": "d", "agent": "other", "timestamp": ts(8)},
        {"event_type": "session_completed", "session_id": "d", "timestamp": ts(9)},
    ]
    assert post_json(sidecar, "/runtime/event", events)[0] == 200
    status, page = get_json(sidecar, "/runtime/sessions?agent=coder")
    assert status == 200 and page["total"] == 3
    assert page["completion_success_rate"] == 0.5  # a completed, b failed, c active (not counted)
    assert get_json(sidecar, "/runtime/sessions?agent=coder&status=active")[1]["completion_success_rate"] is None
    summary = next(s for s in page["sessions"] if s["session_id"] == "a")
    assert {k: summary[k] for k in ("agent_id", "model_name", "provider", "completion_status", "total_tool_calls",
                                    "total_phases", "total_errors", "total_recoveries", "duration_ms")} == {
        "agent_id": "coder", "model_name": "m1", "provider": "p", "completion_status": "completed",
        "total_tool_calls": 2, "total_phases": 1, "total_errors": 1, "total_recoveries": 1, "duration_ms": 5000.0}
    assert summary["start_timestamp"] == summary["start"] and summary["end_timestamp"] == summary["end"]

    metrics = get_json(sidecar, "/runtime/session/a/metrics")[1]
    assert metrics["completion_success_rate"] == 1.0 and metrics["mean_tool_latency"] == 150.0
    assert metrics["recovery_rate"] == 1.0 and metrics["total_tool_calls"] == 2
    phase = get_json(sidecar, "/runtime/session/a/phases")[1]["phases"][0]
    assert {k: phase[k] for k in ("phase_id", "session_id", "phase_name", "duration_ms", "tool_calls", "errors",
                                  "recoveries")} == {
        "phase_id": "p1", "session_id": "a", "phase_name": "plan", "duration_ms": 3000.0, "tool_calls": 2,
        "errors": 1, "recoveries": 1}
    assert phase["start_time"] == phase["start"] and phase["end_time"] == phase["end"]
    calls = get_json(sidecar, "/runtime/session/a/tool_calls")[1]["tool_calls"]
    assert [(c["tool_call_id"], c["session_id"], c["phase_id"], c["success"], c["error_type"], c["retry_count"])
            for c in calls] == [("c1", "a", "p1", False, "Timeout", 0), ("c2", "a", "p1", True, None, 1)]
    assert all(c["start_time"] < c["end_time"] for c in calls)


def test_inactivity_timeout_abandons_session(make_sidecar):
    clock = ManualClock()
    sidecar = make_sidecar({"sessions": {"inactivity_timeout_seconds": 300}}, clock=clock)
    post_json(sidecar, "/runtime/event", [
        {"event_type": "session_started", "session_id": "idle", "agent": "a", "timestamp": ts(0)},
        {"event_type": "tool_completed", "session_id": "idle", "tool_name": "t", "timestamp": ts(30)},
        {"event_type": "session_started", "session_id": "busy", "agent": "a", "timestamp": ts(0)},
    ])
    clock.advance(200)
    post_json(sidecar, "/runtime/event", {"event_type": "checkpoint_created", "session_id": "busy"})
    clock.advance(100)  # idle: 300 s without activity; busy: 100 s
    assert sidecar.call(sidecar.app.tracker.expire) == 1
    status, s = get_json(sidecar, "/runtime/session/idle")
    assert s["status"] == "abandoned"
    assert s["duration_seconds"] == 30  # up to its last activity, not to the timeout
    assert get_json(sidecar, "/runtime/session/busy")[1]["status"] == "active"
    assert sidecar.value("agent_sessions_total", agent="a", status="abandoned") == 1
    assert sidecar.value("agent_sessions_active", agent="a") == 1
    clock.advance(199)
    assert sidecar.call(sidecar.app.tracker.expire) == 0
    clock.advance(1)
    assert sidecar.call(sidecar.app.tracker.expire) == 1
    assert sidecar.value("agent_sessions_active", agent="a") == 0


def test_open_session_cap_evicts_least_recently_active(make_sidecar):
    sidecar = make_sidecar({"sessions": {"max_open_sessions": 2}})
    for name in ("first", "second"):
        post_json(sidecar, "/runtime/event", {"event_type": "session_started", "session_id": name, "agent": "a"})
    post_json(sidecar, "/runtime/event", {"event_type": "checkpoint_created", "session_id": "first"})
    post_json(sidecar, "/runtime/event", {"event_type": "session_started", "session_id": "third", "agent": "a"})
    assert get_json(sidecar, "/runtime/session/second")[1]["status"] == "abandoned"
    assert get_json(sidecar, "/runtime/session/first")[1]["status"] == "active"
    assert sidecar.value("agentprom_sessions_evicted_total") == 1
    assert sidecar.value("agent_sessions_active", agent="a") == 2
    assert sidecar.value("agent_sessions_total", agent="a", status="abandoned") == 1


def test_tool_calls_in_flight_and_agent_inheritance(sidecar):
    post_json(sidecar, "/runtime/event", [
        {"event_type": "session_started", "session_id": "f", "agent": "runner", "timestamp": ts(0)},
        {"event_type": "tool_started", "session_id": "f", "tool_name": "fetch", "call_id": "1", "timestamp": ts(1)},
        {"event_type": "tool_started", "session_id": "f", "tool_name": "fetch", "call_id": "2", "timestamp": ts(1)},
    ])
    assert sidecar.value("agent_tool_calls_in_flight", agent="runner") == 2
    post_json(sidecar, "/runtime/event", {"event_type": "tool_completed", "session_id": "f", "tool_name": "fetch",
                                          "call_id": "1", "timestamp": ts(3.5)})
    assert sidecar.value("agent_tool_calls_in_flight", agent="runner") == 1
    calls = get_json(sidecar, "/runtime/session/f/tool_calls")[1]["tool_calls"]
    assert calls[0]["duration_ms"] == 2500  # from its tool_started
    post_json(sidecar, "/runtime/event", {"event_type": "session_completed", "session_id": "f"})
    assert sidecar.value("agent_tool_calls_in_flight", agent="runner") == 0
    assert sidecar.value("agent_tool_calls_total", agent="runner", tool="fetch", status="ok") == 1


def test_phase_rerun_and_session_restart_are_execution_resets(sidecar):
    base = {"session_id": "r", "agent": "a"}
    post_json(sidecar, "/runtime/event", [
        {**base, "event_type": "session_started"},
        {**base, "event_type": "phase_started", "phase_id": "p"},
        {**base, "event_type": "phase_completed", "phase_id": "p", "success": False},
        {**base, "event_type": "phase_started", "phase_id": "p"},  # the phase runs again
        {**base, "event_type": "phase_completed", "phase_id": "p"},
        {**base, "event_type": "session_started"},  # restarted while open
        {**base, "event_type": "phase_started", "phase_id": "q"},  # never completed: abandoned
        {**base, "event_type": "session_completed"},
    ])
    s = get_json(sidecar, "/runtime/session/r")[1]
    assert (s["phases"], s["phases_completed"], s["execution_resets"]) == (3, 1, 2)
    phases = get_json(sidecar, "/runtime/session/r/phases")[1]["phases"]
    assert [(p["phase_id"], p["status"]) for p in phases] == [("p", "failed"), ("p", "completed"), ("q", "abandoned")]
    # phase_completion 1/3, error_recovery 1, context_resets 1, utilization 1, execution_resets 1 - 2/3
    expected = 100 * (0.30 / 3 + 0.25 + 0.15 + 0.10 + 0.20 / 3)
    assert s["continuity_score"] == round(expected, 1)
    assert sidecar.value("agent_phases_total", agent="a", phase="q", status="abandoned") == 1


def test_sessions_can_be_switched_off(make_sidecar):
    sidecar = make_sidecar({"sessions": {"enabled": False}})
    status, _headers, _body = sidecar.post("/runtime/event", b"{}", {"Content-Type": "application/json"})
    assert status == 404
    assert sidecar.app.tracker.on_resolved not in [getattr(f, "__wrapped__", f) for f in sidecar.app.translator.listeners]


def test_session_metrics_pass_promtool(make_sidecar, promtool):
    import subprocess

    sidecar = make_sidecar({"sessions": {"max_open_sessions": 1}})
    post_json(sidecar, "/runtime/event", run_of_events())
    post_json(sidecar, "/runtime/event", [
        {"event_type": "tool_started", "session_id": "a", "tool_name": "x"},
        {"event_type": "checkpoint_created", "session_id": "b"},  # evicts "a"
    ])
    text = sidecar.scrape()
    assert "agentprom_sessions_evicted_total 1\n" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_event_amounts_have_the_span_bounds(sidecar):
    """Fails on main: an llm_call event could add 2^53 tokens and 1e12 dollars at a time. The bounds
    are limits.max_tokens_per_span and limits.max_cost_usd_per_span; the error names the field, not the value."""
    base = {"event_type": "llm_call", "session_id": "s-big", "agent": "big"}
    events = [
        {**base, "input_tokens": 100_000_001},
        {**base, "output_tokens": 2**53},
        {**base, "cached_tokens": 123_456_789_012},
        {**base, "cost": 10_000.5},
        {**base, "cost": 1e300},
    ]
    status, body = post_json(sidecar, "/runtime/event", events)
    assert status == 400 and body["accepted"] == 0 and body["rejected"] == 5
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (0, "input_tokens"), (1, "output_tokens"), (2, "cached_tokens"), (3, "cost"), (4, "cost")]
    assert body["errors"][0]["message"] == "must be an integer from 0 to 100000000 (limits.max_tokens_per_span)"
    assert body["errors"][3]["message"] == "must be a number from 0 to 10000 (limits.max_cost_usd_per_span)"
    for leaked in ("100000001", "9007199254740992", "123456789012", "10000.5", "1e+300"):
        assert leaked not in json.dumps(body)
    assert get_json(sidecar, "/runtime/session/s-big")[0] == 404
    # at the bounds: accepted and counted
    status, body = post_json(sidecar, "/runtime/event", {**base, "input_tokens": 100_000_000, "cost": 10_000})
    assert status == 200
    llm = dict(agent="big", provider="unknown", model="unknown")
    assert sidecar.value("agent_tokens_total", **llm, type="input") == 100_000_000
    assert sidecar.value("agent_llm_cost_usd_total", **llm) == 10_000


def test_event_bounds_follow_the_config(make_sidecar):
    sidecar = make_sidecar({"limits": {"max_tokens_per_span": 10, "max_cost_usd_per_span": 1}})
    event = {"event_type": "llm_call", "session_id": "s", "input_tokens": 11, "cost": 1.5}
    status, body = post_json(sidecar, "/runtime/event", event)
    assert status == 400 and {e["field"] for e in body["errors"]} == {"input_tokens", "cost"}


def test_events_accept_the_specifications_names_as_aliases(sidecar):
    """agent_id, model_name, tool_call_id, retry_count, completion_status and the specification's
    times, as a runtime written against the specification sends them; both names at once is a 400."""
    events = [
        {"event_type": "session_started", "session_id": "spec", "agent_id": "planner", "model_name": "m2",
         "provider": "p", "start_timestamp": ts(0)},
        {"event_type": "phase_started", "session_id": "spec", "phase_id": "p1", "phase_name": "build",
         "start_time": ts(1)},
        {"event_type": "tool_completed", "session_id": "spec", "phase_id": "p1", "tool_name": "make",
         "tool_call_id": "t-1", "retry_count": 2, "start_time": ts(2), "end_time": ts(4.5), "success": True,
         "input_size_bytes": 120, "output_size_bytes": 4096},
        {"event_type": "phase_completed", "session_id": "spec", "phase_id": "p1", "end_time": ts(5)},
        {"event_type": "session_completed", "session_id": "spec", "completion_status": "failed",
         "end_timestamp": ts(6)},
    ]
    status, body = post_json(sidecar, "/runtime/event", events)
    assert status == 200, body
    session = get_json(sidecar, "/runtime/session/spec")[1]
    assert (session["agent_id"], session["model_name"], session["completion_status"]) == ("planner", "m2", "failed")
    assert session["duration_ms"] == 6000.0
    call = get_json(sidecar, "/runtime/session/spec/tool_calls")[1]["tool_calls"][0]
    assert (call["tool_call_id"], call["retry_count"], call["attempt"], call["duration_ms"]) == ("t-1", 2, 3, 2500.0)
    assert (call["input_size_bytes"], call["output_size_bytes"]) == (120, 4096)
    phase = get_json(sidecar, "/runtime/session/spec/phases")[1]["phases"][0]
    assert phase["duration_ms"] == 4000.0

    status, body = post_json(sidecar, "/runtime/event", [
        {"event_type": "session_started", "session_id": "x", "agent": "a", "agent_id": "b"},
        {"event_type": "session_started", "session_id": "y", "start_time": ts(0)},
        {"event_type": "tool_completed", "session_id": "y", "tool_name": "t", "retry_count": -1},
        {"event_type": "tool_completed", "session_id": "y", "tool_name": "t", "start_time": ts(5), "end_time": ts(1)},
    ])
    assert status == 400
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (0, "agent_id"), (1, "start_time"), (2, "retry_count"), (3, "start_time")]
