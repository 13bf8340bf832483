"""Our own span record: what the decoders produce and everything after them reads.

No protobuf or JSON type crosses this line. A ``Span`` carries only what the
translator needs: identity, timing, status, the attributes the conventions look
at (see ``conventions.profile.WANTED_KEYS``), the first exception type, agentprom's own span
events and the evaluation results reported as span events.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# OTLP Status.code values (opentelemetry/proto/trace/v1/trace.proto).
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

#: OTLP ``SpanFlags`` (opentelemetry/proto/trace/v1/trace.proto): the parent's is-remote bit is known,
#: and set
SPAN_FLAGS_PARENT_REMOTE = 0x100 | 0x200

# OTLP Span.kind values.
SPAN_KIND_NAMES = {
    0: "SPAN_KIND_UNSPECIFIED",
    1: "SPAN_KIND_INTERNAL",
    2: "SPAN_KIND_SERVER",
    3: "SPAN_KIND_CLIENT",
    4: "SPAN_KIND_PRODUCER",
    5: "SPAN_KIND_CONSUMER",
}


class Kind(enum.Enum):
    """What a span means to an agent team."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    OTHER = "other"


@dataclass(slots=True)
class Span:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    exception_type: str | None = None
    trace_state: str = ""
    scope_name: str = ""
    #: agentprom's own span events (name starts with ``agent.``): (name, time_ns, attributes)
    events: Sequence[tuple[str, int, dict[str, Any]]] = ()
    #: the parent span is in another process (OTLP ``Span.flags``: the context-has-is-remote and
    #: context-is-remote bits): this span is a local root of its trace
    parent_remote: bool = False
    #: when the first chunk of a streamed response arrived (OpenInference's first-token event), or 0
    first_token_ns: int = 0
    #: its ``gen_ai.evaluation.result`` span events: the attributes read of each (``profile.EVALUATION_KEYS``)
    evaluations: Sequence[dict[str, Any]] = ()

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def trace_id_hex(self) -> str:
        return self.trace_id.hex()

    @property
    def span_id_hex(self) -> str:
        return self.span_id.hex()


def validate_span(span: Span) -> str | None:
    """Return why a span is invalid (a rejection reason), or None when it is fine."""
    return span_rejection(span.trace_id, span.span_id, span.start_ns, span.end_ns)


def span_rejection(trace_id: bytes, span_id: bytes, start_ns: int, end_ns: int) -> str | None:
    """Why a span with these ids and times is rejected, or None (also applied to forwarded spans).

    OTLP requires a 16-byte non-zero trace id and an 8-byte non-zero span id;
    a span that ends before it starts has no meaningful duration.
    """
    if len(trace_id) != 16 or not any(trace_id):
        return "invalid_trace_id"
    if len(span_id) != 8 or not any(span_id):
        return "invalid_span_id"
    if end_ns < start_ns:
        return "end_before_start"
    return None
