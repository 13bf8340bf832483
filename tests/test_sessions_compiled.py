"""The compiled span loop of the session tracker (sessions/_spans.pyx) does exactly what
``SpanSessions.on_spans`` does: on seeded random trace forests (keyed and trace-id sessions, joins,
session spans and statuses, retries, escalations, memory, context, checkpoints, phases, failures), sent in
random orders and batches through the trace context, both leave every session, phase and call alike,
write the same log records in the same order, and count the same series."""

from __future__ import annotations

import os
import random

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.conventions.classify import Classified, classify_spans
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.sessions import span_sessions
from agentprom.sessions.model import Call, Phase, Session
from agentprom.sessions.tracker import SessionTracker
from tests.trace_forests import OwnSpan, copies, forest, plan_for

try:
    from agentprom.sessions import _spans
except ImportError:
    _spans = None

needs_compiled = pytest.mark.skipif(
    not span_sessions.COMPILED, reason="the compiled span loop of the session tracker is not in use: "
    "agentprom.sessions._spans is not built (pip install -e . with a C compiler) or AGENTPROM_PURE_PYTHON=1")


def test_the_compiled_span_loop_is_built_when_required():
    """CI sets AGENTPROM_REQUIRE_COMPILED=1 (scripts/test.sh): losing the extension fails the suite."""
    if os.environ.get("AGENTPROM_REQUIRE_COMPILED") != "1":
        pytest.skip("AGENTPROM_REQUIRE_COMPILED is not set")
    assert _spans is not None, "agentprom.sessions._spans is not built (pip install -e '.[test]')"
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") in ("", "0"):
        assert span_sessions.COMPILED and span_sessions.fold_spans is _spans.on_spans


