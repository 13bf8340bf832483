"""Series handles: a label set's series held, so counting a span looks its labels up once.

Counting an LLM call updates up to eight series (calls, duration, each token type, cost, finish
reasons) whose label tuples are made of the same few values: agent, provider, model, operation
and status. Building and hashing each tuple and probing each family's dict per span is most of
what counting costs (bench/instructions.py); a ``Handles`` cache keeps, per those values, a
``Handle`` for each series, so a span costs one lookup and then direct updates.

A handle holds its series only when the family stores it under the label tuple as given
(``Family.series``): a label set that normalization, a label budget or the series limit maps to
another series goes through ``Family.inc``/``observe`` every time, since those count their
self-metrics (label overflow, series overflow) per observation. Nothing else changes: the same
series get the same updates in the same order. The cache is emptied whenever the store lets a
series go (``SeriesStore.removals``: expiry), so no handle outlives its series, and when it holds
``max_entries`` label sets (it only saves lookups: emptying it loses nothing). Label values are the
spans' to name, so that bound is what holds its memory (a few MiB at most with 256-byte values);
per label set, the translator holds handles of further values (finish reasons) only while few and
only for series the family stores as named.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from agentprom.metrics.series_store import Exemplar, Family, SeriesStore

#: label sets held before the cache starts over (the series limit bounds the useful ones anyway)
MAX_ENTRIES = 4096


class Handle:
    """One label set of one family: ``add`` (counter) or ``put`` (histogram) without a lookup.

    The updates are ``Family.inc``/``observe``'s after their lookup, written out here: no call per
    update (the hot path; tests/test_handles.py checks that both leave every series alike)."""

    __slots__ = ("family", "labels", "series", "store", "exemplars")

    def __init__(self, family: Family, labels: tuple[str, ...]) -> None:
        self.family = family
        self.labels = labels
        #: the series stored under ``labels`` itself; None until the first update made it, or
        #: for good when the labels map elsewhere (each update then goes the family's way)
        self.series = family.series.get(labels)
        # (a dimensioned family, dimensions.py, has no store of its own and never a series here)
        self.store = getattr(family, "store", None)
        self.exemplars = getattr(family, "_exemplars", False)

    def add(self, amount: float, exemplar: Any = None) -> None:
        series = self.series
        if series is None:
            self.family.inc(self.labels, amount, exemplar)
            self.series = self.family.series.get(self.labels)
            return
        series.value += amount
        series.updated = self.store.now
        series.text = series.om = None
        if exemplar is not None and self.exemplars:
            held = series.exemplars
            if held is None or held[0] is None:
                series.exemplars = [Exemplar(exemplar[0], exemplar[1], amount, self.store.wall_now)]
            else:  # in place, as Family.inc does
                held = held[0]
                held._trace_id, held._span_id = exemplar
                held.value, held.timestamp = amount, self.store.wall_now

    def put(self, value: float, exemplar: Any = None, weight: float = 1) -> None:
        series = self.series
        if series is None:
            self.family.observe(self.labels, value, exemplar, weight)
            self.series = self.family.series.get(self.labels)
            return
        family = self.family
        index = bisect_left(family.buckets, value)
        series.counts[index] += weight
        series.sum += value * weight
        series.updated = self.store.now
        series.text = series.om = None
        if exemplar is not None and self.exemplars:
            if series.exemplars is None:
                series.exemplars = [None] * (family.n_buckets + 1)
            held = series.exemplars[index]
            if held is None:
                series.exemplars[index] = Exemplar(exemplar[0], exemplar[1], value, self.store.wall_now)
            else:  # in place, as Family.observe does
                held._trace_id, held._span_id = exemplar
                held.value, held.timestamp = value, self.store.wall_now


def put_all(handles: tuple[Handle, ...], values: tuple[float, ...], weight: float = 1) -> None:
    """``handle.put(value, None, weight)`` for each handle and value, in one loop: a histogram series held
    is updated here without a call (a run's nine fan-out observations, runs.py); one that is not goes
    through ``Handle.put``."""
    for handle, value in zip(handles, values):
        series = handle.series
        if series is None:
            handle.put(value, None, weight)
            continue
        series.counts[bisect_left(handle.family.buckets, value)] += weight
        series.sum += value * weight
        series.updated = handle.store.now
        series.text = series.om = None


class Handles:
    """Label values -> what the caller keeps for them (handles), emptied when a series goes."""

    __slots__ = ("store", "entries", "max_entries", "removals")

    def __init__(self, store: SeriesStore, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.entries: dict[tuple, Any] = {}
        self.max_entries = max_entries
        #: ``store.removals`` when the entries were last emptied
        self.removals = store.removals

    def current(self) -> dict[tuple, Any]:
        """The entries, emptied first if the store let a series go since or they are full (call
        before each use)."""
        entries = self.entries
        if self.removals != self.store.removals or len(entries) >= self.max_entries:
            entries.clear()
            self.removals = self.store.removals
        return entries
