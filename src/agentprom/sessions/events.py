"""Validate runtime API events (``POST /runtime/event``) into ``RuntimeEvent`` records.

Each event is a JSON object with an ``event_type`` and a ``session_id``; the
other fields depend on the type (``FIELDS_BY_TYPE``). Validation never stops
at the first problem: every bad field of every event is reported with the
event's index in the request, and the valid events are returned so they can
still be applied. Unknown fields, and fields that do not belong to the event
type, are errors: a typo such as ``sucess`` must not be silently ignored. The
runtime specification's names (``agent_id``, ``retry_count`` ...) are read as
aliases (event_names.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from agentprom.bounds import AmountLimits
from agentprom.sessions.event_names import canonical
from agentprom.sessions.timestamps import parse_iso
from agentprom.text import bounded_text

MAX_TEXT = 256
#: an unknown field's name is echoed in its error up to this length (values are never echoed)
MAX_FIELD_NAME = 64
#: Bounds that keep every value representable downstream: counts stay exact as float64 in the
#: series store, amounts cannot sum to infinity (the JSONL log refuses non-finite numbers), and
#: times stay within what ISO 8601 output and ``time.gmtime`` can express.
MAX_COUNT = 2**53
MAX_AMOUNT = 1e12  # milliseconds (about 31 years) or US dollars
MAX_EPOCH_SECONDS = 253402300799.0  # 9999-12-31T23:59:59Z

SESSION_STARTED = "session_started"
SESSION_COMPLETED = "session_completed"
PHASE_STARTED = "phase_started"
PHASE_COMPLETED = "phase_completed"
TOOL_STARTED = "tool_started"
TOOL_COMPLETED = "tool_completed"
TOOL_FAILED = "tool_failed"
LLM_CALL_EVENT = "llm_call"
CHECKPOINT_CREATED = "checkpoint_created"
CONTEXT_RESET = "context_reset"
MEMORY_READ = "memory_read"
MEMORY_WRITE = "memory_write"


@dataclass(slots=True)
class RuntimeEvent:
    event_type: str
    session_id: str
    timestamp: float | None = None
    agent: str | None = None
    model: str | None = None
    provider: str | None = None
    phase_id: str | None = None
    phase_name: str | None = None
    tool_name: str | None = None
    call_id: str | None = None
    duration_ms: float | None = None
    success: bool | None = None
    status: str | None = None
    error_type: str | None = None
    attempt: int | None = None
    escalated: bool | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost: float | None = None
    context_tokens_used: int | None = None
    context_tokens_available: int | None = None
    input_size_bytes: int | None = None
    output_size_bytes: int | None = None

    @property
    def phase_key(self) -> str | None:
        """The phase's identity: its id, else its name."""
        return self.phase_id or self.phase_name


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


# -- field checkers: value -> converted value, or ValueError(message) --------------


