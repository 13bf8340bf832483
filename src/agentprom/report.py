"""``agentprom report``: aggregate a JSONL invocation log into totals, breakdowns and parallelism.

Records come in two shapes, snake_case (the sidecar's) and camelCase (other
tools'); report_records.py maps both to the snake_case fields read here and
counts which it saw. Invocations are the ``tool_call`` and ``llm_call`` records; ``phase`` and
``session`` records are counted but never summed into invocation totals
(their tokens and durations repeat their calls'). Definitions
(docs/sessions.md, "Report"):

* retries: invocations with ``attempt`` > 1; infrastructure retries: those
  whose ``retry_source`` is ``transport`` (``http.request.resend_count``).
* success rate: successful invocations / invocations.
* escalations: records with ``escalated: true``.
* parallelism: each invocation occupies [timestamp, timestamp + duration_ms).
  The peak is the most invocations overlapping at one instant (an end and a
  start at the same instant do not overlap). Per fixed time bucket: the mean
  parallelism (busy invocation-seconds / bucket seconds), the peak, and the
  invocations that overlap the bucket. Buckets widen to keep at most
  ``MAX_BUCKETS``. Without a width, ``screen_width`` picks a round one from
  the log's span that keeps the series to ``SCREEN_BUCKETS`` (a screenful,
  for the table); the table folds runs of empty buckets into one line.
* bad values: a field of the wrong type is ignored (``records.number``); a
  ``duration_ms`` below 0 or above ``MAX_DURATION_MS`` counts as 0; a cost sum
  that overflows a float is reported as null.
* sums of floats are exact (``ExactSum``), so a report does not depend on the
  order it reads records in: the journal and the database give the same figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentprom.report_records import ShapeReader
from agentprom.sessions import records as R
from agentprom.sessions.model import LLM_CALL, PHASE, SESSION, TOOL_CALL
from agentprom.sessions.timestamps import iso
from agentprom.sinks.jsonl import ReadStats, log_files, read_records

MAX_BUCKETS = 1000
#: the default bucket width of the full series (--format json), widened to keep MAX_BUCKETS
DEFAULT_BUCKET_SECONDS = 60.0
#: at most this many buckets when the width is chosen from the log's span (the table's default)
SCREEN_BUCKETS = 20
#: round widths to choose from, in seconds: minutes, hours, then days
ROUND_WIDTHS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
NO_PHASE = "(no phase)"
#: a longer duration_ms (a year) is not plausible and counts as 0
MAX_DURATION_MS = 366 * 86400 * 1000.0


def duration_ms(record: dict[str, Any]) -> float:
    value = R.number(record, "duration_ms") or 0.0
    return value if 0.0 <= value <= MAX_DURATION_MS else 0.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


#: every finite float is a whole multiple of 2**-1074 (the smallest subnormal)
_FLOAT_QUANTUM = 2 ** 1074


class ExactSum:
    """A sum of floats without rounding error, whatever order they are added in."""

    __slots__ = ("_units",)

    def __init__(self) -> None:
        self._units = 0  # the sum, in units of 2**-1074

    def add(self, value: float) -> None:
        numerator, denominator = value.as_integer_ratio()  # denominator: a power of two
        self._units += numerator * (_FLOAT_QUANTUM // denominator)

    def value(self) -> float:
        """The sum rounded once to the nearest float (inf when it overflows one)."""
        try:
            return self._units / _FLOAT_QUANTUM  # int / int: correctly rounded
        except OverflowError:
            return math.inf if self._units > 0 else -math.inf


@dataclass
class Group:
    """Sums over a set of invocations."""

    invocations: int = 0
    tool_calls: int = 0
    llm_calls: int = 0
    successes: int = 0
    retries: int = 0
    infrastructure_retries: int = 0
    escalations: int = 0
    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: ExactSum = field(default_factory=ExactSum)
    duration_ms: ExactSum = field(default_factory=ExactSum)

    def add(self, record: dict[str, Any]) -> None:
        self.invocations += 1
        if record["kind"] == TOOL_CALL:
            self.tool_calls += 1
        else:
            self.llm_calls += 1
        self.successes += record.get("success") is not False
        attempt = R.count(record, "attempt") or 1
        if attempt > 1:
            self.retries += 1
            self.infrastructure_retries += record.get("retry_source") == "transport"
        self.escalations += record.get("escalated") is True
        inputs, outputs = R.count(record, "input_tokens"), R.count(record, "output_tokens")
        total = R.count(record, "tokens")
        if total is None and (inputs is not None or outputs is not None):
            total = (inputs or 0) + (outputs or 0)
        self.tokens += total or 0
        self.input_tokens += inputs or 0
        self.output_tokens += outputs or 0
        self.cached_tokens += R.count(record, "cached_tokens") or 0
        self.cost.add(R.number(record, "cost") or 0.0)
        self.duration_ms.add(duration_ms(record))

    def as_dict(self) -> dict[str, Any]:
        n = self.invocations
        return {
            "invocations": n,
            "tool_calls": self.tool_calls,
            "llm_calls": self.llm_calls,
            "successes": self.successes,
            "failures": n - self.successes,
            "success_rate": round(self.successes / n, 4) if n else None,
            "retries": self.retries,
            "infrastructure_retries": self.infrastructure_retries,
            "escalations": self.escalations,
            "tokens": self.tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cost": _finite(round(self.cost.value(), 6)),
            "mean_duration_ms": round(self.duration_ms.value() / n, 3) if n else None,
        }


def _bucket_count(first: float, last: float, width: float) -> int:
    return max(1, math.ceil((last - math.floor(first / width) * width) / width))


def screen_width(first: float, last: float) -> float:
    """The smallest round width (``ROUND_WIDTHS``, then whole days) that covers [first, last]
    in at most ``SCREEN_BUCKETS`` buckets."""
    for width in ROUND_WIDTHS:
        if _bucket_count(first, last, width) <= SCREEN_BUCKETS:
            return float(width)
    days = math.ceil((last - first) / 86400 / (SCREEN_BUCKETS - 1))
    return float(86400 * days)


def parallelism(intervals: list[tuple[float, float]], bucket_seconds: float | None) -> dict[str, Any]:
    """Peak and per-bucket parallelism of [start, end) intervals (epoch seconds).

    ``bucket_seconds`` None: a width from the intervals' span (``screen_width``)."""
    if not intervals:
        width = DEFAULT_BUCKET_SECONDS if bucket_seconds is None else bucket_seconds
        return {"peak": 0, "peak_at": None, "bucket_seconds": width, "buckets": []}
    first = min(start for start, _ in intervals)
    last = max(end for _, end in intervals)
    width = screen_width(first, last) if bucket_seconds is None else bucket_seconds
    if (last - first) / width > MAX_BUCKETS:
        width = math.ceil((last - first) / MAX_BUCKETS)
    origin = math.floor(first / width) * width
    n_buckets = max(1, math.ceil((last - origin) / width))
    busy = [0.0] * n_buckets
    peaks = [0] * n_buckets
    counts = [0] * n_buckets
    for start, end in intervals:
        low = min(n_buckets - 1, int((start - origin) // width))
        high = low if end <= start else min(n_buckets - 1, int(math.ceil((end - origin) / width)) - 1)
        for b in range(low, max(low, high) + 1):
            counts[b] += 1
    # sweep: ends sort before starts at the same instant, so back-to-back calls do not overlap
    points = sorted([(s, 1) for s, e in intervals if e > s] + [(e, -1) for s, e in intervals if e > s])
    level, peak, peak_at = 0, 0, None
    for i, (t, delta) in enumerate(points):
        level += delta
        if level > peak:
            peak, peak_at = level, t
        following = points[i + 1][0] if i + 1 < len(points) else t
        if level and following > t:
            _spread(t, following, level, origin, width, busy, peaks)
    if peak == 0:  # only instantaneous invocations
        peak, peak_at = 1, first
    return {
        "peak": peak,
        "peak_at": iso(peak_at),
        "bucket_seconds": width,
        "buckets": [
            {
                "start": iso(origin + b * width),
                "invocations": counts[b],
                "mean_parallelism": round(busy[b] / width, 4),
                "peak": peaks[b],
            }
            for b in range(n_buckets)
        ],
    }


def _spread(start: float, end: float, level: int, origin: float, width: float,
            busy: list[float], peaks: list[int]) -> None:
    """Credit a stretch of constant parallelism ``level`` to the buckets it covers."""
    b = int((start - origin) // width)
    while b < len(busy):
        low = origin + b * width
        high = low + width
        overlap = min(end, high) - max(start, low)
        if overlap > 0:
            busy[b] += overlap * level
            peaks[b] = max(peaks[b], level)
        if high >= end:
            break
        b += 1


def build_report(records: Iterable[dict[str, Any]], stats: ReadStats | None = None,
                 bucket_seconds: float | None = DEFAULT_BUCKET_SECONDS) -> dict[str, Any]:
    totals = Group()
    by_agent: dict[str, Group] = defaultdict(Group)
    by_phase: dict[str, Group] = defaultdict(Group)
    sessions: dict[str, int] = defaultdict(int)
    phases: dict[str, int] = defaultdict(int)
    intervals: list[tuple[float, float]] = []
    first: float | None = None
    last: float | None = None
    for record in records:
        kind = record["kind"]
        start = R.time_of(record)
        if kind == SESSION:
            sessions[R.end_status(record)] += 1
            continue
        if kind == PHASE:
            phases[R.end_status(record)] += 1
            continue
        if kind not in (TOOL_CALL, LLM_CALL):
            continue
        totals.add(record)
        by_agent[R.text(record, "agent") or "unknown"].add(record)
        by_phase[R.text(record, "phase") or NO_PHASE].add(record)
        if start is not None:
            end = start + duration_ms(record) / 1000.0
            intervals.append((start, end))
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
    summary = totals.as_dict()
    summary["sessions"] = sum(sessions.values())
    summary["sessions_by_status"] = dict(sorted(sessions.items()))
    summary["phases"] = sum(phases.values())
    summary["phases_by_status"] = dict(sorted(phases.items()))
    return {
        "source": {
            "lines": stats.lines if stats else None,
            "records": stats.records if stats else None,
            "malformed_lines": stats.malformed if stats else None,
        },
        "period": {"first": iso(first), "last": iso(last)},
        "totals": summary,
        "by_agent": {name: g.as_dict() for name, g in sorted(by_agent.items())},
        "by_phase": {name: g.as_dict() for name, g in sorted(by_phase.items())},
        "parallelism": parallelism(intervals, bucket_seconds),
    }


def report_path(path: str | Path, bucket_seconds: float | None = DEFAULT_BUCKET_SECONDS) -> dict[str, Any]:
    """Report on a log file, or on a log directory (rotated files included, oldest first).
    ``bucket_seconds`` None: a screenful of parallelism buckets (``screen_width``)."""
    path = Path(path)
    files = log_files(path) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no invocations.jsonl in {path}")
    stats = ReadStats()
    reader = ShapeReader()
    report = build_report(read_records(files, stats, reader), stats, bucket_seconds)
    report["source"]["files"] = [str(f) for f in files]
    report["source"]["shapes"] = reader.shapes
    return report


# -- table output -----------------------------------------------------------------------

def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _fixed(digits: int):
    return lambda value: "-" if value is None else f"{value:.{digits}f}"


#: (key, heading, formatter)
_COLUMNS = (
    ("invocations", "invocations", str), ("success_rate", "success", _percent), ("retries", "retries", str),
    ("infrastructure_retries", "infra retries", str), ("tokens", "tokens", str), ("cost", "cost", _fixed(4)),
    ("mean_duration_ms", "mean ms", _fixed(1)), ("escalations", "escalations", str),
)


def _table(title: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    header = [title] + [heading for _key, heading, _fmt in _COLUMNS]
    body = [[name] + [fmt(row[key]) for key, _heading, fmt in _COLUMNS] for name, row in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
             for r in [header, *body]]
    return [lines[0], "-" * len(lines[0]), *lines[1:], ""]


def _counts(by_status: dict[str, int]) -> str:
    return " ".join(f"{status}={n}" for status, n in by_status.items())


def render_table(report: dict[str, Any]) -> str:
    t = report["totals"]
    src = report["source"]
    par = report["parallelism"]
    out = [
        (f"database: {src['database']}" if "database" in src else f"log: {', '.join(src.get('files', []))}")
        + f" ({src['records']} records, "
        f"{src['malformed_lines']} malformed lines skipped)",
        "shapes: " + " ".join(f"{shape}={n}" for shape, n in src.get("shapes", {}).items()),
        f"period: {report['period']['first'] or '-'} .. {report['period']['last'] or '-'}",
        f"sessions: {t['sessions']} ({_counts(t['sessions_by_status'])})   "
        f"phases: {t['phases']} ({_counts(t['phases_by_status'])})",
        "",
    ]
    out += _table("totals", {"all": t})
    out += _table("agent", report["by_agent"])
    out += _table("phase", report["by_phase"])
    out.append(f"parallelism: peak {par['peak']} at {par['peak_at'] or '-'}; buckets of {par['bucket_seconds']:g}s")
    out.append(f"{'bucket start':<24}  {'invocations':>11}  {'mean':>8}  {'peak':>4}")
    buckets = par["buckets"]
    i = 0
    while i < len(buckets):
        b = buckets[i]
        j = i
        while j < len(buckets) and buckets[j]["invocations"] == 0:
            j += 1
        if j - i >= 2:  # a run of empty buckets: one line
            out.append(f"{b['start']:<24}  {'-':>11}  ({j - i} empty buckets, to {buckets[j - 1]['start']})")
            i = j
            continue
        out.append(f"{b['start']:<24}  {b['invocations']:>11}  {b['mean_parallelism']:>8.3f}  {b['peak']:>4}")
        i += 1
    return "\n".join(out) + "\n"
