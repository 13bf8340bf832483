"""Contain a component's failure: count it, log it (not too often), and let the caller go on.

A subscriber that raises (the JSONL log on a record it cannot encode, a listener
with a bug) must not break whoever called it: an expiry loop that cannot end a
session would otherwise meet it again on every turn (docs/security.md). Each
contained failure is counted in ``agentprom_internal_errors_total{component}``
and logged with its traceback at most once per interval and component
(``log_limit.RateLimitedLog``), so a failure on every span cannot flood the log.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from agentprom.log_limit import RateLimitedLog
from agentprom.metrics.series_store import SeriesStore

log = logging.getLogger(__name__)

#: the components that may report (a fixed set: the metric's label is bounded)
COMPONENTS = frozenset({"pipeline", "listener", "sessions", "runs", "guardrails", "jsonl", "evaluations"})


class InternalErrors:
    """The one counter of contained failures; ``contain`` wraps a subscriber."""

    def __init__(self, store: SeriesStore) -> None:
        self._counter = store.families["agentprom_internal_errors_total"]
        self.counts: Counter[str] = Counter()
        self._log = RateLimitedLog(log, clock=store.clock)

    def record(self, component: str, what: str) -> None:
        """Count a failure being handled now (call from an ``except`` block: it logs the traceback)."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}")
        self.counts[component] += 1
        self._counter.inc((component,))
        # one template per component (a fixed set), so one component's failures do not hide another's
        self._log.exception(f"{component} failed: %s (%d failure(s) so far; contained)", what,
                            self.counts[component])

    def contain(self, component: str, subscriber: Callable[..., Any]) -> Callable[..., Any]:
        """``subscriber`` that never raises: a failure is recorded and the call returns None."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}")

        @functools.wraps(subscriber)  # __wrapped__ names what is contained
        def contained(*args: Any) -> Any:
            try:
                return subscriber(*args)
            except Exception:
                self.record(component, getattr(subscriber, "__qualname__", repr(subscriber)))
                return None

        return contained
