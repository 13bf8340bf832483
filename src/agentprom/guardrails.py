"""Guardrail checks as metrics: how often each guardrail ran for each agent, its verdicts and latency.

A translator listener. Classification marks a guardrail span (kind other: ``Classified.guardrail``
and ``outcome``; conventions/classify.py); it is counted here once the trace context has settled it,
because only then is its agent known (a guardrail span names no agent: its nearest agent span above
does). The verdict is kept as the instrumentation writes it (``PASSED``/``FAILED`` from OpenLLMetry,
the OTel proposal's result), bounded like every label by the store's per-label value budgets.
"""

from __future__ import annotations

from agentprom.context.resolved import Resolved
from agentprom.metrics.series_store import SeriesStore


class Guardrails:
    def __init__(self, store: SeriesStore) -> None:
        f = store.families
        self._checks = f["agent_guardrail_checks_total"]
        self._duration = f["agent_guardrail_duration_seconds"]

    def on_resolved(self, resolved: Resolved) -> None:
        for span, c in zip(resolved.settled_spans, resolved.settled):
            guardrail = c.guardrail
            if guardrail is not None:
                w = c.weight
                self._checks.inc((c.agent, guardrail, c.outcome), w)
                self._duration.observe((c.agent, guardrail), (span.end_ns - span.start_ns) / 1e9, None, w)
