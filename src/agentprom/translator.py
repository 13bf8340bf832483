"""Turn decoded, classified spans into updates of the catalog's series.

The one place that knows which span kind feeds which metric. Listeners (the
session tracker, sinks) receive every valid span with its classification after
the metrics are updated.
"""

from __future__ import annotations

from collections.abc import Callable

from agentprom.conventions.classify import Classified, classify
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Kind, Span
from agentprom.receiver.decode import Batch

Listener = Callable[[Span, Classified], None]


class Translator:
    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self.listeners: list[Listener] = []
        self._exemplars = store.limits.exemplars
        f = store.families
        self._received = f["agentprom_spans_received_total"]
        self._rejected = f["agentprom_spans_rejected_total"]
        self._invocations = f["agent_invocations_total"]
        self._invocation_duration = f["agent_invocation_duration_seconds"]
        self._llm_calls = f["agent_llm_calls_total"]
        self._llm_duration = f["agent_llm_duration_seconds"]
        self._tokens = f["agent_tokens_total"]
        self._cost = f["agent_llm_cost_usd_total"]
        self._tool_calls = f["agent_tool_calls_total"]
        self._tool_duration = f["agent_tool_duration_seconds"]
        self._tool_errors = f["agent_tool_errors_total"]
        self._errors = f["agent_errors_total"]

    def consume(self, batch: Batch, transport: str) -> None:
        """Count a decoded batch. Never awaits: the store's single-owner rule holds."""
        self.store.tick()
        if batch.received_count:
            self._received.inc((transport,), batch.received_count)
        for reason, count in batch.rejected.items():
            self._rejected.inc((reason,), count)
        span_fn = self.span
        for span in batch.spans:
            span_fn(span)

    def span(self, span: Span) -> Classified:
        c = classify(span)
        if c.kind is not Kind.OTHER:
            exemplar = (span.trace_id.hex(), span.span_id.hex()) if self._exemplars else None
            self.record(c, span.duration_s, exemplar)
        for listener in self.listeners:
            listener(span, c)
        return c

    def record(self, c: Classified, duration: float, exemplar: tuple[str, str] | None = None) -> None:
        """Count one agent, LLM or tool call; spans and the runtime event API both come here."""
        kind = c.kind
        status = "ok" if c.ok else "error"
        agent = c.agent
        if kind is Kind.TOOL:
            self._tool_calls.inc((agent, c.tool, status), 1, exemplar)
            self._tool_duration.observe((agent, c.tool), duration, exemplar)
            if not c.ok:
                self._tool_errors.inc((agent, c.tool, c.error_type))
                self._errors.inc((agent, "tool", c.error_type))
        elif kind is Kind.LLM:
            labels = (agent, c.provider, c.model)
            self._llm_calls.inc((*labels, c.operation, status), 1, exemplar)
            self._llm_duration.observe((*labels, c.operation), duration, exemplar)
            for token_type, count in c.tokens.items():
                if count:
                    self._tokens.inc((*labels, token_type), count)
            if c.cost:
                self._cost.inc(labels, c.cost)
            if not c.ok:
                self._errors.inc((agent, "llm", c.error_type))
        elif kind is Kind.AGENT:
            self._invocations.inc((agent, status), 1, exemplar)
            self._invocation_duration.observe((agent,), duration, exemplar)
            if not c.ok:
                self._errors.inc((agent, "agent", c.error_type))
