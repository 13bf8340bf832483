"""Fold resolved spans into runtime sessions: which session, which phase, and the session's end.

Span facts that shape this module (docs/sessions.md):

* A span arrives when it ends, so children arrive before their parents: a
  call inside a phase usually arrives before the phase span. Such a call is
  held in ``Session.pending`` until its phase span arrives, its trace's root
  span arrives (no phase then), or the session ends; only then is its log
  record written, with the phase it belongs to.
* Sessions come from ``agent.session.id``, else another convention's session
  key (``profile.SESSION_KEYS``), else the session another span of the same
  trace named, else the trace id. Unkeyed children often arrive before the
  keyed span of their trace: the trace-id session they opened is folded into
  the keyed one (``_absorb``). A trace-id session ends with its root span; a
  keyed session ends on its end signal (session span, ``session_completed``,
  ``POST /runtime/session/end``) or after ``inactivity_timeout_seconds``
  without spans or events (as ``abandoned``).
* A span without a session key and without agent meaning (no agent, LLM or
  tool kind, no ``agent.*`` attribute or event) does not open a session, so
  plain HTTP traces sent to the sidecar do not become sessions.
* Spans come from the trace context (context/stage.py) with their agent
  resolved; an outer LLM call (``counted`` false) is not a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from operator import attrgetter, not_
from typing import Any

from agentprom.conventions import profile as P
from agentprom.conventions.classify import Classified, first_str
from agentprom.model import STATUS_ERROR, Kind, Span
from agentprom.sessions.book import SessionBook
from agentprom.sessions.model import ACTIVE, COMPLETED, END_STATUSES, FAILED, LLM_CALL, TOOL_CALL, Call, Phase, Session

# Enum members as plain globals: ``Kind.TOOL`` costs a descriptor lookup per use in 3.11,
# several times per span on the ingest path.
AGENT, LLM, TOOL, OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
_NOTHING: frozenset[str] = frozenset()
_trace_of = attrgetter("trace_id")

#: how far up the span tree a call looks for its phase span
MAX_DEPTH = 64


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

    def on_span(self, span: Span, c: Classified) -> None:
        """Translator listener: fold one valid, classified span into its session."""
        self.on_spans((span,), (c,))

    def on_spans(self, spans: Sequence[Span], classified: Sequence[Classified]) -> None:
        """Translator batch listener: fold valid, classified spans into their sessions, in order.

        A span this module cannot make sense of must not cost the rest of its batch
        (the translator has already counted it): the failure is logged, not raised.

        The hot path (once per span, bench/sessions_overhead.py): the lookups that stay the
        same for a batch are hoisted out of the loop (nothing in it ticks the store's clock),
        and most spans carry none of the keys this module reads, so one ``isdisjoint`` with
        ``_watched`` decides whether any of them needs a look."""
        watched, trace_sessions, open_sessions, ended = self._watched, self._trace_sessions, self.open, self.ended
        agent_key_0, agent_key_1, max_parents = self._agent_key_0, self._agent_key_1, self._max_parents
        now = self.store.now
        for span, c in zip(spans, classified):
            try:
                attrs = span.attributes
                found = _NOTHING if watched.isdisjoint(attrs) else attrs.keys() & watched
                session_id = None
                if found:
                    for key in P.SESSION_KEYS:
                        if key in found:
                            value = attrs[key]
                            if value is not None and value != "":
                                session_id = str(value)
                                break
                if session_id is not None:
                    self._bind_trace(span.trace_id, session_id, c)
                    keyed = True
                else:
                    # a span without a key belongs to the session another span of its trace named
                    session_id = trace_sessions.get(span.trace_id)
                    keyed = session_id is not None
                    if not keyed:
                        session_id = span.trace_id.hex()
                        if (session_id not in open_sessions and session_id not in ended
                                and not self._meaningful(span, c)):
                            continue
                kind = c.kind
                s = open_sessions.get(session_id)
                if s is not None:  # the common case, inlined: an open session goes on
                    s.last_activity = now
                    open_sessions.move_to_end(session_id)
                    if s.agent_rank < 2:  # only a better-named agent can change it (_set_agent)
                        rank = 2 if kind is AGENT or agent_key_0 in attrs or agent_key_1 in attrs else 1
                        if rank > s.agent_rank:
                            self._set_agent(s, c.agent, rank)
                else:
                    rank = 2 if kind is AGENT or agent_key_0 in attrs or agent_key_1 in attrs else 1
                    s = self._session(session_id, c.agent, rank)
                start, end = span.start_ns / 1e9, span.end_ns / 1e9
                is_open = s.status == ACTIVE
                if s.start is None or start < s.start:
                    s.start = start
                if s.last_seen is None or end > s.last_seen:
                    s.last_seen = end
                parent = span.parent_span_id
                # an outer LLM call (the trace context found the request's own span below it) is no call
                is_call = kind is TOOL or (kind is LLM and c.counted)
                # calls are leaves of the span tree: only the spans between a call and its phase need remembering
                if parent and not is_call and is_open:
                    if len(s.parents) >= max_parents:
                        self._drop_oldest(s, s.parents, "span_parents")
                    s.parents[span.span_id] = parent
                if found:
                    self._own_attributes(s, attrs, found, c.agent)
                if span.events:
                    self._own_events(s, span, c.agent)

                if is_call:
                    self._span_call(s, span, c, found, start, end)
                else:
                    if kind is AGENT and is_open:
                        self._agent_span(s, span)
                    phase = self._phase_of_span(span, found) if found else None
                    if phase is not None:
                        phase_id, name, needs_agent_parent = phase
                        failed = span.status_code == STATUS_ERROR
                        if not needs_agent_parent or parent in s.agent_spans:
                            self._phase_span(s, phase_id, name, span.span_id, start, end, failed)
                        elif is_open and parent:
                            if s.candidates_held < self._max_pending:
                                s.candidates.setdefault(parent, []).append(
                                    (phase_id, name, span.span_id, start, end, failed))
                                s.candidates_held += 1
                            else:
                                self._dropped(s, "phase_candidates")

                if s.status != ACTIVE:
                    continue
                if P.OWN_SPAN_KIND in found and attrs[P.OWN_SPAN_KIND] == P.OWN_SPAN_KIND_SESSION:
                    s.start = start  # the session span is the session's own time span
                    self._end(s, self._end_status(s, span), end)
                elif not parent:
                    if s.pending:
                        self._resolve_trace(s, span.trace_id)
                    if not keyed:
                        self._end(s, self._end_status(s, span), end)
            except Exception:
                self._failed(f"session tracking of span {span.span_id.hex()}")

    def _bind_trace(self, trace_id: bytes, session_id: str, c: Classified) -> None:
        """Remember that ``trace_id`` belongs to ``session_id``; fold a session opened for the
        trace by earlier spans without a key (they arrive first: children end first) into it."""
        bound = self._trace_sessions.get(trace_id)
        if bound == session_id:
            return
        self._trace_sessions[trace_id] = session_id
        if len(self._trace_sessions) > self._max_traces:
            self._trace_sessions.popitem(last=False)
            self._m_state_dropped.inc(("trace_sessions",))
        early = self.open.get(trace_id.hex())
        if early is not None and bound is None:
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
        for mine, theirs in ((target.parents, source.parents), (target.phase_by_span, source.phase_by_span)):
            mine.update(theirs)
            while len(mine) > self._max_parents:
                self._drop_oldest(target, mine, "span_parents" if mine is target.parents else "phase_spans")
        for parent, waiting in source.candidates.items():
            room = self._max_pending - target.candidates_held
            if len(waiting) > room:
                self._dropped(target, "phase_candidates", len(waiting) - max(room, 0))
                waiting = waiting[:max(room, 0)]
            if waiting:
                target.candidates.setdefault(parent, []).extend(waiting)
                target.candidates_held += len(waiting)
        for mine_set, theirs_set, cap, structure in (
                (target.agent_spans, source.agent_spans, self._max_parents, "agent_spans"),
                (target.failing, source.failing, self._max_pending, "failing_calls")):
            for item in theirs_set:
                if len(mine_set) < cap:
                    mine_set.add(item)
                elif item not in mine_set:
                    self._dropped(target, structure)
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

    def _phase_of_span(self, span: Span, found: frozenset[str] | set[str]) -> tuple[str, str, bool] | None:
        """(phase id, phase name, needs an agent parent) when the span is a phase span."""
        attrs = span.attributes
        name = attrs.get(P.OWN_PHASE_NAME) if P.OWN_PHASE_NAME in found else None
        if name is not None and name != "":
            phase_id = attrs.get(P.OWN_PHASE_ID)
            return str(phase_id or name), str(name), False
        for rule in self.phase_rules:
            if rule.attribute in found and attrs[rule.attribute] == rule.value:
                label = next((str(attrs[k]) for k in rule.name_keys if attrs.get(k)), span.name) or "unknown"
                return span.span_id.hex(), label, rule.parent_kind == "agent"
        return None

    def _agent_span(self, s: Session, span: Span) -> None:
        if len(s.agent_spans) < self._max_parents:
            s.agent_spans.add(span.span_id)
        else:
            self._dropped(s, "agent_spans")
        waiting = s.candidates.pop(span.span_id, ())
        s.candidates_held -= len(waiting)
        for phase_id, name, span_id, start, end, failed in waiting:
            self._phase_span(s, phase_id, name, span_id, start, end, failed)

    def _phase_span(self, s: Session, phase_id: str, name: str, span_id: bytes,
                    start: float, end: float, failed: bool) -> None:
        phase = s.phases.get(phase_id)
        if phase is not None and phase.ended and phase.end is not None and start >= phase.end:
            s.execution_resets += 1  # the same phase ran again after it had ended
            phase = None
        if phase is None:
            phase = self._new_phase(s, phase_id, name)
        if phase.ended:
            # another span of an ended phase, overlapping it: the same run, counted once
            phase.cover(start, end)
        else:
            phase.explicit = True
            phase.cover(start, end)
            self._end_phase(s, phase, FAILED if failed else COMPLETED)
        if not s.ended:
            phase.span_id = phase.span_id or span_id
            by_span = s.phase_by_span
            if span_id not in by_span and len(by_span) >= self._max_parents:
                self._drop_oldest(s, by_span, "phase_spans")
            by_span[span_id] = phase
            self._resolve_pending(s, span_id, phase)

    def _span_call(self, s: Session, span: Span, c: Classified, found: frozenset[str] | set[str], start: float, end: float) -> None:
        attrs = span.attributes
        is_tool = c.kind is TOOL
        # An LLM call is identified by the model it asked for: a failed call has no response model,
        # and its successful retry answers with a dated one (gpt-4o-mini -> gpt-4o-mini-2024-07-18).
        name = c.tool if is_tool else (first_str(attrs, P.REQUEST_MODEL_KEYS) or c.model)
        call = Call(TOOL_CALL if is_tool else LLM_CALL, name, c.agent, start,
                    (end - start) * 1000.0, c.ok, c.error_type or None, span.trace_id, span.span_id,
                    span.parent_span_id)
        if found:
            if P.OWN_RETRY_ATTEMPT in found or P.HTTP_RESEND_COUNT in found:
                own_attempt = _int(attrs.get(P.OWN_RETRY_ATTEMPT))
                resends = _int(attrs.get(P.HTTP_RESEND_COUNT))
                if own_attempt is not None and own_attempt >= 1:
                    call.attempt, call.retry_source = own_attempt, ("agent" if own_attempt > 1 else None)
                elif resends is not None and resends > 0:
                    call.attempt, call.retry_source = resends + 1, "transport"
            call.escalated = attrs.get(P.OWN_ESCALATED) is True
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
        elif span.parent_span_id and s.status == ACTIVE:
            # usually no phase span has arrived yet (it ends after its children): wait for it
            phase = self._phase_above(s, span.parent_span_id) if s.phase_by_span else None
            final = phase is not None
        else:
            phase, final = None, True
        self._add_call(s, call, phase, final)

    def _phase_above(self, s: Session, parent: bytes) -> Phase | None:
        by_span, parents = s.phase_by_span, s.parents
        for _ in range(MAX_DEPTH):
            phase = by_span.get(parent)
            if phase is not None:
                return phase
            parent = parents.get(parent, b"")
            if not parent:
                return None
        return None

    def _resolve_pending(self, s: Session, span_id: bytes, phase: Phase) -> None:
        """A phase span arrived: attribute the pending calls below it."""
        keep = []
        for call in s.pending:
            if self._below(s, call.parent, span_id):
                self._attribute(s, call, phase)
            else:
                keep.append(call)
        s.pending = keep

    def _resolve_trace(self, s: Session, trace_id: bytes) -> None:
        """A trace's root span arrived: its pending calls have no phase span above them.

        Every root span looks through its session's pending calls, which may hold those of
        many traces: the loops run in C (``map``, ``count``, ``compress``)."""
        pending = s.pending
        traces = list(map(_trace_of, pending))
        found = traces.count(trace_id)
        if not found:
            return
        if found == len(pending):
            s.pending = []
        else:
            mine = list(map(trace_id.__eq__, traces))
            s.pending = list(compress(pending, map(not_, mine)))
            pending = compress(pending, mine)
        for call in pending:
            self._attribute(s, call, None)

    @staticmethod
    def _below(s: Session, parent: bytes, ancestor: bytes) -> bool:
        parents = s.parents
        for _ in range(MAX_DEPTH):
            if parent == ancestor:
                return True
            parent = parents.get(parent, b"")
            if not parent:
                return False
        return False


#: per-session sums carried over when a trace-id session joins its keyed session
MERGED_COUNTS = (
    "tool_calls", "tool_errors", "tool_latency_ms", "llm_calls", "llm_errors", "recoveries", "retries",
    "escalations", "phase_count", "phases_completed", "checkpoints", "context_resets", "execution_resets",
    "memory_reads", "memory_writes", "utilization_observations", "utilization_within", "input_tokens",
    "output_tokens", "cached_tokens", "cost", "calls_dropped", "phases_dropped",
)