def _plain(value, depth=0):
    """A session, phase or call as plain values (their slots, recursively; a call's phase by id)."""
    if isinstance(value, (Session, Call, Phase)):
        if depth > 1 and isinstance(value, Phase):
            return ("phase", value.phase_id, value.status)
        return (type(value).__name__, {name: _plain(getattr(value, name, "<unset>"), depth + 1)
                                       for name in _fields(type(value))})
    if isinstance(value, dict):
        return sorted(((repr(k), _plain(v, depth + 1)) for k, v in value.items()), key=lambda kv: kv[0])
    if isinstance(value, (list, tuple)) or type(value).__name__ == "deque":
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, set):
        return sorted(repr(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return value


def _fields(cls) -> list[str]:
    return [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())]


def classified_with_faults(batch: list[Span], rng: random.Random | None) -> list:
    """The batch's classifications; with ``rng``, now and then an LLM call's token counts unreadable (not a
    dict), so that folding its span fails: the failure must be contained alike, span by span."""
    classified = classify_spans(batch)
    if rng is not None:
        for c in classified:
            if c.kind.value == "llm" and rng.random() < 0.1:
                c.tokens = None
    return classified


def replay(spans: list[Span], plan: list, fold, timeout: float, log: bool = True, faults: int | None = None) -> list:
    """Feed ``spans`` through a trace context to a session tracker folding with ``fold``, as ``plan`` says;
    its sessions after each step, its log records (``log``) and its series. ``faults`` seeds unreadable
    classifications (``classified_with_faults``)."""
    rng = random.Random(faults) if faults is not None else None
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    config = validate({"sessions": {"inactivity_timeout_seconds": timeout, "max_tool_calls_per_session": 3,
                                    "max_open_sessions": 4}})
    context = TraceContext(config.attribution, store)
    records: list[dict] = []
    tracker = SessionTracker(store, config.sessions, clock, sink=records.append if log else None)
    saved = span_sessions.fold_spans
    span_sessions.fold_spans = fold
    seen = []
    try:
        for step, arg in plan:
            if step == "batch":
                batch = [spans[i] for i in arg]
                tracker.on_resolved(context.add(batch, classified_with_faults(batch, rng)))
            elif step == "wait":
                clock.advance(arg)
                tracker.on_resolved(context.expire())
                tracker.expire()
            elif step == "end":
                tracker.on_resolved(context.settle_session(arg))
            seen.append(([_plain(s) for s in tracker.open.values()], [_plain(s) for s in tracker.ended.values()]))
        tracker.on_resolved(context.drain())
        tracker.flush()
    finally:
        span_sessions.fold_spans = saved
    seen.append(records)
    failures = store.families["agentprom_internal_errors_total"].series.get(("sessions",))
    seen.append(failures.value if failures is not None else 0)
    seen.append(sorted((name, labels, getattr(series, "value", None), list(getattr(series, "counts", None) or ()),
                        repr(getattr(series, "sum", None)))
                       for name, family in store.families.items() for labels, series in family.series.items()))
    return seen


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_span_loop_does_what_the_python_one_does(seed):
    rng = random.Random(seed)
    contained = 0
    for _ in range(40):
        spans = forest(rng, rng.randrange(1, 8))
        plan = plan_for(rng, len(spans))
        timeout = rng.choice((300.0, 30.0))
        log = rng.random() < 0.7
        faults = rng.randrange(100) if rng.random() < 0.3 else None
        state = random.getstate()
        random.seed(seed)  # phase ids are random (sessions/model.py new_id): the same in both runs
        compiled = replay(copies(spans), plan, span_sessions.fold_spans, timeout, log, faults)
        random.seed(seed)
        python = replay(copies(spans), plan, span_sessions.SpanSessions.on_spans, timeout, log, faults)
        random.setstate(state)
        assert compiled == python
        contained += compiled[-2] > 0
    assert contained, "no span's failure was contained: the comparison never saw that path"


@needs_compiled
def test_the_benchmark_request_is_folded_alike():
    from agentprom.receiver.decode import decode_traces
    from bench.workload import request_bytes, with_trace_ids
    bodies = [with_trace_ids(request_bytes(), (0x7100 + i).to_bytes(8, "big")) for i in range(2)]
    seen = []
    for fold in (span_sessions.fold_spans, span_sessions.SpanSessions.on_spans):
        spans = [span for body in bodies for span in decode_traces(body).spans]
        plan = [("batch", list(range(k * 512, (k + 1) * 512))) for k in range(2)]
        random.seed(3)
        seen.append(replay(spans, plan, fold, 300.0))
    assert seen[0] == seen[1]
    assert seen[0][-3], "no record was written: the comparison saw nothing"


@needs_compiled
def test_spans_of_another_class_take_the_python_path():
    rng = random.Random(13)
    spans = forest(rng, 6)
    plan = plan_for(rng, len(spans))

    def own() -> list[Span]:
        return [OwnSpan(**{name: getattr(s, name) for name in Span.__dataclass_fields__}) for s in spans]

    random.seed(1)
    compiled = replay(own(), plan, span_sessions.fold_spans, 300.0)
    random.seed(1)
    assert compiled == replay(own(), plan, span_sessions.SpanSessions.on_spans, 300.0)


@needs_compiled
def test_configure_refuses_classes_it_cannot_read_in_place():
    from agentprom.conventions import profile
    from agentprom.conventions.classify import first_str

    class Loose:
        pass

    class SharedList:  # a field that starts as a new list for each call cannot be shared
        __slots__ = Call.__slots__

        def __init__(self, *args) -> None:
            for name in self.__slots__:
                setattr(self, name, None)
            self.sizes = []

    def configure(classified=Classified, call=Call):
        _spans.configure(Span, classified, Session, call, ("agent", "llm", "tool"), None, frozenset(), "active", 2,
                         profile, ("tool_call", "llm_call"), first_str, None, None, None, "unknown")

    try:
        with pytest.raises(ValueError, match="not a slots class"):
            configure(classified=Loose)
        with pytest.raises(ValueError, match="mutable"):
            configure(call=SharedList)
    finally:
        assert span_sessions._compiled() is _spans.on_spans  # configured as at import again, whatever happened


def _capped_session(fold, log: bool) -> list:
    """One session of 150 failing tool and LLM calls (distinct names), each below a phase span that never
    comes: more pending calls and failing names than a session keeps (sessions/book.py MIN_OPEN_STATE),
    then the same names succeeding (recoveries); the session, its log and its series after it."""
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    config = validate({"sessions": {"max_tool_calls_per_session": 3}})
    records: list[dict] = []
    tracker = SessionTracker(store, config.sessions, clock, sink=records.append if log else None)
    spans, classified = [], []
    for i in range(300):
        tool = i % 2 == 0
        name = f"name-{i % 150}"
        attributes = ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name} if tool else
                      {"gen_ai.operation.name": "chat", "gen_ai.request.model": name, "gen_ai.usage.input_tokens": i})
        if i % 7 == 0:
            attributes["agent.retry.attempt"] = 2
        spans.append(Span(trace_id=b"\x05" * 16, span_id=(0x100 + i).to_bytes(8, "big"), parent_span_id=b"\x01" * 8,
                          name=name, kind=1, start_ns=10**9 * i, end_ns=10**9 * i + 5, status_code=2 if i < 150 else 0,
                          attributes={**attributes, "gen_ai.conversation.id": "conv"}, resource={}))
    for c in classify_spans(spans):
        c.phase, c.session = (b"\x09" * 8, "p", "plan"), "conv"
        classified.append(c)
    state = random.getstate()
    random.seed(5)  # phase ids are random (sessions/model.py new_id): the same in both runs
    try:
        for start in range(0, 300, 50):
            fold(tracker, spans[start:start + 50], classified[start:start + 50])
    finally:
        random.setstate(state)
    session = tracker.open["conv"]
    dropped = dict(session.state_dropped or {})
    assert dropped.get("pending_calls") and dropped.get("failing_calls") and session.recoveries
    return [_plain(session), records, sorted((name, labels, getattr(series, "value", None))
                                             for name, family in store.families.items()
                                             for labels, series in family.series.items())]


