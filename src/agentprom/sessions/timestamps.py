"""ISO 8601 timestamps as the runtime API and the JSONL log write and read them.

Written as UTC with millisecond precision and a ``Z`` suffix
(``2026-02-20T02:15:10.123Z``). Read: any ISO 8601 date-time Python's
``datetime.fromisoformat`` accepts (3.11: ``Z``, offsets, fractions); one
without an offset is taken as UTC.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime


#: (second, its text): consecutive records mostly share their second. Replaced as one tuple,
#: so threads calling ``iso`` at once can only miss the cache, never read a mismatched pair.
_cached_second: tuple[int, str] = (-1, "")


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, or None."""
    global _cached_second
    if seconds is None:
        return None
    whole, ms = divmod(round(seconds * 1000), 1000)
    cached = _cached_second
    if cached[0] != whole:
        cached = _cached_second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{ms:03d}Z"


def parse_iso(text: str) -> float:
    """ISO 8601 date-time -> epoch seconds; ValueError when it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not an ISO 8601 date-time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    value = moment.timestamp()
    if not math.isfinite(value):
        raise ValueError("not a finite time")
    return value
