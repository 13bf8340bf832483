"""The JSONL invocation log's record format: model objects to records and back.

One JSON object per line, snake_case keys; the format is a documented
interface (docs/sessions.md, "JSONL invocation log"). Every record has
``invocation_id``, ``kind`` (``tool_call``, ``llm_call``, ``phase``,
``session``), ``agent``, ``phase``, ``session_id``, ``duration_ms``,
``success``, ``timestamp`` (ISO 8601 start); calls add ``attempt``,
``error_class``, ``model`` and, for LLM calls, ``tokens`` (input + output),
``input_tokens``, ``output_tokens``, ``cached_tokens`` and ``cost``. Further
keys carry what the session API needs after a restart. Readers ignore keys
they do not know and treat missing optional keys as absent.

Two kinds carry no call: ``event`` records the runtime events that make no
other record when they happen (``session_started``, ``phase_started``,
``tool_started``, checkpoints, context resets, memory operations: the Redis
store streams them live), and ``agent_invocation`` a counted agent span (an
invocation, for the stores' ``agent_events``). Restoring and reports skip both.
"""

from __future__ import annotations

import math
from typing import Any

from agentprom.sessions.model import (
    END_STATUSES,
    LLM_CALL,
    PHASE,
    SESSION,
    TOOL_CALL,
    Call,
    Phase,
    Session,
    new_id,
)
from agentprom.sessions.timestamps import iso, parse_iso

EVENT = "event"
AGENT_INVOCATION = "agent_invocation"
KINDS = (TOOL_CALL, LLM_CALL, PHASE, SESSION, EVENT, AGENT_INVOCATION)

#: session counters written as-is and read back as ints
SESSION_COUNTS = (
    "tool_calls", "tool_errors", "llm_calls", "llm_errors", "recoveries", "retries", "escalations",
    "checkpoints", "context_resets", "execution_resets", "memory_reads", "memory_writes",
    "utilization_observations", "utilization_within", "input_tokens", "output_tokens", "cached_tokens",
)


class RecordError(ValueError):
    """A log line that is not a valid record."""


def _ms(value: float) -> float:
    return round(value, 3)


def call_record(call: Call, session_id: str) -> dict[str, Any]:
    phase = call.phase
    record: dict[str, Any] = {
        "invocation_id": call.invocation_id or call.span_id.hex(),
        "kind": call.kind,
        "agent": call.agent,
        "phase": phase.name if phase else None,
        "phase_id": phase.phase_id if phase else None,
        "session_id": session_id,
        "duration_ms": _ms(call.duration_ms),
        "success": call.success,
        "attempt": call.attempt,
        "error_class": call.error_class,
        "model": call.model,
        "timestamp": iso(call.start),
    }
    if call.kind == TOOL_CALL:
        record["tool"] = call.name
        if call.call_id:
            record["call_id"] = call.call_id
        if call.sizes:
            record["input_size_bytes"], record["output_size_bytes"] = call.sizes
    else:
        record.update(
            provider=call.provider,
            tokens=call.tokens,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_tokens=call.cached_tokens,
            cost=call.cost,
        )
    if call.retry_source:
        record["retry_source"] = call.retry_source
    if call.recovered:
        record["recovered"] = True
    if call.escalated:
        record["escalated"] = True
    if call.trace_id:
        record["trace_id"] = call.trace_id.hex()
        record["span_id"] = call.span_id.hex()
    return record


def phase_record(phase: Phase, session: Session) -> dict[str, Any]:
    record = {
        "invocation_id": phase.invocation_id,
        "kind": PHASE,
        "agent": session.agent,
        "phase": phase.name,
        "phase_id": phase.phase_id,
        "session_id": session.session_id,
        "duration_ms": _ms(phase.duration_s * 1000.0),
        "success": phase.status == "completed",
        "status": phase.status,
        "timestamp": iso(phase.start),
        "end_timestamp": iso(phase.end),
        "tool_calls": phase.tool_calls,
        "llm_calls": phase.llm_calls,
        "errors": phase.errors,
        "recoveries": phase.recoveries,
    }
    if phase.span_id:
        record["span_id"] = phase.span_id.hex()  # a phase span's: the phase came from spans
    return record


