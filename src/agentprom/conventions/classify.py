"""Classify a span as an agent invocation, LLM call, tool call or other.

Reads the convention table in ``profile.py``; holds no attribute names of its
own. The rules (the OTel GenAI semantic conventions, OpenInference and OpenLLMetry, as
observed in their instrumentations; docs/conventions.md):

* ``traceloop.span.kind`` decides first: ``workflow``/``task`` are never agent
  invocations, whatever ``gen_ai.operation.name`` says.
* then ``openinference.span.kind``, then ``gen_ai.operation.name``, then MCP's
  ``mcp.method.name=tools/call``, then OpenLLMetry's ``llm.request.type``.
* an unknown ``gen_ai.operation.name`` on a span that names a model or carries
  token usage is an LLM call with operation ``other``; otherwise it is ``other``.
* tokens and cost are read from LLM-call spans only: agent spans often carry
  aggregated usage, and counting both would double-count.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentprom.compiled import extension
from agentprom.conventions import profile as P
from agentprom.model import STATUS_ERROR, Kind, Span

UNKNOWN = "unknown"

# Hot-path constants (classify runs once per span): plain globals instead of enum and module
# attribute lookups.
_AGENT, _LLM, _TOOL, _OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
_TRACELOOP_SPAN_KIND, _TRACELOOP_KINDS = P.TRACELOOP_SPAN_KIND, P.TRACELOOP_KINDS
_OPENINFERENCE_SPAN_KIND, _OPENINFERENCE_KINDS = P.OPENINFERENCE_SPAN_KIND, P.OPENINFERENCE_KINDS
_GENAI_OPERATION, _GENAI_OPERATIONS = P.GENAI_OPERATION, P.GENAI_OPERATIONS
_GENAI_OPERATION_ALIASES = P.GENAI_OPERATION_ALIASES
_AGENT_KEY, _TOOL_KEY = P.AGENT_NAME_KEYS[0], P.TOOL_NAME_KEYS[0]
_MODEL_KEY, _PROVIDER_KEY = P.MODEL_KEYS[0], P.PROVIDER_KEYS[0]
_TOOL_NAME_KEYS, _MODEL_KEYS, _PROVIDER_KEYS = P.TOOL_NAME_KEYS, P.MODEL_KEYS, P.PROVIDER_KEYS
_TOKEN_KEYS = tuple(P.TOKEN_KEYS.items())
_COST_KEYS, _LLM_OPERATIONS, _SERVICE_NAME = P.COST_KEYS, P.LLM_OPERATIONS, P.SERVICE_NAME
_NOT_LLM_CALLS = P.NOT_LLM_CALLS
_GUARDRAIL_KEYS = P.GUARDRAIL_KEYS
#: what ``span_kind`` returns as the operation of a guardrail span
_GUARDRAIL = P.GUARDRAIL_OPERATION
_STREAM_AND_TIME_KEYS = frozenset((*P.STREAMING_KEYS, *P.TTFT_KEYS, *P.TPOT_KEYS))
_STREAM_AND_FINISH_KEYS = _STREAM_AND_TIME_KEYS | frozenset(P.FINISH_REASON_KEYS)


@dataclass(slots=True, init=False)
class Classified:
    """A span's meaning, with every label value resolved.

    Made once per span, so the constructor is written by hand: it takes the five values every span
    has and sets the rest to the defaults declared here from constants (about 15 % less per span than
    the generated ``__init__``, which takes all twenty-five as defaulted parameters)."""

    kind: Kind
    agent: str
    ok: bool
    error_type: str
    #: ``agent`` is the span's own agent name (else the resource's service.name, until the trace
    #: context resolves it from the span's ancestors)
    named: bool = True
    operation: str = ""
    tool: str = ""
    model: str = ""
    provider: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float | None = None
    #: how many spans this one stands for (its sampling adjusted count); set by the translator
    weight: float = 1
    #: whether the span feeds the call metrics: the trace context clears it for wrapper and step
    #: agent spans and for outer LLM calls (docs/conventions.md, "Attribution from the trace tree")
    counted: bool = True
    #: where the trace context places the span (context/scope.py; sessions read these): the session
    #: it belongs to (None: no span of its trace named one so far), the phase span above it as
    #: (span id, phase id, phase name), its own (phase id, phase name) when it is a phase span, and
    #: ``joins``: spans of its trace went to a trace-id session before this session key was seen
    session: str | None = None
    phase: tuple[bytes, str, str] | None = None
    own_phase: tuple[str, str] | None = None
    joins: bool = False
    #: set by the trace context when it decides the span: the span id of the counted agent invocation
    #: above it (its run; for an agent span, the run that called it), and for a counted sub-agent
    #: invocation the agent of that run (the call graph's caller)
    invocation: bytes | None = None
    caller: str | None = None
    #: LLM calls: streamed (None: not said), time to the first chunk and mean time per output chunk in
    #: seconds (None: not reported, or not streamed), and the finish reasons reported (distinct)
    streaming: bool | None = None
    ttft: float | None = None
    tpot: float | None = None
    finish_reasons: tuple[str, ...] = ()
    #: a guardrail check (kind other): the guardrail's name and its verdict (guardrails.py counts them)
    guardrail: str | None = None
    outcome: str = ""

    def __init__(self, kind: Kind, agent: str, ok: bool, error_type: str, named: bool = True) -> None:
        self.kind = kind
        self.agent = agent
        self.ok = ok
        self.error_type = error_type
        self.named = named
        self.operation = self.tool = self.model = self.provider = self.outcome = ""
        self.tokens = {}
        self.cost = self.session = self.phase = self.own_phase = self.invocation = self.caller = None
        self.streaming = self.ttft = self.tpot = self.guardrail = None
        self.weight = 1
        self.counted = True
        self.joins = False
        self.finish_reasons = ()


def _first_str(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


#: for other readers of span attributes (compat outputs)
first_str = _first_str


def _count(value: Any) -> int | None:
    """A token count: a finite, non-negative number (or numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0:
            return int(value)
        return None
    if isinstance(value, str):
        try:
            return _count(float(value)) if not value.isdigit() else int(value)
        except ValueError:
            return None
    return None


def _amount(value: Any) -> float | None:
    """A cost: a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


#: for the per-span bounds (bounds.py), which must read amounts exactly as counted here
token_count, cost_amount = _count, _amount


def span_kind(attrs: dict[str, Any]) -> tuple[Kind, str]:
    """Return the span's kind and, for LLM calls, its ``operation`` label (``apply_guardrail`` for a
    guardrail check, which is of kind other)."""
    tl = attrs.get(_TRACELOOP_SPAN_KIND)
    if tl is not None:
        kind = _TRACELOOP_KINDS.get(tl)
        if kind is not None:
            return kind, ""
    oi = attrs.get(_OPENINFERENCE_SPAN_KIND)
    if oi is not None:
        kind = _OPENINFERENCE_KINDS.get(oi)
        if kind is not None:
            return kind, P.OPENINFERENCE_OPERATIONS.get(oi, "")
    op = attrs.get(_GENAI_OPERATION)
    if isinstance(op, str) and op:
        op = _GENAI_OPERATION_ALIASES.get(op, op)
        kind = _GENAI_OPERATIONS.get(op)
        if kind is not None:
            return kind, op if kind is _LLM or op == _GUARDRAIL else ""
        if _looks_like_llm(attrs):
            return _LLM, "other"
    if attrs.get(P.MCP_METHOD) == P.MCP_TOOL_CALL:
        return _TOOL, ""
    rt = attrs.get(P.LLM_REQUEST_TYPE)
    if rt is not None:
        return _LLM, P.LLM_REQUEST_TYPES.get(rt, "other")
    return _OTHER, ""


def _looks_like_llm(attrs: dict[str, Any]) -> bool:
    if _first_str(attrs, P.MODEL_KEYS) is not None:
        return True
    return any(key in attrs for keys in P.TOKEN_KEYS.values() for key in keys)


def tool_from_span_name(name: str) -> str:
    """``execute_tool web_search`` -> ``web_search``; a bare prefix or empty name -> ``unknown``."""
    for prefix in P.TOOL_SPAN_NAME_PREFIXES:
        if name.startswith(prefix) and (len(name) == len(prefix) or name[len(prefix)] == " "):
            name = name[len(prefix):].strip()
            break
    return name or UNKNOWN


def error_type(span: Span) -> str:
    """The last dotted component of ``error.type``, else of the first exception event's type, else
    ``_OTHER``: ``openai.InternalServerError`` and ``InternalServerError`` are one failure, whichever
    convention reported it."""
    value = span.attributes.get(P.ERROR_TYPE)
    if value is None or value == "":
        value = span.exception_type
        if not value:
            return P.ERROR_TYPE_FALLBACK
    elif value.__class__ is not str:
        value = str(value)
    return value.rsplit(".", 1)[-1] or value


def _agent_span_name(span: Span, attrs: dict[str, Any]) -> str | None:
    """The name an agent span has in a convention's agent-span-only places (profile.py)."""
    for kind_key, kind_value, key in P.AGENT_SPAN_NAME_KEYS:
        if attrs.get(kind_key) == kind_value:
            name = _first_str(attrs, (key,))
            if name is not None:
                return name
    rule = P.SPAN_NAME_AGENTS.get(span.scope_name)
    if rule is not None:
        return rule.name_of(span.name, attrs)
    return None


