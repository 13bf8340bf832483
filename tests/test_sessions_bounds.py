"""The session tracker stays bounded: caps on open and ended sessions, stored calls, phases, pending calls."""

from __future__ import annotations

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.sessions.events import RuntimeEvent
from agentprom.sessions.tracker import SessionTracker
from agentprom.translator import Translator


def make(**sessions) -> tuple[SessionTracker, list[dict], SeriesStore]:
    """A tracker fed by a real translator (``tracker.feed(span)``), writing records to a list."""
    config = validate({"sessions": sessions})
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    translator = Translator(store, context=TraceContext(config.attribution, store))
    written: list[dict] = []
    tracker = SessionTracker(store, config.sessions, clock, sink=written.append)
    translator.listeners.append(tracker.on_resolved)
    tracker.feed = translator.span  # type: ignore[attr-defined]
    return tracker, written, store


def event(kind: str, session: str = "s", **fields) -> RuntimeEvent:
    return RuntimeEvent(event_type=kind, session_id=session, **fields)


def test_stored_calls_and_phases_are_capped_but_still_counted():
    tracker, written, store = make(max_tool_calls_per_session=3, max_phases_per_session=2)
    for n in range(5):
        tracker.apply(event("tool_completed", tool_name=f"t{n}", agent="a"))
    for n in range(4):
        tracker.apply(event("phase_started", phase_id=f"p{n}"))
        tracker.apply(event("phase_completed", phase_id=f"p{n}"))
    s = tracker.get("s")
    assert [c.name for c in s.calls] == ["t2", "t3", "t4"] and s.calls_dropped == 2 and s.tool_calls == 5
    assert [p.phase_id for p in s.phase_list] == ["p0", "p1"] and s.phases_dropped == 2
    assert s.phase_count == 4 and s.phases_completed == 4
    assert sum(store.value("agent_phases_total", ("a", f"p{n}", "completed")) for n in range(4)) == 4
    assert sum(r["kind"] == "phase" for r in written) == 4


def test_ended_sessions_kept_for_the_api_are_capped():
    tracker, _written, _store = make(max_ended_sessions=2)
    for name in ("one", "two", "three"):
        tracker.apply(event("session_completed", session=name))
    assert list(tracker.ended) == ["two", "three"] and tracker.get("one") is None


def test_open_sessions_are_capped_with_eviction():
    tracker, _written, store = make(max_open_sessions=10)
    for n in range(25):
        tracker.apply(event("checkpoint_created", session=f"s{n}", agent="a"))
    assert len(tracker.open) == 10 and list(tracker.open)[0] == "s15"
    assert store.value("agentprom_sessions_evicted_total", ()) == 15
    assert store.value("agent_sessions_active", ("a",)) == 10
    assert store.value("agent_sessions_total", ("a", "abandoned")) == 15


def _span(n: int, parent: bytes, trace: bytes = b"\x01" * 16) -> Span:
    return Span(trace_id=trace, span_id=n.to_bytes(8, "big"), parent_span_id=parent, name="execute_tool t", kind=1,
                start_ns=1_700_000_000_000_000_000 + n, end_ns=1_700_000_000_000_000_000 + n + 1000,
                status_code=0, attributes={"gen_ai.operation.name": "execute_tool", "agent.session.id": "big"},
                resource={"service.name": "svc"})


def test_calls_waiting_for_a_phase_span_are_capped():
    tracker, written, _store = make(max_tool_calls_per_session=10)  # pending cap: max(64, 10)
    phase_span = (1000).to_bytes(8, "big")
    for n in range(1, 101):
        tracker.feed(_span(n, phase_span))  # each waits in the trace context for its parent
    assert tracker.get("big") is None
    phase = _span(1000, b"")
    phase.attributes = {"agent.phase.name": "build", "agent.session.id": "big"}
    tracker.feed(phase)  # settles the 100 calls, then the phase span: the calls wait in the session
    s = tracker.get("big")
    calls = [r for r in written if r["kind"] == "tool_call"]
    assert len(calls) == 100 and s.tool_calls == 100 and len(s.calls) == 10
    # the oldest 36, logged without a phase once there was no room to wait; the rest in their phase
    assert [r["phase"] for r in calls].count(None) == 36 and s.state_dropped == {"pending_calls": 36}
    assert [r["phase"] for r in calls].count("build") == 64 and not s.pending


def test_hostile_attribute_values_do_not_break_tracking():
    tracker, _written, store = make()
    hostile = _span(1, b"")
    hostile.attributes.update({
        "agent.retry.attempt": "9" * 5000,  # int() would refuse this many digits
        "agent.context.tokens_used": -5, "agent.context.tokens_available": 0,
        "agent.phase.id": True, "agent.session.status": "exploded", "agent.memory.operation": 7,
    })
    tracker.feed(hostile)
    s = tracker.get("big")
    assert s.tool_calls == 1 and s.retries == 0 and s.utilization_observations == 0
    assert s.reported_status is None and s.memory_reads == s.memory_writes == 0
    assert [p.phase_id for p in s.phase_list] == ["True"]
    assert tracker.errors.counts["sessions"] == 0
