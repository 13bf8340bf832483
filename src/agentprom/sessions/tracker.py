"""Track runtime sessions and their phases from spans and runtime events; count their metrics.

The model is Session -> Phase -> Call (docs/sessions.md). Spans arrive through
``on_span`` (a translator listener), runtime API events through ``apply``;
both update the same sessions and the catalog's ``sessions`` metrics, and
completed calls, phases and sessions go to ``sink`` (the JSONL log) as records.

Span facts that shape this module:

* A span arrives when it ends, so children arrive before their parents: a
  call inside a phase usually arrives before the phase span. Such a call is
  held in ``Session.pending`` until its phase span arrives, its trace's root
  span arrives (no phase then), or the session ends; only then is its log
  record written, with the phase it belongs to.
* Sessions come from ``agent.session.id``, else another convention's session
  key (``profile.SESSION_KEYS``), else the session another span of the same
  trace named, else the trace id. Unkeyed children often arrive before the
  keyed span of their trace: the trace-id session they opened is folded into
  the keyed one (``_absorb``). A trace-id session ends
  with its root span; a keyed session ends on its end signal (session span,
  ``session_completed``, ``POST /runtime/session/end``) or after
  ``inactivity_timeout_seconds`` without spans or events (as ``abandoned``).
* A span without a session key and without agent meaning (no agent, LLM or
  tool kind, no ``agent.*`` attribute or event) does not open a session, so
  plain HTTP traces sent to the sidecar do not become sessions.

Memory is bounded: ``max_open_sessions`` (the least recently active session
is ended as abandoned and counted in ``agentprom_sessions_evicted_total``),
``max_ended_sessions`` kept for the API, and per session
``max_tool_calls_per_session`` stored calls, ``max_phases_per_session``
stored phases (twice that indexed by id), and as many pending calls, phase
candidates, failing calls and tools in flight as ``PENDING_PER_CALL`` times
the call cap, and span parents, phase spans and agent spans as
``PARENTS_PER_CALL`` times it. Full indexes of span ids drop their oldest
entry; the others refuse the new one. Every drop is counted per session
(``Session.state_dropped``, shown by the runtime API) and in
``agentprom_session_state_dropped_total{structure}``: counts stay exact, only
attribution (a call's phase, a recovery) can be lost.

Concurrency: like the series store, the tracker belongs to the event loop;
no method awaits.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from itertools import compress
from operator import attrgetter, not_
from typing import Any

from agentprom.clock import Clock
from agentprom.config.schema import SessionsConfig
from agentprom.conventions import profile as P
from agentprom.conventions.classify import UNKNOWN, Classified, first_str
from agentprom.internal_errors import InternalErrors
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import STATUS_ERROR, Kind, Span
from agentprom.sessions import events as E
from agentprom.sessions import records as R
from agentprom.sessions.continuity import Scorer
from agentprom.sessions.model import (
    ABANDONED,
    ACTIVE,
    COMPLETED,
    END_STATUSES,
    FAILED,
    LLM_CALL,
    PHASE,
    SESSION,
    TOOL_CALL,
    Call,
    Phase,
    Session,
    new_id,
)

log = logging.getLogger(__name__)

# Enum members as plain globals: ``Kind.TOOL`` costs a descriptor lookup per use in 3.11,
# several times per span on the ingest path.
AGENT, LLM, TOOL, OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
_NOTHING: frozenset[str] = frozenset()
_trace_of = attrgetter("trace_id")

Sink = Callable[[dict[str, Any]], None]

#: pending calls and remembered span parents per session, as multiples of the stored-call cap
PENDING_PER_CALL = 1
PARENTS_PER_CALL = 4
#: at least this many, so a cap of 0 stored calls still attributes phases
MIN_OPEN_STATE = 64
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


class SessionTracker:
    def __init__(self, store: SeriesStore, record_call: Callable[[Classified, float], None],
                 config: SessionsConfig, clock: Clock, sink: Sink | None = None,
                 errors: InternalErrors | None = None) -> None:
        """``record_call`` counts an event-API call in the core metrics (``Translator.record``);
        ``sink`` takes every record for the log (the App passes it contained: ``InternalErrors``)."""
        self.store = store
        self.errors = errors or InternalErrors(store)
        self.record_call = record_call
        self.config = config
        self.clock = clock
        self.sink = sink
        self.scorer = Scorer(config.continuity_weights.model_dump())
        self.phase_rules = config.phase_spans
        self._agent_key_0, self._agent_key_1 = P.AGENT_NAME_KEYS
        #: every span attribute this module reads
        self._watched = frozenset({
            *P.SESSION_KEYS, P.OWN_SPAN_KIND, P.OWN_SESSION_STATUS, P.OWN_PHASE_NAME, P.OWN_PHASE_ID,
            P.OWN_MEMORY_OPERATION, P.OWN_CONTEXT_USED, P.OWN_CONTEXT_AVAILABLE, P.OWN_RETRY_ATTEMPT,
            P.OWN_ESCALATED, P.HTTP_RESEND_COUNT, *(rule.attribute for rule in config.phase_spans),
        })
        self.open: OrderedDict[str, Session] = OrderedDict()  # least recently active first
        self.ended: OrderedDict[str, Session] = OrderedDict()  # oldest end first
        self._max_calls = config.max_tool_calls_per_session
        self._max_ended = config.max_ended_sessions
        self._max_pending = max(MIN_OPEN_STATE, PENDING_PER_CALL * self._max_calls)
        self._max_parents = max(MIN_OPEN_STATE, PARENTS_PER_CALL * self._max_calls)
        #: trace id -> the keyed session a span of that trace named (bounded, oldest out)
        self._trace_sessions: OrderedDict[bytes, str] = OrderedDict()
        self._max_traces = max(1024, 4 * config.max_open_sessions)
        self._active: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        f = store.families
        self._m_sessions = f["agent_sessions_total"]
        self._m_active = f["agent_sessions_active"]
        self._m_duration = f["agent_session_duration_seconds"]
        self._m_session_calls = f["agent_session_tool_calls"]
        self._m_continuity = f["agent_session_continuity_score"]
        self._m_phases = f["agent_phases_total"]
        self._m_phase_duration = f["agent_phase_duration_seconds"]
        self._m_recoveries = f["agent_recoveries_total"]
        self._m_retries = f["agent_tool_retries_total"]
        self._m_checkpoints = f["agent_checkpoints_total"]
        self._m_resets = f["agent_context_resets_total"]
        self._m_memory = f["agent_memory_operations_total"]
        self._m_utilization = f["agent_context_utilization_ratio"]
        self._m_in_flight = f["agent_tool_calls_in_flight"]
        self._m_evicted = f["agentprom_sessions_evicted_total"]
        self._m_state_dropped = f["agentprom_session_state_dropped_total"]

    # ==================================================================================
    # lookup
    # ==================================================================================

    def get(self, session_id: str) -> Session | None:
        return self.open.get(session_id) or self.ended.get(session_id)

    def all_sessions(self) -> Iterable[Session]:
        yield from self.open.values()
        yield from self.ended.values()

    def _session(self, session_id: str, agent: str | None, rank: int) -> Session:
        """The open session (marked active now), else the remembered ended one, else a new one;
        ``agent`` names its agent with confidence ``rank`` (see ``_set_agent``)."""
        now = self.store.now
        s = self.open.get(session_id)
        if s is not None:
            s.last_activity = now
            self.open.move_to_end(session_id)
        else:
            s = self.ended.get(session_id)  # a late span or event: attached to the ended session, not re-counted
            if s is None:
                s = self._open_session(session_id, now, agent=agent if agent and agent != UNKNOWN else None,
                                       rank=rank)
        self._set_agent(s, agent, rank)
        return s

    def _open_session(self, session_id: str, now: float, restored: bool = False,
                      agent: str | None = None, rank: int = 0) -> Session:
        if len(self.open) >= self.config.max_open_sessions:
            oldest = next(iter(self.open.values()))
            if restored:
                self._forget_open(oldest)  # replaying the log: the newest sessions win, nothing is counted
            else:
                self._m_evicted.inc(())
                log.debug("evicting session %s (max_open_sessions reached)", oldest.session_id)
                try:
                    self._end(oldest, ABANDONED)  # leaves ``open`` even when it raises
                except Exception:
                    self._failed(f"evicting session {oldest.session_id}")
        s = Session(session_id=session_id, last_activity=now, restored=restored)
        if agent:
            s.agent, s.agent_rank = agent, rank
        self.open[session_id] = s
        self._active_add(s.agent, 1)
        return s

    def _forget_open(self, s: Session) -> None:
        del self.open[s.session_id]
        self._active_add(s.agent, -1)

    def _active_add(self, agent: str, delta: int) -> None:
        self._active[agent] += delta
        self._m_active.set((agent,), self._active[agent])
        if not self._active[agent]:
            del self._active[agent]

    def _in_flight_add(self, agent: str, delta: int) -> None:
        self._in_flight[agent] += delta
        self._m_in_flight.set((agent,), self._in_flight[agent])
        if not self._in_flight[agent]:
            del self._in_flight[agent]

    def _set_agent(self, s: Session, agent: str | None, rank: int) -> None:
        """Name the session's agent; a named agent (rank 2) replaces a fallback (rank 1) once."""
        if not agent or agent == UNKNOWN or rank <= s.agent_rank:
            return
        if not s.ended and s.session_id in self.open:
            self._active_add(s.agent, -1)
            self._active_add(agent, 1)
        s.agent = agent
        s.agent_rank = rank

    # ==================================================================================
    # spans
    # ==================================================================================

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

    def _dropped(self, s: Session, structure: str, n: int = 1) -> None:
        """Count bookkeeping an open session could not keep (shown by the API as ``state_dropped``)."""
        dropped = s.state_dropped
        if dropped is None:
            dropped = s.state_dropped = {}
        dropped[structure] = dropped.get(structure, 0) + n
        self._m_state_dropped.inc((structure,), n)

    def _drop_oldest(self, s: Session, index: dict, structure: str) -> None:
        """Make room in a full per-session index: its oldest entry goes (the newest matter most)."""
        del index[next(iter(index))]
        self._dropped(s, structure)

    def _failed(self, what: str) -> None:
        """Count a contained failure (call from an ``except`` block)."""
        self.errors.record("sessions", what)

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

    # ==================================================================================
    # runtime API events
    # ==================================================================================

    def apply(self, event: E.RuntimeEvent) -> Session:
        """Apply one validated event; return its session."""
        self.store.tick()
        t = event.timestamp if event.timestamp is not None else self.clock.now()
        kind = event.event_type
        if kind == E.SESSION_STARTED:
            return self.start_session(event.session_id, t, event.agent, event.model, event.provider)
        s = self._session(event.session_id, event.agent, 2)
        agent = event.agent or s.agent
        if event.context_tokens_used is not None and event.context_tokens_available:
            self._observe_context(s, agent, event.context_tokens_used, event.context_tokens_available)
        if kind in (E.TOOL_COMPLETED, E.TOOL_FAILED, E.LLM_CALL_EVENT):
            self._event_call(s, event, agent, t)
            s.cover(t, t)
        elif kind == E.TOOL_STARTED:
            self._tool_started(s, event, agent, t)
        elif kind in (E.PHASE_STARTED, E.PHASE_COMPLETED):
            if s.ended:
                log.debug("%s for ended session %s ignored", kind, s.session_id)
            elif kind == E.PHASE_STARTED:
                self._phase_started(s, event, t)
            else:
                self._phase_completed(s, event, t)
        elif kind == E.SESSION_COMPLETED:
            status = event.status or (FAILED if event.success is False else COMPLETED)
            if not s.ended:
                s.cover(t, t)
                self._end(s, status, t)
        else:
            s.cover(t, t)
            if kind == E.CHECKPOINT_CREATED:
                self._checkpoint(s, agent)
            elif kind == E.CONTEXT_RESET:
                self._context_reset(s, agent)
            elif kind == E.MEMORY_READ:
                self._memory(s, agent, "read")
            elif kind == E.MEMORY_WRITE:
                self._memory(s, agent, "write")
        return s

    def start_session(self, session_id: str, t: float, agent: str | None = None,
                      model: str | None = None, provider: str | None = None) -> Session:
        """``session_started`` / ``POST /runtime/session/start``. Starting an ended session
        starts it afresh; starting an open one again is an execution reset."""
        self.store.tick()
        ended = self.ended.pop(session_id, None)
        if ended is not None:
            log.debug("session %s started again after it ended: a new session", session_id)
        s = self._session(session_id, agent, 2)
        if s.started_explicitly:
            s.execution_resets += 1
        s.started_explicitly = True
        s.start = t if s.start is None else min(s.start, t)
        s.last_seen = t if s.last_seen is None else max(s.last_seen, t)
        s.model = model or s.model
        s.provider = provider or s.provider
        return s

    def end_session(self, session_id: str, status: str, t: float | None = None) -> Session | None:
        """``POST /runtime/session/end``: None when the session is unknown; ending twice is harmless."""
        self.store.tick()
        s = self.get(session_id)
        if s is not None and not s.ended:
            t = t if t is not None else self.clock.now()
            s.cover(t, t)
            self._end(s, status, t)
        return s

    def _event_call(self, s: Session, event: E.RuntimeEvent, agent: str, t: float) -> None:
        is_tool = event.event_type != E.LLM_CALL_EVENT
        success = event.event_type != E.TOOL_FAILED and event.success is not False
        started = None
        if is_tool:
            started = s.in_flight.pop((event.call_id or event.tool_name, event.tool_name), None)
            if started is not None:
                self._in_flight_add(started[0], -1)
        if event.duration_ms is not None:
            duration_ms = event.duration_ms
        elif started is not None:
            duration_ms = max(0.0, (t - started[1]) * 1000.0)
        else:
            duration_ms = 0.0
        error_type = event.error_type or ("" if success else P.ERROR_TYPE_FALLBACK)
        model = event.model or s.model or UNKNOWN
        provider = event.provider or s.provider or UNKNOWN
        attempt = event.attempt or 1
        call = Call(TOOL_CALL if is_tool else LLM_CALL, event.tool_name if is_tool else model, agent,
                    t - duration_ms / 1000.0, duration_ms, success, error_type or None, invocation_id=new_id())
        call.attempt = attempt
        call.retry_source = "agent" if attempt > 1 else None
        call.escalated = bool(event.escalated)
        classified = Classified(kind=TOOL if is_tool else LLM, agent=agent, ok=success,
                                error_type=error_type)
        if is_tool:
            classified.tool = call.name
        else:
            call.model, call.provider = model, provider
            call.input_tokens, call.output_tokens = event.input_tokens, event.output_tokens
            call.cached_tokens, call.cost = event.cached_tokens, event.cost
            classified.operation, classified.model, classified.provider = "chat", model, provider
            classified.cost = event.cost
            for token_type, value in (("input", event.input_tokens), ("output", event.output_tokens),
                                      ("cache_read", event.cached_tokens)):
                if value is not None:
                    classified.tokens[token_type] = value
        self.record_call(classified, duration_ms / 1000.0)
        phase = None
        if event.phase_key:
            phase = self._phase_ref(s, event.phase_key, event.phase_name or event.phase_key)
        elif s.current_phase is not None and not s.current_phase.ended:
            phase = s.current_phase
        self._add_call(s, call, phase, True)

    def _tool_started(self, s: Session, event: E.RuntimeEvent, agent: str, t: float) -> None:
        s.cover(t, t)
        if s.ended:
            return
        key = (event.call_id or event.tool_name, event.tool_name)
        if key not in s.in_flight and len(s.in_flight) >= self._max_pending:
            self._dropped(s, "tools_in_flight")
            return
        if key not in s.in_flight:
            self._in_flight_add(agent, 1)
        s.in_flight[key] = (agent, t)

    def _phase_started(self, s: Session, event: E.RuntimeEvent, t: float) -> None:
        s.cover(t, t)
        phase_id = event.phase_key
        phase = s.phases.get(phase_id)
        if phase is not None and phase.ended:
            s.execution_resets += 1  # started again after it ended
            phase = None
        if phase is None:
            phase = self._new_phase(s, phase_id, event.phase_name or phase_id)
        elif phase.explicit:
            return  # a repeated start of a running phase changes nothing
        phase.explicit = True
        phase.start = t if phase.start is None else min(phase.start, t)
        s.current_phase = phase

    def _phase_completed(self, s: Session, event: E.RuntimeEvent, t: float) -> None:
        s.cover(t, t)
        phase = s.phases.get(event.phase_key)
        if phase is None:
            phase = self._new_phase(s, event.phase_key, event.phase_name or event.phase_key)
        if phase.ended:
            return  # completing twice is harmless
        phase.explicit = True
        phase.cover(t, t)
        self._end_phase(s, phase, FAILED if event.success is False else COMPLETED)

    # ==================================================================================
    # calls, phases and per-session counters (shared by spans and events)
    # ==================================================================================

    def _add_call(self, s: Session, call: Call, phase: Phase | None, final: bool) -> None:
        count_call(s, call, self._max_calls)
        component = "tool" if call.kind == TOOL_CALL else "llm"
        if call.attempt > 1:
            self._m_retries.inc((call.agent, call.name if call.kind == TOOL_CALL else "llm:" + call.name))
        if s.status == ACTIVE:
            if not call.success:
                if len(s.failing) < self._max_pending:
                    s.failing.add((component, call.name))
                elif (component, call.name) not in s.failing:
                    self._dropped(s, "failing_calls")
            elif s.failing and (component, call.name) in s.failing:
                s.failing.discard((component, call.name))
                call.recovered = True
                s.recoveries += 1
                self._m_recoveries.inc((call.agent, component))
        if final or s.status != ACTIVE:
            self._attribute(s, call, phase)
            return
        if len(s.pending) >= self._max_pending:
            self._attribute(s, s.pending.pop(0), None)  # out of room: the oldest goes without a phase
            self._dropped(s, "pending_calls")
        s.pending.append(call)

    def _attribute(self, s: Session, call: Call, phase: Phase | None) -> None:
        """The call's phase is now known (or known to be none): count it there and log it."""
        count_in_phase(phase, call)
        if self.sink is not None:
            self.sink(R.call_record(call, s.session_id))

    def _phase_ref(self, s: Session, phase_id: str, name: str) -> Phase | None:
        """The phase a call names (its latest run), created implicitly when unknown
        (not for an ended session: its phases are final)."""
        phase = s.phases.get(phase_id)
        if phase is None and not s.ended:
            phase = self._new_phase(s, phase_id, name)
        return phase

    def _new_phase(self, s: Session, phase_id: str, name: str) -> Phase:
        phase = Phase(phase_id=phase_id, name=name, invocation_id=new_id())
        s.phase_count += 1
        cap = self.config.max_phases_per_session
        if len(s.phase_list) < cap:
            s.phase_list.append(phase)
        else:
            s.phases_dropped += 1  # counted and measured, not shown by the API
        # the lookup by id may hold twice the cap, so phases past it still pair start and end;
        # when full, the oldest ended phase makes room
        if phase_id not in s.phases and len(s.phases) >= 2 * cap:
            ended = next((key for key, p in s.phases.items() if p.ended), None)
            if ended is not None:
                del s.phases[ended]
        if phase_id in s.phases or len(s.phases) < 2 * cap:
            s.phases[phase_id] = phase
        else:
            self._dropped(s, "phase_index")  # every indexed phase still runs: this one cannot be found by id
        return phase

    def _end_phase(self, s: Session, phase: Phase, status: str) -> None:
        phase.status = status
        if status == COMPLETED:
            s.phases_completed += 1
        if s.current_phase is phase:
            s.current_phase = None
        self._m_phases.inc((s.agent, phase.name, status))
        self._m_phase_duration.observe((s.agent, phase.name), phase.duration_s)
        self._write(R.phase_record, phase, s)

    def _observe_context(self, s: Session, agent: str, used: int, available: int) -> None:
        ratio = used / available
        self._m_utilization.observe((agent,), ratio)
        s.context_tokens_used, s.context_tokens_available = used, available
        s.utilization_observations += 1
        s.utilization_within += ratio <= 1.0
        s.peak_context_utilization = max(ratio, s.peak_context_utilization or 0.0)

    def _checkpoint(self, s: Session, agent: str) -> None:
        s.checkpoints += 1
        self._m_checkpoints.inc((agent,))

    def _context_reset(self, s: Session, agent: str) -> None:
        s.context_resets += 1
        self._m_resets.inc((agent,))

    def _memory(self, s: Session, agent: str, operation: str) -> None:
        if operation == "read":
            s.memory_reads += 1
        else:
            s.memory_writes += 1
        self._m_memory.inc((agent, operation))

    # ==================================================================================
    # ending sessions
    # ==================================================================================

    def score(self, s: Session) -> tuple[float, dict[str, float]]:
        """The session's continuity score now (final once it has ended)."""
        if s.continuity_score is not None and s.continuity_components is not None:
            return s.continuity_score, s.continuity_components
        result = self.scorer(s)
        return result.score, result.components

    def _end(self, s: Session, status: str, end: float | None = None) -> None:
        """End an open session: close its phases and pending calls, count it, log it.

        Whatever fails on the way (a subscriber, a bug), the session leaves the open set and is
        remembered as ended, so every loop that ends sessions (expiry, eviction) makes progress."""
        if s.status != ACTIVE:
            return
        try:
            self._close(s, status, end)
        finally:
            if self.open.get(s.session_id) is s:
                del self.open[s.session_id]
                self._active_add(s.agent, -1)
                if s.status == ACTIVE:
                    s.clear_open_state()
                    s.status = status
                self._remember_ended(s)

    def _close(self, s: Session, status: str, end: float | None) -> None:
        s.end = end if end is not None else (s.last_seen if s.last_seen is not None else s.start)
        if s.start is None:
            s.start = s.end
        if s.phases:
            for phase in list(s.phases.values()):
                if phase.status == ACTIVE:
                    # a phase that was started and never completed is abandoned; a phase that only
                    # exists because calls named it has no end of its own and shares the session's
                    self._end_phase(s, phase, ABANDONED if phase.explicit else status)
        if s.pending:
            for call in s.pending:
                self._attribute(s, call, None)
        if s.in_flight:
            for agent, _start in s.in_flight.values():
                self._in_flight_add(agent, -1)
        s.clear_open_state()
        s.status = status
        score, s.continuity_components = self.scorer(s)
        s.continuity_score = score

        agent = s.agent
        self._m_sessions.inc((agent, status))
        self._m_duration.observe((agent, status), s.duration_s)
        self._m_session_calls.observe((agent,), s.tool_calls)
        self._m_continuity.observe((agent,), score)
        if self.sink is not None:
            self.sink(R.session_record(s))

    def _remember_ended(self, s: Session) -> None:
        """Keep an ended session for the API (an open session's id is never in ``ended``)."""
        if self._max_ended:
            ended = self.ended
            ended[s.session_id] = s
            if len(ended) > self._max_ended:
                ended.popitem(last=False)

    def expire(self) -> int:
        """End sessions inactive for longer than the timeout (periodic); return how many ended.
        Also re-sets the gauges so an unchanging value does not expire from the store."""
        cutoff = self.store.tick() - self.config.inactivity_timeout_seconds
        ended = 0
        while self.open:
            s = next(iter(self.open.values()))
            if s.last_activity > cutoff:
                break
            try:
                self._end(s, s.reported_status or ABANDONED)  # leaves ``open`` even when it raises
            except Exception:
                self._failed(f"ending session {s.session_id}")
            ended += 1
        for agent, n in self._active.items():
            self._m_active.set((agent,), n)
        for agent, n in self._in_flight.items():
            self._m_in_flight.set((agent,), n)
        return ended

    def flush(self) -> None:
        """On shutdown: log the calls still waiting for their phase (without it)."""
        for s in self.open.values():
            for call in s.pending:
                self._attribute(s, call, None)
            s.pending.clear()

    def _write(self, build: Callable[..., dict[str, Any]], *args: Any) -> None:
        """Log a record; it is only built when there is a log to write it to."""
        if self.sink is not None:
            self.sink(build(*args))

    # ==================================================================================
    # restoring from the JSONL log (at start, before any span or event)
    # ==================================================================================

    def restore(self, record: dict[str, Any]) -> None:
        """Rebuild session state from one log record, without counting metrics or writing.

        Sessions with a ``session`` record are ended; the others are open again, with the
        counters their call and phase records carry, and time out as usual.
        """
        session_id = record["session_id"]
        s = self.open.get(session_id) or self.ended.get(session_id)
        kind = record["kind"]
        if s is None:
            s = self._open_session(session_id, self.store.now, restored=True, agent=R.text(record, "agent"), rank=2)
        if kind in (TOOL_CALL, LLM_CALL):
            call = R.call_from_record(record)
            phase = None
            phase_key = R.text(record, "phase_id") or R.text(record, "phase")
            if phase_key:
                phase = self._phase_ref(s, phase_key, R.text(record, "phase") or phase_key)
            s.recoveries += call.recovered
            s.cover(call.start, call.end)
            count_call(s, call, self._max_calls)
            count_in_phase(phase, call)
            if not s.ended:  # a failure before the restart is still waiting for its recovery
                key = ("tool" if call.kind == TOOL_CALL else "llm", call.name)
                if call.success:
                    s.failing.discard(key)
                elif len(s.failing) < self._max_pending:
                    s.failing.add(key)
        elif kind == PHASE:
            self._restore_phase(s, record)
        elif kind == SESSION:
            self._restore_session(s, record)

    def _restore_phase(self, s: Session, record: dict[str, Any]) -> None:
        phase_id = R.text(record, "phase_id") or R.text(record, "phase") or record["invocation_id"]
        phase = s.phases.get(phase_id)
        if phase is None or phase.ended:
            phase = self._new_phase(s, phase_id, R.text(record, "phase") or phase_id)
        phase.invocation_id = record["invocation_id"]
        phase.explicit = True
        phase.status = R.end_status(record)
        phase.start, phase.end = R.time_of(record), R.time_of(record, "end_timestamp")
        for name in ("tool_calls", "llm_calls", "errors", "recoveries"):
            value = R.count(record, name)
            if value is not None:
                setattr(phase, name, value)
        s.phases_completed += phase.status == COMPLETED

    def _restore_session(self, s: Session, record: dict[str, Any]) -> None:
        for name in R.SESSION_COUNTS:
            value = R.count(record, name)
            if value is not None:
                setattr(s, name, value)
        for name, value in (("phase_count", R.count(record, "phases")),
                            ("phases_completed", R.count(record, "phases_completed")),
                            ("tool_latency_ms", R.number(record, "tool_latency_ms")),
                            ("cost", R.number(record, "cost"))):
            if value is not None:
                setattr(s, name, value)
        s.model = R.text(record, "model") or s.model
        s.provider = R.text(record, "provider") or s.provider
        s.context_tokens_used = R.count(record, "context_tokens_used")
        s.context_tokens_available = R.count(record, "context_tokens_available")
        s.peak_context_utilization = R.number(record, "peak_context_utilization")
        s.start = R.time_of(record) or s.start
        s.end = R.time_of(record, "end_timestamp") or s.last_seen or s.start
        s.last_seen = s.end if s.last_seen is None or s.end is None else max(s.last_seen, s.end)
        s.continuity_score = R.number(record, "continuity_score")
        components = record.get("continuity")
        s.continuity_components = components if isinstance(components, dict) else None
        if s.continuity_score is None or s.continuity_components is None:
            s.continuity_score = s.continuity_components = None
            s.continuity_score, s.continuity_components = self.score(s)
        for phase in s.phases.values():
            if not phase.ended:
                phase.status = ABANDONED
        if s.session_id in self.open:
            self._forget_open(s)
        s.clear_open_state()
        s.status = R.end_status(record)
        self.ended.pop(s.session_id, None)  # a second record for the same id: the newest wins
        self._remember_ended(s)


