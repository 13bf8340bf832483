"""Hostile input against sessions and the JSONL log: one request must never freeze, bloat or falsify them.

Each test here failed on main before the change it guards (issue "Hardening, round two").
"""

from __future__ import annotations

import json
import urllib.request

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.internal_errors import InternalErrors
from agentprom.model import Span
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions.events import RuntimeEvent
from agentprom.sessions.tracker import SessionTracker
from agentprom.sinks.jsonl import LOG_NAME
from agentprom.translator import Translator
from tests.runtime_api import post_json

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _json_span(span_id: str, attributes: dict[str, str], name: str = "chat gpt-4o") -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc\ud800"}}]},
        "scopeSpans": [{"scope": {"name": "scope\udfff"}, "spans": [{
            "traceId": TRACE, "spanId": span_id, "parentSpanId": "00f067aa0ba902b7", "name": name,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
        }]}]}]}


def _post_raw_json(sidecar, path: str, document) -> int:
    # json.dumps writes a lone surrogate as the escape "\ud800": valid JSON, 70-odd bytes for an event
    status, _headers, _body = sidecar.post(path, json.dumps(document).encode(), {"Content-Type": "application/json"})
    return status


def _healthy(sidecar) -> bool:
    with urllib.request.urlopen(sidecar.metrics_url + "/-/healthy", timeout=5) as response:
        return response.status == 200


def test_a_lone_surrogate_cannot_freeze_the_sidecar(make_sidecar, tmp_path):
    """Before: the JSONL writer raised UnicodeEncodeError inside the end of the session, which was
    left half-ended; the expiry loop then spun on it forever (100 % CPU, every endpoint frozen)."""
    clock = ManualClock()
    sidecar = make_sidecar({"jsonl": {"enabled": True, "directory": str(tmp_path)},
                            "sessions": {"inactivity_timeout_seconds": 60}}, clock)
    event = [{"event_type": "session_started", "session_id": "x\ud800", "agent": "a\udc00"}]
    assert len(json.dumps(event)) < 90
    assert _post_raw_json(sidecar, "/runtime/event", event) == 200
    assert _post_raw_json(sidecar, "/v1/traces", _json_span("b7ad6b7169203331", {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt\ud800", "gen_ai.agent.name": "bot\udbff",
        "gen_ai.conversation.id": "conv\ud800"})) == 200
    sidecar.settle()
    clock.advance(61)
    sidecar.call(sidecar.app.translator.expire, timeout=5)  # the span's parent never came: settled now
    clock.advance(120)
    ended = sidecar.call(sidecar.app.tracker.expire, timeout=5)  # main: never returned
    assert ended == 2 and not sidecar.app.tracker.open
    assert _healthy(sidecar)
    sidecar.call(sidecar.app.stop())  # flushes the log
    raw = (tmp_path / LOG_NAME).read_bytes()
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines()]  # strict UTF-8
    sessions = {r["session_id"]: r for r in records if r["kind"] == "session"}
    assert set(sessions) == {"x\ufffd", "conv\ufffd"}
    assert sessions["x\ufffd"]["agent"] == "a\ufffd" and sessions["conv\ufffd"]["agent"] == "bot\ufffd"
    assert [r["model"] for r in records if r["kind"] == "llm_call"] == ["gpt\ufffd"]
    assert sidecar.app.store.value("agentprom_internal_errors_total", ("jsonl",)) == 0


def _tracker(sink) -> tuple[SessionTracker, ManualClock, SeriesStore]:
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    config = validate({"sessions": {"inactivity_timeout_seconds": 10, "max_open_sessions": 3}})
    return SessionTracker(store, config.sessions, clock, sink=sink), clock, store


def _explode(record: dict) -> None:
    if record["kind"] != "event":  # the events' own records come before anything ends
        raise RuntimeError("the subscriber is broken")


def test_expiry_and_eviction_make_progress_when_the_subscriber_raises():
    """Before: an exception from the sink left the session in ``open`` but no longer active, and
    ``expire`` picked the same session again forever."""
    tracker, clock, store = _tracker(_explode)
    for n in range(5):  # the fourth and fifth evict the oldest: each end raises in the sink
        tracker.apply(RuntimeEvent(event_type="checkpoint_created", session_id=f"s{n}", agent="a"))
    assert list(tracker.open) == ["s2", "s3", "s4"] and {"s0", "s1"} <= set(tracker.ended)
    clock.advance(11)
    assert tracker.expire() == 3
    assert not tracker.open and len(tracker.ended) == 5
    assert all(s.ended for s in tracker.ended.values())
    assert store.value("agent_sessions_active", ("a",)) == 0
    assert store.value("agentprom_internal_errors_total", ("sessions",)) >= 3


