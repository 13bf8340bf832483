"""Turn decoded spans into updates of the catalog's series: classify, resolve in the trace, count.

The one place that knows which span kind feeds which metric. A batch's spans
are classified, then handed to the trace-context stage (context/stage.py),
which returns a ``Resolved``: the spans whose agent and role are now known
(perhaps spans of earlier batches that waited for their ancestors), which are
counted, and the spans settled in their trace (with session and phase).
Listeners (the compat outputs, the session tracker) receive each ``Resolved``
after its metrics are updated, so their per-span loops run with their lookups
hoisted. Without a trace context (tests, bench/decode.py) spans are counted as
classified and nothing is settled.

Runtime API events enter here too (``event``): the session tracker applies them,
and the tool or LLM call an event made is counted like a span's call.

An LLM call with token usage and no cost of its own is priced here, once, from the price
table (pricing.py); one without a price is counted in ``agent_llm_unpriced_calls_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentprom.compat import compat_outputs
from agentprom.context.resolved import Resolved
from agentprom.context.stage import TraceContext
from agentprom.dimensions import DimensionSpec, DimensionValues, dimensioned
from agentprom.conventions.classify import Classified, classify_spans
from agentprom.internal_errors import InternalErrors
from agentprom.metrics.handles import Handle, Handles
from agentprom.metrics.series_store import Family, SeriesStore
from agentprom.model import Kind, Span
from agentprom.pricing import Pricing
from agentprom.receiver.decode import Batch
from agentprom.sampling import SamplingWeights
from agentprom.sessions.events import SESSION_COMPLETED, RuntimeEvent
from agentprom.sessions.model import TOOL_CALL, Call, Session

if TYPE_CHECKING:
    from agentprom.sessions.tracker import SessionTracker

Listener = Callable[[Resolved], None]

OTHER, TOOL, LLM, AGENT = Kind.OTHER, Kind.TOOL, Kind.LLM, Kind.AGENT  # plain globals: cheaper per span


class Translator:
    def __init__(self, store: SeriesStore, weights: SamplingWeights | None = None,
                 errors: InternalErrors | None = None, context: TraceContext | None = None,
                 dimensions: tuple[DimensionSpec, ...] = ()) -> None:
        self.store = store
        #: the trace-context stage (context/stage.py); None counts each span on its own, as classified
        self.context = context
        #: the session tracker that runtime API events are applied to (``event``); set by the App
        self.sessions: SessionTracker | None = None
        #: a listener's failure is counted here and does not stop the span's other listeners
        self.errors = errors or InternalErrors(store)
        #: called once per ``Resolved``, in order: the optional compat outputs first (they read the
        #: spans counted, and are metrics too), then sessions (they read the spans settled)
        self.listeners: list[Listener] = compat_outputs(store)
        #: sampling-aware counting: each span counts as its adjusted count (sampling.py)
        self.weights = weights or SamplingWeights()
        self._weigh_attribute = bool(self.weights.probability_attribute)
        self._exemplars = store.limits.exemplars
        #: the configured extra dimensions' values of the span being counted (dimensions.py); None: none
        self._dimensions = DimensionValues(dimensions) if dimensions else None
        f = store.families if not dimensions else dimensioned(store.families, dimensions, self._dimensions)
        self._received = f["agentprom_spans_received_total"]
        self._rejected = f["agentprom_spans_rejected_total"]
        self._invocations = f["agent_invocations_total"]
        self._invocation_duration = f["agent_invocation_duration_seconds"]
        self._llm_calls = f["agent_llm_calls_total"]
        self._llm_duration = f["agent_llm_duration_seconds"]
        self._tokens = f["agent_tokens_total"]
        self._cost = f["agent_llm_cost_usd_total"]
        self._unpriced = f["agent_llm_unpriced_calls_total"]
        self._streaming = f["agent_llm_streaming_calls_total"]
        self._ttft = f["agent_llm_time_to_first_token_seconds"]
        self._tpot = f["agent_llm_time_per_output_token_seconds"]
        self._finish_reasons = f["agent_llm_finish_reasons_total"]
        #: prices LLM calls that report usage but no cost; None: such calls stay unpriced (set by the App)
        self.pricing: Pricing | None = None
        self._tool_calls = f["agent_tool_calls_total"]
        self._tool_duration = f["agent_tool_duration_seconds"]
        self._tool_errors = f["agent_tool_errors_total"]
        self._errors = f["agent_errors_total"]
        self._subagent_calls = f["agent_subagent_calls_total"]
        self._subagent_duration = f["agent_subagent_duration_seconds"]
        #: the series of the label values of calls counted so far (``record``)
        self._handles = Handles(store)

    def consume(self, batch: Batch, transport: str) -> None:
        """Count a decoded batch. Never awaits: the store's single-owner rule holds."""
        self.store.tick()
        if batch.received_count:
            self._received.inc((transport,), batch.received_count)
        for reason, count in batch.rejected.items():
            self._rejected.inc((reason,), count)
        self.spans(batch.spans)

    def span(self, span: Span) -> Classified:
        """Count one span; return its classification."""
        return self.spans((span,))

    def spans(self, spans: list[Span] | tuple[Span, ...]) -> Classified | None:
        """Classify spans, resolve them in their trace (when there is a trace context) and count
        what is resolved; return the last span's classification (the per-span hot path)."""
        # A sampled span stands for 1/p spans: calls, errors, tokens and cost are all scaled (the
        # unbiased estimate of the unsampled totals); spans_received stays a raw count.
        classified = classify_spans(spans, self.weights.weight, self._weigh_attribute)
        if self.context is None:
            self._count_resolved(Resolved(spans, classified))
        else:
            self._count_resolved(self.context.add(spans, classified))
        return classified[-1] if classified else None

    def event(self, event: RuntimeEvent) -> Session:
        """A runtime API event enters here, as spans do: the session tracker (``sessions``) applies
        it, and the call it made (a tool or LLM call event) is counted in the core metrics like a
        span's call. Return the event's session."""
        if event.event_type == SESSION_COMPLETED:
            self._settle_session(event.session_id)
        session, call = self.sessions.apply_event(event)
        if call is not None:
            if self._dimensions is not None:  # an event has no attributes: each dimension's default
                self._dimensions.current = self._dimensions.defaults
            self.record(_meaning_of(call), call.duration_ms / 1000.0)
        return session

    def end_session(self, session_id: str, status: str, t: float | None = None) -> Session | None:
        """``POST /runtime/session/end``: the session's spans still waiting for their ancestors are
        resolved first (counted as fallbacks), so the session ends with what it did."""
        self._settle_session(session_id)
        return self.sessions.end_session(session_id, status, t)

    def _settle_session(self, session_id: str) -> None:
        if self.context is not None:
            self.store.tick()
            self._count_resolved(self.context.settle_session(session_id))

    def expire(self) -> None:
        """Count the spans whose ancestors did not arrive in time (periodic)."""
        if self.context is not None:
            self.store.tick()
            self._count_resolved(self.context.expire())

    def drain(self) -> None:
        """Count every span still waiting for its ancestors (shutdown)."""
        if self.context is not None:
            self.store.tick()
            self._count_resolved(self.context.drain())

    def _count_resolved(self, resolved: Resolved) -> None:
        """Count the spans resolved, then hand the whole to the listeners."""
        if not resolved:
            return
        record, exemplars, dimensions = self.record, self._exemplars, self._dimensions
        for span, c in zip(resolved.spans, resolved.classified):
            if c.kind is not OTHER:
                if dimensions is not None:
                    dimensions.current = dimensions.read(span.attributes, span.resource)
                # raw ids: the exemplar turns them into hex only if a scrape shows it
                record(c, (span.end_ns - span.start_ns) / 1e9, (span.trace_id, span.span_id) if exemplars else None,
                       c.weight)
        for listener in self.listeners:
            try:
                listener(resolved)
            except Exception:
                self.errors.record("listener", getattr(listener, "__qualname__", repr(listener)))

    def record(self, c: Classified, duration: float, exemplar: tuple[str | bytes, str | bytes] | None = None,
               w: float = 1) -> None:
        """Count one agent, LLM or tool call, standing for ``w`` calls (sampling weight);
        spans and the runtime event API both come here. Wrapper and step agent spans and outer
        LLM calls (``c.counted`` false) count nothing. The series of a call's label values are
        looked up once and then held (metrics/handles.py): the per-span hot path."""
        if not c.counted:
            return
        kind = c.kind
        status = "ok" if c.ok else "error"
        agent = c.agent
        held = self._handles.current()
        if kind is TOOL:
            key = ("tool", agent, c.tool, status)
            h = held.get(key) or held.setdefault(key, _ToolSeries(self, agent, c.tool, status))
            h.calls.add(w, exemplar)
            h.duration.put(duration, exemplar, w)
            if not c.ok:
                self._tool_errors.inc((agent, c.tool, c.error_type), w)
                self._errors.inc((agent, "tool", c.error_type), w)
        elif kind is LLM:
            provider, model = c.provider, c.model
            key = ("llm", agent, provider, model, c.operation, status)
            h = held.get(key) or held.setdefault(key, _LlmSeries(self, agent, provider, model, c.operation, status))
            h.calls.add(w, exemplar)
            h.duration.put(duration, exemplar, w)
            used = False
            for token_type, count in c.tokens.items():
                if count:
                    used = True
                    held_token = h.tokens.get(token_type)
                    if held_token is not None:
                        held_token.add(count * w)
                    else:
                        h.first(h.tokens, self._tokens, token_type, count * w)
            cost = c.cost
            if cost is None and used:  # the span's own cost wins; else the table's (pricing.py)
                pricing = self.pricing
                if pricing is not None:
                    # kept on the classification: the session tracker (a listener) reads it after
                    cost = c.cost = pricing.cost(provider, model, c.tokens)
                if cost is None:
                    self._unpriced.inc((provider, model), w)
            if cost:
                h.cost.add(cost * w)
            if c.streaming:
                labels = (agent, provider, model)
                self._streaming.inc(labels, w)
                if c.ttft is not None:
                    self._ttft.observe(labels, c.ttft, exemplar, w)
                if c.tpot is not None:
                    self._tpot.observe(labels, c.tpot, None, w)
            for reason in c.finish_reasons:
                held_reason = h.finish.get(reason)
                if held_reason is not None:
                    held_reason.add(w)
                else:
                    h.first(h.finish, self._finish_reasons, reason, w)
            if not c.ok:
                self._errors.inc((agent, "llm", c.error_type), w)
        elif kind is AGENT:
            caller = c.caller
            key = ("agent", agent, status, caller)
            h = held.get(key) or held.setdefault(key, _AgentSeries(self, agent, status, caller))
            h.calls.add(w, exemplar)
            h.duration.put(duration, exemplar, w)
            if caller is not None:  # nested under another agent's run: an edge of the call graph
                h.subagent_calls.add(w, exemplar)
                h.subagent_duration.put(duration, exemplar, w)
            if not c.ok:
                self._errors.inc((agent, "agent", c.error_type), w)


