"""Benchmark records: one JSON line per session, built from the sidecar's view of it; reading them back.

The fields (docs/bench.md, "Records"): ``session_id``, ``benchmark_name``,
``tool_calls``, ``duration_ms``, ``success``, ``recovery_count``,
``continuity_score`` (the issue's record), then ``status``,
``failure_reason`` and the other counters of the session API, and what the
scenario kind adds (``seed`` and ``expected`` for synthetic runs, ``exit_code``
and ``timed_out`` for commands). Counters are null when the sidecar had no
record of the session.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: record field -> the session API field it comes from (GET /runtime/session/{id}/metrics, else the detail)
FROM_METRICS = {
    "tool_calls": "tool_calls",
    "recovery_count": "recoveries",
    "continuity_score": "continuity_score",
    "tool_errors": "tool_errors",
    "llm_calls": "llm_calls",
    "errors": "errors",
    "phases": "phases",
    "phases_completed": "phases_completed",
    "checkpoints": "checkpoints",
    "context_resets": "context_resets",
    "mean_tool_latency_ms": "mean_tool_latency_ms",
}
FROM_DETAIL = {
    "llm_errors": "llm_errors",
    "retries": "retries",
    "execution_resets": "execution_resets",
}
#: fields compared with a synthetic session's ground truth
CHECKED = ("status", "duration_ms", "tool_calls", "tool_errors", "llm_calls", "llm_errors", "errors",
           "recovery_count", "retries", "phases", "phases_completed", "execution_resets", "context_resets",
           "checkpoints", "input_tokens", "output_tokens")


def session_record(base: dict[str, Any], metrics: dict[str, Any] | None,
                   detail: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` (ids, kind, run data) plus the sidecar's numbers for the session (null without them)."""
    record = dict(base)
    record["status"] = (metrics or {}).get("status")
    seconds = (metrics or {}).get("duration_seconds")
    record["duration_ms"] = None if seconds is None else round(seconds * 1000.0, 3)
    for field, source in FROM_METRICS.items():
        record[field] = (metrics or {}).get(source)
    for field, source in FROM_DETAIL.items():
        record[field] = (detail or {}).get(source)
    tokens = (detail or {}).get("tokens") or {}
    record["input_tokens"] = tokens.get("input")
    record["output_tokens"] = tokens.get("output")
    return record


def mismatches(record: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The ``CHECKED`` fields where the sidecar's record differs from the ground truth."""
    out = []
    for field in CHECKED:
        got, want = record.get(field), expected.get(field)
        if field == "duration_ms" and got is not None and want is not None:
            if abs(got - want) > 1.0:  # the API reports seconds to the millisecond
                out.append(field)
        elif got != want:
            out.append(field)
    return out


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=False)


class RecordsError(Exception):
    """A results file cannot be read as benchmark records."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSONL results file; ``RecordsError`` names the file and line of a bad one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RecordsError(f"{path} is not UTF-8 text") from None
    return parse_records(text.splitlines(), str(path))


def parse_records(lines: Iterable[str], origin: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise RecordsError(f"{origin}:{number}: not a JSON line ({exc})") from None
        if not isinstance(record, dict):
            raise RecordsError(f"{origin}:{number}: a record must be a JSON object")
        problems = [f"{field} is missing" for field in ("session_id", "benchmark_name", "success")
                    if field not in record]
        if "success" in record and not isinstance(record["success"], bool):
            problems.append("success must be true or false")
        for field in ("duration_ms", "tool_calls", "recovery_count", "continuity_score"):
            value = record.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(f"{field} must be a number or null")
        if problems:
            raise RecordsError(f"{origin}:{number}: {'; '.join(problems)}")
        records.append(record)
    return records