def _service(span: Span) -> str:
    """The resource's ``service.name``, else ``unknown``: who a span without an agent name belongs to."""
    name = span.resource.get(_SERVICE_NAME)
    if name is None or name == "":
        return UNKNOWN
    return name if name.__class__ is str else str(name)


#: for the trace context (context/stage.py): the fallback agent of an agent span without a name
service_name = _service


def classify(span: Span) -> Classified:
    attrs = span.attributes
    ok = span.status_code != STATUS_ERROR
    if not attrs:  # fast path: no convention attribute at all (HTTP, DB, ... spans)
        return Classified(_OTHER, _service(span), ok, "" if ok else error_type(span), False)
    kind, operation = span_kind(attrs)
    if kind is _LLM and span.scope_name in _NOT_LLM_CALLS and span.name.endswith(_NOT_LLM_CALLS[span.scope_name]):
        kind, operation = _OTHER, ""  # an instrumentation's span around preparing a request (profile.py)

    # _first_str(attrs, AGENT_NAME_KEYS), with the usual case (a string under the first key) inline
    agent = attrs.get(_AGENT_KEY)
    named = True
    if agent.__class__ is not str or not agent:
        agent = _first_str(attrs, P.AGENT_NAME_KEYS)
        if agent is None and kind is _AGENT:
            agent = _agent_span_name(span, attrs)
        if agent is None:
            agent = _service(span)
            named = False

    out = Classified(kind, agent, ok, "" if ok else error_type(span), named)  # positional: the hot path
    if kind is _OTHER:
        if operation == _GUARDRAIL or not attrs.keys().isdisjoint(_GUARDRAIL_KEYS):
            _guardrail(span, attrs, out)
        return out
    # each name read as _first_str would, with the usual case (a string under the first key) inline
    if kind is _TOOL:
        tool = attrs.get(_TOOL_KEY)
        if tool.__class__ is not str or not tool:
            tool = _first_str(attrs, _TOOL_NAME_KEYS) or _first_str(attrs, (P.ENTITY_NAME,))
        out.tool = tool or tool_from_span_name(span.name)
    elif kind is _LLM:
        out.operation = operation if operation in _LLM_OPERATIONS else "other"
        model = attrs.get(_MODEL_KEY)
        if model.__class__ is not str or not model:
            model = _first_str(attrs, _MODEL_KEYS) or UNKNOWN
        out.model = model
        provider = attrs.get(_PROVIDER_KEY)
        if provider.__class__ is not str or not provider:
            provider = _first_str(attrs, _PROVIDER_KEYS) or UNKNOWN
        out.provider = provider
        tokens = out.tokens
        for token_type, keys in _TOKEN_KEYS:
            for key in keys:
                if key in attrs:
                    n = attrs[key]
                    if n.__class__ is not int or n < 0:  # the usual non-negative int needs no checks
                        n = _count(n)
                    if n is not None:
                        tokens[token_type] = n
                    break
        for key in _COST_KEYS:
            if key in attrs:
                out.cost = _amount(attrs[key])
                break
        if not attrs.keys().isdisjoint(_STREAM_AND_FINISH_KEYS) or span.first_token_ns:
            _stream_and_finish(span, attrs, out)
    return out


