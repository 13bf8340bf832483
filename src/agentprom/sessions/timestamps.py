"""ISO 8601 timestamps as the runtime API and the JSONL log write and read them.

Written as UTC with millisecond precision and a ``Z`` suffix
(``2026-02-20T02:15:10.123Z``). Read: any ISO 8601 date-time Python's
``datetime.fromisoformat`` accepts (3.11: ``Z``, offsets, fractions); one
without an offset is taken as UTC.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, or None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> float:
    """ISO 8601 date-time -> epoch seconds; ValueError when it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not an ISO 8601 date-time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    value = moment.timestamp()
    if not math.isfinite(value):
        raise ValueError("not a finite time")
    return value
