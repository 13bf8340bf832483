"""The memory behind a gauge's overflow series: the last value of each label set folded into it.

A counter or histogram folds by adding each increment to the overflow series. A
gauge is *set*, so the overflow series can only stay the sum of the label sets
folded into it (what ``sum()`` over the unlimited family would give, and what
the OTel Collector's cardinality limit promises) if the store remembers each
folded label set's last value and moves the overflow series by the change.

The memory is bounded (``store.max_folded_label_sets`` label sets per gauge,
0 = unbounded). A label set whose value is 0 adds nothing, so it is
forgotten, which frees its place. When the memory is full, an update of a label
set it does not hold cannot be folded without breaking later deltas: it is
dropped, counted in ``agentprom_series_overflow_dropped_total``, and the
overflow series stays the exact sum of the label sets it does hold.

A remembered label set not updated within the family's TTL expires like a
series would, taking its value out of the overflow series. Owned by the
event loop like the rest of the store: nothing awaits.
"""

from __future__ import annotations


class FoldedGauges:
    """Label set -> [last value, last update] for the label sets folded into one gauge's overflow series."""

    __slots__ = ("limit", "_values")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._values: dict[tuple[str, ...], list[float]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def update(self, key: tuple[str, ...], value: float, now: float, add: bool = False) -> float | None:
        """Set (or with ``add``, add to) a label set's value; return how much the overflow series
        changes, or None when the label set cannot be remembered (the memory is full)."""
        entry = self._values.get(key)
        old = 0.0 if entry is None else entry[0]
        new = old + value if add else value
        if new == 0:
            if entry is not None:
                del self._values[key]
            return -old
        if entry is None:
            if self.limit and len(self._values) >= self.limit:
                return None
            self._values[key] = [new, now]
        else:
            entry[0], entry[1] = new, now
        return new - old

    def pop(self, key: tuple[str, ...]) -> float:
        """Forget a label set (it got its own series); return the value to take out of the overflow."""
        entry = self._values.pop(key, None)
        return 0.0 if entry is None else entry[0]

    def expire(self, cutoff: float) -> float:
        """Forget label sets not updated since ``cutoff``; return the sum of their values."""
        stale = [key for key, (_, updated) in self._values.items() if updated < cutoff]
        return sum([self._values.pop(key)[0] for key in stale])

    def clear(self) -> None:
        self._values.clear()
