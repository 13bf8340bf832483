"""The compiled per-run tallies (agentprom/_runs.pyx) do exactly what runs.py's ``tally_batch_python`` does:
on seeded random trace forests (runs with and without sub-agents, loop-cycle spans, calls whose run was
observed already, duplicate agent spans), sent in random orders and batches through the trace context,
both leave the same tallies, closed and observed runs, and the same fan-out series."""

from __future__ import annotations

import os
import random

import pytest

from agentprom import runs as runs_module
from agentprom.clock import ManualClock
from agentprom.config.schema import AttributionConfig
from agentprom.context.stage import TraceContext
from agentprom.conventions.classify import classify_spans
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.runs import Runs
from tests.trace_forests import OwnSpan, copies, forest, plan_for

try:
    from agentprom import _runs
except ImportError:
    _runs = None

needs_compiled = pytest.mark.skipif(
    not runs_module.COMPILED, reason="the compiled run tallies are not in use: agentprom._runs is not built "
    "(pip install -e . with a C compiler) or AGENTPROM_PURE_PYTHON=1")

FAMILIES = ("agent_invocation_llm_calls", "agent_invocation_tool_calls", "agent_invocation_tokens",
            "agent_invocation_cost_usd", "agent_invocation_cycles", "agentprom_fanout_missed_total")


def test_the_compiled_run_tallies_are_built_when_required():
    """CI sets AGENTPROM_REQUIRE_COMPILED=1 (scripts/test.sh): losing the extension fails the suite."""
    if os.environ.get("AGENTPROM_REQUIRE_COMPILED") != "1":
        pytest.skip("AGENTPROM_REQUIRE_COMPILED is not set")
    assert _runs is not None, "agentprom._runs is not built (pip install -e '.[test]')"
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") in ("", "0"):
        assert runs_module.COMPILED and runs_module.tally_batch is _runs.tally_batch


def with_cycles(rng: random.Random, spans: list[Span]) -> list[Span]:
    """Turn some plain spans into Strands' loop-cycle spans, and give LLM calls a cost now and then."""
    for span in spans:
        if span.name.startswith(("other", "chain")) and rng.random() < 0.5:
            span.attributes["gen_ai.operation.name"] = "execute_event_loop_cycle"
        if span.name.startswith("llm") and rng.random() < 0.3:
            span.attributes["gen_ai.usage.cost"] = rng.choice((0.01, 0.5, 0))
    return spans


def replay(spans: list[Span], plan: list, tally, max_runs: int) -> list:
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    context = TraceContext(AttributionConfig(), store)
    runs = Runs(store, clock, 10.0, max_runs)
    saved = runs_module.tally_batch
    runs_module.tally_batch = tally
    seen = []
    try:
        for step, arg in plan:
            if step == "batch":
                batch = [spans[i] for i in arg]
                runs.on_resolved(context.add(batch, classify_spans(batch)))
            elif step == "wait":
                clock.advance(arg)
                runs.on_resolved(context.expire())
                runs.expire()
            seen.append((list(runs.tallies.items()), list(runs.closed.items()), list(runs.observed)))
        runs.on_resolved(context.drain())
        runs.drain()
    finally:
        runs_module.tally_batch = saved
    for name in FAMILIES:
        family = store.families[name]
        seen.append(sorted((labels, getattr(series, "value", None), list(getattr(series, "counts", None) or ()),
                            getattr(series, "sum", None)) for labels, series in family.series.items()))
    return seen


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_tallies_do_what_the_python_ones_do(seed):
    rng = random.Random(seed)
    for _ in range(40):
        spans = with_cycles(rng, forest(rng, rng.randrange(1, 8)))
        plan = plan_for(rng, len(spans))
        max_runs = rng.choice((10_000, 3, 1))
        compiled = replay(copies(spans), plan, runs_module.tally_batch, max_runs)
        python = replay(copies(spans), plan, runs_module.tally_batch_python, max_runs)
        assert compiled == python


@needs_compiled
def test_the_benchmark_request_is_tallied_alike():
    from agentprom.receiver.decode import decode_traces
    from bench.workload import request_bytes, with_trace_ids
    bodies = [with_trace_ids(request_bytes(), (0x7000 + i).to_bytes(8, "big")) for i in range(3)]
    seen = []
    for tally in (runs_module.tally_batch, runs_module.tally_batch_python):
        spans = [span for body in bodies for span in decode_traces(body).spans]
        plan = [("batch", list(range(k * 512, (k + 1) * 512))) for k in range(3)]
        seen.append(replay(spans, plan, tally, 100))
    assert seen[0] == seen[1]
    assert seen[0][-6], "no run was observed: the comparison saw nothing"


@needs_compiled
def test_spans_of_another_class_take_the_python_path():
    rng = random.Random(11)
    spans = with_cycles(rng, forest(rng, 5))
    plan = plan_for(rng, len(spans))

    def own() -> list[Span]:
        return [OwnSpan(**{name: getattr(s, name) for name in Span.__dataclass_fields__}) for s in spans]

    assert replay(own(), plan, runs_module.tally_batch, 10_000) == \
        replay(own(), plan, runs_module.tally_batch_python, 10_000)


@needs_compiled
def test_configure_refuses_classes_it_cannot_read_in_place():
    class Loose:
        pass

    with pytest.raises(ValueError, match="not a slots class"):
        _runs.configure(Loose, Loose, ("agent", "llm", "other"), frozenset(), "gen_ai.operation.name", None)
