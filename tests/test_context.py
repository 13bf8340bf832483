"""The trace-context stage: the attribution rules, waiting and its bounds, and malformed trees."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.conventions.classify import Classified
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import STATUS_ERROR, Span
from agentprom.receiver.decode import Batch
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000
TRACE = b"\x01" * 16

AGENT = {"gen_ai.operation.name": "invoke_agent"}
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10}
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}
CHAIN = {"openinference.span.kind": "CHAIN"}


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def span(n: int, parent: int | None, attrs: dict, name: str = "", trace: bytes = TRACE, error: bool = False,
         remote: bool = False) -> Span:
    # children end before their parents: a later number ends earlier
    return Span(trace, sid(n), sid(parent) if parent else b"", name or f"s{n}", 1, T0, T0 + 10**9 - n, 
                STATUS_ERROR if error else 0, dict(attrs), {"service.name": "svc"}, parent_remote=remote)


def named(attrs: dict, agent: str) -> dict:
    return {**attrs, "gen_ai.agent.name": agent}


class Rig:
    """A translator with a trace context on a manual clock."""

    def __init__(self, keep_settled: bool = True, **attribution) -> None:
        self.keep_settled = keep_settled  # the million-span tests keep nothing per span
        self.clock = ManualClock()
        self.store = SeriesStore(clock=self.clock)
        self.context = TraceContext(validate({"attribution": attribution}).attribution, self.store)
        self.translator = Translator(self.store, context=self.context)
        self.seen: list[tuple[bytes, str, bool]] = []
        #: spans settled (their session and phase known), in the order handed on
        self.settled: list[tuple[bytes, Classified]] = []
        self.translator.listeners.append(self._listen)

    def _listen(self, resolved) -> None:
        self.seen.extend((s.span_id, c.agent, c.counted) for s, c in zip(resolved.spans, resolved.classified))
        if self.keep_settled:
            self.settled.extend((s.span_id, c) for s, c in zip(resolved.settled_spans, resolved.settled))

    def send(self, *spans: Span) -> None:
        self.translator.consume(Batch(spans=list(spans)), "grpc")

    def value(self, name: str, **labels: str) -> float:
        family = self.store[name]
        return sum(s.value for s in family.all_series()
                   if all(s.labels[family.spec.labels.index(k)] == v for k, v in labels.items()))

    def fallbacks(self, reason: str) -> float:
        return self.value("agentprom_attribution_fallbacks_total", reason=reason)


def plain_agent_run() -> list[Span]:
    """invoke_agent planner > chat, execute_tool (no names below the agent), children first."""
    return [span(3, 1, TOOL), span(2, 1, CHAT), span(1, None, named(AGENT, "planner"))]


# -- the rules -----------------------------------------------------------------------------------


def test_llm_and_tool_spans_take_their_agent_from_the_nearest_agent_ancestor():
    rig = Rig()
    rig.send(*plain_agent_run())
    assert rig.value("agent_invocations_total", agent="planner") == 1
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    assert rig.value("agent_tokens_total", agent="planner", type="input") == 10
    assert rig.value("agent_tool_calls_total", agent="planner", tool="t") == 1
    assert rig.value("agent_llm_calls_total", agent="svc") == 0


def test_a_sub_agent_is_its_own_invocation_and_its_calls_are_its_own():
    rig = Rig()
    rig.send(span(4, 3, CHAT), span(3, 2, named(AGENT, "researcher")), span(5, 2, TOOL), span(2, 1, CHAIN),
             span(1, None, named(AGENT, "planner")))
    assert rig.value("agent_invocations_total", agent="planner") == 1
    assert rig.value("agent_invocations_total", agent="researcher") == 1
    assert rig.value("agent_llm_calls_total", agent="researcher") == 1
    assert rig.value("agent_tool_calls_total", agent="planner") == 1


def test_a_step_under_its_own_agent_is_not_an_invocation():
    rig = Rig()
    # a graph run and its node runs: the nodes are agent spans of the same agent (named or not)
    rig.send(span(4, 2, CHAT), span(2, 1, named(AGENT, "graph")), span(3, 1, AGENT), span(1, None, named(AGENT, "graph"),
                                                                                           error=True))
    assert rig.value("agent_invocations_total", agent="graph") == 1
    assert rig.value("agent_errors_total", agent="graph", component="agent") == 1  # once, not per step
    assert rig.value("agent_llm_calls_total", agent="graph") == 1


def test_a_wrapper_root_is_not_counted_and_is_transparent():
    rig = Rig()
    rig.send(span(4, 3, CHAT), span(3, 2, named(AGENT, "triage")), span(2, 1, CHAIN),
             span(1, None, AGENT, name="Agent workflow"))
    assert rig.value("agent_invocations_total") == 1
    assert rig.value("agent_invocations_total", agent="triage") == 1
    assert rig.value("agent_llm_calls_total", agent="triage") == 1


def test_an_unnamed_root_agent_without_named_agents_below_is_an_invocation_of_the_service():
    rig = Rig()
    rig.send(span(2, 1, CHAT), span(1, None, AGENT))
    assert rig.value("agent_invocations_total", agent="svc") == 1
    assert rig.value("agent_llm_calls_total", agent="svc") == 1


def test_nested_llm_spans_count_the_innermost_only():
    rig = Rig()
    outer = named(CHAT, "planner")  # an own name: emitted without waiting, yet still outer
    rig.send(span(3, 2, CHAT), span(2, 1, outer), span(1, None, named(AGENT, "planner")))
    assert rig.value("agent_llm_calls_total") == 1
    assert rig.value("agent_tokens_total") == 10
    # the same when the inner span arrives after the outer one, within one batch
    rig = Rig()
    rig.send(span(1, None, named(AGENT, "planner")), span(2, 1, CHAT), span(3, 2, CHAT))
    assert rig.value("agent_llm_calls_total") == 1


def test_create_agent_and_invoke_workflow_spans_are_not_invocations():
    rig = Rig()
    rig.send(span(1, None, named({"gen_ai.operation.name": "create_agent"}, "a")),
             span(2, None, named({"gen_ai.operation.name": "invoke_workflow"}, "w"), trace=b"\x02" * 16))
    assert rig.value("agent_invocations_total") == 0


# -- sessions and phases, resolved in the same stage ---------------------------------------------


def _settled(rig: Rig) -> dict[int, Classified]:
    return {int.from_bytes(span_id, "big"): c for span_id, c in rig.settled}


def test_a_call_is_settled_with_its_trace_session_and_the_phase_span_above_it():
    rig = Rig()
    session = {"agent.session.id": "s-1"}
    rig.send(span(4, 3, TOOL), span(5, 3, CHAT))  # children first, across requests
    rig.send(span(3, 2, {"agent.phase.name": "plan", "agent.phase.id": "p1"}))
    assert not rig.settled  # nothing knows its session yet: the root has not arrived
    rig.send(span(2, 1, CHAIN), span(1, None, {**named(AGENT, "planner"), **session}))
    settled = _settled(rig)
    assert [int.from_bytes(i, "big") for i, _c in rig.settled] == [4, 5, 3, 2, 1]  # in arrival order
    assert {n: c.session for n, c in settled.items()} == dict.fromkeys(range(1, 6), "s-1")
    assert settled[4].phase == settled[5].phase == (sid(3), "p1", "plan")
    assert settled[3].own_phase == ("p1", "plan")
    assert settled[3].phase == (sid(2), sid(2).hex(), "s2")  # a CHAIN right below an agent span
    assert not any(c.joins for c in settled.values())


def test_a_chain_right_below_an_agent_span_is_a_phase():
    rig = Rig()
    rig.send(span(4, 3, TOOL), span(3, 2, CHAIN), span(2, 1, CHAIN, name="research"),
             span(1, None, named(AGENT, "planner")))
    settled = _settled(rig)
    assert settled[2].own_phase == (sid(2).hex(), "research")
    assert settled[3].own_phase is None  # a CHAIN whose parent is no agent span is no phase
    assert settled[4].phase == (sid(2), sid(2).hex(), "research") and settled[4].session is None


def test_a_key_seen_after_spans_went_to_the_trace_id_session_joins_it():
    rig = Rig()
    rig.send(span(2, 9, TOOL, remote=True))  # a local root (its parent is in another process), no key
    rig.send(span(3, 8, {**TOOL, "session.id": "conv"}, remote=True))
    settled = _settled(rig)
    assert settled[2].session is None and not settled[2].joins
    assert settled[3].session == "conv" and settled[3].joins


def test_sessions_follow_the_tree_in_the_tracker():
    """End to end through the tracker: one session, the calls in their phase, nothing waiting."""
    from agentprom.sessions.tracker import SessionTracker

    rig = Rig()
    config = validate({})
    records: list[dict] = []
    tracker = SessionTracker(rig.store, config.sessions, rig.clock, sink=records.append)
    rig.translator.listeners.append(tracker.on_resolved)
    rig.send(span(3, 2, TOOL), span(4, 2, TOOL, error=True))
    rig.send(span(2, 1, {"agent.phase.name": "build"}))
    rig.send(span(1, None, {**named(AGENT, "coder"), "agent.session.id": "s-9", "agent.span.kind": "session"}))
    s = tracker.get("s-9")
    assert [x.session_id for x in tracker.all_sessions()] == ["s-9"] and s.status == "completed"
    assert s.agent == "coder" and s.tool_calls == 2 and s.tool_errors == 1 and not s.pending
    calls = [r for r in records if r["kind"] == "tool_call"]
    assert [(r["phase"], r["agent"]) for r in calls] == [("build", "coder"), ("build", "coder")]


def test_ending_a_session_through_the_api_settles_its_waiting_spans_first():
    """A hung run's root span never comes: the end signal settles what the run sent into the session."""
    from agentprom.sessions.tracker import SessionTracker

    rig = Rig()
    tracker = SessionTracker(rig.store, validate({}).sessions, rig.clock)
    rig.translator.listeners.append(tracker.on_resolved)
    rig.translator.sessions = tracker
    keyed = {"agent.session.id": "hung"}
    other_trace = span(5, 2, TOOL, trace=b"\x02" * 16)
    rig.send(span(3, 1, {**TOOL, **keyed}), span(4, 1, {**CHAT, **keyed}), other_trace)
    assert tracker.get("hung") is None and len(rig.context.pending) == 3
    s = rig.translator.end_session("hung", "failed")
    assert s.status == "failed" and s.tool_calls == 1 and s.llm_calls == 1
    assert rig.fallbacks("session_end") == 2 and len(rig.context.pending) == 1  # the other trace waits on
    assert rig.translator.end_session("nobody", "failed") is None