def event_record(event_type: str, session: Session, timestamp: float, **fields: Any) -> dict[str, Any]:
    """A runtime event that makes no other record (its fields: ``phase_id``, ``phase_name``,
    ``tool``, ``call_id``, ``model``, ``provider`` when it has them)."""
    record = {
        "invocation_id": new_id(),
        "kind": EVENT,
        "event_type": event_type,
        "agent": session.agent,
        "phase": fields.pop("phase_name", None),
        "session_id": session.session_id,
        "duration_ms": 0.0,
        "success": True,
        "timestamp": iso(timestamp),
    }
    record.update((key, value) for key, value in fields.items() if value is not None)
    return record


def invocation_record(session_id: str, agent: str, start: float, end: float, success: bool,
                      error_class: str | None, trace_id: bytes, span_id: bytes) -> dict[str, Any]:
    """A counted agent span: one invocation of ``agent``."""
    return {
        "invocation_id": span_id.hex(),
        "kind": AGENT_INVOCATION,
        "agent": agent,
        "phase": None,
        "session_id": session_id,
        "duration_ms": _ms(max(0.0, end - start) * 1000.0),
        "success": success,
        "error_class": error_class,
        "timestamp": iso(start),
        "end_timestamp": iso(end),
        "trace_id": trace_id.hex(),
        "span_id": span_id.hex(),
    }


def session_record(s: Session) -> dict[str, Any]:
    record: dict[str, Any] = {
        "invocation_id": s.session_id,
        "kind": SESSION,
        "agent": s.agent,
        "phase": None,
        "session_id": s.session_id,
        "duration_ms": _ms(s.duration_s * 1000.0),
        "success": s.status == "completed",
        "status": s.status,
        "model": s.model,
        "provider": s.provider,
        "timestamp": iso(s.start),
        "end_timestamp": iso(s.end),
        "tokens": s.input_tokens + s.output_tokens,
        "cost": round(s.cost, 10),
        "phases": s.phase_count,
        "phases_completed": s.phases_completed,
        "tool_latency_ms": _ms(s.tool_latency_ms),
        "context_tokens_used": s.context_tokens_used,
        "context_tokens_available": s.context_tokens_available,
        "peak_context_utilization": s.peak_context_utilization,
        "continuity_score": s.continuity_score,
        "continuity": (
            {name: round(value, 4) for name, value in s.continuity_components.items()}
            if s.continuity_components is not None else None
        ),
    }
    for name in SESSION_COUNTS:
        record[name] = getattr(s, name)
    return record


# -- reading ----------------------------------------------------------------------


def parse_record(document: Any) -> dict[str, Any]:
    """Check the keys every reader relies on; return the record or raise RecordError."""
    if not isinstance(document, dict):
        raise RecordError("not a JSON object")
    kind = document.get("kind")
    if kind not in KINDS:
        raise RecordError(f"kind must be one of {', '.join(KINDS)}")
    for key in ("invocation_id", "session_id"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise RecordError(f"{key} must be a non-empty string")
    return document


def text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) and value else None


def number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:  # an int too large for a float (JSON allows any length) raises OverflowError
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def count(record: dict[str, Any], key: str) -> int | None:
    value = number(record, key)
    return int(value) if value is not None and value >= 0 else None


def time_of(record: dict[str, Any], key: str = "timestamp") -> float | None:
    value = record.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def call_from_record(record: dict[str, Any]) -> Call:
    kind = record["kind"]
    model = text(record, "model")
    call = Call(
        kind,
        (text(record, "tool") or "unknown") if kind == TOOL_CALL else (model or "unknown"),
        text(record, "agent") or "unknown",
        time_of(record) or 0.0,
        max(0.0, number(record, "duration_ms") or 0.0),
        record.get("success") is not False,
        text(record, "error_class"),
        _hex(record.get("trace_id")),
        _hex(record.get("span_id")),
        invocation_id=record["invocation_id"],
    )
    call.attempt = max(1, count(record, "attempt") or 1)
    call.retry_source = text(record, "retry_source")
    call.escalated = record.get("escalated") is True
    call.recovered = record.get("recovered") is True
    call.model = model
    call.provider = text(record, "provider")
    call.input_tokens = count(record, "input_tokens")
    call.output_tokens = count(record, "output_tokens")
    call.cached_tokens = count(record, "cached_tokens")
    call.cost = number(record, "cost")
    call.call_id = text(record, "call_id") or ""
    if "input_size_bytes" in record or "output_size_bytes" in record:
        call.sizes = (count(record, "input_size_bytes"), count(record, "output_size_bytes"))
    return call


def end_status(record: dict[str, Any]) -> str:
    status = record.get("status")
    if status in END_STATUSES:
        return status
    return "completed" if record.get("success") is not False else "failed"


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""