@needs_compiled
@pytest.mark.parametrize("log", [True, False])
def test_a_session_past_its_caps_is_folded_alike(log):
    assert _capped_session(span_sessions.fold_spans, log) == _capped_session(span_sessions.SpanSessions.on_spans, log)


def _one_tool_call(tracker: SessionTracker) -> None:
    span = Span(trace_id=b"\x05" * 16, span_id=b"\x06" * 8, parent_span_id=b"\x01" * 8, name="t", kind=1,
                start_ns=0, end_ns=5, status_code=0, resource={},
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                            "gen_ai.conversation.id": "c"})
    classified = classify_spans([span])
    classified[0].session = "c"  # as the trace context reads it from gen_ai.conversation.id
    span_sessions.fold_spans(tracker, [span], classified)


@needs_compiled
@pytest.mark.parametrize("where", ["class", "instance"])
def test_a_book_with_its_own_add_call_is_called(where):
    """The compiled twin of ``SessionBook._add_call`` stands in only for that method: a tracker that
    changes it, in its class or on itself, gets its own called for every call."""
    class Tracker(SessionTracker):
        def _add_call(self, s, call, phase, final):
            added.append(call.name)
            super()._add_call(s, call, phase, final)

    added: list[str] = []
    clock = ManualClock()
    tracker = (Tracker if where == "class" else SessionTracker)(SeriesStore(clock=clock), validate({}).sessions, clock)
    if where == "instance":
        own = tracker._add_call

        def _add_call(s, call, phase, final):
            added.append(call.name)
            own(s, call, phase, final)

        tracker._add_call = _add_call
    _one_tool_call(tracker)
    assert added == ["search"] and tracker.open["c"].tool_calls == 1


@needs_compiled
def test_caps_beyond_a_machine_integer_are_taken_as_python_takes_them():
    clock = ManualClock()
    config = validate({"sessions": {"max_tool_calls_per_session": 2**70}})
    tracker = SessionTracker(SeriesStore(clock=clock), config.sessions, clock)
    _one_tool_call(tracker)
    assert tracker.open["c"].tool_calls == 1 and not tracker.open["c"].state_dropped
