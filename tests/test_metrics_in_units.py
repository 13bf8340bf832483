"""Unit tests of the metrics-in pieces: naming against the reference exporter, the exponential
conversion against the real SDK's exponential histograms, run-time families, and config."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute, sanitize_full_name
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agentprom.clock import ManualClock
from agentprom.config.loader import ConfigError, validate
from agentprom.metrics.dynamic import MAX_LABELS, DynamicFamilies, DynamicSpec
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.metrics_in.exponential import to_explicit
from agentprom.metrics_in.model import ExponentialHistogramPoint
from agentprom.metrics_in.naming import LabelNamer, metric_name, sanitize_label

NAMES = ["gen_ai.client.operation.duration", "requests_total", "http/server  request..latency", "2xx.responses",
         "latency_seconds", "a__b", "ünïcode.metric", "_leading", "x:y.z"]
UNITS = ["", "s", "ms", "By", "{token}", "1", "m/s", "By/s", "%", "USD", "{packet}/s", "Cel", "KiBy", "weird unit!"]


def reference_name(name: str, unit: str, counter: bool) -> str:
    """What opentelemetry-exporter-prometheus exposes (its _mapping plus prometheus_client's suffixes)."""
    family = CounterMetricFamily if counter else GaugeMetricFamily
    exposed = family(sanitize_full_name(name), "", unit=map_unit(unit)).name
    return exposed + "_total" if counter else exposed


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("counter", [True, False])
def test_metric_names_match_the_reference_exporter(name, unit, counter):
    ours = metric_name(name, unit, counter=counter, gauge=not counter)
    if unit == "1" and not counter:  # documented difference: the specification's "ratio" for gauges
        assert ours == reference_name(name, "", counter) + "_ratio"
    else:
        assert ours == reference_name(name, unit, counter)


@pytest.mark.parametrize("key", ["gen_ai.token.type", "http.response.status_code", "9lives", "a..b", "k8s.pod.name",
                                 "x:y", "ütf"])
def test_label_names_match_the_reference_exporter(key):
    assert sanitize_label(key) == sanitize_attribute(key)


def test_colliding_keys_join_in_key_order_and_reserved_names_are_renamed():
    namer = LabelNamer()
    assert namer.labels({"a_b": "2", "a.b": "1", "a-b": "3"}) == {"a_b": "3;1;2"}  # "-" < "." < "_"
    assert namer.labels({"le": "x", "quantile": 1, "": "dropped", "ok": [1, 2]}) == {
        "exported_le": "x", "exported_quantile": "1", "ok": "[1, 2]"}


# -- exponential histograms: conversion checked against the real SDK ------------------------

def _sdk_point(values: list[float], max_size: int):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[
        View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(max_size=max_size))])
    histogram = provider.get_meter("t").create_histogram("h")
    for value in values:
        histogram.record(value)
    data = reader.get_metrics_data()
    provider.shutdown()
    p = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    return ExponentialHistogramPoint(
        {}, p.start_time_unix_nano, p.time_unix_nano, p.count, p.sum, p.scale, p.zero_count, 0.0,
        p.positive.offset, tuple(p.positive.bucket_counts), p.negative.offset, tuple(p.negative.bucket_counts))


def _powers_of_two(bound: float) -> bool:
    return bound == 0 or math.frexp(abs(bound))[0] == 0.5