# The handles of one call's label values (metrics/handles.py), made on the first call with them.

class _ToolSeries:
    __slots__ = ("calls", "duration")

    def __init__(self, t: Translator, agent: str, tool: str, status: str) -> None:
        self.calls = Handle(t._tool_calls, (agent, tool, status))
        self.duration = Handle(t._tool_duration, (agent, tool))


class _AgentSeries:
    __slots__ = ("calls", "duration", "subagent_calls", "subagent_duration")

    def __init__(self, t: Translator, agent: str, status: str, caller: str | None) -> None:
        self.calls = Handle(t._invocations, (agent, status))
        self.duration = Handle(t._invocation_duration, (agent,))
        if caller is not None:
            self.subagent_calls = Handle(t._subagent_calls, (caller, agent, status))
            self.subagent_duration = Handle(t._subagent_duration, (caller, agent))


class _LlmSeries:
    __slots__ = ("labels", "calls", "duration", "cost", "tokens", "finish")

    def __init__(self, t: Translator, agent: str, provider: str, model: str, operation: str, status: str) -> None:
        self.labels = labels = (agent, provider, model)
        self.calls = Handle(t._llm_calls, (agent, provider, model, operation, status))
        self.duration = Handle(t._llm_duration, (agent, provider, model, operation))
        self.cost = Handle(t._cost, labels)
        #: token type / finish reason -> its handle, made when first seen
        self.tokens: dict[str, Handle] = {}
        self.finish: dict[str, Handle] = {}

    def first(self, held: dict[str, Handle], family: Family, value: str, amount: float) -> None:
        """Count ``amount`` into the series of this label set and ``value`` (a token type or a finish
        reason), and hold its handle if the family stores it under those labels (finish reasons
        are the span's to name: at most ``MAX_HELD_VALUES`` per label set, and none that the
        series limit or a label budget sent elsewhere)."""
        handle = Handle(family, (*self.labels, value))
        handle.add(amount)
        if handle.series is not None and len(held) < MAX_HELD_VALUES:
            held[value] = handle


#: token types or finish reasons held per LLM label set
MAX_HELD_VALUES = 8


def _meaning_of(call: Call) -> Classified:
    """What a runtime event's call means to the catalog, as classification says it of a span."""
    is_tool = call.kind == TOOL_CALL
    c = Classified(TOOL if is_tool else LLM, call.agent, call.success, call.error_class or "")
    if is_tool:
        c.tool = call.name
    else:
        # the tracker filled model and provider from the event, else the session, else "unknown"
        c.operation, c.model, c.provider, c.cost = "chat", call.model, call.provider, call.cost
        # priced like a span's usage when the event reports no cost (Translator.record)
        for token_type, value in (("input", call.input_tokens), ("output", call.output_tokens),
                                  ("cache_read", call.cached_tokens)):
            if value is not None:
                c.tokens[token_type] = value
    return c
