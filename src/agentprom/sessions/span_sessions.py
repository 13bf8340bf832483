"""Fold settled spans into runtime sessions: the session's calls, phases and end.

The trace context (context/stage.py) settles each span with its agent, the
session it belongs to and the phase span above it (context/scope.py); this
module only applies that to the session store. Span facts that shape it
(docs/sessions.md):

* A span is settled when its ancestors are known; spans settled together come
  in the order they arrived (children first, as spans end), so a call usually
  comes just before the phase span above it. Such a call is held in
  ``Session.pending`` until its phase span comes (in the same batch, as a rule)
  or the session ends; only then is its log record written, with its phase.
* A span whose trace names no session belongs to the trace-id session. When a
  later span of the trace names one (``Classified.joins``), the trace-id
  session opened so far is folded into the keyed one (``_absorb``). A trace-id
  session ends with its root span; a keyed session ends on its end signal
  (session span, ``session_completed``, ``POST /runtime/session/end``) or after
  ``inactivity_timeout_seconds`` without spans or events (as ``abandoned``).
* A span without a session key and without agent meaning (no agent, LLM or
  tool kind, no ``agent.*`` attribute or event) does not open a session, so
  plain HTTP traces sent to the sidecar do not become sessions.
* An outer LLM call (``counted`` false) is not a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentprom.compiled import extension
from agentprom.conventions import profile as P
from agentprom.conventions.classify import UNKNOWN, Classified, first_str
from agentprom.model import STATUS_ERROR, Kind, Span
from agentprom.sessions import records as R
from agentprom.sessions.book import SessionBook, count_in_phase
from agentprom.sessions.model import ACTIVE, COMPLETED, END_STATUSES, FAILED, LLM_CALL, TOOL_CALL, Call, Phase, Session

if TYPE_CHECKING:
    from agentprom.context.resolved import Resolved

# Enum members as plain globals: ``Kind.TOOL`` costs a descriptor lookup per use in 3.11,
# several times per span on the ingest path.
AGENT, LLM, TOOL, OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
_NOTHING: frozenset[str] = frozenset()
_REQUEST_MODEL = P.REQUEST_MODEL_KEYS[0]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:  # long digit strings: no int() DoS
        return int(value)
    return None


class SpanSessions(SessionBook):
    """The span path of the session tracker."""

    def on_resolved(self, resolved: Resolved) -> None:
        """Translator listener: fold the spans the trace context settled into their sessions."""
        if resolved.settled_spans:
            fold_spans(self, resolved.settled_spans, resolved.settled)

    def on_spans(self, spans: Sequence[Span], classified: Sequence[Classified]) -> None:
        """Fold settled spans (with their classifications) into their sessions, in order.

        A span this module cannot make sense of must not cost the rest of its batch
        (the translator has already counted it): the failure is logged, not raised. The Python
        path; sessions/_spans.pyx is its compiled twin (``fold_spans``: the one in use).

        The hot path (once per span, bench/sessions_overhead.py): the lookups that stay the
        same for a batch are hoisted out of the loop (nothing in it ticks the store's clock),
        and most spans carry none of the keys this module reads, so one ``isdisjoint`` with
        ``_watched`` decides whether any of them needs a look (the key view's, which looks up
        the watched keys, not the set's, which would walk every attribute of the span)."""
        watched, open_sessions, ended = self._watched, self.open, self.ended
        agent_key_0, agent_key_1 = self._agent_key_0, self._agent_key_1
        now = self.store.now
        trace_id = trace_session = None  # the last trace-id session's id (spans of a trace come together)
        for span, c in zip(spans, classified):
            try:
                attrs = span.attributes
                found = _NOTHING if attrs.keys().isdisjoint(watched) else attrs.keys() & watched
                session_id = c.session
                keyed = session_id is not None
                if not keyed:
                    if span.trace_id != trace_id:
                        trace_id = span.trace_id
                        trace_session = trace_id.hex()
                    session_id = trace_session
                    if (session_id not in open_sessions and session_id not in ended
                            and not self._meaningful(span, c)):
                        continue
                elif c.joins:
                    self._join(span.trace_id.hex(), session_id, c)
                kind = c.kind
                s = open_sessions.get(session_id)
                # the session's agent: an invocation's or a span's own name (rank 2) wins over a name
                # inherited or the service's (rank 1); a wrapper or a step is no invocation of its own
                if s is not None:  # the common case, inlined: an open session goes on
                    s.last_activity = now
                    open_sessions.move_to_end(session_id)
                    if s.agent_rank < 2:  # only a better-named agent can change it (_set_agent)
                        rank = 2 if (kind is AGENT and c.counted) or agent_key_0 in attrs or agent_key_1 in attrs else 1
                        if rank > s.agent_rank:
                            self._set_agent(s, c.agent, rank)
                else:
                    rank = 2 if (kind is AGENT and c.counted) or agent_key_0 in attrs or agent_key_1 in attrs else 1
                    s = self._session(session_id, c.agent, rank)
                start, end = span.start_ns / 1e9, span.end_ns / 1e9
                if s.start is None or start < s.start:
                    s.start = start
                if s.last_seen is None or end > s.last_seen:
                    s.last_seen = end
                if found:
                    self._own_attributes(s, attrs, found, c.agent)
                if span.events:
                    self._own_events(s, span, c.agent)

                # an outer LLM call (the trace context found the request's own span below it) is no call
                if kind is TOOL or (kind is LLM and c.counted):
                    self._span_call(s, span, c, found, start, end)
                elif kind is AGENT and c.counted and self.sink is not None:
                    self._invocation(s, span, c, start, end)
                elif c.own_phase is not None:
                    phase_id, name = c.own_phase
                    self._phase_span(s, phase_id, name, span.span_id, start, end, span.status_code == STATUS_ERROR)

                if s.status != ACTIVE:
                    continue
                if P.OWN_SPAN_KIND in found and attrs[P.OWN_SPAN_KIND] == P.OWN_SPAN_KIND_SESSION:
                    s.start = start  # the session span is the session's own time span
                    self._end(s, self._end_status(s, span), end)
                elif not keyed and not span.parent_span_id:
                    self._end(s, self._end_status(s, span), end)
            except Exception:
                self._failed(f"session tracking of span {span.span_id.hex()}")

    def _invocation(self, s: Session, span: Span, c: Classified, start: float, end: float) -> None:
        """Log a counted agent span: an invocation of its agent (there is a log: ``sink``)."""
        self.sink(R.invocation_record(s.session_id, c.agent, start, end, c.ok, c.error_type or None,
                                      span.trace_id, span.span_id))

    def _join(self, trace_session: str, session_id: str, c: Classified) -> None:
        """A span named the session of a trace whose earlier spans opened a trace-id session
        (they arrive first: children end first): fold that one into the keyed session."""
        early = self.open.get(trace_session)
        if early is not None and trace_session != session_id:
            target = self._session(session_id, c.agent, 0)
            if target.status == ACTIVE:
                self._absorb(target, early)

    def _absorb(self, target: Session, source: Session) -> None:
        """Move everything an open trace-id session holds into ``target``; the trace-id session
        is forgotten without being counted as a session."""
        del self.open[source.session_id]
        self._active_add(source.agent, -1)
        for name in MERGED_COUNTS:
            setattr(target, name, getattr(target, name) + getattr(source, name))
        if source.start is not None:
            target.cover(source.start, source.last_seen if source.last_seen is not None else source.start)
        if source.agent_rank > target.agent_rank:
            self._set_agent(target, source.agent, source.agent_rank)
        target.model = target.model or source.model
        target.provider = target.provider or source.provider
        target.reported_status = target.reported_status or source.reported_status
        if source.utilization_observations:
            target.context_tokens_used = source.context_tokens_used
            target.context_tokens_available = source.context_tokens_available
            target.peak_context_utilization = max(target.peak_context_utilization or 0.0,
                                                  source.peak_context_utilization or 0.0)
        for phase in source.phase_list:
            if len(target.phase_list) < self.config.max_phases_per_session:
                target.phase_list.append(phase)
            else:
                target.phases_dropped += 1
        for phase_id, phase in source.phases.items():
            target.phases.setdefault(phase_id, phase)
        for call in source.calls:
            if self._max_calls and len(target.calls) >= self._max_calls:
                target.calls.popleft()
                target.calls_dropped += 1
            target.calls.append(call)
        target.pending.extend(source.pending)
        while len(target.pending) > self._max_pending:
            self._attribute(target, target.pending.pop(0), None)  # out of room: logged without a phase
            self._dropped(target, "pending_calls")
        by_span = target.phase_by_span
        by_span.update(source.phase_by_span)
        while len(by_span) > self._max_parents:
            self._drop_oldest(target, by_span, "phase_spans")
        for item in source.failing:
            if len(target.failing) < self._max_pending:
                target.failing.add(item)
            elif item not in target.failing:
                self._dropped(target, "failing_calls")
        if source.state_dropped:
            for structure, n in source.state_dropped.items():
                target.state_dropped = target.state_dropped or {}
                target.state_dropped[structure] = target.state_dropped.get(structure, 0) + n

    def _own_attributes(self, s: Session, attrs: dict[str, Any], found: frozenset[str] | set[str], agent: str) -> None:
        """Session status, context utilization and memory operations named on a span."""
        if P.OWN_SESSION_STATUS in found and attrs[P.OWN_SESSION_STATUS] in END_STATUSES:
            s.reported_status = attrs[P.OWN_SESSION_STATUS]
        if P.OWN_CONTEXT_USED in found and P.OWN_CONTEXT_AVAILABLE in found:
            used, available = _int(attrs[P.OWN_CONTEXT_USED]), _int(attrs[P.OWN_CONTEXT_AVAILABLE])
            if used is not None and used >= 0 and available and available > 0:
                self._observe_context(s, agent, used, available)
        if P.OWN_MEMORY_OPERATION in found and attrs[P.OWN_MEMORY_OPERATION] in ("read", "write"):
            self._memory(s, agent, attrs[P.OWN_MEMORY_OPERATION])

    def _own_events(self, s: Session, span: Span, agent: str) -> None:
        for name, _time_ns, _event_attrs in span.events:
            if name == P.OWN_EVENT_CHECKPOINT:
                self._checkpoint(s, agent)
            elif name == P.OWN_EVENT_CONTEXT_RESET:
                self._context_reset(s, agent)
            elif name in P.OWN_EVENT_MEMORY:
                self._memory(s, agent, P.OWN_EVENT_MEMORY[name])

    def _meaningful(self, span: Span, c: Classified) -> bool:
        if c.kind is not OTHER or span.events:
            return True
        return any(key.startswith(P.OWN_PREFIX) for key in span.attributes)

    @staticmethod
    def _end_status(s: Session, span: Span) -> str:
        if span.status_code == STATUS_ERROR or s.reported_status == FAILED:
            return FAILED
        return s.reported_status or COMPLETED

    def _phase_span(self, s: Session, phase_id: str, name: str, span_id: bytes,
                    start: float, end: float, failed: bool) -> None:
        phase = s.phases.get(phase_id)
        if phase is not None and phase.ended and phase.end is not None and start >= phase.end:
            s.execution_resets += 1  # the same phase ran again after it had ended
            phase = None
        if phase is None:
            phase = self._new_phase(s, phase_id, name)
        ended = phase.ended
        if not ended:
            phase.explicit = True
        phase.cover(start, end)  # for an ended phase: another span of it, overlapping, the same run
        if not s.ended:
            phase.span_id = phase.span_id or span_id
            by_span = s.phase_by_span
            if span_id not in by_span and len(by_span) >= self._max_parents:
                self._drop_oldest(s, by_span, "phase_spans")
            by_span[span_id] = phase
            self._resolve_pending(s, span_id, phase)  # its calls first: the phase's record counts them
        if not ended:
            self._end_phase(s, phase, FAILED if failed else COMPLETED)

    def _span_call(self, s: Session, span: Span, c: Classified, found: frozenset[str] | set[str], start: float, end: float) -> None:
        attrs = span.attributes
        is_tool = c.kind is TOOL
        # An LLM call is identified by the model it asked for: a failed call has no response model,
        # and its successful retry answers with a dated one (gpt-4o-mini -> gpt-4o-mini-2024-07-18).
        if is_tool:
            name = c.tool
        else:  # first_str(attrs, REQUEST_MODEL_KEYS), with the usual string under the first key inline
            name = attrs.get(_REQUEST_MODEL)
            if name.__class__ is not str or not name:
                name = first_str(attrs, P.REQUEST_MODEL_KEYS) or c.model
        call = Call(TOOL_CALL if is_tool else LLM_CALL, name, c.agent, start,
                    (end - start) * 1000.0, c.ok, c.error_type or None, span.trace_id, span.span_id)
        if found:
            self._call_attributes(call, attrs, found)
        if not is_tool:
            tokens = c.tokens
            call.model, call.provider = c.model, c.provider
            call.input_tokens = tokens.get("input")
            call.output_tokens = tokens.get("output")
            call.cached_tokens = tokens.get("cache_read")
            call.cost = c.cost
        phase_key = (attrs.get(P.OWN_PHASE_ID) or attrs.get(P.OWN_PHASE_NAME)) if found else None
        if phase_key:
            phase, final = self._phase_ref(s, str(phase_key), str(attrs.get(P.OWN_PHASE_NAME) or phase_key)), True
        elif c.phase is not None and s.status == ACTIVE:
            # the phase span above usually comes just after (it ends after its children): wait for it
            call.phase_span = c.phase[0]
            phase = s.phase_by_span.get(call.phase_span)
            final = phase is not None
        else:
            phase, final = None, True
        self._add_call(s, call, phase, final)

    @staticmethod
    def _call_attributes(call: Call, attrs: dict[str, Any], found: frozenset[str] | set[str]) -> None:
        """A call's retry attempt and escalation, named on its span (``found``: the watched keys it carries)."""
        if P.OWN_RETRY_ATTEMPT in found or P.HTTP_RESEND_COUNT in found:
            own_attempt = _int(attrs.get(P.OWN_RETRY_ATTEMPT))
            resends = _int(attrs.get(P.HTTP_RESEND_COUNT))
            if own_attempt is not None and own_attempt >= 1:
                call.attempt, call.retry_source = own_attempt, ("agent" if own_attempt > 1 else None)
            elif resends is not None and resends > 0:
                call.attempt, call.retry_source = resends + 1, "transport"
        call.escalated = attrs.get(P.OWN_ESCALATED) is True

    def _resolve_pending(self, s: Session, span_id: bytes, phase: Phase) -> None:
        """A phase span arrived: attribute the pending calls below it."""
        keep = []
        for call in s.pending:
            if call.phase_span == span_id:
                self._attribute(s, call, phase)
            else:
                keep.append(call)
        s.pending = keep


def _compiled() -> Callable[[SpanSessions, Sequence[Span], Sequence[Classified]], None] | None:
    """The compiled twin of ``SpanSessions.on_spans`` (sessions/_spans.pyx) when built and not switched
    off with ``AGENTPROM_PURE_PYTHON=1``, else None."""
    _spans = extension("agentprom.sessions._spans", lambda module: module.configure(
        Span, Classified, Session, Call, (AGENT, LLM, TOOL), SpanSessions.on_spans, _NOTHING, ACTIVE, STATUS_ERROR,
        P, (TOOL_CALL, LLM_CALL), first_str, SessionBook._add_call, count_in_phase, R.call_record, UNKNOWN))
    return _spans.on_spans if _spans is not None else None


_fold_compiled = _compiled()
#: whether ``fold_spans`` is the compiled one (read once, at import)
COMPILED = _fold_compiled is not None
#: the span path in use: the compiled twin when built, else ``SpanSessions.on_spans``
fold_spans = _fold_compiled or SpanSessions.on_spans


#: per-session sums carried over when a trace-id session joins its keyed session
MERGED_COUNTS = (
    "tool_calls", "tool_errors", "tool_latency_ms", "llm_calls", "llm_errors", "recoveries", "retries",
    "escalations", "phase_count", "phases_completed", "checkpoints", "context_resets", "execution_resets",
    "memory_reads", "memory_writes", "utilization_observations", "utilization_within", "input_tokens",
    "output_tokens", "cached_tokens", "cost", "calls_dropped", "phases_dropped", "model_switches",
)
