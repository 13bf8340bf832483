"""Journal records under the runtime specification's names: table rows and stream events.

One mapping for both stores: ``rows`` gives the rows a record makes in the
PostgreSQL tables (``runtime_sessions``, ``runtime_metrics``,
``runtime_phases``, ``tool_calls``, ``llm_calls``), ``runtime_events`` and
``agent_events`` the entries it makes in the Redis streams. Every row and
event carries the id of the record it came from, so writing a record twice
(after a crash, an outage) changes nothing in PostgreSQL and gives consumers of
the streams an ``event_id`` to drop repeats by.

Field names follow the runtime specification: a session has ``session_id,
agent_id, model_name, provider, start_timestamp, end_timestamp, status``; its
metrics ``duration_ms, total_tool_calls, total_phases, total_errors,
total_recoveries, completion_status, tool_calls_per_minute, mean_tool_latency,
recovery_rate, completion_success_rate`` and the context and memory fields; a
phase ``phase_id, session_id, phase_name, start_time, end_time, duration_ms,
tool_calls, errors, recoveries``; a tool call ``tool_call_id, session_id,
phase_id, tool_name, start_time, end_time, duration_ms, success, error_type,
retry_count, input_size_bytes, output_size_bytes``. Derived values are
computed as the runtime API computes them (sessions/api.py).
"""

from __future__ import annotations

from typing import Any

from agentprom.sessions import records as R
from agentprom.sessions.model import COMPLETED, END_STATUSES, LLM_CALL, PHASE, SESSION, TOOL_CALL
from agentprom.sessions.timestamps import iso

EVENT, AGENT_INVOCATION = R.EVENT, R.AGENT_INVOCATION


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def end_time(record: dict[str, Any]) -> float | None:
    """A record's end: its ``end_timestamp``, else its start plus its duration."""
    end = R.time_of(record, "end_timestamp")
    if end is not None:
        return end
    start = R.time_of(record)
    return None if start is None else start + (R.number(record, "duration_ms") or 0.0) / 1000.0


def _retry_count(record: dict[str, Any]) -> int:
    return max(1, R.count(record, "attempt") or 1) - 1


def _call(record: dict[str, Any]) -> dict[str, Any]:
    """What a tool call and an LLM call both have."""
    return {
        "session_id": record["session_id"],
        "phase_id": R.text(record, "phase_id") or R.text(record, "phase"),
        "agent_id": R.text(record, "agent"),
        "start_time": R.time_of(record),
        "end_time": end_time(record),
        "duration_ms": R.number(record, "duration_ms"),
        "success": record.get("success") is not False,
        "error_type": R.text(record, "error_class"),
        "retry_count": _retry_count(record),
        "trace_id": R.text(record, "trace_id"),
        "span_id": R.text(record, "span_id"),
    }


def tool_call(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "tool_call_id": R.text(record, "call_id") or record["invocation_id"],
        "record_id": record["invocation_id"],
        "tool_name": R.text(record, "tool") or "unknown",
        **_call(record),
        "input_size_bytes": R.count(record, "input_size_bytes"),
        "output_size_bytes": R.count(record, "output_size_bytes"),
    }


def llm_call(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "llm_call_id": record["invocation_id"],
        "model_name": R.text(record, "model"),
        "provider": R.text(record, "provider"),
        **_call(record),
        "input_tokens": R.count(record, "input_tokens"),
        "output_tokens": R.count(record, "output_tokens"),
        "cached_tokens": R.count(record, "cached_tokens"),
        "total_tokens": R.count(record, "tokens"),
        "cost_usd": R.number(record, "cost"),
    }


def phase(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_id": record["invocation_id"],
        "phase_id": R.text(record, "phase_id") or R.text(record, "phase") or record["invocation_id"],
        "session_id": record["session_id"],
        "phase_name": R.text(record, "phase"),
        "start_time": R.time_of(record),
        "end_time": R.time_of(record, "end_timestamp"),
        "duration_ms": R.number(record, "duration_ms"),
        "tool_calls": R.count(record, "tool_calls") or 0,
        "llm_calls": R.count(record, "llm_calls") or 0,
        "errors": R.count(record, "errors") or 0,
        "recoveries": R.count(record, "recoveries") or 0,
        "status": R.end_status(record),
    }


def session(record: dict[str, Any]) -> dict[str, Any]:
    """The ``runtime_sessions`` row of an ended session (its ``session`` record)."""
    return {
        "session_id": record["session_id"],
        "agent_id": R.text(record, "agent"),
        "model_name": R.text(record, "model"),
        "provider": R.text(record, "provider"),
        "start_timestamp": R.time_of(record),
        "end_timestamp": R.time_of(record, "end_timestamp"),
        "status": R.end_status(record),
    }


