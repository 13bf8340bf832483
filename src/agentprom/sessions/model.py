"""The runtime session model: Session -> Phase -> Call (tool or LLM call, with its result).

Plain records with no behaviour beyond small derived values; ``tracker.py``
owns every change to them. Times are epoch seconds (floats); durations of
calls are milliseconds, as in the JSONL log.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field

ACTIVE = "active"
COMPLETED = "completed"
FAILED = "failed"
ABANDONED = "abandoned"
#: final statuses of sessions and phases
END_STATUSES = (COMPLETED, FAILED, ABANDONED)

TOOL_CALL = "tool_call"
LLM_CALL = "llm_call"
PHASE = "phase"
SESSION = "session"


def new_id() -> str:
    """A random 16-hex-digit id for phases and event-API calls (span-derived ones use the span id)."""
    return uuid.uuid4().hex[:16]


@dataclass(slots=True, eq=False)
class Phase:
    phase_id: str
    name: str
    invocation_id: str
    start: float | None = None
    end: float | None = None
    status: str = ACTIVE
    #: started by a signal of its own (phase span or phase_started); otherwise
    #: it exists only because calls named it, and ends with its session
    explicit: bool = False
    span_id: bytes = b""
    tool_calls: int = 0
    llm_calls: int = 0
    errors: int = 0
    recoveries: int = 0

    @property
    def ended(self) -> bool:
        return self.status != ACTIVE

    @property
    def duration_s(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)

    def cover(self, start: float, end: float) -> None:
        """Widen the phase's time span to include [start, end]."""
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)


@dataclass(slots=True, eq=False)
class Call:
    """One completed tool call or LLM call."""

    invocation_id: str
    kind: str  # TOOL_CALL or LLM_CALL
    #: tool name, or the model for LLM calls
    name: str
    agent: str
    start: float
    duration_ms: float
    success: bool
    error_class: str | None = None
    attempt: int = 1
    #: "agent" (agent.retry.attempt, event attempt) or "transport" (http.request.resend_count)
    retry_source: str | None = None
    escalated: bool = False
    #: this successful call ended a run of failures of the same tool or model
    recovered: bool = False
    phase: Phase | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost: float | None = None
    trace_id: bytes = b""
    span_id: bytes = b""
    #: parent span id, to find the phase span above the call
    parent: bytes = b""

    @property
    def end(self) -> float:
        return self.start + self.duration_ms / 1000.0

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(slots=True, eq=False)
class Session:
    session_id: str
    #: store clock (monotonic) of the last span or event; drives the inactivity timeout
    last_activity: float
    agent: str = "unknown"
    #: how sure we are of ``agent``: 0 none, 1 a fallback (service.name), 2 named
    agent_rank: int = 0
    model: str | None = None
    provider: str | None = None
    start: float | None = None
    end: float | None = None
    #: latest end time of anything seen (the end of a session that times out)
    last_seen: float | None = None
    status: str = ACTIVE
    #: what the runtime said the outcome is (agent.session.status), applied at the end
    reported_status: str | None = None
    #: a start signal was seen (session span, session_started, POST /runtime/session/start)
    started_explicitly: bool = False
    restored: bool = False

    tool_calls: int = 0
    tool_errors: int = 0
    tool_latency_ms: float = 0.0
    llm_calls: int = 0
    llm_errors: int = 0
    recoveries: int = 0
    retries: int = 0
    escalations: int = 0
    phase_count: int = 0
    phases_completed: int = 0
    checkpoints: int = 0
    context_resets: int = 0
    execution_resets: int = 0
    memory_reads: int = 0
    memory_writes: int = 0
    context_tokens_used: int | None = None
    context_tokens_available: int | None = None
    peak_context_utilization: float | None = None
    utilization_observations: int = 0
    utilization_within: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0

    continuity_score: float | None = None
    continuity_components: dict[str, float] | None = None

    #: phase id -> its latest run (bounded by max_phases_per_session)
    phases: dict[str, Phase] = field(default_factory=dict)
    #: every stored phase run, in order of creation
    phase_list: list[Phase] = field(default_factory=list)
    phases_dropped: int = 0
    #: stored tool calls, oldest first (bounded by max_tool_calls_per_session)
    calls: deque[Call] = field(default_factory=deque)
    calls_dropped: int = 0
    #: the phase that event-API calls without a phase belong to
    current_phase: Phase | None = None

    # -- open sessions only (cleared at the end) ------------------------------
    #: calls whose phase may still arrive (a phase span ends after its children)
    pending: list[Call] = field(default_factory=list)
    #: span id -> parent span id, to walk from a call up to its phase span
    parents: dict[bytes, bytes] = field(default_factory=dict)
    phase_by_span: dict[bytes, Phase] = field(default_factory=dict)
    #: span ids of agent-invocation spans (for phase rules with parent_kind=agent)
    agent_spans: set[bytes] = field(default_factory=set)
    #: parent span id -> phase-span candidates waiting to learn their parent is an agent
    candidates: dict[bytes, list[tuple[str, str, bytes, float, float, bool]]] = field(default_factory=dict)
    #: (component, tool or model) of calls that failed and have not succeeded since
    failing: set[tuple[str, str]] = field(default_factory=set)
    #: event-API tool calls started and not finished: key -> (agent, start time)
    in_flight: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status != ACTIVE

    @property
    def errors(self) -> int:
        return self.tool_errors + self.llm_errors

    @property
    def duration_s(self) -> float:
        end = self.end if self.end is not None else self.last_seen
        if self.start is None or end is None:
            return 0.0
        return max(0.0, end - self.start)

    def cover(self, start: float, end: float) -> None:
        self.start = start if self.start is None else min(self.start, start)
        self.last_seen = end if self.last_seen is None else max(self.last_seen, end)

    def clear_open_state(self) -> None:
        self.pending.clear()
        self.parents.clear()
        self.phase_by_span.clear()
        self.agent_spans.clear()
        self.candidates.clear()
        self.failing.clear()
        self.in_flight.clear()
        self.current_phase = None
