"""The runtime session model: Session -> Phase -> Call (tool or LLM call, with its result).

Plain records with no behaviour beyond small derived values; ``tracker.py``
owns every change to them. Times are epoch seconds (floats); durations of
calls are milliseconds, as in the JSONL log.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

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
    """A random 16-hex-digit id for phases and event-API calls (span-derived ones use the span id).
    Not a secret, so the fast non-cryptographic generator will do."""
    return f"{random.getrandbits(64):016x}"


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


class Call:
    """One completed tool call or LLM call.

    Written by hand with ``__slots__`` and positional arguments: one is made per
    tool or LLM span, and a keyword-heavy dataclass constructor costs several
    times as much on that path (bench/sessions_overhead.py)."""

    __slots__ = (
        "invocation_id", "kind", "name", "agent", "start", "duration_ms", "success", "error_class", "attempt",
        "retry_source", "escalated", "recovered", "phase", "model", "provider", "input_tokens", "output_tokens",
        "cached_tokens", "cost", "trace_id", "span_id", "phase_span", "call_id", "sizes",
    )

    def __init__(self, kind: str, name: str, agent: str, start: float, duration_ms: float, success: bool,
                 error_class: str | None = None, trace_id: bytes = b"", span_id: bytes = b"",
                 invocation_id: str = "", call_id: str = "") -> None:
        #: empty for span-fed calls: their id is the span id (hex)
        self.invocation_id = invocation_id
        self.kind = kind  # TOOL_CALL or LLM_CALL
        #: tool name, or the model for LLM calls
        self.name = name
        self.agent = agent
        self.start = start
        self.duration_ms = duration_ms
        self.success = success
        self.error_class = error_class
        self.attempt = 1
        #: "agent" (agent.retry.attempt, event attempt) or "transport" (http.request.resend_count)
        self.retry_source: str | None = None
        self.escalated = False
        #: this successful call ended a run of failures of the same tool or model
        self.recovered = False
        self.phase: Phase | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.cost: float | None = None
        self.trace_id = trace_id
        self.span_id = span_id
        #: the span id of the phase span above the call while the call waits for it (b"": none)
        self.phase_span = b""
        #: the runtime's own id of the call (an event's ``call_id``; empty for span-fed calls)
        self.call_id = call_id
        #: (input_size_bytes, output_size_bytes) when an event gave either
        self.sizes: tuple[int | None, int | None] | None = None

    @property
    def end(self) -> float:
        return self.start + self.duration_ms / 1000.0

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(slots=True, init=False, eq=False, repr=False)
class Session:
    """One runtime session.

    Slots, with the defaults declared here and set by a hand-written constructor (a dataclass
    ``__init__`` would take every field as a parameter): every tool or LLM span updates a dozen of
    these counters, and a slot is updated in a few instructions where an instance-dict attribute
    that started as a class-level default is not (bench/instructions.py: 5 % of the default
    translator step's instructions, where each trace is a session of its own; 0.4 % with the ingest
    benchmark's few long sessions). tests/test_sessions_spans.py checks the constructor against the
    declared defaults."""

    session_id: str
    #: store clock (monotonic) of the last span or event; drives the inactivity timeout
    last_activity: float
    #: phase id -> its latest run (bounded by max_phases_per_session)
    phases: dict[str, Phase]
    #: every stored phase run, in order of creation
    phase_list: list[Phase]
    #: stored tool calls, oldest first (bounded by max_tool_calls_per_session)
    calls: deque[Call]
    # -- open sessions only (emptied at the end) --------------------------------
    #: calls waiting for the phase span above them (it ends after its children: it comes next)
    pending: list[Call]
    #: phase span id -> its phase
    phase_by_span: dict[bytes, Phase]
    #: (component, tool or model) of calls that failed and have not succeeded since
    failing: set[tuple[str, str]]
    #: event-API tool calls started and not finished: key -> (agent, start time)
    in_flight: dict[tuple[str, str], tuple[str, float]]

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
    #: the model the latest LLM call asked for, and how often it changed between two calls
    last_model: str | None = None
    model_switches: int = 0

    continuity_score: float | None = None
    continuity_components: dict[str, float] | None = None
    phases_dropped: int = 0
    calls_dropped: int = 0
    #: bookkeeping entries an open session could not keep (its per-structure caps), by structure;
    #: made on the first drop (most sessions never drop anything)
    state_dropped: dict[str, int] | None = None
    #: the phase that event-API calls without a phase belong to
    current_phase: Phase | None = None

    def __init__(self, session_id: str, last_activity: float, restored: bool = False) -> None:
        self.session_id = session_id
        self.last_activity = last_activity
        self.restored = restored
        self.phases = {}
        self.phase_list = []
        self.calls = deque()
        self.pending = []
        self.phase_by_span = {}
        self.failing = set()
        self.in_flight = {}
        self.agent = "unknown"
        self.status = ACTIVE
        self.started_explicitly = False
        self.agent_rank = self.tool_calls = self.tool_errors = self.llm_calls = self.llm_errors = 0
        self.recoveries = self.retries = self.escalations = self.phase_count = self.phases_completed = 0
        self.checkpoints = self.context_resets = self.execution_resets = self.memory_reads = 0
        self.memory_writes = self.utilization_observations = self.utilization_within = 0
        self.input_tokens = self.output_tokens = self.cached_tokens = self.model_switches = 0
        self.phases_dropped = self.calls_dropped = 0
        self.tool_latency_ms = self.cost = 0.0
        self.model = self.provider = self.start = self.end = self.last_seen = self.reported_status = None
        self.context_tokens_used = self.context_tokens_available = self.peak_context_utilization = None
        self.last_model = self.continuity_score = self.continuity_components = self.state_dropped = None
        self.current_phase = None

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, agent={self.agent!r}, status={self.status!r})"

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
        if self.start is None or start < self.start:
            self.start = start
        if self.last_seen is None or end > self.last_seen:
            self.last_seen = end

    def clear_open_state(self) -> None:
        for state in (self.pending, self.phase_by_span, self.failing, self.in_flight):
            if state:
                state.clear()
        self.current_phase = None