def session_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The ``runtime_metrics`` row of an ended session."""
    duration_ms = R.number(record, "duration_ms") or 0.0
    tool_calls = R.count(record, "tool_calls") or 0
    errors = (R.count(record, "tool_errors") or 0) + (R.count(record, "llm_errors") or 0)
    recoveries = R.count(record, "recoveries") or 0
    latency = R.number(record, "tool_latency_ms") or 0.0
    used, available = R.count(record, "context_tokens_used"), R.count(record, "context_tokens_available")
    status = R.end_status(record)
    return {
        "session_id": record["session_id"],
        "duration_ms": duration_ms,
        "total_tool_calls": tool_calls,
        "total_phases": R.count(record, "phases") or 0,
        "total_errors": errors,
        "total_recoveries": recoveries,
        "completion_status": status,
        "tool_calls_per_minute": _round(tool_calls / (duration_ms / 60000.0)) if duration_ms > 0 else None,
        "mean_tool_latency": _round(latency / tool_calls) if tool_calls else None,
        "recovery_rate": _round(min(1.0, recoveries / errors), 4) if errors else None,
        "completion_success_rate": (1.0 if status == COMPLETED else 0.0) if status in END_STATUSES else None,
        "context_tokens_used": used,
        "context_tokens_available": available,
        "context_utilization_percent": round(100.0 * used / available, 2) if used is not None and available else None,
        "memory_reads": R.count(record, "memory_reads") or 0,
        "memory_writes": R.count(record, "memory_writes") or 0,
        "checkpoint_count": R.count(record, "checkpoints") or 0,
        "context_resets": R.count(record, "context_resets") or 0,
        "total_llm_calls": R.count(record, "llm_calls") or 0,
        "input_tokens": R.count(record, "input_tokens") or 0,
        "output_tokens": R.count(record, "output_tokens") or 0,
        "cached_tokens": R.count(record, "cached_tokens") or 0,
        "cost_usd": R.number(record, "cost") or 0.0,
        "continuity_score": R.number(record, "continuity_score"),
    }


# -- stream events -------------------------------------------------------------------


def _event(event_id: str, event_type: str, record: dict[str, Any], timestamp: float | None,
           fields: dict[str, Any]) -> dict[str, Any]:
    event = {"event_id": event_id, "event_type": event_type, "session_id": record["session_id"],
             "timestamp": iso(timestamp), "agent_id": R.text(record, "agent")}
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def session_started_id(session_id: str) -> str:
    return f"{session_id}:session_started"


def session_started(record: dict[str, Any]) -> dict[str, Any]:
    """``session_started`` for the session a record belongs to (from the event-API's own record, or
    for a session that came from spans, on its first record)."""
    start = R.time_of(record)
    fields = {"model_name": R.text(record, "model"), "provider": R.text(record, "provider"),
              "start_timestamp": iso(start)}
    return _event(session_started_id(record["session_id"]), "session_started", record, start, fields)


def _iso_times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{key: iso(row[key]) for key in keys}}


def runtime_events(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The runtime events a record stands for, in the order they happened. A call or phase from
    spans arrives once it has ended: its start event is sent with its end event."""
    kind = record["kind"]
    rid = record["invocation_id"]
    if kind == EVENT:
        event_type = R.text(record, "event_type") or "unknown"
        if event_type == "session_started":
            return [session_started(record)]
        fields = {"phase_id": R.text(record, "phase_id"), "phase_name": R.text(record, "phase"),
                  "tool_name": R.text(record, "tool"), "tool_call_id": R.text(record, "call_id")}
        if event_type in ("tool_started", "phase_started"):
            fields["start_time"] = iso(R.time_of(record))
        return [_event(rid, event_type, record, R.time_of(record), fields)]
    if kind == TOOL_CALL:
        row = _iso_times(tool_call(record), "start_time", "end_time")
        row.pop("record_id")
        events = []
        if R.text(record, "trace_id"):  # from a span: it started when its span did
            events.append(_event(f"{rid}:tool_started", "tool_started", record, R.time_of(record), {
                "tool_call_id": row["tool_call_id"], "tool_name": row["tool_name"], "phase_id": row["phase_id"],
                "start_time": row["start_time"]}))
        ended = "tool_completed" if row["success"] else "tool_failed"
        events.append(_event(f"{rid}:{ended}", ended, record, end_time(record), row))
        return events
    if kind == LLM_CALL:
        return [_event(f"{rid}:llm_call", "llm_call", record, end_time(record),
                       _iso_times(llm_call(record), "start_time", "end_time"))]
    if kind == PHASE:
        row = _iso_times(phase(record), "start_time", "end_time")
        row.pop("record_id")
        events = []
        if R.text(record, "span_id"):  # a phase span: its start is told with its end
            events.append(_event(f"{rid}:phase_started", "phase_started", record, R.time_of(record), {
                "phase_id": row["phase_id"], "phase_name": row["phase_name"], "start_time": row["start_time"]}))
        events.append(_event(f"{rid}:phase_completed", "phase_completed", record, R.time_of(record, "end_timestamp"),
                             row))
        return events
    if kind == SESSION:
        row = _iso_times(session(record), "start_timestamp", "end_timestamp")
        row.update(session_metrics(record))
        return [_event(f"{rid}:session_completed", "session_completed", record, R.time_of(record, "end_timestamp"),
                       row)]
    return []


def agent_events(record: dict[str, Any]) -> list[dict[str, Any]]:
    """``agent_events``: completed agent invocations and LLM calls."""
    kind = record["kind"]
    if kind == AGENT_INVOCATION:
        return [_event(f"{record['invocation_id']}:agent_invocation", "agent_invocation", record,
                       R.time_of(record, "end_timestamp"), {
                           "invocation_id": record["invocation_id"], "start_time": iso(R.time_of(record)),
                           "end_time": iso(end_time(record)), "duration_ms": R.number(record, "duration_ms"),
                           "success": record.get("success") is not False, "error_type": R.text(record, "error_class"),
                           "trace_id": R.text(record, "trace_id"), "span_id": R.text(record, "span_id")})]
    if kind == LLM_CALL:
        return [_event(f"{record['invocation_id']}:llm_call", "llm_call", record, end_time(record),
                       _iso_times(llm_call(record), "start_time", "end_time"))]
    return []
