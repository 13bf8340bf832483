"""The bounded store of runtime sessions and what spans and events both do to them.

Sessions, phases and calls (sessions/model.py) live here: open sessions (the
least recently active is evicted as abandoned past ``max_open_sessions``, and
counted in ``agentprom_sessions_evicted_total``), ended ones kept for the API
(``max_ended_sessions``), and the bookkeeping both the span path
(sessions/span_sessions.py) and the event path (sessions/event_sessions.py)
share: adding a call (recoveries, retries), phases, context, checkpoints and
memory, ending a session (its metrics, its continuity score, its log record).

Memory is bounded: per session ``max_tool_calls_per_session`` stored calls,
``max_phases_per_session`` stored phases (twice that indexed by id), and as
many pending calls, failing calls and tools in flight as ``PENDING_PER_CALL``
times the call cap, and phase spans as ``PARENTS_PER_CALL`` times it. The index
of phase spans drops its oldest entry; the others refuse the new one. Every
drop is counted per session (``Session.state_dropped``, shown by the runtime
API) and in
``agentprom_session_state_dropped_total{structure}``: counts stay exact, only
attribution (a call's phase, a recovery) can be lost.

Ending a session never depends on its subscribers: whatever raises, the session
leaves the open set (``_end``), so expiry and eviction always make progress.

Concurrency: like the series store, the book belongs to the event loop; no
method awaits.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from agentprom.clock import Clock
from agentprom.config.schema import SessionsConfig
from agentprom.conventions import profile as P
from agentprom.conventions.classify import UNKNOWN
from agentprom.internal_errors import InternalErrors
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions import records as R
from agentprom.sessions.continuity import Scorer
from agentprom.sessions.model import ABANDONED, ACTIVE, COMPLETED, TOOL_CALL, Call, Phase, Session, new_id

log = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]

#: pending calls and remembered phase spans per session, as multiples of the stored-call cap
PENDING_PER_CALL = 1
PARENTS_PER_CALL = 4
#: at least this many, so a cap of 0 stored calls still attributes phases
MIN_OPEN_STATE = 64


class SessionBook:
    def __init__(self, store: SeriesStore, config: SessionsConfig, clock: Clock, sink: Sink | None = None,
                 errors: InternalErrors | None = None) -> None:
        """``sink`` takes every record for the log (the App passes it contained: ``InternalErrors``)."""
        self.store = store
        self.errors = errors or InternalErrors(store)
        self.config = config
        self.clock = clock
        self.sink = sink
        self.scorer = Scorer(config.continuity_weights.model_dump())
        self._agent_key_0, self._agent_key_1 = P.AGENT_NAME_KEYS
        #: every span attribute the span path reads itself (sessions and phase spans are the trace
        #: context's: context/scope.py)
        self._watched = frozenset({
            P.OWN_SPAN_KIND, P.OWN_SESSION_STATUS, P.OWN_PHASE_NAME, P.OWN_PHASE_ID,
            P.OWN_MEMORY_OPERATION, P.OWN_CONTEXT_USED, P.OWN_CONTEXT_AVAILABLE, P.OWN_RETRY_ATTEMPT,
            P.OWN_ESCALATED, P.HTTP_RESEND_COUNT,
        })
        self.open: OrderedDict[str, Session] = OrderedDict()  # least recently active first
        self.ended: OrderedDict[str, Session] = OrderedDict()  # oldest end first
        self._max_calls = config.max_tool_calls_per_session
        self._max_ended = config.max_ended_sessions
        self._max_pending = max(MIN_OPEN_STATE, PENDING_PER_CALL * self._max_calls)
        self._max_parents = max(MIN_OPEN_STATE, PARENTS_PER_CALL * self._max_calls)
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
        self._m_model_switches = f["agent_session_model_switches_total"]
        self._m_retries = f["agent_tool_retries_total"]
        self._m_checkpoints = f["agent_checkpoints_total"]
        self._m_resets = f["agent_context_resets_total"]
        self._m_memory = f["agent_memory_operations_total"]
        self._m_utilization = f["agent_context_utilization_ratio"]
        self._m_in_flight = f["agent_tool_calls_in_flight"]
        self._m_evicted = f["agentprom_sessions_evicted_total"]
        self._m_state_dropped = f["agentprom_session_state_dropped_total"]

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

    def _add_call(self, s: Session, call: Call, phase: Phase | None, final: bool) -> None:
        count_call(s, call, self._max_calls)
        component = "tool" if call.kind == TOOL_CALL else "llm"
        if component == "llm" and call.name:
            if s.last_model is not None and call.name != s.last_model:
                s.model_switches += 1
                self._m_model_switches.inc((call.agent,))
            s.last_model = call.name
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
        if final or s.status != ACTIVE:  # ``_attribute``, inline: once per call on the span path
            if phase is not None:
                count_in_phase(phase, call)
            if self.sink is not None:
                self.sink(R.call_record(call, s.session_id))
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

    def _write(self, build: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        """Log a record; it is only built when there is a log to write it to."""
        if self.sink is not None:
            self.sink(build(*args, **kwargs))


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