# The SDK's histograms take no negative values; the negative side is checked on a known point below.
values = st.lists(st.one_of(st.floats(1e-6, 1e9), st.just(0.0)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=values, max_size=st.sampled_from([4, 20, 160]))
def test_exponential_conversion_counts_every_value_below_each_bound(values, max_size):
    point = _sdk_point(values, max_size)
    bounds, counts = to_explicit(point)
    assert all(_powers_of_two(b) for b in bounds)
    assert sum(counts) == len(values) and counts[-1] == 0
    cumulative = 0
    for bound, count in zip(bounds, counts):
        cumulative += count
        truth = sum(1 for v in values if v <= bound)
        if point.scale >= 0:
            assert cumulative == truth, (bound, point.scale)
        else:  # wide buckets count at their upper bound: exact there, a lower bound in between
            assert cumulative <= truth
            exponent = math.frexp(bound)[1] - 1 if bound > 0 else None
            if exponent is not None and exponent % (1 << -point.scale) == 0 and bound >= min(values):
                assert cumulative == truth, (bound, point.scale)


def test_exponential_conversion_of_a_known_point():
    # scale 1: bucket i holds (2**(i/2), 2**((i+1)/2)]; offset -2 -> (0.5, 0.707], (0.707, 1], (1, 1.41], (1.41, 2]
    point = ExponentialHistogramPoint({}, 0, 1, 6, 5.0, 1, 0, 0.0, -2, (1, 2, 0, 3), 0, ())
    assert to_explicit(point) == ((0.5, 1.0, 2.0), (0, 3, 3, 0))


def test_exponential_conversion_of_negative_and_zero_buckets():
    # negative index 1 holds |v| in (2, 4], i.e. v in [-4, -2): le=-2; index 2 (v in [-8, -4)): le=-4.
    # The zero bucket (|v| <= 0.3) counts at the smallest power of two at or above its threshold.
    point = ExponentialHistogramPoint({}, 0, 1, 4, -9.0, 0, 1, 0.3, 0, (), 1, (2, 1))
    assert to_explicit(point) == ((-4.0, -2.0, 0.5), (1, 2, 1, 0))


# -- run-time families ---------------------------------------------------------------------

def _families(**limits) -> tuple[SeriesStore, DynamicFamilies, ManualClock]:
    clock = ManualClock()
    store = SeriesStore(StoreLimits(**limits), clock)
    return store, DynamicFamilies(store, ttl=300, max_families=3, reserved=frozenset({"agent_tokens_total"})), clock


def test_widening_keeps_series_identity_and_renders_without_empty_labels():
    store, families, _ = _families()
    family = families.get(DynamicSpec("jobs_total", "counter", "Jobs."))
    first = family.lookup({"queue": "a"})
    first.value = 1
    second = family.lookup({"queue": "a", "worker": "w1"})
    second.value = 2
    assert family.spec.labels == ("queue", "worker")
    assert family.lookup({"queue": "a"}) is first
    assert first.labels == ("a", "")
    text = Renderer(store).render()
    assert 'jobs_total{queue="a"} 1\n' in text and 'jobs_total{queue="a",worker="w1"} 2\n' in text
    too_many = {f"l{i}": "x" for i in range(MAX_LABELS + 1)}
    assert family.lookup(too_many) is None
    assert family.spec.labels == ("queue", "worker")


def test_openmetrics_counter_without_total_is_unknown_and_has_no_exemplar():
    from agentprom.metrics.series_store import Exemplar

    store, families, _ = _families()
    untranslated = families.get(DynamicSpec("jobs", "counter", "Jobs."))
    translated = families.get(DynamicSpec("tasks_total", "counter", "Tasks.", unit=""))
    for family in (untranslated, translated):
        series = family.lookup({})
        series.value = 2
        series.exemplars = [Exemplar("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, 1700000000.0)]
    text = Renderer(store).render(openmetrics=True)
    assert "# TYPE jobs unknown\njobs 2\n" in text
    assert "# TYPE tasks counter\ntasks_total 2 # {trace_id=" in text


def test_family_limit_clashes_and_pruning_after_expiry():
    store, families, clock = _families(series_ttl_seconds=0)  # the store's TTL off: ours still applies
    assert families.get(DynamicSpec("agent_tokens_total", "counter", "x")) == "catalog_clash"
    gauge = families.get(DynamicSpec("jobs", "gauge", "x"))
    assert families.get(DynamicSpec("jobs", "counter", "x")) == "type_conflict"
    assert families.get(DynamicSpec("jobs_total", "counter", "x")) == "type_conflict"  # OpenMetrics name "jobs"
    families.get(DynamicSpec("b", "gauge", "x"))
    families.get(DynamicSpec("c", "gauge", "x"))
    assert families.get(DynamicSpec("d", "gauge", "x")) == "family_limit"
    gauge.lookup({}).value = 1
    clock.advance(301)
    store.expire()
    assert families.families == {}
    assert "jobs" not in store.families
    assert not isinstance(families.get(DynamicSpec("jobs_total", "counter", "x")), str)  # the name is free again


def test_refused_names_are_logged_once(caplog):
    _, families, _ = _families()
    for _ in range(3):
        assert families.get(DynamicSpec("agent_tokens_total", "counter", "x")) == "catalog_clash"
    warnings = [r.getMessage() for r in caplog.records if "agent_tokens_total" in r.getMessage()]
    assert len(warnings) == 1 and "catalog_clash" in warnings[0]


def test_series_limit_drops_instead_of_folding():
    store, families, _ = _families(max_series_per_metric=2)
    family = families.get(DynamicSpec("g", "gauge", "x"))
    assert family.lookup({"k": "1"}) and family.lookup({"k": "2"})
    assert family.lookup({"k": "3"}) is None
    assert family.overflow is None
    assert store.value("agentprom_series_overflow_total", ("otlp_in",)) == 1


# -- config ----------------------------------------------------------------------------------

def test_metrics_in_config_errors_are_located():
    with pytest.raises(ConfigError) as error:
        validate({"metrics_in": {"exponential_histograms": "keep", "series_ttl_seconds": -1,
                                 "promote_resource_attributes": ["service.name", "service.name", ""],
                                 "typo": 1}})
    paths = sorted(problem.path for problem in error.value.problems)
    assert paths == ["metrics_in.exponential_histograms", "metrics_in.promote_resource_attributes",
                     "metrics_in.series_ttl_seconds", "metrics_in.typo"]
    assert "listed twice" in str(error.value) and "entry 2 is empty" in str(error.value)
    assert validate({}).metrics_in.series_ttl_seconds == 300


# -- self-metrics about incoming metrics ---------------------------------------------------

def _gauges(names, labels: dict, time_ns: int):
    from agentprom.metrics_in import model as m

    batch = m.MetricBatch()
    scope = m.Scope("s", "1", "", {})
    for name in names:
        batch.add(m.Metric(name, "", "", m.GAUGE, 0, False, [], scope, {}), [m.NumberPoint(labels, 0, time_ns, 1.0)])
    return batch


def test_self_metrics_name_every_incoming_metric_with_one_value():
    """agentprom_series_{expired,overflow}_total and agentprom_active_series label incoming metrics
    metric="otlp_in" (the names come from the sender): 400 metric names give one series each, not 400."""
    from agentprom.metrics.catalog import OTLP_IN_METRIC
    from agentprom.metrics_in.translator import MetricsInSettings, MetricsTranslator

    clock = ManualClock()
    store = SeriesStore(StoreLimits(max_series_per_metric=1), clock)
    translator = MetricsTranslator(store, MetricsInSettings(series_ttl_seconds=10, max_metric_families=100),
                                   frozenset())
    catalog = {name for name, family in store.families.items()}
    for round_ in range(8):
        names = [f"round{round_}.metric{i}" for i in range(50)]
        translator.consume(_gauges(names, {"k": "a"}, 1), "http")
        translator.consume(_gauges(names, {"k": "b"}, 1), "http")  # over the series limit
        store.refresh_self_metrics()
        dynamic = sum(len(family) for family in translator.families.families.values())
        assert store.value("agentprom_active_series", (OTLP_IN_METRIC,)) == dynamic == 50
        clock.advance(11)
        store.expire()
    for name in ("agentprom_series_expired_total", "agentprom_series_overflow_total", "agentprom_active_series"):
        assert {key[0] for key in store[name].series} <= catalog | {OTLP_IN_METRIC}, name
    assert store.value("agentprom_series_expired_total", (OTLP_IN_METRIC,)) == 8 * 50
    assert store.value("agentprom_series_overflow_total", (OTLP_IN_METRIC,)) == 8 * 50
    store.refresh_self_metrics()
    assert store.value("agentprom_active_series", (OTLP_IN_METRIC,)) == 0
