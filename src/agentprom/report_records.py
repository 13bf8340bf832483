"""Map an invocation record of either shape to the snake_case fields ``agentprom report`` reads.

Two shapes (docs/sessions.md, "agentprom report"):

* snake_case: the sidecar's own records (sessions/records.py), told by ``kind`` or
  ``invocation_id``. They need a ``kind`` of ``tool_call``, ``llm_call``, ``phase`` or
  ``session`` and a non-empty ``invocation_id``; ``session_id`` is optional here (the sidecar's
  restart reader still requires it). They are read as they are.
* camelCase: invocation records other tools write (``invocationId, agent, phase, taskId,
  durationMs, tokens, inputTokens, outputTokens, cachedTokens, cost, exitCode, success,
  attempt, outputParsed, model, tier, timestamp, errorClass``; no session id), told by a
  non-empty ``invocationId``. They carry no ``kind``: each is one agent invocation running a
  model, counted as an LLM call. Keys are renamed by ``CAMEL_TO_SNAKE``; besides that:

  - success: ``success`` when it is a boolean; otherwise ``exitCode`` when it is an integer
    (0 = success, anything else = failure); otherwise absent, which counts as a success (as for
    snake_case records).
  - timestamp: an ISO 8601 string as is; a number is epoch seconds, or epoch milliseconds when
    it is 1e11 or more (1e11 s is the year 5138, 1e11 ms is 1973); a number outside
    1970..9999 is dropped.

A value of the wrong type (a string where a number belongs, say) does not skip the line: that
field is ignored, as the report ignores it in snake_case records. A line that is neither shape
raises ``RecordError``; ``read_records`` skips and counts it like a torn line.
"""

from __future__ import annotations

import math
from typing import Any

from agentprom.sessions.model import LLM_CALL
from agentprom.sessions.records import KINDS, RecordError
from agentprom.sessions.timestamps import iso

SNAKE_CASE = "snake_case"
CAMEL_CASE = "camelCase"

#: camelCase key -> the snake_case key the report reads (keys not listed are dropped)
CAMEL_TO_SNAKE = {
    "invocationId": "invocation_id", "sessionId": "session_id", "taskId": "task_id", "agent": "agent",
    "phase": "phase", "durationMs": "duration_ms", "tokens": "tokens", "inputTokens": "input_tokens",
    "outputTokens": "output_tokens", "cachedTokens": "cached_tokens", "cost": "cost", "attempt": "attempt",
    "model": "model", "tier": "tier", "errorClass": "error_class", "outputParsed": "output_parsed",
    "exitCode": "exit_code",
}
#: epoch numbers at or above this are milliseconds
EPOCH_MS_FROM = 1e11
#: 9999-12-31T23:59:59Z: later (or negative) epoch times are not plausible and are dropped
EPOCH_MAX_SECONDS = 253_402_300_799


def _nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def epoch_timestamp(value: Any) -> str | None:
    """An epoch number (seconds, or milliseconds from ``EPOCH_MS_FROM``) as ISO 8601, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    if not math.isfinite(seconds):
        return None
    if seconds >= EPOCH_MS_FROM:
        seconds /= 1000.0
    return iso(seconds) if 0 <= seconds <= EPOCH_MAX_SECONDS else None


def from_camel_case(document: dict[str, Any]) -> dict[str, Any]:
    record = {snake: document[camel] for camel, snake in CAMEL_TO_SNAKE.items() if camel in document}
    record["kind"] = LLM_CALL
    success = document.get("success")
    if isinstance(success, bool):
        record["success"] = success
    elif _integer(document.get("exitCode")):
        record["success"] = document["exitCode"] == 0
    stamp = document.get("timestamp")
    record["timestamp"] = stamp if isinstance(stamp, str) else epoch_timestamp(stamp)
    return record


def normalize(document: Any) -> tuple[str, dict[str, Any]]:
    """(shape, record with snake_case keys) of a decoded line; RecordError when it is neither shape."""
    if not isinstance(document, dict):
        raise RecordError("not a JSON object")
    if "kind" in document or "invocation_id" in document:
        if document.get("kind") not in KINDS:
            raise RecordError(f"kind must be one of {', '.join(KINDS)}")
        if not _nonempty_text(document.get("invocation_id")):
            raise RecordError("invocation_id must be a non-empty string")
        return SNAKE_CASE, document
    if "invocationId" in document:
        if not _nonempty_text(document["invocationId"]):
            raise RecordError("invocationId must be a non-empty string")
        return CAMEL_CASE, from_camel_case(document)
    raise RecordError("neither record shape (no kind/invocation_id, no invocationId)")


class ShapeReader:
    """``read_records``' ``parse`` for the report: normalizes each line and counts the shapes seen."""

    def __init__(self) -> None:
        self.shapes = {SNAKE_CASE: 0, CAMEL_CASE: 0}

    def __call__(self, document: Any) -> dict[str, Any]:
        shape, record = normalize(document)
        self.shapes[shape] += 1
        return record
