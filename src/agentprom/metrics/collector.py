"""A prometheus_client custom collector over the series store: the reference renderer.

``exposition.Renderer`` is what ``/metrics`` serves; this collector yields the
same series as prometheus_client metric families so that prometheus_client's
own ``generate_latest`` can render them. It exists to prove the fast renderer
right (tests compare both outputs sample by sample) and to measure it against
(``bench/scrape.py``). It is the shape client_python recommends for data you
own: ``collect()`` reads the store at scrape time, ``describe()`` yields the
catalog's families without samples so registration needs no collect().
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar as ClientExemplar
from prometheus_client.utils import floatToGoString

from agentprom.metrics.catalog import COUNTER, HISTOGRAM, MetricSpec
from agentprom.metrics.series_store import OVERFLOW_LABEL, Exemplar, Family, SeriesStore


def _empty_family(spec: MetricSpec) -> Metric:
    if spec.type == COUNTER:
        return CounterMetricFamily(spec.name, spec.help)
    if spec.type == HISTOGRAM:
        return HistogramMetricFamily(spec.name, spec.help)
    return GaugeMetricFamily(spec.name, spec.help)


def _exemplar(exemplar: Exemplar | None) -> ClientExemplar | None:
    if exemplar is None:
        return None
    return ClientExemplar({"trace_id": exemplar.trace_id, "span_id": exemplar.span_id},
                          exemplar.value, exemplar.timestamp)


class StoreCollector:
    """Yields every non-empty family of a ``SeriesStore`` (read on the store's own thread)."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store

    def describe(self) -> Iterator[Metric]:
        for family in self.store.families.values():
            yield _empty_family(family.spec)

    def collect(self) -> Iterator[Metric]:
        for family in self.store.families.values():
            if len(family):
                yield self._family(family)

    def _family(self, family: Family) -> Metric:
        spec = family.spec
        metric = _empty_family(spec)
        bounds = [floatToGoString(b) for b in spec.buckets] + ["+Inf"]
        for series in family.all_series():
            if series is family.overflow:
                labels = dict.fromkeys(spec.labels, "")
                labels[OVERFLOW_LABEL] = "true"
            else:
                labels = dict(zip(spec.labels, series.labels))
            exemplars = series.exemplars or ()
            if spec.type != HISTOGRAM:
                metric.add_sample(spec.name, labels, series.value,
                                  exemplar=_exemplar(exemplars[0]) if exemplars else None)
                continue
            cumulative = 0
            for i, (bound, count) in enumerate(zip(bounds, series.counts)):
                cumulative += count
                metric.add_sample(spec.name + "_bucket", {**labels, "le": bound}, round(cumulative),
                                  exemplar=_exemplar(exemplars[i]) if exemplars else None)
            metric.add_sample(spec.name + "_count", labels, round(cumulative))
            metric.add_sample(spec.name + "_sum", labels, series.sum)
        return metric
