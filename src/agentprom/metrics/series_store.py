"""The bounded series store: every span-derived and self-metric series lives here.

Design (after the OTel Collector's spanmetrics connector and prometheus/statsd_exporter):

* One ``Family`` per catalog metric holds its series in a dict keyed by the
  tuple of label values. Updates are a dict lookup and an add.
* A per-family series limit: once reached, new label sets fold into a single
  ``otel_metric_overflow="true"`` series (other labels empty), so totals stay
  right and the loss is visible in ``agentprom_series_overflow_total``. A
  gauge's overflow series is the sum of the last values of the label sets
  folded into it (``gauge_fold.py``).
* Label hygiene on first sight of a label set: values longer than the limit are
  truncated, strings that cannot be encoded as UTF-8 are repaired, and a
  per-label allow pattern maps values outside it to ``other``.
* Per-label value budgets (``label_budget.py``), before the series limit: past
  its budget a new value of one label becomes ``__overflow__`` and the other
  labels keep theirs (counted in ``agentprom_label_overflow_total``). Counters
  and histograms only: merged gauge label sets would need a sum, not a last value.
* Per-series expiry on the injected clock: ``expire()`` drops series not
  updated for ``ttl`` seconds.
* Each series caches its rendered text; an update clears the cache, so a
  scrape re-formats only what changed (see ``exposition.py``).

Concurrency: the store is owned by the single asyncio event loop. No method
awaits, so no mutation ever spans an ``await``; callers in other threads must
not touch it.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from agentprom.clock import Clock, SystemClock
from agentprom.metrics.catalog import COUNTER, GAUGE, HISTOGRAM, MetricSpec, active_catalog
from agentprom.metrics.gauge_fold import FoldedGauges
from agentprom.metrics.label_budget import LabelBudget

OVERFLOW_LABEL = "otel_metric_overflow"
OTHER_VALUE = "other"


@dataclass(frozen=True)
class StoreLimits:
    """How the store bounds itself. 0 disables a limit."""

    max_series_per_metric: int = 2000
    #: per gauge: folded label sets whose last value is remembered (the overflow series is their sum)
    max_folded_label_sets: int = 10000
    max_label_value_length: int = 128
    series_ttl_seconds: float = 900.0
    exemplars: bool = True
    #: label name -> pattern; values not fully matching become ``other``
    label_allow: Mapping[str, str] = field(default_factory=dict)
    #: distinct values per label per family before new ones become ``__overflow__``
    max_label_values: int = 1000
    #: label name -> its own budget instead of ``max_label_values``
    label_values: Mapping[str, int] = field(default_factory=dict)


class Exemplar:
    """The ids of the latest span a sample counted. Ids may be given as raw bytes: they are
    turned into hex only when a scrape reads them (most exemplars are replaced unread)."""

    __slots__ = ("_trace_id", "_span_id", "value", "timestamp")

    def __init__(self, trace_id: str | bytes, span_id: str | bytes, value: float, timestamp: float) -> None:
        self._trace_id = trace_id
        self._span_id = span_id
        self.value = value
        self.timestamp = timestamp

    @property
    def trace_id(self) -> str:
        found = self._trace_id
        if found.__class__ is bytes:
            found = self._trace_id = found.hex()
        return found

    @property
    def span_id(self) -> str:
        found = self._span_id
        if found.__class__ is bytes:
            found = self._span_id = found.hex()
        return found


# Replacing an exemplar in place (``inc`` and ``observe``, and metrics/handles.py's copies of them,
# make ``held`` the exemplar of a later span by setting its four fields, the update inline as the hot
# path wants it) is safe because the store has a single owner (module docstring) and every reader
# renders an exemplar when it reads it, except a scrape's snapshot (exposition.Snapshot), which may
# then render the newer exemplar of the same bucket, and the OTLP metrics path (metrics_in/), which
# shares exemplar objects between buckets, sets its series' exemplars itself and never comes here.


class Series:
    """One label set of one metric. ``value`` is the counter/gauge value; for
    histograms ``counts`` holds per-bucket (non-cumulative) counts, the last
    being +Inf."""

    __slots__ = ("labels", "value", "counts", "sum", "updated", "text", "om", "exemplars", "label_text")

    def __init__(self, labels: tuple[str, ...], n_buckets: int, now: float) -> None:
        self.labels = labels
        self.value: float = 0
        self.counts: list[float] | None = [0] * (n_buckets + 1) if n_buckets else None
        self.sum: float = 0.0
        self.updated = now
        self.text: str | None = None  # cached Prometheus text lines
        self.om: str | None = None  # cached OpenMetrics lines
        self.exemplars: list[Exemplar | None] | None = None
        self.label_text: str | None = None  # cached rendered label pairs (labels never change)


class Family:
    """All series of one catalog metric."""

    #: seconds without an update before a series expires; None = the store's TTL
    ttl: float | None = None
    #: the class of new series (subclasses may keep more state per series)
    series_factory: type[Series] = Series

    def __init__(self, spec: MetricSpec, store: SeriesStore) -> None:
        self.spec = spec
        self.name = spec.name
        #: the ``metric`` label of the store's self-metrics about this family
        self.self_label = spec.name
        self.store = store
        self.buckets = spec.buckets
        self.n_buckets = len(spec.buckets)
        self.series: dict[tuple[str, ...], Series] = {}
        #: raw label tuples that normalized to another key -> their series and the label positions
        #: the budget replaced in them
        self._aliases: dict[tuple[str, ...], tuple[Series, tuple[int, ...]]] = {}
        self.overflow: Series | None = None
        limits = store.limits
        # The sidecar's own metrics are bounded by the catalog (one series per metric, transport,
        # reason); limiting them would let the overflow counter overflow into itself.
        self._limit = 0 if spec.group == "self" else limits.max_series_per_metric
        self._max_len = limits.max_label_value_length
        self._exemplars = limits.exemplars
        #: the last value of each label set folded into a gauge's overflow series (sum, not last set)
        self._folded = FoldedGauges(limits.max_folded_label_sets) if spec.type == GAUGE and self._limit else None
        self._label_rules()
        # Gauges have no budgets: a gauge is set to a label set's value, so label sets merged into
        # one __overflow__ value would leave the last one's value, not their sum (the series limit
        # folds gauges by sum, gauge_fold.py). Their only label is agent, set from sessions.
        budget = LabelBudget(spec.labels, limits.max_label_values, limits.label_values)
        self._budget = budget if budget and spec.group != "self" and spec.type != GAUGE else None

    def _label_rules(self) -> None:
        """Compile the per-label allow patterns for ``spec.labels``."""
        allow = self.store.limits.label_allow
        self._allow = [re.compile(allow[label]) if label in allow else None for label in self.spec.labels]

    # -- lookup ---------------------------------------------------------------

    def get(self, labels: tuple[str, ...]) -> Series:
        series = self.series.get(labels)
        if series is None:
            series = self._resolve(labels)
        return series

    def _resolve(self, labels: tuple[str, ...]) -> Series:
        if len(labels) != len(self.spec.labels):
            raise ValueError(f"{self.name}: expected labels {self.spec.labels}, got {labels!r}")
        alias = self._aliases.get(labels)
        # the alias may point at a series that was removed (and perhaps recreated) since
        if alias is not None and self.series.get(alias[0].labels) is alias[0]:
            if alias[1]:
                self._count_replaced(alias[1])
            return alias[0]
        # Always normalized (even with no length limit or patterns): a value that cannot be
        # encoded would otherwise break every later scrape. Only first sightings pay for it.
        key = self._normalize(labels)
        replaced = ()
        if self._budget is not None:
            key, replaced = self._budget.apply(key)
            if replaced:
                self._count_replaced(replaced)
        series = self.series.get(key)
        if series is None:
            if self._limit and len(self.series) >= self._limit:
                self.store.count_overflow(self.self_label)
                return self._overflow_series()
            series = self.series_factory(key, self.n_buckets, self.store.now)
            self.series[key] = series
            if self._folded is not None and self.overflow is not None:
                self._move_out(key)
        if key != labels:
            if len(self._aliases) >= max(self._limit, 1000):
                self._aliases.clear()  # bounded: aliases are only a lookup shortcut
            self._aliases[labels] = (series, replaced)
        return series

    def _count_replaced(self, positions: tuple[int, ...]) -> None:
        """Count the label values the budget replaced in one observation (like ``count_overflow``,
        per lookup: every lookup is followed by exactly one update)."""
        for i in positions:
            self.store.count_label_overflow(self.self_label, self.spec.labels[i])

    def _overflow_series(self) -> Series:
        if self.overflow is None:
            self.overflow = Series(("",) * len(self.spec.labels), self.n_buckets, self.store.now)
        # Counted once per observation by the caller's update; the lookup itself is
        # what we count, since every lookup is followed by exactly one update.
        return self.overflow

    def _fold(self, labels: tuple[str, ...], value: float, add: bool) -> None:
        """Set (or add to) a folded gauge label set: the overflow series moves by the change."""
        change = self._folded.update(self._normalize(labels), value, self.store.now, add)
        if change is None:  # memory full: dropped, so the overflow stays the sum of what it holds
            self.store.count_overflow_dropped(self.self_label)
            return
        overflow = self.overflow
        overflow.value += change
        overflow.updated = self.store.now
        overflow.text = overflow.om = None

    def _move_out(self, key: tuple[str, ...]) -> None:
        """A folded gauge label set got its own series: take its value out of the overflow series."""
        value = self._folded.pop(key)
        if value:
            self.overflow.value -= value
            self.overflow.text = self.overflow.om = None

    def _normalize(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        max_len = self._max_len
        for value, allow in zip(labels, self._allow):
            if not isinstance(value, str):
                value = str(value)
            if not value.isascii():
                value = value.encode("utf-8", "replace").decode("utf-8")
            if allow is not None and allow.fullmatch(value) is None:
                value = OTHER_VALUE
            if max_len and len(value) > max_len:
                value = value[:max_len]
            out.append(value)
        return tuple(out)

    # -- updates (no awaits: see module docstring) ---------------------------

    def inc(self, labels: tuple[str, ...], amount: float = 1,
            exemplar: tuple[str | bytes, str | bytes] | None = None) -> None:
        series = self.series.get(labels) or self._resolve(labels)
        if series is self.overflow and self._folded is not None:
            return self._fold(labels, amount, True)
        series.value += amount
        series.updated = self.store.now
        series.text = series.om = None
        if exemplar is not None and self._exemplars:
            held = series.exemplars
            if held is None or held[0] is None:
                series.exemplars = [Exemplar(exemplar[0], exemplar[1], amount, self.store.wall_now)]
            else:  # the latest span replaces the last in place (above ``Series``): no allocation
                held = held[0]
                held._trace_id, held._span_id = exemplar
                held.value, held.timestamp = amount, self.store.wall_now

    def set(self, labels: tuple[str, ...], value: float) -> None:
        series = self.series.get(labels) or self._resolve(labels)
        if series is self.overflow and self._folded is not None:
            return self._fold(labels, value, False)
        series.value = value
        series.updated = self.store.now
        series.text = series.om = None

    def observe(self, labels: tuple[str, ...], value: float,
                exemplar: tuple[str | bytes, str | bytes] | None = None, weight: float = 1) -> None:
        series = self.series.get(labels) or self._resolve(labels)
        index = bisect_left(self.buckets, value)
        series.counts[index] += weight
        series.sum += value * weight
        series.updated = self.store.now
        series.text = series.om = None
        if exemplar is not None and self._exemplars:
            if series.exemplars is None:
                series.exemplars = [None] * (self.n_buckets + 1)
            held = series.exemplars[index]
            if held is None:
                series.exemplars[index] = Exemplar(exemplar[0], exemplar[1], value, self.store.wall_now)
            else:  # in place (above ``Series``)
                held._trace_id, held._span_id = exemplar
                held.value, held.timestamp = value, self.store.wall_now

    def remove(self, labels: tuple[str, ...]) -> None:
        if self.series.pop(labels, None) is not None:
            self.store.removals += 1

    # -- reading ----------------------------------------------------------------

    def all_series(self) -> Iterator[Series]:
        yield from self.series.values()
        if self.overflow is not None:
            yield self.overflow

    def __len__(self) -> int:
        return len(self.series) + (self.overflow is not None)

    def expire(self, cutoff: float) -> int:
        stale = [key for key, series in self.series.items() if series.updated < cutoff]
        for key in stale:
            del self.series[key]
        if stale:
            self.store.removals += 1
            self._aliases.clear()
            if self._budget is not None:
                self._budget.rebuild(self.series)
        if self._folded is not None and self.overflow is not None:
            gone = self._folded.expire(cutoff)
            if gone:
                self.overflow.value -= gone
                self.overflow.text = self.overflow.om = None
        if self.overflow is not None and self.overflow.updated < cutoff:
            self.overflow = None
            if self._folded is not None:
                self._folded.clear()
            stale.append(())
        return len(stale)


class SeriesStore:
    """Owns a ``Family`` per catalog metric and the self-metrics about itself."""

    def __init__(self, limits: StoreLimits | None = None, clock: Clock | None = None,
                 catalog: tuple[MetricSpec, ...] | None = None) -> None:
        self.limits = limits or StoreLimits()
        self.clock = clock or SystemClock()
        self.now = self.clock.monotonic()
        #: wall time of the last tick: exemplar timestamps (read per batch, not per update)
        self.wall_now = self.clock.now()
        #: grows whenever a series leaves a catalog family (``Family.expire``, ``Family.remove``) or a
        #: family goes (``remove_family``): series held elsewhere (metrics/handles.py) are then looked
        #: up again. (Run-time families, metrics/dynamic.py, move their series themselves: never held.)
        self.removals = 0
        self.families: dict[str, Family] = {}
        # default: the catalog without the optional compat outputs (app.py picks them from config)
        for spec in active_catalog() if catalog is None else catalog:
            self.add_family(spec)
        self._overflow = self.families.get("agentprom_series_overflow_total")
        self._expired = self.families.get("agentprom_series_expired_total")
        self._active = self.families.get("agentprom_active_series")
        self._overflow_dropped = self.families.get("agentprom_series_overflow_dropped_total")
        self._label_overflow = self.families.get("agentprom_label_overflow_total")
        #: called at the end of every ``expire()`` (e.g. to drop emptied run-time families)
        self.expiry_hooks: list[Callable[[], None]] = []

    def add_family(self, spec: MetricSpec) -> Family:
        if spec.name in self.families:
            raise ValueError(f"metric {spec.name} is already registered")
        family = Family(spec, self)
        self.families[spec.name] = family
        return family

    def register_family(self, family: Family) -> Family:
        """Add a family built elsewhere (a subclass, registered at run time)."""
        if family.name in self.families:
            raise ValueError(f"metric {family.name} is already registered")
        self.families[family.name] = family
        return family

    def remove_family(self, name: str) -> None:
        """Unregister a family registered at run time (its active series leave the gauge at the next refresh)."""
        if self.families.pop(name, None) is not None:
            self.removals += 1

    def __getitem__(self, name: str) -> Family:
        return self.families[name]

    def tick(self) -> float:
        """Refresh the store's notion of now (called once per batch, not per update)."""
        self.now = self.clock.monotonic()
        self.wall_now = self.clock.now()
        return self.now

    def count_overflow(self, metric: str) -> None:
        if self._overflow is not None:
            self._overflow.inc((metric,))

    def count_label_overflow(self, metric: str, label: str) -> None:
        if self._label_overflow is not None:
            self._label_overflow.inc((metric, label))

    def count_overflow_dropped(self, metric: str) -> None:
        if self._overflow_dropped is not None:
            self._overflow_dropped.inc((metric,))

    def expire(self) -> int:
        """Drop series not updated within their family's TTL; return how many went."""
        default_ttl = self.limits.series_ttl_seconds
        now = self.tick()
        total = 0
        for family in self.families.values():
            ttl = default_ttl if family.ttl is None else family.ttl
            if not family.spec.expires or not ttl:
                continue
            gone = family.expire(now - ttl)
            if gone and self._expired is not None:
                self._expired.inc((family.self_label,), gone)
            total += gone
        for hook in self.expiry_hooks:
            hook()
        return total

    def refresh_self_metrics(self) -> None:
        """Update the active-series gauge (at scrape time): per ``self_label``, the sum over its families."""
        if self._active is None:
            return
        totals: dict[str, int] = {}
        for family in self.families.values():
            if family.spec.expires:
                totals[family.self_label] = totals.get(family.self_label, 0) + len(family)
        for key in self._active.series:
            if key[0] not in totals:  # its families are gone (e.g. every OTLP-in family expired)
                totals[key[0]] = 0
        for label, total in totals.items():
            self._active.set((label,), total)

    def value(self, name: str, labels: tuple[str, ...]) -> float:
        """A counter or gauge value (0 when the series does not exist); for tests and the API."""
        series = self.families[name].series.get(labels)
        return 0 if series is None else series.value


def is_counter(spec: MetricSpec) -> bool:
    return spec.type == COUNTER


def is_histogram(spec: MetricSpec) -> bool:
    return spec.type == HISTOGRAM
