"""Recorded span trees of real agent frameworks, replayed: the metrics must be the ones derived by hand.

Each folder of tests/golden/frameworks/ holds one framework's real spans as OTLP/JSON
(``trace.json``, recorded once by ``scripts/record_traces/NAME.py`` against a fake model
server), the tree as text, and ``expected.json``: the counter values the attribution rules
(docs/conventions.md, "Attribution from the trace tree") give, with a derivation line per span.
An expected entry lists some labels; the test sums the family's series over the others, and
checks that the entries of a family account for all of it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver.decode import Batch
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.runs import Runs
from agentprom.translator import Translator

FRAMEWORKS = Path(__file__).parent / "golden" / "frameworks"
FIXTURES = sorted(p.name for p in FRAMEWORKS.iterdir() if (p / "expected.json").exists())


def replay(batches: list[list], **attribution) -> SeriesStore:
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    config = validate({"attribution": attribution}).attribution
    context = TraceContext(config, store)
    translator = Translator(store, context=context)
    runs = Runs(store, clock, config.run_grace_seconds, config.max_open_runs)
    translator.listeners.append(runs.on_resolved)
    for spans in batches:
        translator.consume(Batch(spans=spans), "http")
    assert not context.pending, "a complete recorded trace leaves nothing waiting"
    runs.drain()
    assert store.value("agentprom_fanout_missed_total", ("late",)) == 0
    return store


def spans_of(name: str) -> list:
    batch = decode_traces_json((FRAMEWORKS / name / "trace.json").read_bytes())
    assert not batch.rejected
    return batch.spans


def observed(store: SeriesStore, family: str, labels: dict[str, str]) -> float:
    spec = store[family].spec
    return sum(series.value for series in store[family].all_series()
               if all(series.labels[spec.labels.index(k)] == v for k, v in labels.items()))


def check(store: SeriesStore, expected: dict) -> None:
    for family, entries in expected.items():
        total = 0.0
        for entry in entries:
            labels = {k: v for k, v in entry.items() if k != "value"}
            assert observed(store, family, labels) == pytest.approx(entry["value"]), (family, labels)
            total += entry["value"]
        assert observed(store, family, {}) == pytest.approx(total), f"{family}: series beyond the expected ones"


def check_histograms(store: SeriesStore, expected: dict) -> None:
    """Histograms (per-run fan-out, streaming latency): each entry's observation count and sum, and no
    other series."""
    for family, entries in expected.items():
        spec = store[family].spec
        seen = {series.labels: (sum(series.counts), series.sum) for series in store[family].all_series()}
        wanted = {tuple(entry[label] for label in spec.labels): (entry["count"], entry["sum"]) for entry in entries}
        assert seen.keys() == wanted.keys(), family
        for labels, (count, total) in wanted.items():
            assert seen[labels][0] == count and seen[labels][1] == pytest.approx(total), (family, labels)


@pytest.mark.parametrize("name", FIXTURES)
def test_recorded_framework_trees_give_the_metrics_derived_by_hand(name):
    expected = json.loads((FRAMEWORKS / name / "expected.json").read_text())
    store = replay([spans_of(name)])
    check(store, expected["expected"])
    check_histograms(store, expected.get("histograms", {}))


@pytest.mark.parametrize("name", FIXTURES)
def test_arrival_order_does_not_change_the_result(name):
    """Children first (as spans end), parents first, shuffled, and one span per request."""
    document = json.loads((FRAMEWORKS / name / "expected.json").read_text())
    expected, histograms = document["expected"], document.get("histograms", {})
    spans = spans_of(name)
    by_end = sorted(spans, key=lambda s: (s.end_ns, -s.start_ns))
    shuffled = spans[:]
    random.Random(7).shuffle(shuffled)
    for batches in ([by_end], [list(reversed(by_end))], [shuffled], [[span] for span in by_end]):
        store = replay(batches)
        check(store, expected)
        check_histograms(store, histograms)


def test_every_fixture_has_its_recording_script_and_tree():
    for name in FIXTURES:
        folder = FRAMEWORKS / name
        assert (folder / "tree.txt").exists() and (folder / "recorded.json").exists()
        about = json.loads((folder / "recorded.json").read_text())
        assert about, name
    recorders = {p.stem for p in (FRAMEWORKS.parents[2] / "scripts" / "record_traces").glob("*.py")}
    assert {"langgraph_openinference", "langgraph_openllmetry", "crewai_openinference", "strands",
            "openai_agents_openinference"} <= recorders


WAITING = sorted(p.name for p in FRAMEWORKS.iterdir() if (p / "expected_after_wait.json").exists())


@pytest.mark.parametrize("name", WAITING)
def test_a_recorded_trace_missing_its_root_is_counted_after_the_wait(name):
    """A trace whose agent span never arrives (smolagents never exports the run span of a failed
    run): nothing is counted until attribution.max_wait_seconds, then the fallback is counted."""
    expected = json.loads((FRAMEWORKS / name / "expected_after_wait.json").read_text())["expected"]
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    context = TraceContext(validate({}).attribution, store)
    translator = Translator(store, context=context)
    translator.consume(Batch(spans=spans_of(name)), "http")
    assert context.pending and observed(store, "agent_llm_calls_total", {}) == 0
    clock.advance(59)
    translator.expire()
    assert context.pending
    clock.advance(2)
    translator.expire()
    assert not context.pending
    check(store, expected)
