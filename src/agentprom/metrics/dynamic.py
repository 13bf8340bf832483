"""Metric families registered at run time (OTLP metrics in), in the same bounded store.

Catalog families are known at start; these are known at first sight of an
incoming OTel metric: name, type, help, unit and label names. They live in the
same ``SeriesStore`` (so ``/metrics`` renders them with everything else) and
share its limits: the per-metric series limit, label-value hygiene and expiry
(with their own TTL, 5 minutes by default). On top of that:

* At most ``max_families`` of them exist; points of further metrics are dropped.
* A family's label names are the union of the label names of its points,
  sorted; a point without a label has it empty, which Prometheus treats as
  absent (the reference exporter does the same per scrape). A new label name
  widens the family: existing series keep their identity. At most
  ``MAX_LABELS`` label names per family.
* Over the series limit new label sets are dropped, not folded into an
  overflow series: a cumulative point can only be turned into an increment
  with the per-series state that the limit exists to bound. Both drops are
  counted (``agentprom_series_overflow_total`` and the translator's
  ``agentprom_metric_points_dropped_total``). For the same reason the
  per-label value budgets of the catalog families do not apply here.
* The store's self-metrics about these families (overflow, expired, active
  series) label them all ``metric="otlp_in"``: their names come from the
  sender, so one label value each would make the self-metrics unbounded.
* A name whose samples would collide with a catalog metric, the process
  metrics, or another run-time family of another type is refused.
* A family whose last series expired is unregistered, freeing its name.
* A memory budget across all of them (``MemoryBudget``): each series is
  charged an estimate of what it holds (labels, one line per bucket or
  quantile in both scrape caches, accumulation state); a point that would
  take the total over the budget is dropped (``memory_budget``) and expiry
  gives the room back. Counts alone do not bound memory: the series limit
  times the family limit times a histogram's buckets is gigabytes.

Like the rest of the store, this is owned by the event loop: nothing awaits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from agentprom.log_limit import RateLimitedLog
from agentprom.metrics.catalog import COUNTER, HISTOGRAM, OTLP_IN_METRIC
from agentprom.metrics.series_store import Family, Series, SeriesStore

log = logging.getLogger(__name__)
#: names come from clients: once per name is still one line per request for a client inventing names

GAUGE = "gauge"
SUMMARY = "summary"
#: an OpenMetrics info family (``target``): rendered as gauge ``target_info`` in Prometheus text
INFO = "info"

MAX_LABELS = 64


@dataclass(frozen=True)
class DynamicSpec:
    """What ``MetricSpec`` says for a catalog metric, for a family made at run time."""

    name: str
    type: str
    help: str
    #: Prometheus unit word ("" for none); an OpenMetrics ``# UNIT`` when the name ends with it
    unit: str = ""
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # per series instead (see DynamicSeries.bounds)
    group: str = "metrics_in"
    expires: bool = True


def exposed_names(name: str, type_: str) -> tuple[str, ...]:
    """Every sample and OpenMetrics family name a family of this type occupies."""
    if type_ == HISTOGRAM:
        return (name, name + "_bucket", name + "_count", name + "_sum")
    if type_ == SUMMARY:
        return (name, name + "_count", name + "_sum")
    if type_ == COUNTER and name.endswith("_total"):
        return (name, name[: -len("_total")])
    if type_ == INFO:
        return (name, name[: -len("_info")])
    return (name,)


class MemoryBudget:
    """The estimated bytes held by all run-time series together, against a limit (0 = none).

    The estimate (measured with tracemalloc on this code; it errs high) is a
    base per series plus its label text, and per bucket or quantile line a
    cached line in each exposition format: see ``estimate``.
    """

    SERIES_BYTES = 1500
    LINE_BYTES = 64  # per cached line besides the name and label text: le, value, newline, list slots

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def estimate(self, family: DynamicFamily, series: DynamicSeries, lines: int) -> int:
        label_bytes = sum([len(name) + len(value) + 4 for name, value in zip(family.spec.labels, series.labels)
                           if value])
        return self.SERIES_BYTES + 6 * label_bytes + lines * 2 * (len(family.name) + label_bytes + self.LINE_BYTES)

    def charge(self, family: DynamicFamily, series: DynamicSeries, lines: int) -> bool:
        """Account ``series`` at ``lines`` bucket or quantile lines; False (nothing changed) when that
        would take the total over the limit."""
        if series.cost and lines == series.lines:
            return True
        cost = self.estimate(family, series, lines)
        if self.limit and cost > series.cost and self.used + cost - series.cost > self.limit:
            return False
        self.used += cost - series.cost
        series.cost, series.lines = cost, lines
        return True

    def release(self, series: DynamicSeries) -> None:
        self.used -= series.cost
        series.cost = 0


class DynamicSeries(Series):
    """A series plus the state the translator keeps to accumulate it.

    ``value``/``counts``/``sum`` are what is exposed. ``bounds`` are this
    series' bucket bounds (histograms), ``quantiles`` its (quantile, value)
    pairs (summaries), ``count`` the summary count. ``start_ns``/``last_ns``
    are the current epoch's start and the last accepted point's time;
    ``base`` is what earlier epochs contributed and ``raw`` the current
    epoch's last cumulative value (see ``metrics_in.accumulate``).
    """

    __slots__ = ("bounds", "quantiles", "count", "has_sum", "start_ns", "last_ns", "base", "raw", "cost", "lines")

    def __init__(self, labels: tuple[str, ...], n_buckets: int, now: float) -> None:
        super().__init__(labels, n_buckets, now)
        self.bounds: tuple[float, ...] = ()
        self.quantiles: tuple[tuple[float, float], ...] = ()
        self.count = 0
        self.has_sum = True
        self.start_ns = 0
        self.last_ns = -1
        self.base = None
        self.raw = None
        #: estimated bytes charged to the ``MemoryBudget`` (0 = not yet), at ``lines`` bucket/quantile lines
        self.cost = 0
        self.lines = 0


class DynamicFamily(Family):
    series_factory = DynamicSeries

    def __init__(self, spec: DynamicSpec, store: SeriesStore, ttl: float, budget: MemoryBudget) -> None:
        super().__init__(spec, store)  # type: ignore[arg-type]
        self.budget = budget
        self.self_label = OTLP_IN_METRIC  # the name came from the sender: self-metrics stay bounded
        self.ttl = ttl
        # No per-label budgets: a cumulative point of one label set cannot be merged into another's
        # series (each needs its own state), which is also why the series limit drops instead of folding.
        self._budget = None
        self.label_set = frozenset(spec.labels)
        #: the exposition's cached renderer for this family (dies with it)
        self.renderer = None

    def _overflow_series(self) -> None:  # type: ignore[override]
        return None  # dropped, not folded: see the module docstring

    def lookup(self, labels: dict[str, str]) -> DynamicSeries | None:
        """The series for a label set (created on first sight); None when it is
        refused (series limit or label limit)."""
        if not self.label_set.issuperset(labels) and not self.widen(labels):
            return None
        key = tuple([labels.get(name, "") for name in self.spec.labels])
        return self.series.get(key) or self._resolve(key)  # type: ignore[return-value]

    def remove(self, labels: tuple[str, ...]) -> None:
        series = self.series.pop(labels, None)
        if series is not None:
            self.budget.release(series)

    def expire(self, cutoff: float) -> int:
        for series in self.series.values():
            if series.updated < cutoff:
                self.budget.release(series)
        return super().expire(cutoff)

    def widen(self, names) -> bool:
        """Add label names; existing series get them empty. False past ``MAX_LABELS``."""
        old = self.spec.labels
        new = tuple(sorted(self.label_set.union(names)))
        if len(new) > MAX_LABELS:
            return False
        position = {name: i for i, name in enumerate(old)}
        picks = [position.get(name) for name in new]
        rekeyed = {}
        for series in self.series.values():
            series.labels = tuple(["" if i is None else series.labels[i] for i in picks])
            series.text = series.om = None
            rekeyed[series.labels] = series
        self.series = rekeyed
        self._aliases.clear()
        self.spec = replace(self.spec, labels=new)
        self.label_set = frozenset(new)
        self._label_rules()
        return True


class DynamicFamilies:
    """Registers, finds and retires run-time families within their limits."""

    def __init__(self, store: SeriesStore, ttl: float, max_families: int, reserved: frozenset[str],
                 max_memory_bytes: int = 0) -> None:
        self.store = store
        #: lines about refused names, rate-limited (a sender can invent a name per request)
        self._drops = RateLimitedLog(log, clock=store.clock)
        self.budget = MemoryBudget(max_memory_bytes)
        self.ttl = ttl
        self.max_families = max_families
        self.reserved = reserved
        self.families: dict[str, DynamicFamily] = {}
        #: exposed sample / OpenMetrics family name -> the run-time family that owns it
        self._owner: dict[str, str] = {}
        self._warned: set[str] = set()
        store.expiry_hooks.append(self.prune)

    def get(self, spec: DynamicSpec) -> DynamicFamily | str:
        """The family for ``spec`` (registered on first sight), or why its points are dropped:
        ``catalog_clash``, ``type_conflict`` or ``family_limit``."""
        family = self.families.get(spec.name)
        if family is not None:
            if family.spec.type == spec.type:
                return family
            return self._refuse(spec.name, "type_conflict",
                                f"it is already a {family.spec.type}, this point is a {spec.type}")
        names = exposed_names(spec.name, spec.type)
        if any(name in self.reserved for name in names):
            return self._refuse(spec.name, "catalog_clash", "agentprom's own metrics use that name")
        if any(name in self._owner for name in names):
            owner = next(self._owner[name] for name in names if name in self._owner)
            return self._refuse(spec.name, "type_conflict", f"its samples would collide with {owner}")
        if len(self.families) >= self.max_families:
            return self._refuse(spec.name, "family_limit",
                                f"metrics_in.max_metric_families ({self.max_families}) reached")
        family = DynamicFamily(spec, self.store, self.ttl, self.budget)
        self.store.register_family(family)
        self.families[spec.name] = family
        for name in names:
            self._owner[name] = spec.name
        return family

    def _refuse(self, name: str, reason: str, why: str) -> str:
        if name not in self._warned and len(self._warned) < 10_000:
            self._warned.add(name)
            self._drops.warning("dropping incoming metric %s (%s): %s; logged once per name and interval", name,
                                reason, why)
        return reason

    def prune(self) -> None:
        """Unregister families left without series (after expiry)."""
        for name in [name for name, family in self.families.items() if not len(family)]:
            family = self.families.pop(name)
            for exposed in exposed_names(name, family.spec.type):
                self._owner.pop(exposed, None)
            self.store.remove_family(name)
