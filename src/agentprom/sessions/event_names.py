"""The runtime specification's event field names, read as aliases of the event API's own.

A runtime written against the specification's records sends ``agent_id``,
``model_name``, ``tool_call_id``, ``retry_count``, ``start_timestamp`` and the
like. ``canonical`` rewrites an event's fields to the names ``events.py``
checks, before any check runs, so both spellings get the same validation (an
error in a value names our field; an error in the spelling itself names the
field as it was sent):

* plain renames: ``agent_id`` -> ``agent``, ``model_name`` -> ``model``,
  ``tool_call_id`` -> ``call_id``, ``completion_status`` -> ``status``;
* ``retry_count`` (retries before this try: 0 for the first) -> ``attempt``
  (``retry_count + 1``);
* times: the event's own time is ``timestamp``. ``start_timestamp`` on
  ``session_started``, ``end_timestamp`` on ``session_completed``,
  ``start_time`` on the ``*_started`` events and ``end_time`` on the others
  are that time. A completed call may carry ``start_time`` as well: it is
  the call's start, and gives ``duration_ms`` (end minus start) when that is
  absent.

A field given under both names is an error, as is a spelling that does not
belong to the event type (``start_time`` on ``session_started``).
"""

from __future__ import annotations

from typing import Any

RENAMES = {
    "agent_id": "agent",
    "model_name": "model",
    "tool_call_id": "call_id",
    "completion_status": "status",
}
#: event type -> the specification's name of its own time
EVENT_TIME = {
    "session_started": "start_timestamp",
    "session_completed": "end_timestamp",
    "phase_started": "start_time",
    "tool_started": "start_time",
}
#: the completed calls: ``end_time`` is the event's time, ``start_time`` the call's start
CALL_EVENTS = frozenset({"tool_completed", "tool_failed", "llm_call"})
ALIASES = frozenset({*RENAMES, "retry_count", "start_timestamp", "end_timestamp", "start_time", "end_time"})


def canonical(document: dict[str, Any], errors: list[tuple[str, str]],
              parse_time: Any) -> dict[str, Any]:
    """``document`` with the specification's names rewritten to ours; problems are appended to
    ``errors`` as (field as sent, message). ``parse_time`` turns a time value into epoch seconds
    (raising ValueError), for ``start_time`` on a completed call."""
    if ALIASES.isdisjoint(document):
        return document  # the usual event: nothing to rewrite
    event_type = document.get("event_type")
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}  # our name -> the name it was sent under
    start = None
    for key, value in document.items():
        target = RENAMES.get(key)
        if key == "retry_count":
            target = "attempt"
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                value = value + 1
            elif value is not None:
                errors.append((key, "must be an integer from 0 (first try) to 2^53"))
                continue
        elif key in ("start_timestamp", "end_timestamp", "start_time", "end_time"):
            if event_type in CALL_EVENTS and key == "start_time":
                start = value
                continue
            own = EVENT_TIME.get(event_type, "end_time") if isinstance(event_type, str) else None
            if key != own:
                errors.append((key, f"not a field of {event_type} events" if own else "needs a valid event_type"))
                continue
            target = "timestamp"
        if target is None:
            target = key
        if target in out:
            errors.append((key, f"given twice, as {renamed.get(target, target)} and as {key}"))
            continue
        out[target] = value
        renamed[target] = key
    if start is not None and "duration_ms" not in out:
        try:
            began, ended = parse_time(start), parse_time(out["timestamp"])
        except KeyError:
            errors.append(("start_time", "needs end_time (the call's end) or duration_ms"))
        except ValueError:
            errors.append(("start_time", "start_time and end_time must be ISO 8601 date-times or epoch seconds"))
        else:
            if ended < began:
                errors.append(("start_time", "is after end_time"))
            else:
                out["duration_ms"] = (ended - began) * 1000.0
    return out
