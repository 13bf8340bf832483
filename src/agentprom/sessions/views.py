"""The runtime API's JSON views of sessions, phases and calls: our names and the runtime specification's.

Pure functions of the session model (sessions/model.py); sessions/api.py serves them, for sessions this
process holds and for sessions rebuilt from the PostgreSQL store (stores/fleet.py) alike.
"""

from __future__ import annotations

from typing import Any

from agentprom.sessions.model import COMPLETED, END_STATUSES, Call, Phase, Session
from agentprom.sessions.timestamps import iso
from agentprom.sessions.tracker import SessionTracker


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def rounded(components: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in components.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def session_summary(s: Session) -> dict[str, Any]:
    """A session in a list: our names, then the runtime specification's Runtime Session record
    (``agent_id``, ``model_name``, ``start_timestamp`` ...) and its counts under their names."""
    start, end = iso(s.start), iso(s.end)
    return {
        "session_id": s.session_id,
        "agent": s.agent,
        "status": s.status,
        "start": start,
        "end": end,
        "duration_seconds": _round(s.duration_s),
        "tool_calls": s.tool_calls,
        "phases": s.phase_count,
        "errors": s.errors,
        "continuity_score": s.continuity_score,
        # the specification's names
        "agent_id": s.agent,
        "model_name": s.model,
        "provider": s.provider,
        "start_timestamp": start,
        "end_timestamp": end,
        "completion_status": s.status,
        "duration_ms": _ms(s.duration_s),
        "total_tool_calls": s.tool_calls,
        "total_phases": s.phase_count,
        "total_errors": s.errors,
        "total_recoveries": s.recoveries,
    }


def completion_success_rate(sessions: list[Session]) -> float | None:
    """Of the sessions that ended, the share that completed (None when none ended)."""
    ended = [s for s in sessions if s.status in END_STATUSES]
    if not ended:
        return None
    return round(sum(s.status == COMPLETED for s in ended) / len(ended), 4)


def _utilization_percent(s: Session) -> float | None:
    if s.context_tokens_used is None or not s.context_tokens_available:
        return None
    return round(100.0 * s.context_tokens_used / s.context_tokens_available, 2)


def session_detail(s: Session, tracker: SessionTracker) -> dict[str, Any]:
    score, components = tracker.score(s)
    return {
        **session_summary(s),
        "model": s.model,
        "provider": s.provider,
        "last_seen": iso(s.last_seen),
        "reported_status": s.reported_status,
        "restored": s.restored,
        "tool_errors": s.tool_errors,
        "llm_calls": s.llm_calls,
        "llm_errors": s.llm_errors,
        "recoveries": s.recoveries,
        "retries": s.retries,
        "escalations": s.escalations,
        "phases_completed": s.phases_completed,
        "checkpoints": s.checkpoints,
        "context_resets": s.context_resets,
        "execution_resets": s.execution_resets,
        "memory_reads": s.memory_reads,
        "memory_writes": s.memory_writes,
        "context_tokens_used": s.context_tokens_used,
        "context_tokens_available": s.context_tokens_available,
        "context_utilization_percent": _utilization_percent(s),
        "checkpoint_count": s.checkpoints,
        "peak_context_utilization": _round(s.peak_context_utilization, 4),
        "tokens": {
            "total": s.input_tokens + s.output_tokens,
            "input": s.input_tokens,
            "output": s.output_tokens,
            "cached": s.cached_tokens,
        },
        "cost": round(s.cost, 10),
        "continuity_score": score,
        "continuity_final": s.ended,
        "continuity": rounded(components),
        "tool_calls_stored": len(s.calls),
        "tool_calls_dropped": s.calls_dropped,
        "phases_stored": len(s.phase_list),
        "phases_dropped": s.phases_dropped,
        "state_dropped": dict(s.state_dropped or {}),
    }


def session_metrics(s: Session, tracker: SessionTracker) -> dict[str, Any]:
    score, components = tracker.score(s)
    minutes = s.duration_s / 60.0
    mean_latency_ms = _round(s.tool_latency_ms / s.tool_calls) if s.tool_calls else None
    return {
        "session_id": s.session_id,
        "agent": s.agent,
        "status": s.status,
        "completion_status": s.status,
        "duration_seconds": _round(s.duration_s),
        "tool_calls": s.tool_calls,
        "tool_errors": s.tool_errors,
        "llm_calls": s.llm_calls,
        "errors": s.errors,
        "recoveries": s.recoveries,
        "phases": s.phase_count,
        "phases_completed": s.phases_completed,
        "checkpoints": s.checkpoints,
        "context_resets": s.context_resets,
        "tool_calls_per_minute": _round(s.tool_calls / minutes) if minutes > 0 else None,
        "mean_tool_latency_ms": mean_latency_ms,
        "recovery_rate": _round(min(1.0, s.recoveries / s.errors), 4) if s.errors else None,
        # the specification's names (mean_tool_latency in milliseconds)
        "duration_ms": _ms(s.duration_s),
        "total_tool_calls": s.tool_calls,
        "total_phases": s.phase_count,
        "total_errors": s.errors,
        "total_recoveries": s.recoveries,
        "model_switches": s.model_switches,
        "mean_tool_latency": mean_latency_ms,
        "completion_success_rate": completion_success_rate([s]),
        "continuity_score": score,
        "continuity_final": s.ended,
        "continuity": rounded(components),
    }


def phase_json(p: Phase, session_id: str) -> dict[str, Any]:
    start, end = iso(p.start), iso(p.end)
    return {
        "phase_id": p.phase_id,
        "session_id": session_id,
        "phase_name": p.name,
        "status": p.status,
        "start": start,
        "end": end,
        "start_time": start,
        "end_time": end,
        "duration_seconds": _round(p.duration_s) if p.ended else None,
        "duration_ms": _ms(p.duration_s) if p.ended else None,
        "tool_calls": p.tool_calls,
        "llm_calls": p.llm_calls,
        "errors": p.errors,
        "recoveries": p.recoveries,
    }


def call_json(c: Call, session_id: str) -> dict[str, Any]:
    ours = c.invocation_id or c.span_id.hex()  # a span-fed call's id is its span id
    start = iso(c.start)
    return {
        # the runtime's id of the call when its event gave one, else ours
        "tool_call_id": c.call_id or ours,
        "session_id": session_id,
        "start_time": start,
        "end_time": iso(c.end),
        "retry_count": c.attempt - 1,
        "input_size_bytes": c.sizes[0] if c.sizes else None,
        "output_size_bytes": c.sizes[1] if c.sizes else None,
        "invocation_id": ours,
        "tool_name": c.name,
        "agent": c.agent,
        "phase_id": c.phase.phase_id if c.phase else None,
        "phase_name": c.phase.name if c.phase else None,
        "start": start,
        "duration_ms": _round(c.duration_ms),
        "success": c.success,
        "error_type": c.error_class,
        "attempt": c.attempt,
        "recovered": c.recovered,
        "trace_id": c.trace_id.hex() or None,
        "span_id": c.span_id.hex() or None,
    }


def session_phases(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "phases": [phase_json(p, s.session_id) for p in s.phase_list],
        "phases_dropped": s.phases_dropped,
    }


def session_tool_calls(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "tool_calls": [call_json(c, s.session_id) for c in s.calls],
        "tool_calls_dropped": s.calls_dropped,
    }
