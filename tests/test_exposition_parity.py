"""The fast renderer and prometheus_client's own ``generate_latest`` (over ``StoreCollector``)
must describe exactly the same samples, in both formats, for a store with varied series."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as client_text
from prometheus_client.openmetrics.exposition import generate_latest as client_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from agentprom.clock import ManualClock
from agentprom.metrics.catalog import CATALOG, COUNTER, HISTOGRAM
from agentprom.metrics.collector import StoreCollector
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from tests.exposition import promtool_check, render

AWKWARD_VALUES = ["plain", "", 'q"uote', "back\\slash", "new\nline", "ünïcödé ツール", "x" * 200, "{}=,"]


def filled_store(seed: int = 7) -> SeriesStore:
    rng = random.Random(seed)
    clock = ManualClock()
    # the whole catalog, compat outputs included (their token buckets exercise le formatting)
    store = SeriesStore(StoreLimits(max_series_per_metric=25, max_label_value_length=64), clock, CATALOG)
    for spec in CATALOG:
        family = store[spec.name]
        for i in range(rng.randint(0, 40)):  # some families overflow, some stay empty
            labels = tuple(rng.choice(AWKWARD_VALUES) if rng.random() < 0.3 else f"{label}-{i % 30}"
                           for label in spec.labels)
            clock.advance(0.25)
            exemplar = (f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}") if i % 3 else None
            if spec.type == COUNTER:
                amount = rng.choice([1, 3, 0.5, 1e-6, 123456789, 2.5e20])
                family.inc(labels, amount, exemplar)
            elif spec.type == HISTOGRAM:
                bounds = spec.buckets
                value = rng.choice([bounds[0] / 2, bounds[len(bounds) // 2], bounds[-1] * 3, 0.0])
                family.observe(labels, value, exemplar, weight=rng.choice([1, 1, 2, 4, 1.5]))
            else:
                family.set(labels, rng.choice([0, 1, -3, 0.125, 1e10]))
    return store


def client_registry(store: SeriesStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(store))
    return registry


def samples(families, with_exemplars: bool = False) -> list:
    out = []
    for family in families:
        for s in family.samples:
            exemplar = None
            if with_exemplars and s.exemplar is not None:
                exemplar = (tuple(sorted(s.exemplar.labels.items())), s.exemplar.value, s.exemplar.timestamp)
            out.append((s.name, tuple(sorted(s.labels.items())), s.value, exemplar))
    return sorted(out, key=repr)


def headers(families) -> dict:
    return {family.name: (family.type, family.documentation) for family in families}


def test_text_output_matches_prometheus_client(promtool):
    store = filled_store()
    ours = render(store)
    theirs = client_text(client_registry(store)).decode()
    promtool_check(promtool, ours)
    our_samples = samples(parse_text(ours))
    assert len(our_samples) > 500
    assert any("otel_metric_overflow" in repr(s) for s in our_samples)
    assert our_samples == samples(parse_text(theirs))
    assert headers(parse_text(ours)) == headers(parse_text(theirs))


def test_openmetrics_output_matches_prometheus_client():
    store = filled_store(seed=11)
    ours = render(store, openmetrics=True)
    theirs = client_openmetrics(client_registry(store)).decode()
    our_samples = samples(parse_openmetrics(ours), with_exemplars=True)
    assert sum(1 for s in our_samples if s[3] is not None) > 50
    assert our_samples == samples(parse_openmetrics(theirs), with_exemplars=True)
    assert headers(parse_openmetrics(ours)) == headers(parse_openmetrics(theirs))


def test_collector_describes_without_collecting():
    store = filled_store()
    names = {metric.name for metric in StoreCollector(store).describe()}
    assert "agent_tool_calls" in names and "agent_tool_duration_seconds" in names
    assert all(not metric.samples for metric in StoreCollector(store).describe())