def test_a_contained_subscriber_is_counted_and_never_breaks_its_caller(caplog):
    tracker, clock, store = _tracker(None)
    errors = InternalErrors(store)
    tracker.sink = errors.contain("jsonl", _explode)
    tracker.apply(RuntimeEvent(event_type="tool_completed", session_id="s", tool_name="t", agent="a"))
    tracker.apply(RuntimeEvent(event_type="session_completed", session_id="s"))
    assert tracker.get("s").ended
    assert store.value("agentprom_internal_errors_total", ("jsonl",)) == 2  # the call and the session record
    assert store.value("agentprom_internal_errors_total", ("sessions",)) == 0
    logged = [r for r in caplog.records if "jsonl failed" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info  # once per interval, with its traceback


def test_a_listener_that_raises_is_counted_and_the_others_still_run():
    from tests.test_sessions_bounds import _span

    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)
    seen = []
    translator.listeners[:0] = [lambda resolved: _explode({}), lambda resolved: seen.extend(s.span_id for s in resolved.spans)]
    translator.spans([_span(1, b""), _span(2, b"")])
    translator.spans([_span(3, b"")])
    assert len(seen) == 3
    assert store.value("agentprom_internal_errors_total", ("listener",)) == 2  # once per batch it failed on
    assert store.value("agent_tool_calls_total", ("svc", "t", "ok")) == 3


# -- per-session state is bounded, and what the bounds drop is counted ------------------------------


def _phase_span(n: int, attributes: dict, parent: bytes) -> Span:

    t = 1_700_000_000_000_000_000 + n * 1000
    return Span(trace_id=b"\x01" * 16, span_id=(n + 1).to_bytes(8, "big"), parent_span_id=parent, name="step",
                kind=1, start_ns=t, end_ns=t + 500, status_code=0,
                attributes={"agent.session.id": "live", **attributes}, resource={"service.name": "svc"})


def test_one_live_session_of_many_phase_spans_stays_bounded():
    """Before: ``phase_by_span`` had no cap: 600,000 spans in one session took RSS from 67 to
    313 MB, linearly. (Spans waiting for an ancestor that never arrives, e.g. OpenInference CHAIN
    spans below a missing agent span, wait in the trace context, bounded by
    ``attribution.max_pending_spans``: tests/test_context.py.)"""
    from tests.test_sessions_bounds import make

    tracker, _written, store = make(max_tool_calls_per_session=10, max_phases_per_session=5)  # index caps: 64
    for n in range(20_000):  # local roots: settled at once
        tracker.feed(_phase_span(n, {"agent.phase.id": f"p{n}", "agent.phase.name": "step"}, b""))
    s = tracker.get("live")
    assert not s.ended and s.phase_count == 20_000
    held = {name: len(getattr(s, name)) for name in ("phase_by_span", "phases", "pending", "failing")}
    assert max(held.values()) <= 64, held
    assert s.state_dropped == {"phase_spans": 20_000 - 64}
    for structure, n in s.state_dropped.items():
        assert store.value("agentprom_session_state_dropped_total", (structure,)) == n


def test_the_runtime_api_shows_what_a_session_could_not_keep(make_sidecar):
    sidecar = make_sidecar({"sessions": {"max_tool_calls_per_session": 0}})  # pending/in-flight caps: 64
    events = [{"event_type": "tool_started", "session_id": "busy", "tool_name": f"t{n}", "call_id": str(n)}
              for n in range(100)]
    assert post_json(sidecar, "/runtime/event", events)[0] == 200
    from tests.runtime_api import get_json

    status, answer = get_json(sidecar, "/runtime/session/busy")
    assert status == 200 and answer["state_dropped"] == {"tools_in_flight": 36}
    assert sidecar.value("agentprom_session_state_dropped_total", structure="tools_in_flight") == 36


def test_a_recovery_after_a_restart_is_counted(tmp_path):
    """Before: the failures waiting for their recovery were not restored from the journal, so a
    tool that failed before a restart and succeeded after it was never counted as recovered."""
    from tests.conftest import Sidecar

    config = {"jsonl": {"enabled": True, "directory": str(tmp_path)}}
    first = Sidecar(config).start()
    try:
        failed = [{"event_type": "tool_failed", "session_id": "r", "tool_name": "search", "agent": "a"},
                  {"event_type": "llm_call", "session_id": "r", "model": "gpt-4o", "success": False}]
        assert post_json(first, "/runtime/event", failed)[0] == 200
    finally:
        first.stop()
    second = Sidecar(config).start()
    try:
        ok = [{"event_type": "tool_completed", "session_id": "r", "tool_name": "search", "agent": "a"},
              {"event_type": "llm_call", "session_id": "r", "model": "gpt-4o"}]
        assert post_json(second, "/runtime/event", ok)[0] == 200
        s = second.call(lambda: second.app.tracker.get("r"))
        assert s.recoveries == 2 and [c.recovered for c in s.calls] == [False, True]
        assert second.value("agent_recoveries_total", agent="a", component="tool") == 1
        assert second.value("agent_recoveries_total", agent="a", component="llm") == 1
    finally:
        second.stop()


# -- any JSON string in any text field: the server answers, the log stays valid UTF-8 JSONL ----------