def _text(value: Any) -> str:
    """A bounded name or id, made valid UTF-8 (JSON's lone surrogates become U+FFFD: text.py)."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    return value if value.isascii() else bounded_text(value, 0)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _amount(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_AMOUNT:
        raise ValueError("must be a number from 0 to 1e12")  # NaN fails the comparison too
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError("must be an integer from 0 to 2^53")
    return value


def _attempt(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ValueError("must be an integer from 1 (first try) to 2^53")
    return value


def _timestamp(value: Any) -> float:
    seconds = None
    if isinstance(value, str):
        try:
            seconds = parse_iso(value)
        except ValueError:
            pass
    elif not isinstance(value, bool) and isinstance(value, (int, float)):
        seconds = float(value) if math.isfinite(value) else None
    if seconds is None or not 0 <= seconds <= MAX_EPOCH_SECONDS:
        raise ValueError("must be an ISO 8601 date-time such as 2026-02-20T02:15:10Z (or epoch seconds), "
                         "from 1970 to 9999")
    return seconds


def _status(value: Any) -> str:
    if value not in ("completed", "failed"):
        raise ValueError("must be completed or failed")
    return value


CHECKS: dict[str, Callable[[Any], Any]] = {
    "session_id": _text,
    "timestamp": _timestamp,
    "agent": _text,
    "model": _text,
    "provider": _text,
    "phase_id": _text,
    "phase_name": _text,
    "tool_name": _text,
    "call_id": _text,
    "duration_ms": _amount,
    "success": _bool,
    "status": _status,
    "error_type": _text,
    "attempt": _attempt,
    "escalated": _bool,
    "input_tokens": _count,
    "output_tokens": _count,
    "cached_tokens": _count,
    "cost": _amount,
    "context_tokens_used": _count,
    "context_tokens_available": _count,
    "input_size_bytes": _count,
    "output_size_bytes": _count,
}
assert set(CHECKS) | {"event_type"} == {f.name for f in fields(RuntimeEvent)}


def bounded_checks(limits: AmountLimits) -> dict[str, Callable[[Any], Any]]:
    """``CHECKS`` with the per-span bounds of spans (bounds.py) on the amounts an ``llm_call`` adds to
    counters: an event beyond one is refused like a span beyond one, naming the key, not the value."""

    def tokens(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limits.max_tokens:
            raise ValueError(f"must be an integer from 0 to {limits.max_tokens} (limits.max_tokens_per_span)")
        return value

    def cost(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limits.max_cost_usd:
            raise ValueError(f"must be a number from 0 to {limits.max_cost_usd:.15g} (limits.max_cost_usd_per_span)")
        return float(value)

    return {**CHECKS, "input_tokens": tokens, "output_tokens": tokens, "cached_tokens": tokens, "cost": cost}

_COMMON = ("event_type", "session_id", "timestamp", "agent", "context_tokens_used", "context_tokens_available")
_PHASE = ("phase_id", "phase_name")
_CALL = (*_PHASE, "duration_ms", "success", "error_type", "attempt", "escalated")

#: event type -> the fields it may carry
FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    SESSION_STARTED: frozenset((*_COMMON, "model", "provider")),
    SESSION_COMPLETED: frozenset((*_COMMON, "success", "status")),
    PHASE_STARTED: frozenset((*_COMMON, *_PHASE)),
    PHASE_COMPLETED: frozenset((*_COMMON, *_PHASE, "success")),
    TOOL_STARTED: frozenset((*_COMMON, *_PHASE, "tool_name", "call_id")),
    TOOL_COMPLETED: frozenset((*_COMMON, *_CALL, "tool_name", "call_id", "input_size_bytes", "output_size_bytes")),
    TOOL_FAILED: frozenset((*_COMMON, *_CALL, "tool_name", "call_id", "input_size_bytes", "output_size_bytes")),
    LLM_CALL_EVENT: frozenset(
        (*_COMMON, *_CALL, "model", "provider", "input_tokens", "output_tokens", "cached_tokens", "cost")
    ),
    CHECKPOINT_CREATED: frozenset((*_COMMON, *_PHASE)),
    CONTEXT_RESET: frozenset((*_COMMON, *_PHASE)),
    MEMORY_READ: frozenset((*_COMMON, *_PHASE)),
    MEMORY_WRITE: frozenset((*_COMMON, *_PHASE)),
}
EVENT_TYPES = tuple(FIELDS_BY_TYPE)


def parse_event(document: Any, index: int | None, errors: list[FieldError],
                checks: dict[str, Callable[[Any], Any]] = CHECKS) -> RuntimeEvent | None:
    """One event; appends its problems to ``errors`` and returns None when there are any.
    ``checks`` is ``CHECKS`` or ``bounded_checks(...)``."""
    if not isinstance(document, dict):
        errors.append(FieldError(index, "", "each event must be a JSON object"))
        return None
    before = len(errors)
    spelled: list[tuple[str, str]] = []
    document = canonical(document, spelled, _timestamp)  # the specification's names (event_names.py)
    errors += [FieldError(index, name, message) for name, message in spelled]
    event_type = document.get("event_type")
    allowed = FIELDS_BY_TYPE.get(event_type) if isinstance(event_type, str) else None
    if allowed is None:
        errors.append(FieldError(index, "event_type", "is required and must be one of " + ", ".join(EVENT_TYPES)))
    values: dict[str, Any] = {}
    for key, value in document.items():
        check = checks.get(key)
        if key == "event_type":
            continue
        if check is None:
            errors.append(FieldError(index, str(key)[:MAX_FIELD_NAME], "unknown field"))
            continue
        if allowed is not None and key not in allowed:
            errors.append(FieldError(index, key, f"not a field of {event_type} events"))
            continue
        if value is None:
            continue  # an explicit null is the same as leaving the field out
        try:
            values[key] = check(value)
        except ValueError as exc:
            errors.append(FieldError(index, key, str(exc)))
    if "session_id" not in values and "session_id" not in {e.field for e in errors[before:]}:
        errors.append(FieldError(index, "session_id", "is required"))
    if allowed is not None:
        if event_type.startswith("tool_") and "tool_name" not in values and not _reported(errors, before, "tool_name"):
            errors.append(FieldError(index, "tool_name", f"is required for {event_type}"))
        if event_type.startswith("phase_") and not (values.keys() & {"phase_id", "phase_name"}) \
                and not _reported(errors, before, "phase_id", "phase_name"):
            errors.append(FieldError(index, "phase_id", f"phase_id or phase_name is required for {event_type}"))
        if event_type == TOOL_FAILED and values.get("success") is True:
            errors.append(FieldError(index, "success", "a tool_failed event cannot have success true"))
        used, available = values.get("context_tokens_used"), values.get("context_tokens_available")
        if (used is None) != (available is None):
            errors.append(FieldError(
                index, "context_tokens_available" if available is None else "context_tokens_used",
                "context_tokens_used and context_tokens_available go together",
            ))
    if len(errors) > before:
        return None
    return RuntimeEvent(event_type=event_type, **values)


def _reported(errors: list[FieldError], since: int, *names: str) -> bool:
    return any(e.field in names for e in errors[since:])


def parse_events(document: Any, max_events: int, checks: dict[str, Callable[[Any], Any]] = CHECKS
                 ) -> tuple[list[RuntimeEvent], list[FieldError], int]:
    """A single event object or an array of them -> (valid events, errors, events in the request)."""
    errors: list[FieldError] = []
    if isinstance(document, dict):
        event = parse_event(document, 0, errors, checks)
        return ([event] if event else []), errors, 1
    if not isinstance(document, list):
        errors.append(FieldError(None, "", "the body must be one event object or a JSON array of events"))
        return [], errors, 0
    if len(document) > max_events:
        errors.append(FieldError(None, "", f"at most {max_events} events per request (got {len(document)})"))
        return [], errors, len(document)
    events = []
    for index, item in enumerate(document):
        event = parse_event(item, index, errors, checks)
        if event is not None:
            events.append(event)
    return events, errors, len(document)