def _guardrail(span: Span, attrs: dict[str, Any], out: Classified) -> None:
    """A guardrail check's name (its attribute, else the span name without the operation) and verdict
    (its attribute as written; else ``error`` for a failed span, ``unknown`` otherwise: OpenInference
    records no verdict)."""
    name = _first_str(attrs, P.GUARDRAIL_NAME_KEYS)
    if name is None:
        name = span.name.removeprefix(P.GUARDRAIL_OPERATION).strip() or span.name or UNKNOWN
    out.guardrail = name
    outcome = _first_str(attrs, P.GUARDRAIL_OUTCOME_KEYS)
    out.outcome = outcome if outcome is not None else "unknown" if out.ok else "error"


def _stream_and_finish(span: Span, attrs: dict[str, Any], out: Classified) -> None:
    """Streaming, time to first token, time per output token and finish reasons of an LLM call.

    Most LLM spans report finish reasons only: one ``isdisjoint`` over the other keys rules them out."""
    if not attrs.keys().isdisjoint(_STREAM_AND_TIME_KEYS) or span.first_token_ns:
        _stream_and_time(span, attrs, out)
    reasons: list[str] = []
    for key in P.FINISH_REASON_KEYS:
        value = attrs.get(key)
        if value is None:
            continue
        for reason in (value,) if value.__class__ is str else value if value.__class__ is tuple else ():
            if reason and reason.__class__ is str and reason not in reasons:
                reasons.append(reason)
        if reasons:
            break
    out.finish_reasons = tuple(reasons)