# -- waiting ---------------------------------------------------------------------------------------


def test_a_span_with_its_own_agent_name_is_counted_at_once():
    rig = Rig()
    rig.send(span(2, 1, named(CHAT, "planner")))
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    # it still waits to be settled (its session and phase come from above), not to be counted
    assert len(rig.context.pending) == 1 and not rig.settled
    rig.clock.advance(61)
    rig.translator.expire()
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    assert rig.fallbacks("timeout") == 0  # a fallback counts only the spans it emits
    assert [span_id for span_id, _c in rig.settled] == [(2).to_bytes(8, "big")] and not rig.context.pending


def test_children_wait_for_their_parents_across_requests():
    rig = Rig()
    run = plain_agent_run()
    rig.send(*run[:2])
    assert rig.value("agent_llm_calls_total") == 0 and len(rig.context.pending) == 2
    assert rig.value("agentprom_attribution_pending_spans") == 2
    rig.send(run[2])
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    assert not rig.context.pending and rig.fallbacks("timeout") == 0


def test_parents_before_children_across_requests():
    rig = Rig()
    run = plain_agent_run()
    rig.send(run[2])
    rig.send(run[1])
    rig.send(run[0])
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    assert rig.value("agent_tool_calls_total", agent="planner") == 1


def test_a_root_that_never_arrives_times_out_and_the_fallback_is_counted():
    rig = Rig(max_wait_seconds=30)
    rig.send(span(3, 2, CHAT), span(2, 1, CHAIN))  # the agent span (1) never comes
    rig.clock.advance(29)
    rig.translator.expire()
    assert rig.value("agent_llm_calls_total") == 0
    rig.clock.advance(2)
    rig.translator.expire()
    assert rig.value("agent_llm_calls_total", agent="svc") == 1
    assert rig.fallbacks("timeout") == 1  # the LLM span; the CHAIN span was emitted at once
    assert not rig.context.pending


