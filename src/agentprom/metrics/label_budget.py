"""Per-label value budgets of one family: past its budget, a new value of a label becomes ``__overflow__``.

After Tempo's per-label limiter. The series limit (series_store.py) folds a whole label set into
one series whose labels are all empty, so a flood of tool names from one agent would take that
agent's name with it, and ``sum by (agent)`` would go wrong. A budget per label instead replaces
only the value of the label that exploded: past ``budget`` distinct values of ``tool`` in a family,
a new tool name becomes ``__overflow__`` while ``agent``, ``status`` and the rest keep theirs, so
sums by any other label stay exact. The series limit stays behind it as the last fence.

* Only first sightings of a label set come here (``Family._resolve``); the store's hot path is a
  dict lookup that never sees a budget.
* Per label, the set of values admitted so far is kept: at most ``budget`` values, so memory stays
  bounded whatever arrives. ``__overflow__`` itself is always admitted and takes no room.
* Values are checked after label hygiene (truncation, UTF-8 repair, allow patterns), so a value
  mapped to ``other`` costs one slot for all of them, and ``__overflow__`` is never truncated or
  mapped to ``other``.
* Counters and histograms only (``Family`` decides): a gauge is set to a label set's value, and
  label sets merged into one ``__overflow__`` value would keep the last value instead of the sum.
* ``rebuild`` sets the admitted values to those of the live series: called after expiry removed
  some, so that budgets free up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

OVERFLOW_VALUE = "__overflow__"


class LabelBudget:
    """The admitted values of each budgeted label of one family."""

    __slots__ = ("labels", "budgets", "admitted")

    def __init__(self, labels: tuple[str, ...], default: int, overrides: Mapping[str, int]) -> None:
        self.labels = labels
        #: per label position: its budget (0 = none)
        self.budgets = tuple(overrides.get(label, default) for label in labels)
        #: per label position: the values admitted so far (None when the label has no budget)
        self.admitted: list[set[str] | None] = [set() if budget else None for budget in self.budgets]

    def __bool__(self) -> bool:
        return any(self.budgets)

    def apply(self, key: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """``key`` with every value past its label's budget replaced, and the positions replaced.
        A value within the budget is admitted (it keeps its place until ``rebuild`` drops it)."""
        replaced: list[int] = []
        for i, admitted in enumerate(self.admitted):
            if admitted is None:
                continue
            value = key[i]
            if value in admitted or value == OVERFLOW_VALUE:
                continue
            if len(admitted) < self.budgets[i]:
                admitted.add(value)
            else:
                replaced.append(i)
        if not replaced:
            return key, ()
        out = list(key)
        for i in replaced:
            out[i] = OVERFLOW_VALUE
        return tuple(out), tuple(replaced)

    def rebuild(self, keys: Iterable[tuple[str, ...]]) -> None:
        """Admit exactly the values of ``keys`` (the live series), freeing the rest of each budget."""
        fresh: list[set[str] | None] = [None if admitted is None else set() for admitted in self.admitted]
        for key in keys:
            for i, admitted in enumerate(fresh):
                if admitted is not None and key[i] != OVERFLOW_VALUE:
                    admitted.add(key[i])
        self.admitted = fresh
