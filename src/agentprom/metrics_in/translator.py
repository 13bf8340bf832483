"""Translate decoded OTLP metrics into run-time families of the series store.

The one place that knows how an OTel metric becomes Prometheus series
(specification, "OTLP Metric points to Prometheus"):

* Gauge -> gauge; monotonic Sum -> counter; non-monotonic Sum -> gauge;
  Histogram -> histogram; ExponentialHistogram -> histogram through
  ``exponential.to_explicit`` (or dropped, by configuration); Summary ->
  summary. Delta points are accumulated (``accumulate``), including delta
  non-monotonic sums, which the specification drops: the sum of the deltas is
  exactly the up-down counter's value (docs/metrics-in.md).
* Labels: the point's attributes (``naming.LabelNamer``), over
  ``otel_scope_name``/``otel_scope_version`` (and ``otel_scope_schema_url`` and
  ``otel_scope_<attribute>`` when present), over the configured
  ``promote_resource_attributes``.
* Each resource's attributes become one ``target_info`` series.
* Exemplars with trace and span ids are kept on counters and histogram buckets
  (newest per bucket; an empty bucket shows the exemplar of the nearest lower
  one, as the specification asks) and rendered in OpenMetrics only.

Bounds: a histogram point with more than ``max_histogram_buckets`` bounds (an
exponential one after conversion), or a summary point with more quantiles, is
dropped (``too_many_buckets``) before any series is made for it; a point whose
series would take the run-time families over their memory budget is dropped
(``memory_budget``, see ``dynamic.MemoryBudget``).

Every point not exposed is counted in ``agentprom_metric_points_dropped_total``
by reason and reported back through ``partial_success``. Never awaits: the
store's single-owner rule holds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass

from agentprom.metrics.catalog import COUNTER, HISTOGRAM
from agentprom.metrics.dynamic import GAUGE, INFO, SUMMARY, DynamicFamilies, DynamicFamily, DynamicSeries, DynamicSpec
from agentprom.metrics.series_store import Exemplar, SeriesStore
from agentprom.metrics_in import accumulate
from agentprom.metrics_in import model as m
from agentprom.metrics_in.exponential import to_explicit
from agentprom.metrics_in.naming import LabelNamer, label_value, metric_name, unit_word

TARGET_INFO = DynamicSpec("target_info", INFO, "Target metadata: the resource attributes of each OTLP metrics source.")
_SPEC_CACHE_LIMIT = 10_000
MEMORY_BUDGET = "memory_budget"


@dataclass(frozen=True)
class MetricsInSettings:
    """How incoming OTLP metrics are translated (config section ``metrics_in``)."""

    translate_names: bool = True
    series_ttl_seconds: float = 300.0
    max_metric_families: int = 500
    promote_resource_attributes: tuple[str, ...] = ()
    scope_labels: bool = True
    target_info: bool = True
    exponential_histograms: str = "convert"  # or "drop"
    max_histogram_buckets: int = 160
    max_memory_bytes: int = 64 * 1024 * 1024  # 0 = no budget


def prometheus_type(metric: m.Metric) -> str:
    if metric.kind == m.SUM:
        return COUNTER if metric.monotonic else GAUGE
    if metric.kind in (m.HISTOGRAM, m.EXPONENTIAL_HISTOGRAM):
        return HISTOGRAM
    return SUMMARY if metric.kind == m.SUMMARY else GAUGE


class MetricsTranslator:
    def __init__(self, store: SeriesStore, settings: MetricsInSettings, reserved: frozenset[str]) -> None:
        self.store = store
        self.settings = settings
        self.families = DynamicFamilies(store, settings.series_ttl_seconds, settings.max_metric_families, reserved,
                                        settings.max_memory_bytes)
        self.namer = LabelNamer()
        self._received = store.families["agentprom_metric_points_received_total"]
        self._dropped = store.families["agentprom_metric_points_dropped_total"]
        self._exemplars = store.limits.exemplars
        self._specs: dict[tuple[str, str, str, str], DynamicSpec] = {}

    # -- batch ------------------------------------------------------------------

    def consume(self, batch: m.MetricBatch, transport: str) -> None:
        """Count a decoded batch; drops are added to ``batch.rejected``."""
        self.store.tick()
        if batch.received_points:
            self._received.inc((transport,), batch.received_points)
        base_labels: dict[tuple[int, int], dict[str, str]] = {}
        resources_seen: set[int] = set()
        for metric in batch.metrics:
            key = (id(metric.resource), id(metric.scope))
            base = base_labels.get(key)
            if base is None:
                base = base_labels[key] = self._base_labels(metric.resource, metric.scope)
            if self.settings.target_info and key[0] not in resources_seen:
                resources_seen.add(key[0])
                self._target_info(metric.resource)
            self._metric(metric, base, batch)
        for reason, count in batch.rejected.items():
            self._dropped.inc((reason,), count)

    def _base_labels(self, resource: dict, scope: m.Scope) -> dict[str, str]:
        labels = {}
        for key in self.settings.promote_resource_attributes:
            if key in resource:
                labels[self.namer.label(key)] = label_value(resource[key])
        if self.settings.scope_labels:
            labels.update(self.namer.labels(scope.attributes, prefix="otel_scope_"))
            labels["otel_scope_name"] = scope.name
            labels["otel_scope_version"] = scope.version
            if scope.schema_url:
                labels["otel_scope_schema_url"] = scope.schema_url
        return {label: value for label, value in labels.items() if label and value != ""}

    def _target_info(self, resource: dict) -> None:
        labels = self.namer.labels(resource)
        if not labels:
            return  # the empty resource has no target_info (specification, "Resource Attributes")
        family = self.families.get(TARGET_INFO)
        if isinstance(family, str):
            return
        series = family.lookup(labels)
        if series is not None and not self.families.budget.charge(family, series, 0):
            if not series.cost:  # made just now: nothing to keep
                family.remove(series.labels)
            return
        if series is not None:
            series.value = 1
            series.updated = self.store.now

    # -- one metric -------------------------------------------------------------

    def _spec(self, metric: m.Metric, type_: str) -> DynamicSpec:
        key = (metric.name, metric.unit, type_, metric.description)
        spec = self._specs.get(key)
        if spec is None:
            translate = self.settings.translate_names
            name = metric_name(metric.name, metric.unit, type_ == COUNTER, type_ == GAUGE, translate)
            unit = unit_word(metric.unit, type_ == GAUGE) if translate else ""
            help_ = metric.description or f"OTLP metric {metric.name} (sent without a description)."
            spec = DynamicSpec(name, type_, help_, unit)
            if len(self._specs) >= _SPEC_CACHE_LIMIT:
                self._specs.clear()
            self._specs[key] = spec
        return spec

    def _metric(self, metric: m.Metric, base: dict[str, str], batch: m.MetricBatch) -> None:
        if metric.kind == m.EXPONENTIAL_HISTOGRAM and self.settings.exponential_histograms == "drop":
            batch.reject("exponential_histogram", len(metric.points))
            return
        type_ = prometheus_type(metric)
        family = self.families.get(self._spec(metric, type_))
        if isinstance(family, str):
            batch.reject(family, len(metric.points))
            return
        cumulative = metric.temporality == m.CUMULATIVE
        namer = self.namer
        now = self.store.now
        budget = self.families.budget
        for point in metric.points:
            value = self._buckets(metric.kind, point)
            if value.__class__ is str:
                batch.reject(value)
                continue
            labels = dict(base)
            if point.attributes:
                labels.update(namer.labels(point.attributes))
            series = family.lookup(labels)
            if series is None:
                batch.reject("label_limit" if not family.label_set.issuperset(labels) else "series_limit")
                continue
            if not budget.charge(family, series, _lines_after(series, point, value)):
                if not series.cost:  # made just now: nothing to keep
                    family.remove(series.labels)
                batch.reject(MEMORY_BUDGET)
                continue
            reason = self._apply(metric, family, series, point, cumulative, value)
            lines = len(series.quantiles) if metric.kind == m.SUMMARY else len(series.counts or ())
            if lines != series.lines:  # the charge was an upper bound: now the exact size (never more)
                budget.charge(family, series, lines)
            if reason is not None:
                batch.reject(reason)
                continue
            series.updated = now
            series.text = series.om = None

    def _buckets(self, kind: str, point: m.Point) -> accumulate.Buckets | str | None:
        """A histogram point's value as explicit buckets, or ``too_many_buckets`` (also for a summary
        with too many quantiles); None for other points."""
        limit = self.settings.max_histogram_buckets
        if kind == m.HISTOGRAM:
            if len(point.bounds) > limit:
                return accumulate.TOO_MANY_BUCKETS
            counts = point.counts or (point.count,)  # a point without buckets: everything in +Inf
            return accumulate.Buckets(point.bounds, list(counts), point.sum or 0.0, point.sum is not None)
        if kind == m.EXPONENTIAL_HISTOGRAM:
            bounds, counts = to_explicit(point, limit)
            if len(bounds) > limit:
                return accumulate.TOO_MANY_BUCKETS
            return accumulate.Buckets(bounds, list(counts), point.sum or 0.0, point.sum is not None)
        if kind == m.SUMMARY and len(point.quantiles) > limit:
            return accumulate.TOO_MANY_BUCKETS
        return None

    def _apply(self, metric: m.Metric, family: DynamicFamily, series: DynamicSeries, point: m.Point,
               cumulative: bool, value: accumulate.Buckets | None) -> str | None:
        kind = metric.kind
        if kind == m.GAUGE:
            return accumulate.set_gauge(series, point.time_ns, point.value)
        if kind == m.SUM:
            reason = accumulate.add_sum(series, point.start_ns, point.time_ns, point.value, cumulative,
                                        metric.monotonic)
            if reason is None and metric.monotonic and point.exemplars and self._exemplars:
                best = max((e for e in point.exemplars if e.trace_id and e.span_id), key=lambda e: e.value,
                           default=None)
                if best is not None:
                    series.exemplars = [_exemplar(best)]
            return reason
        if kind == m.SUMMARY:
            if accumulate.set_gauge(series, point.time_ns, 0) is not None:
                return accumulate.OUT_OF_ORDER
            series.count, series.sum = point.count, point.sum
            series.quantiles = tuple(sorted(point.quantiles))
            return None
        union = kind == m.EXPONENTIAL_HISTOGRAM  # power-of-two bounds merge exactly onto their union
        old_bounds = series.bounds
        reason = accumulate.add_histogram(series, point.start_ns, point.time_ns, value, cumulative, union,
                                          self.settings.max_histogram_buckets)
        if reason is None and self._exemplars and (point.exemplars or old_bounds != series.bounds):
            self._bucket_exemplars(series, point.exemplars)
        return reason

    @staticmethod
    def _bucket_exemplars(series: DynamicSeries, new: list[m.Exemplar]) -> None:
        """Newest exemplar per bucket (the largest among the newest), then each empty
        bucket shows the one of the nearest lower bucket (specification, "Exemplars")."""
        bounds = series.bounds
        slots: list[Exemplar | None] = [None] * (len(bounds) + 1)
        for old in series.exemplars or ():
            if old is not None:
                slots[bisect_left(bounds, old.value)] = old
        fresh: list[Exemplar | None] = [None] * (len(bounds) + 1)
        for e in new:
            if e.trace_id and e.span_id:
                i = bisect_left(bounds, e.value)
                if fresh[i] is None or e.value > fresh[i].value:
                    fresh[i] = _exemplar(e)
        previous = None
        for i, e in enumerate(fresh):
            if e is not None:
                slots[i] = e
            elif slots[i] is None:
                slots[i] = previous
            previous = slots[i]
        series.exemplars = slots if any(slots) else None


def _lines(bounds: Collection[float]) -> int:
    return len(bounds) + 1  # one line per bound and +Inf


def _lines_after(series: DynamicSeries, point: m.Point, value: accumulate.Buckets | None) -> int:
    """At most how many bucket or quantile lines ``series`` has once ``point`` is applied."""
    if value is None:
        return len(point.quantiles) if isinstance(point, m.SummaryPoint) else 0
    if isinstance(point, m.ExponentialHistogramPoint) and series.bounds != value.bounds and series.bounds:
        return _lines(set(series.bounds).union(value.bounds))  # delta and epoch merges take the union
    return len(value.counts)


def _exemplar(e: m.Exemplar) -> Exemplar:
    return Exemplar(e.trace_id, e.span_id, e.value, e.time_ns / 1e9)