def _stream_and_time(span: Span, attrs: dict[str, Any], out: Classified) -> None:
    """Streaming, time to first token and time per output token of an LLM call.

    Times are read only for a streamed call: a span that says it was not streamed (OpenLIT writes
    its whole duration as the time to first token then) has none. A time without a streaming flag
    (Strands, OTel GenAI's ``gen_ai.response.time_to_first_chunk``, OpenInference's first-token
    event) says the call was streamed."""
    streaming = None
    for key in P.STREAMING_KEYS:
        flag = attrs.get(key)
        if flag.__class__ is bool:
            streaming = flag
            break
    if streaming is not False:
        ttft = None
        for key in P.TTFT_KEYS:
            if key in attrs:
                ttft = _amount(attrs[key])
                if ttft is not None and key == P.TTFT_KEYS[1] and span.scope_name in P.TTFT_MILLISECONDS_SCOPES:
                    ttft /= 1000.0
                break
        if ttft is None and span.first_token_ns >= span.start_ns > 0:
            ttft = (span.first_token_ns - span.start_ns) / 1e9
        for key in P.TPOT_KEYS:
            if key in attrs:
                tpot = _amount(attrs[key])
                out.tpot = tpot if tpot else None  # OpenLIT writes 0 when it measured nothing
                break
        out.ttft = ttft
        if streaming is None and ttft is not None:
            streaming = True
    out.streaming = streaming


def classify_spans_python(spans: Iterable[Span], weigh: Callable[[Span], float] | None = None,
                          weigh_all: bool = False) -> list[Classified]:
    """Each span's classification, in order (the translator's per-batch step); with ``weigh``, a
    span with a ``tracestate`` (or every span, with ``weigh_all``) gets ``weigh(span)`` as its weight."""
    out = []
    for span in spans:
        c = classify(span)
        if weigh is not None and (weigh_all or span.trace_state):
            c.weight = weigh(span)
        out.append(c)
    return out


def _compiled() -> Callable[..., list[Classified]] | None:
    """The compiled twin of ``classify_spans_python`` (conventions/_classify.pyx) when it is built
    and not switched off with ``AGENTPROM_PURE_PYTHON=1``, else None."""
    _classify = extension("agentprom.conventions._classify",
                          lambda module: module.configure(Classified, Span, sys.modules[__name__]))
    return _classify.classify_spans if _classify is not None else None


_classify_compiled = _compiled()
#: whether ``classify_spans`` is the compiled one (read once, at import)
COMPILED = _classify_compiled is not None
#: the batch classification in use: the compiled one when built, else ``classify_spans_python``
classify_spans = _classify_compiled or classify_spans_python