SPAN_TEXT_KEYS = ("gen_ai.agent.name", "gen_ai.conversation.id", "gen_ai.tool.name", "gen_ai.request.model",
                  "gen_ai.response.model", "gen_ai.provider.name", "error.type", "agent.session.id",
                  "agent.phase.id", "agent.phase.name", "agent.session.status")
EVENT_TEXT_FIELDS = ("session_id", "agent", "model", "provider", "phase_id", "phase_name", "tool_name", "call_id",
                     "error_type")


def _json_strings():
    from hypothesis import strategies as st

    # any code point, lone surrogates included (JSON writes them as \ud800-style escapes)
    char = st.one_of(st.characters(), st.characters(categories=["Cs"]))
    return st.one_of(st.sampled_from(["", "a", "x" * 300, "\u00e9" * 200]), st.lists(char, max_size=40).map("".join))


def test_any_json_string_in_any_text_field_keeps_the_server_and_its_log_sound(make_sidecar, tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    clock = ManualClock()
    sidecar = make_sidecar({"jsonl": {"enabled": True, "directory": str(tmp_path)}}, clock)
    operations = ("chat", "execute_tool", "invoke_agent")
    span_case = st.tuples(st.sampled_from(operations), st.booleans(),
                          st.dictionaries(st.sampled_from(SPAN_TEXT_KEYS), _json_strings(), max_size=6),
                          _json_strings(), _json_strings())
    event_case = st.tuples(st.sampled_from(["session_started", "tool_failed", "tool_completed", "llm_call",
                                            "phase_started", "phase_completed", "session_completed"]),
                           st.dictionaries(st.sampled_from(EVENT_TEXT_FIELDS), _json_strings(), max_size=5))
    counter = iter(range(1, 10**9))

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(span_case, event_case)
    def check(span, event):
        operation, is_root, attributes, name, exception_type = span
        n = next(counter)
        document = _json_span(f"{n:016x}", {"gen_ai.operation.name": operation, **attributes}, name)
        s = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        if is_root:
            del s["parentSpanId"]
        s["traceId"] = f"{n:032x}"
        s["status"] = {"code": 2}
        s["events"] = [{"name": "exception", "attributes": [
            {"key": "exception.type", "value": {"stringValue": exception_type}}]}]
        assert _post_raw_json(sidecar, "/v1/traces", document) == 200
        event_type, fields = event
        body = [{"event_type": event_type, "session_id": f"s{n % 7}", **fields}]
        assert _post_raw_json(sidecar, "/runtime/event", body) in (200, 400)
        assert _healthy(sidecar)

    check()
    sidecar.settle()
    clock.advance(3600)
    sidecar.call(sidecar.app.tracker.expire, timeout=5)
    assert _healthy(sidecar)
    sidecar.call(sidecar.app.stop())
    # strict UTF-8; JSONL lines end at "\n" (a record may hold U+2028 and the like, which splitlines() splits at)
    lines = (tmp_path / LOG_NAME).read_bytes().decode("utf-8").split("\n")[:-1]
    assert len(lines) > 100
    for line in lines:
        assert isinstance(json.loads(line), dict)
    assert sidecar.app.store.value("agentprom_internal_errors_total", ("jsonl",)) == 0
    assert sidecar.app.store.value("agentprom_internal_errors_total", ("sessions",)) == 0


def test_huge_strings_are_stored_cut_to_max_string_bytes(make_sidecar):
    """Before: strings were kept whole: 800 spans with a 1 MB ``gen_ai.conversation.id`` took RSS from
    67 to 883 MB, and 400 tool calls with 1 MB names made /runtime/session/B/tool_calls answer 210 MB."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    from tests.runtime_api import get_json
    from tests.test_hostile_input import request_with
    from tests.test_receiver_errors import PROTOBUF

    sidecar = make_sidecar({"server": {"max_string_bytes": 100}})
    huge = "\u00e9" * 500_000  # 1 MB of UTF-8
    for n, conversation in enumerate((huge, "B")):
        body = request_with({
            "gen_ai.operation.name": AnyValue(string_value="execute_tool"),
            "gen_ai.tool.name": AnyValue(string_value=huge + str(n)),
            "gen_ai.conversation.id": AnyValue(string_value=conversation),
            "error.type": AnyValue(string_value=huge),
        }, name=huge, status={"code": 2}).SerializeToString()
        assert len(body) > 3_000_000
        assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200
    sidecar.settle()
    ids = sidecar.call(lambda: [s.session_id for s in sidecar.app.tracker.all_sessions()])
    assert sorted(ids) == sorted(["B", "\u00e9" * 50])  # 100 bytes of a 2-byte character
    status, answer = get_json(sidecar, "/runtime/session/B/tool_calls")
    assert status == 200 and len(json.dumps(answer)) < 2_000
    (call,) = answer["tool_calls"]
    assert call["tool_name"] == "\u00e9" * 50 and len(call["error_type"].encode()) <= 100
