"""Rebuild session state from the JSONL invocation log at start (journal.py replays it).

Nothing is counted in the metrics and nothing is written: sessions with a
``session`` record are ended; the others are open again, with the counters
their call and phase records carry and the failures still waiting for their
recovery, and time out as usual.
"""

from __future__ import annotations

from typing import Any

from agentprom.sessions import records as R
from agentprom.sessions.book import SessionBook, count_call, count_in_phase
from agentprom.sessions.model import ABANDONED, COMPLETED, LLM_CALL, PHASE, SESSION, TOOL_CALL, Session


class Restoring(SessionBook):
    """Restoring from the JSONL log (at start, before any span or event)."""

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
        # ``event`` and ``agent_invocation`` records name the session (opened above) and change nothing

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