#: per-session sums carried over when a trace-id session joins its keyed session
MERGED_COUNTS = (
    "tool_calls", "tool_errors", "tool_latency_ms", "llm_calls", "llm_errors", "recoveries", "retries",
    "escalations", "phase_count", "phases_completed", "checkpoints", "context_resets", "execution_resets",
    "memory_reads", "memory_writes", "utilization_observations", "utilization_within", "input_tokens",
    "output_tokens", "cached_tokens", "cost", "calls_dropped", "phases_dropped",
)


def count_call(s: Session, call: Call, max_calls: int) -> None:
    """Count a call into its session's counters and stored calls (live, and when restoring)."""
    failed = not call.success
    if call.kind == TOOL_CALL:
        s.tool_calls += 1
        s.tool_errors += failed
        s.tool_latency_ms += call.duration_ms
        if max_calls:
            if len(s.calls) >= max_calls:
                s.calls.popleft()
                s.calls_dropped += 1
            s.calls.append(call)
    else:
        s.llm_calls += 1
        s.llm_errors += failed
        s.input_tokens += call.input_tokens or 0
        s.output_tokens += call.output_tokens or 0
        s.cached_tokens += call.cached_tokens or 0
        s.cost += call.cost or 0.0
        if call.model and call.model != UNKNOWN and not s.model:
            s.model, s.provider = call.model, call.provider
    s.retries += call.attempt > 1
    s.escalations += call.escalated


def count_in_phase(phase: Phase | None, call: Call) -> None:
    call.phase = phase
    if phase is None:
        return
    if call.kind == TOOL_CALL:
        phase.tool_calls += 1
    else:
        phase.llm_calls += 1
    phase.errors += not call.success
    phase.recoveries += call.recovered
    if not phase.explicit:
        phase.cover(call.start, call.end)
