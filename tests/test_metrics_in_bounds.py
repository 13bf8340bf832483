"""Bounds of incoming OTLP metrics: buckets per histogram point and the memory budget of all incoming series.

A histogram point with a million buckets cost 55 MB per series, and counts alone (series per metric times
metric names) never bounded memory. Every test here runs in well under a second.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from agentprom.clock import ManualClock
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.metrics_in import model as m
from agentprom.metrics_in.exponential import to_explicit
from agentprom.metrics_in.translator import MetricsInSettings, MetricsTranslator
from agentprom.receiver.metrics_decode import decode_metrics

SCOPE = m.Scope("s", "1", "", {})
DROPPED = "agentprom_metric_points_dropped_total"


def make(**settings) -> tuple[SeriesStore, MetricsTranslator, ManualClock]:
    clock = ManualClock()
    store = SeriesStore(StoreLimits(max_series_per_metric=0), clock)
    settings.setdefault("target_info", False)
    return store, MetricsTranslator(store, MetricsInSettings(**settings), frozenset()), clock


def batch_of(name: str, kind: str, points: list, temporality: int = m.CUMULATIVE) -> m.MetricBatch:
    batch = m.MetricBatch()
    batch.add(m.Metric(name, "", "", kind, temporality, False, [], SCOPE, {}), points)
    return batch


def histogram(bounds: int, attributes: dict | None = None, time_ns: int = 10) -> m.HistogramPoint:
    return m.HistogramPoint(attributes or {}, 1, time_ns, bounds + 1, 1.0, tuple(float(b) for b in range(bounds)),
                            (1,) * (bounds + 1))


def exponential(scale: int, offset: int, counts: tuple[int, ...], time_ns: int = 10, start_ns: int = 1,
                negative: tuple[int, ...] = (), negative_offset: int = 0) -> m.ExponentialHistogramPoint:
    return m.ExponentialHistogramPoint({}, start_ns, time_ns, sum(counts) + sum(negative), None, scale, 0, 0.0,
                                       offset, counts, negative_offset, negative)


def test_a_histogram_point_with_a_million_buckets_is_refused_before_any_series_exists():
    point = metrics_pb2.HistogramDataPoint(time_unix_nano=10, count=1, explicit_bounds=range(1_000_000),
                                           bucket_counts=[0] * 1_000_000 + [1])
    request = ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(scope_metrics=[
        metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(name="wide", histogram=metrics_pb2.Histogram(
            aggregation_temporality=2, data_points=[point]))])])]).SerializeToString()
    store, translator, _ = make()
    gc.collect()
    tracemalloc.start()
    batch = decode_metrics(request)
    translator.consume(batch, "http")
    assert batch.rejected == {"too_many_buckets": 1}
    assert "too_many_buckets" in batch.error_message()  # partial_success tells the sender why
    del batch
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept < 1_000_000, kept  # neither a series nor the decoder's bounds cache keeps the point
    assert not len(store["wide"])
    assert store.value(DROPPED, ("too_many_buckets",)) == 1
    assert translator.families.budget.used == 0


def test_the_bucket_limit_covers_explicit_summary_and_accumulated_exponential_points():
    store, translator, _ = make(max_histogram_buckets=4)
    for bounds, rejected in ((4, {}), (5, {"too_many_buckets": 1})):
        batch = batch_of("h", m.HISTOGRAM, [histogram(bounds, time_ns=10 + bounds)])
        translator.consume(batch, "http")
        assert batch.rejected == rejected
    summary = m.SummaryPoint({}, 1, 10, 5, 1.0, tuple((q / 10, 1.0) for q in range(5)))
    batch = batch_of("s", m.SUMMARY, [summary])
    translator.consume(batch, "http")
    assert batch.rejected == {"too_many_buckets": 1}
    # delta exponential points merge onto the union of their bounds: the union is bounded too
    first = exponential(0, 0, (1, 1), time_ns=10, start_ns=5)  # bounds 1 2 4
    far = exponential(0, 10, (1, 1), time_ns=20, start_ns=10)  # bounds 1024 2048 4096: union of 6
    batch = batch_of("e", m.EXPONENTIAL_HISTOGRAM, [first, far], temporality=m.DELTA)
    translator.consume(batch, "http")
    assert batch.rejected == {"too_many_buckets": 1}
    series = next(iter(store["e"].series.values()))
    assert series.bounds == (1.0, 2.0, 4.0) and series.counts == [0, 1, 1, 0]  # as before the refused point


def test_hostile_exponential_scales_and_offsets_give_bounded_buckets():
    rng = random.Random(6)
    store, translator, _ = make()
    for i in range(200):
        scale = rng.choice([m.MIN_SCALE, -1, 0, 1, m.MAX_SCALE, rng.randint(m.MIN_SCALE, m.MAX_SCALE)])
        offset = rng.choice([-(2**31), 2**31 - 5000, -1100, 1000, rng.randint(-(2**31), 2**31 - 5000)])
        counts = tuple(rng.choice([0, 1, 2**62]) for _ in range(rng.randint(1, 5000)))
        point = exponential(scale, offset, counts, time_ns=10 + i, negative=counts[:100], negative_offset=offset)
        bounds, exposed_counts = to_explicit(point)
        assert len(bounds) <= 4300 and len(exposed_counts) == len(bounds) + 1
        assert sum(exposed_counts) == sum(counts) + sum(counts[:100])
        translator.consume(batch_of("x", m.EXPONENTIAL_HISTOGRAM, [point], temporality=m.DELTA), "http")
    for series in store["x"].series.values():
        assert len(series.bounds) <= 160
    assert store.value(DROPPED, ("too_many_buckets",)) > 0


def test_the_memory_budget_bounds_all_incoming_series_and_expiry_gives_it_back():
    budget = 4 * 1024 * 1024
    store, translator, clock = make(max_memory_bytes=budget, max_metric_families=1000, series_ttl_seconds=60)
    gc.collect()
    tracemalloc.start()
    accepted = 0
    for family in range(40):
        points = [histogram(160, {"worker": f"w{i}", "family": str(family)}) for i in range(20)]
        batch = batch_of(f"metric{family}", m.HISTOGRAM, points)
        translator.consume(batch, "http")
        accepted += len(points) - batch.rejected_count
    renderer = Renderer(store)
    renderer.render()
    renderer.render(openmetrics=True)  # both scrape caches filled: the estimate must cover them
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    used = translator.families.budget.used
    assert used <= budget
    assert held <= budget * 1.05, (held, used)  # the estimate errs high (renderer headers are extra)
    dropped = store.value(DROPPED, ("memory_budget",))
    assert dropped == 40 * 20 - accepted and 0 < accepted < 40 * 20
    assert used == sum(s.cost for f in translator.families.families.values() for s in f.series.values())
    clock.advance(61)
    store.expire()
    assert translator.families.budget.used == 0
    batch = batch_of("metric0", m.HISTOGRAM, [histogram(160, {"worker": "again"}, time_ns=99)])
    translator.consume(batch, "http")
    assert batch.rejected == {}


def test_accumulated_counters_and_histogram_sums_never_reach_infinity():
    """Before: two delta points of 1e308 summed to +Inf, and the counter stayed there for good."""
    store, translator, _ = make(translate_names=False)

    def counter_point(value: float, time_ns: int, start_ns: int = 0) -> m.MetricBatch:
        batch = m.MetricBatch()
        batch.add(m.Metric("spend", "", "", m.SUM, m.DELTA, True, [], SCOPE, {}),
                  [m.NumberPoint({}, start_ns, time_ns, value)])
        return batch

    def histogram_point(total: float, time_ns: int) -> m.MetricBatch:
        batch = m.MetricBatch()
        batch.add(m.Metric("latency", "", "", m.HISTOGRAM, m.DELTA, False, [], SCOPE, {}),
                  [m.HistogramPoint({}, 0, time_ns, 1, total, (1.0,), (1, 0))])
        return batch

    for n, batch in enumerate([counter_point(1e308, 10), counter_point(1e308, 20), counter_point(5.0, 30),
                               histogram_point(1e308, 10), histogram_point(1e308, 20)]):
        translator.consume(batch, "grpc")
    families = translator.families.families
    (spend,) = [f for name, f in families.items() if "spend" in str(name)]
    (latency,) = [f for name, f in families.items() if "latency" in str(name)]
    assert [s.value for s in spend.series.values()] == [1e308 + 5.0]
    assert [s.sum for s in latency.series.values()] == [1e308]
    assert store.value(DROPPED, ("out_of_range",)) == 2