def test_a_parent_in_another_process_makes_a_local_root():
    rig = Rig()
    rig.send(span(2, 1, CHAT), span(1, 99, named(AGENT, "planner"), remote=True))
    assert rig.value("agent_llm_calls_total", agent="planner") == 1
    assert not rig.context.pending


def test_overflow_counts_the_oldest_as_they_are():
    rig = Rig(max_pending_spans=10)
    rig.send(*[span(n, 1000 + n, CHAT) for n in range(1, 16)])  # 15 spans whose parents never come
    assert len(rig.context.pending) == 10
    assert rig.value("agent_llm_calls_total", agent="svc") == 5 and rig.fallbacks("overflow") == 5


def test_shutdown_counts_everything_pending(make_sidecar):
    from tests.test_hostile_input import request_with
    from tests.test_receiver_errors import PROTOBUF
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    sidecar = make_sidecar()
    body = request_with({"gen_ai.operation.name": AnyValue(string_value="chat")},
                        parent_span_id=sid(77)).SerializeToString()
    assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200
    sidecar.settle()
    assert sidecar.value("agentprom_attribution_pending_spans") == 1
    assert sidecar.value("agent_llm_calls_total", agent="unknown_service", provider="unknown", model="unknown",
                         operation="chat", status="ok") == 0
    sidecar.call(sidecar.app.stop())
    store = sidecar.app.store
    assert sum(s.value for s in store["agent_llm_calls_total"].all_series()) == 1
    assert store.value("agentprom_attribution_fallbacks_total", ("shutdown",)) == 1


