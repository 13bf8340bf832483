"""The session tracker gives the same result whatever the request size, and what it gave before."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from agentprom.app import App
from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.receiver.decode import Batch
from agentprom.sessions.views import session_detail
from agentprom.sessions.tracker import SessionTracker
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000
#: what the tracker made of ``mixed_spans()`` once the trace context resolved sessions and phases
#: (it was first recorded span by span before the hot path was rewritten for speed, commit c6552c1);
#: regenerate deliberately with AGENTPROM_UPDATE_GOLDEN=1
GOLDEN = Path(__file__).parent / "golden" / "sessions" / "mixed_spans.json"


def mixed_spans(seed: int = 7, traces: int = 90) -> list[Span]:
    """Agent runs in every shape the tracker distinguishes: keyed and trace-id sessions, keys on a
    child or only on the root, phases by own attribute and by OpenInference CHAIN, failures and
    recoveries, retries, session spans, plain HTTP spans, and runs split over several batches."""
    rng = random.Random(seed)
    spans = []
    for i in range(traces):
        trace = rng.randbytes(16)
        root, phase = rng.randbytes(8), rng.randbytes(8)
        resource = {"service.name": f"svc{i % 3}"}
        key = {"gen_ai.conversation.id": f"conv{i % 11}"} if i % 3 else {}
        start = T0 + i * 10_000_000
        in_phase = i % 4 == 0
        parent = phase if in_phase else root
        for k in range(rng.randint(1, 4)):
            failed = rng.random() < 0.3
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"t{k % 2}",
                     "gen_ai.agent.name": f"agent{i % 4}"}
            if k == 1 and i % 5 == 0:
                attrs["agent.retry.attempt"] = 2
            spans.append(Span(trace, rng.randbytes(8), parent, "execute_tool", 1, start + k, start + k + 1_000_000,
                              2 if failed else 0, {**attrs, **(key if k == 0 and i % 2 else {})}, resource))
        spans.append(Span(trace, rng.randbytes(8), parent, "chat m", 3, start, start + 5_000_000, 0,
                          {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10,
                           "gen_ai.usage.output_tokens": 3}, resource))
        spans.append(Span(trace, rng.randbytes(8), root, "GET /x", 3, start, start + 2_000_000, 0, {}, resource))
        if in_phase:
            phase_attrs = {"agent.phase.name": f"p{i % 3}"} if i % 8 else {"openinference.span.kind": "CHAIN"}
            spans.append(Span(trace, phase, root, "phase", 1, start, start + 6_000_000, 0, phase_attrs, resource))
        root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"agent{i % 4}", **key}
        if i % 13 == 0:
            root_attrs.update({"agent.span.kind": "session", "agent.session.id": f"own{i}"})
        spans.append(Span(trace, root, b"", "invoke_agent", 1, start, start + 8_000_000, 2 if i % 17 == 0 else 0,
                          root_attrs, resource))
    return spans


def _rig(sink=None) -> tuple[Translator, SessionTracker, SeriesStore]:
    """A translator with the trace context and the tracker subscribed, as the App wires them."""
    config = validate({})
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    translator = Translator(store, context=TraceContext(config.attribution, store))
    tracker = SessionTracker(store, config.sessions, clock, sink=sink)
    translator.listeners.append(tracker.on_resolved)
    return translator, tracker, store


def run(spans: list[Span], batched: bool) -> tuple[str, list[dict], list[dict]]:
    records: list[dict] = []
    translator, tracker, store = _rig(records.append)
    size = 37 if batched else 1  # span by span: the reference the batched loop must match
    for index in range(0, len(spans), size):
        translator.consume(Batch(spans=spans[index:index + size]), "grpc")
    details = [_without_ids(session_detail(s, tracker)) for s in tracker.all_sessions()]
    return Renderer(store).render(False), [_without_ids(r) for r in records], details


def _without_ids(document: dict) -> dict:
    """Drop the random ids given to phases (``new_id``), which differ between any two runs."""
    return {k: _without_ids(v) if isinstance(v, dict) else [_without_ids(x) if isinstance(x, dict) else x for x in v]
            if isinstance(v, list) else v for k, v in document.items() if k != "invocation_id"}


def test_batches_and_single_spans_give_the_same_sessions_metrics_and_records():
    spans = mixed_spans()
    per_span = run(spans, batched=False)
    per_batch = run(spans, batched=True)
    text, records, sessions = per_batch
    assert "agent_sessions_total" in text and records and len(sessions) > 20  # the mix did exercise the tracker
    # the same samples: a family lists its series in the order they were first counted, which
    # differs (a batch hands on a trace's spans after its root, single spans as they come)
    assert sorted(per_batch[0].splitlines()) == sorted(per_span[0].splitlines())
    assert per_batch[1:] == per_span[1:]


def test_the_tracker_still_does_what_it_did_before_it_was_made_faster():
    text, records, sessions = run(mixed_spans(), batched=True)
    if os.environ.get("AGENTPROM_UPDATE_GOLDEN"):
        write_golden(run(mixed_spans(), batched=False))
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(text.splitlines()) == sorted(expected["metrics"])  # series order: see above
    assert records == expected["records"]
    assert sessions == expected["sessions"]


def write_golden(result: tuple[str, list[dict], list[dict]]) -> None:
    text, records, sessions = result
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    document = {"metrics": text.splitlines(), "records": records, "sessions": sessions}
    GOLDEN.write_text(json.dumps(document, indent=0, sort_keys=True) + "\n", encoding="utf-8")


def test_the_app_subscribes_the_tracker_only_when_sessions_are_on():
    on = App(validate({}))
    assert on.tracker.on_resolved in [getattr(f, "__wrapped__", f) for f in on.translator.listeners]
    off = App(validate({"sessions": {"enabled": False}}))
    assert off.tracker.on_resolved not in [getattr(f, "__wrapped__", f) for f in off.translator.listeners]


def test_a_span_the_tracker_fails_on_does_not_cost_the_rest_of_its_batch():
    spans = mixed_spans(traces=20)
    translator, tracker, store = _rig()
    broken = Span(b"\x01" * 16, b"\x02" * 8, b"", "bad", 1, T0, T0 + 1, 0,
                  {"agent.session.id": "x", "agent.context.tokens_used": 5, "agent.context.tokens_available": 10},
                  {})
    broken.start_ns = None  # a span no decoder makes: the tracker's arithmetic on it raises
    translator.consume(Batch(spans=[broken, *spans]), "grpc")
    assert tracker.errors.counts["sessions"] == 1
    assert store.value("agentprom_internal_errors_total", ("sessions",)) == 1
    reference_translator, reference, _store = _rig()
    reference_translator.consume(Batch(spans=spans), "grpc")
    assert sorted(s.session_id for s in tracker.all_sessions()) == sorted(
        [*(s.session_id for s in reference.all_sessions()), "x"])
