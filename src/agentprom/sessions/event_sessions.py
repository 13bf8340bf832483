"""Apply validated runtime API events (sessions/events.py) to runtime sessions.

``session_started`` ... ``session_completed``, tool and LLM calls, phases,
checkpoints, context resets and memory operations, as docs/sessions.md
describes. Events enter where spans do, through the translator
(``Translator.event``): it hands each event here and counts the call an event
made (``apply_event`` returns it) in the core metrics, as it counts spans.
"""

from __future__ import annotations

import logging

from agentprom.conventions import profile as P
from agentprom.conventions.classify import UNKNOWN
from agentprom.sessions import events as E
from agentprom.sessions import records as R
from agentprom.sessions.book import SessionBook
from agentprom.sessions.model import COMPLETED, FAILED, LLM_CALL, TOOL_CALL, Call, Session, new_id

log = logging.getLogger(__name__)



class EventSessions(SessionBook):
    """The event path of the session tracker."""

    def apply(self, event: E.RuntimeEvent) -> Session:
        """Apply one validated event; return its session (for the event's call metrics, go through
        ``Translator.event``)."""
        return self.apply_event(event)[0]

    def apply_event(self, event: E.RuntimeEvent) -> tuple[Session, Call | None]:
        """Apply one validated event; return its session and the call it made, if any."""
        self.store.tick()
        t = event.timestamp if event.timestamp is not None else self.clock.now()
        kind = event.event_type
        if kind == E.SESSION_STARTED:
            return self.start_session(event.session_id, t, event.agent, event.model, event.provider), None
        s = self._session(event.session_id, event.agent, 2)
        agent = event.agent or s.agent
        if event.context_tokens_used is not None and event.context_tokens_available:
            self._observe_context(s, agent, event.context_tokens_used, event.context_tokens_available)
        call = None
        if kind in (E.TOOL_COMPLETED, E.TOOL_FAILED, E.LLM_CALL_EVENT):
            call = self._event_call(s, event, agent, t)
            s.cover(t, t)
        elif kind == E.TOOL_STARTED:
            self._tool_started(s, event, agent, t)
            self._write(R.event_record, kind, s, t, tool=event.tool_name, call_id=event.call_id,
                        phase_id=event.phase_id, phase_name=event.phase_name)
        elif kind in (E.PHASE_STARTED, E.PHASE_COMPLETED):
            if s.ended:
                log.debug("%s for ended session %s ignored", kind, s.session_id)
            elif kind == E.PHASE_STARTED:
                self._phase_started(s, event, t)
                self._write(R.event_record, kind, s, t, phase_id=event.phase_key,
                            phase_name=event.phase_name or event.phase_key)
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
            self._write(R.event_record, kind, s, t)
        return s, call

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
        self._write(R.event_record, E.SESSION_STARTED, s, t, model=s.model, provider=s.provider)
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

    def _event_call(self, s: Session, event: E.RuntimeEvent, agent: str, t: float) -> Call:
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
                    t - duration_ms / 1000.0, duration_ms, success, error_type or None, invocation_id=new_id(),
                    call_id=event.call_id or "")
        call.attempt = attempt
        call.retry_source = "agent" if attempt > 1 else None
        if event.input_size_bytes is not None or event.output_size_bytes is not None:
            call.sizes = (event.input_size_bytes, event.output_size_bytes)
        call.escalated = bool(event.escalated)
        if not is_tool:
            call.model, call.provider = model, provider
            call.input_tokens, call.output_tokens = event.input_tokens, event.output_tokens
            call.cached_tokens, call.cost = event.cached_tokens, event.cost
        phase = None
        if event.phase_key:
            phase = self._phase_ref(s, event.phase_key, event.phase_name or event.phase_key)
        elif s.current_phase is not None and not s.current_phase.ended:
            phase = s.current_phase
        self._add_call(s, call, phase, True)
        return call

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
