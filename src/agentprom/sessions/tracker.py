"""Track runtime sessions and their phases from spans and runtime events; count their metrics.

The model is Session -> Phase -> Call (docs/sessions.md). Spans arrive through
``on_resolved`` (a translator listener: the spans the trace context settled,
with their agent, session and phase), runtime API events through ``apply``; both update the same sessions and
the catalog's ``sessions`` metrics, and completed calls, phases and sessions go
to ``sink`` (the JSONL log) as records.

The tracker is assembled from one module per job: the bounded session store
and the bookkeeping spans and events share (sessions/book.py), the span path
(sessions/span_sessions.py), the event path (sessions/event_sessions.py) and
restoring from the log (sessions/restore.py).
"""

from __future__ import annotations

from agentprom.sessions.event_sessions import EventSessions
from agentprom.sessions.restore import Restoring
from agentprom.sessions.span_sessions import SpanSessions


class SessionTracker(SpanSessions, EventSessions, Restoring):
    """Runtime sessions from spans and events (``on_resolved``, ``apply``), restored from the log
    (``restore``), ended on their signal or by ``expire``."""
