"""The compiled batch path of the trace context (context/_batch.pyx) does exactly what batch.py's Python
twins do: on seeded random trace forests (agents named and not, wrappers, steps, sub-agents, nested LLM
calls, session keys, phase spans, remote parents, cycles, duplicate span ids, missing ancestors), sent
in random orders and batches, with timeouts, session ends, overflow and a drain, both hand on the same
spans with the same classifications, in the same order, and leave the same trees behind."""

from __future__ import annotations

import dataclasses
import os
import random
from contextlib import contextmanager, nullcontext

import pytest

from agentprom.clock import ManualClock
from agentprom.config.schema import AttributionConfig
from agentprom.context import batch, stage
from agentprom.context.stage import TraceContext
from agentprom.context.tree import Node, Tree
from agentprom.conventions.classify import Classified, classify_spans
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from tests.trace_forests import OwnSpan, copies, forest, plan_for

try:
    from agentprom.context import _batch
except ImportError:
    _batch = None

needs_compiled = pytest.mark.skipif(
    not batch.COMPILED, reason="the compiled trace-context batch path is not in use: agentprom.context._batch is "
    "not built (pip install -e . with a C compiler) or AGENTPROM_PURE_PYTHON=1")

FIELDS = [f.name for f in dataclasses.fields(Classified)]


def test_the_compiled_batch_path_is_built_when_required():
    """CI sets AGENTPROM_REQUIRE_COMPILED=1 (scripts/test.sh): losing the extension fails the suite."""
    if os.environ.get("AGENTPROM_REQUIRE_COMPILED") != "1":
        pytest.skip("AGENTPROM_REQUIRE_COMPILED is not set")
    assert _batch is not None, "agentprom.context._batch is not built (pip install -e '.[test]')"
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") in ("", "0"):
        assert batch.COMPILED and stage.decide is _batch.decide


@contextmanager
def python_path():
    """The stage with batch.py's Python twins (as ``AGENTPROM_PURE_PYTHON=1`` gives it)."""
    saved = stage.index_batch, stage.place_batch, stage.decide
    stage.index_batch, stage.place_batch, stage.decide = (batch.index_batch_python, batch.place_batch_python,
                                                          batch.decide_python)
    try:
        yield
    finally:
        stage.index_batch, stage.place_batch, stage.decide = saved


def handed_on(resolved) -> tuple:
    def seen(spans, classified):
        return [(span.trace_id, span.span_id, tuple(getattr(c, name) for name in FIELDS))
                for span, c in zip(spans, classified, strict=True)]
    return seen(resolved.spans, resolved.classified), seen(resolved.settled_spans, resolved.settled)


def state(context: TraceContext) -> tuple:
    def entry(held):
        if isinstance(held, Node):
            return ("node", held.span_id, held.parent_id, held.decided, held.emitted, held.seq,
                    getattr(held, "passes", None))
        if isinstance(held, Span):
            return ("span", held.span_id)
        return held
    trees = [(trace_id, sorted((key, entry(held)) for key, held in tree.nodes.items()),
              sorted((key, [n.seq for n in nodes]) for key, nodes in tree.waiting.items()),
              sorted(tree.llm_below), sorted(tree.named_below), tree.session, tree.unkeyed)
             for trace_id, tree in context.traces.items()]
    fallbacks = sorted((labels, series.value) for labels, series in context._m_fallbacks.series.items())
    return trees, [node.seq for node in context.pending], context.indexed, context._seq, fallbacks


def replay(spans: list[Span], plan: list, limits: dict) -> list:
    """Feed ``spans`` to a new trace context as ``plan`` says; what it handed on each time, and its state."""
    clock = ManualClock()
    context = TraceContext(AttributionConfig(**limits), SeriesStore(clock=clock))
    seen = []
    for step, arg in plan:
        if step == "batch":
            batch_spans = [spans[i] for i in arg]
            seen.append(handed_on(context.add(batch_spans, classify_spans(batch_spans))))
        elif step == "wait":
            clock.advance(arg)
            seen.append(handed_on(context.expire()))
        elif step == "end":
            seen.append(handed_on(context.settle_session(arg)))
        seen.append(state(context))
    seen.append(handed_on(context.drain()))
    seen.append(state(context))
    return seen


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_batch_path_does_what_the_python_one_does(seed):
    rng = random.Random(seed)
    for _ in range(40):
        spans = forest(rng, rng.randrange(1, 8))
        plan = plan_for(rng, len(spans))
        limits = rng.choice(({}, {"max_pending_spans": 5, "max_indexed_spans": 12}, {"max_indexed_spans": 30}))
        compiled = replay(copies(spans), plan, limits)
        with python_path():
            python = replay(copies(spans), plan, limits)
        assert compiled == python


@needs_compiled
def test_the_benchmark_request_is_placed_alike():
    """bench/workload.py's request (the ingest benchmark's): the common path, at scale."""
    from agentprom.receiver.decode import decode_traces
    from bench.workload import request_bytes, with_trace_ids
    bodies = [with_trace_ids(request_bytes(), (0x6000 + i).to_bytes(8, "big")) for i in range(3)]
    seen = {}
    for path in ("compiled", "python"):
        clock = ManualClock()
        context = TraceContext(AttributionConfig(max_indexed_spans=1000), SeriesStore(clock=clock))
        runs = []
        with python_path() if path == "python" else nullcontext():
            for body in bodies:
                spans = decode_traces(body).spans
                runs.append(handed_on(context.add(spans, classify_spans(spans))))
                runs.append(state(context))
        seen[path] = runs
    assert seen["compiled"] == seen["python"]


@needs_compiled
def test_spans_of_another_class_take_the_python_path():
    rng = random.Random(7)
    spans = forest(rng, 4)
    plan = plan_for(rng, len(spans))

    def own() -> list[Span]:
        return [OwnSpan(**{f.name: getattr(s, f.name) for f in dataclasses.fields(Span)}) for s in spans]

    compiled = replay(own(), plan, {})
    with python_path():
        python = replay(own(), plan, {})
    assert compiled == python
    assert compiled != replay(copies(spans), plan, {})  # the class makes a difference the test would see


@needs_compiled
def test_configure_refuses_classes_it_cannot_read_in_place():
    class Loose:  # no slots: fields in an instance dict
        def __init__(self):
            self.trace_id = b""

    with pytest.raises(ValueError, match="not a slots class"):
        _batch.configure(Loose, Classified, Tree, ("agent", "llm", "tool", "other"), batch.ROOT, None, None,
                         (None, None, None))
    with pytest.raises(ValueError, match="8-tuple"):
        _batch.configure(Span, Classified, Tree, ("agent", "llm", "tool", "other"), (None,), None, None,
                         (None, None, None))