def test_a_trace_split_across_grpc_and_http(make_sidecar):
    """The agent span over HTTP/JSON, its LLM call earlier over gRPC: one attribution."""
    import json

    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    from tests.test_hostile_input import request_with
    from tests.test_receiver_errors import JSON

    sidecar = make_sidecar()
    trace_hex = "5b8efff798038103d269b633813fc60c"
    child = request_with({"gen_ai.operation.name": AnyValue(string_value="chat")},
                         trace_id=bytes.fromhex(trace_hex), span_id=sid(2), parent_span_id=sid(1))
    import grpc

    channel = grpc.insecure_channel(sidecar.grpc_address)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    export(child.SerializeToString(), timeout=10)
    channel.close()
    parent = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
              "scopeSpans": [{"spans": [{"traceId": trace_hex, "spanId": sid(1).hex(), "name": "invoke_agent planner",
                                         "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                                         "attributes": [{"key": "gen_ai.operation.name",
                                                         "value": {"stringValue": "invoke_agent"}},
                                                        {"key": "gen_ai.agent.name",
                                                         "value": {"stringValue": "planner"}}]}]}]}]}
    assert sidecar.post("/v1/traces", json.dumps(parent).encode(), JSON)[0] == 200
    assert sidecar.value("agent_llm_calls_total", agent="planner", provider="unknown", model="unknown",
                         operation="chat", status="ok") == 1


# -- malformed trees -------------------------------------------------------------------------------


def test_a_span_that_is_its_own_parent():
    rig = Rig()
    rig.send(span(1, 1, CHAT))
    assert rig.value("agent_llm_calls_total") == 1 and rig.fallbacks("cycle") == 1
    assert not rig.context.pending


def test_a_parent_cycle_across_spans_is_broken():
    rig = Rig()
    rig.send(span(1, 2, CHAT), span(2, 3, CHAIN), span(3, 1, AGENT))
    assert not rig.context.pending
    assert rig.value("agent_llm_calls_total") == 1 and rig.fallbacks("cycle") >= 1


def test_duplicate_span_ids_are_counted_once_each_and_never_hang():
    rig = Rig()
    rig.send(span(2, 1, CHAT), span(2, 1, CHAT), span(1, None, named(AGENT, "a")))
    assert rig.value("agent_llm_calls_total", agent="a") == 2
    assert rig.fallbacks("duplicate_span_id") == 1 and not rig.context.pending


def test_a_trace_of_a_million_spans_is_bounded():
    rig = Rig(False, max_pending_spans=10_000, max_indexed_spans=20_000)
    tracemalloc.start()
    started = time.process_time()
    for first in range(1, 1_000_001, 50_000):  # a chain of tool spans, children first, in requests of 50,000
        rig.send(*[span(n, n + 1, TOOL) for n in range(first, first + 50_000)])
    elapsed = time.process_time() - started
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(rig.context.pending) <= 10_000 and rig.context.indexed <= 20_000 + 50_000
    rig.translator.drain()
    assert rig.value("agent_tool_calls_total") == 1_000_000  # every span counted once, none lost
    assert peak < 200 * 1024 * 1024, peak
    assert elapsed < 120  # a bound against quadratic work, not a speed test


def test_a_million_traces_of_one_span_each_are_bounded():
    rig = Rig(False, max_pending_spans=5_000, max_indexed_spans=10_000)
    for first in range(0, 1_000_000, 50_000):
        rig.send(*[span(2, 1, CHAT, trace=(n + 1).to_bytes(16, "big")) for n in range(first, first + 50_000)])
    assert len(rig.context.pending) <= 5_000 and len(rig.context.traces) <= 10_000 + 50_000
    rig.translator.drain()
    assert rig.value("agent_llm_calls_total") == 1_000_000
    assert rig.fallbacks("overflow") + rig.fallbacks("shutdown") == 1_000_000


@pytest.mark.parametrize("order", ["children_first", "parents_first"])
def test_each_span_is_emitted_exactly_once(order):
    rig = Rig()
    run = plain_agent_run() + [span(5, 4, CHAT), span(4, 1, named(AGENT, "sub"))]
    if order == "parents_first":
        run.reverse()
    for s in run:
        rig.send(s)
    ids = [span_id for span_id, _agent, _counted in rig.seen]
    assert sorted(ids) == sorted(s.span_id for s in run)


def test_spans_decided_together_are_emitted_in_the_order_they_arrived():
    """Sessions read order: a tool that failed and then succeeded is a recovery only in that order."""
    rig = Rig()
    first, second, agent = span(3, 1, TOOL, error=True), span(2, 1, TOOL), span(1, None, named(AGENT, "a"))
    rig.send(first, second)
    rig.send(agent)
    assert [span_id for span_id, _agent, _counted in rig.seen] == [first.span_id, second.span_id, agent.span_id]
