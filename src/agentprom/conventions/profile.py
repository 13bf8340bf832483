"""The convention table: which attributes mean what, in every dialect we understand.

This is the one readable place where OTel GenAI, OpenInference, OpenLLMetry
(Traceloop) and agentprom's own attribute spellings are mapped onto our
concepts. ``classify.py`` only interprets this data; to teach agentprom a new
spelling, add it here. Sources: the published conventions (semantic-conventions
0.66b2, openinference-semantic-conventions 0.1.42, opentelemetry-semantic-
conventions-ai 0.5.1, and observed instrumentations).

Lists of keys are in priority order: the first key present wins.
"""

from __future__ import annotations

from agentprom.model import Kind

# --- Kind detection, checked in this order (first decisive rule wins) -------

#: ``traceloop.span.kind`` values. ``workflow`` and ``task`` are decisive
#: "not an agent invocation" even when the span also says
#: ``gen_ai.operation.name=invoke_agent`` (OpenLLMetry's CrewAI pattern).
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
TRACELOOP_KINDS: dict[str, Kind] = {
    "agent": Kind.AGENT,
    "tool": Kind.TOOL,
    "workflow": Kind.OTHER,
    "task": Kind.OTHER,
}

#: OpenInference ``openinference.span.kind`` values.
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENINFERENCE_KINDS: dict[str, Kind] = {
    "AGENT": Kind.AGENT,
    "TOOL": Kind.TOOL,
    "LLM": Kind.LLM,
    "EMBEDDING": Kind.LLM,
    "GUARDRAIL": Kind.OTHER,
}
#: The ``operation`` label for OpenInference LLM-like kinds (and the guardrail operation, below).
OPENINFERENCE_OPERATIONS: dict[str, str] = {"LLM": "chat", "EMBEDDING": "embeddings", "GUARDRAIL": "apply_guardrail"}

#: OTel GenAI ``gen_ai.operation.name`` values and what they are.
GENAI_OPERATION = "gen_ai.operation.name"
#: ``create_agent`` (building an agent, e.g. OpenLLMetry when ``create_react_agent()`` runs) and
#: ``invoke_workflow`` (a workflow around agents) are not agent invocations.
GENAI_OPERATIONS: dict[str, Kind] = {
    "invoke_agent": Kind.AGENT,
    "invoke_workflow": Kind.OTHER,
    "create_agent": Kind.OTHER,
    "apply_guardrail": Kind.OTHER,  # a guardrail check (GUARDRAIL_OPERATION), never an LLM call
    "execute_tool": Kind.TOOL,
    "chat": Kind.LLM,
    "text_completion": Kind.LLM,
    "generate_content": Kind.LLM,
    "embeddings": Kind.LLM,
}
#: Spellings seen in the wild that mean a standard operation.
GENAI_OPERATION_ALIASES: dict[str, str] = {
    "text_completions": "text_completion",  # Semantic Kernel, older flavour
    "completion": "text_completion",
    "embedding": "embeddings",
}
#: The bounded set of ``operation`` label values; anything else is ``other``.
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

#: MCP tool calls: ``mcp.method.name=tools/call``.
MCP_METHOD = "mcp.method.name"
MCP_TOOL_CALL = "tools/call"

#: OpenLLMetry LLM spans: ``llm.request.type``.
LLM_REQUEST_TYPE = "llm.request.type"
LLM_REQUEST_TYPES: dict[str, str] = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
}

# --- Label sources (first key present wins) ---------------------------------

AGENT_NAME_KEYS = ("gen_ai.agent.name", "agent.name")
#: ``traceloop.entity.name`` names the agent only on ``traceloop.span.kind=agent`` spans and the
#: tool only on tool spans.
ENTITY_NAME = "traceloop.entity.name"


#: Agent-name keys read on agent spans only, by the kind attribute and value that mark the span:
#: OpenLLMetry's entity name on its ``agent`` spans; OpenInference's ``graph.node.id`` on AGENT
#: spans (CrewAI puts the agent's role only there and in the span name; the OpenAI Agents SDK
#: sets it equal to ``agent.name``). Recorded in tests/golden/frameworks/crewai_openinference.
AGENT_SPAN_NAME_KEYS: tuple[tuple[str, str, str], ...] = (
    (TRACELOOP_SPAN_KIND, "agent", ENTITY_NAME),
    (OPENINFERENCE_SPAN_KIND, "AGENT", "graph.node.id"),
)


class SpanNameAgent:
    """An instrumentation whose agent spans carry no agent name where the span name is one.

    * OpenInference's LangChain instrumentation marks every run whose name contains "agent" as an
      AGENT span, none with ``agent.name``: the LangGraph graph (span name = the graph's name,
      e.g. ``weather_agent``) and each of its node runs (e.g. ``agent``). Node runs carry
      ``langgraph_node`` in their ``metadata`` attribute; the graph's run does not. So an AGENT
      span of that scope without a name and without the marker is named by its span name, and
      node runs stay unnamed (steps of the graph). Recorded in tests/golden/frameworks/langgraph_openinference.
    * OpenInference's smolagents instrumentation names the agent's run span ``{name}.run``
      without ``agent.name``. Recorded in tests/golden/frameworks/smolagents_openinference.
    """

    __slots__ = ("scope", "attribute", "marker", "suffix")

    def __init__(self, scope: str, attribute: str = "", marker: str = "", suffix: str = "") -> None:
        self.scope, self.attribute, self.marker, self.suffix = scope, attribute, marker, suffix

    def name_of(self, span_name: str, attrs: dict) -> str | None:
        """The agent name this span's name gives, or None."""
        if self.marker:
            value = attrs.get(self.attribute)
            if isinstance(value, str) and self.marker in value:
                return None
        if self.suffix:
            if not span_name.endswith(self.suffix):
                return None
            span_name = span_name[:-len(self.suffix)]
        return span_name or None


#: scope name -> its rule (agent spans only)
SPAN_NAME_AGENTS: dict[str, SpanNameAgent] = {
    rule.scope: rule for rule in (
        SpanNameAgent("openinference.instrumentation.langchain", attribute="metadata", marker='"langgraph_node"'),
        SpanNameAgent("openinference.instrumentation.smolagents", suffix=".run"),
    )
}

#: LLM-kind spans that are not requests, by scope: span-name suffixes. OpenInference's LlamaIndex
#: instrumentation marks ``OpenAI._prepare_chat_with_tools`` (building the request) as an LLM span
#: beside the span of the request itself (recorded in tests/golden/frameworks/llamaindex_openinference).
NOT_LLM_CALLS: dict[str, tuple[str, ...]] = {
    "openinference.instrumentation.llama_index": ("._prepare_chat_with_tools",),
}
TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name")
#: span-name prefixes stripped to get a tool name when no attribute names it
#: (OTel GenAI ``execute_tool {tool}``, MCP ``tools/call {tool}``)
TOOL_SPAN_NAME_PREFIXES = ("execute_tool", "tools/call")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
#: The OTel GenAI compatibility metrics keep request and response model apart.
REQUEST_MODEL_KEYS = ("gen_ai.request.model",)
RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "llm.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
SERVICE_NAME = "service.name"

# --- Token usage (counted on LLM-call spans only) ----------------------------

#: token type -> attribute keys. Cache types are parts of ``input`` and reasoning is part of
#: ``output``, as the GenAI conventions define them (``gen_ai.usage.reasoning.output_tokens``
#: "SHOULD be included in gen_ai.usage.output_tokens"); OpenInference's
#: ``completion_details.reasoning`` and OpenLLMetry's ``reasoning_tokens`` likewise.
TOKEN_KEYS: dict[str, tuple[str, ...]] = {
    "input": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cache_read": (
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_read_input_tokens",
    ),
    "cache_write": (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning": (
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
        "gen_ai.usage.reasoning_tokens",
    ),
}
#: Cost in US dollars of one LLM call.
COST_KEYS = ("llm.cost.total", "gen_ai.usage.cost")

# --- Errors ------------------------------------------------------------------

ERROR_TYPE = "error.type"
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
ERROR_TYPE_FALLBACK = "_OTHER"

# --- Evaluation results (read by evaluations/) -----------------------------------

#: OTel GenAI ``gen_ai.evaluation.result`` (model/gen-ai/events.yaml): an event, i.e. a log record whose
#: ``event_name`` (older SDKs: attribute ``event.name``) is this, or a span event of this name on the
#: evaluated span
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVENT_NAME_ATTRIBUTE = "event.name"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
#: what is read of an evaluation result: ``gen_ai.evaluation.explanation`` (content) is never decoded
EVALUATION_KEYS: frozenset[str] = frozenset({EVALUATION_NAME, EVALUATION_SCORE, EVALUATION_LABEL, ERROR_TYPE})

# --- Sessions and agentprom's own convention (read by sessions/) ------------

SESSION_KEYS = (
    "agent.session.id",
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
)

# --- Streaming and finish reasons (LLM-call spans) -----------------------------------------

#: whether the request was streamed (a bool): OTel GenAI, OpenLIT's older spelling, OpenLLMetry
STREAMING_KEYS = ("gen_ai.request.stream", "gen_ai.request.is_stream", "llm.is_streaming", "gen_ai.is_streaming")
#: time to the first chunk or token, in seconds: OTel GenAI's span attribute, then the one OpenLIT
#: and Strands write under the server metric's name (Strands in milliseconds: TTFT_MILLISECONDS_SCOPES)
TTFT_KEYS = ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token")
#: instrumentation scopes that write ``gen_ai.server.time_to_first_token`` in milliseconds
TTFT_MILLISECONDS_SCOPES = frozenset({"strands.telemetry.tracer"})
#: OpenInference marks the first streamed chunk with a span event of this name (no attributes)
FIRST_TOKEN_EVENT = "First Token Stream Event"
#: mean time between output chunks or tokens, in seconds (OpenLIT)
TPOT_KEYS = ("gen_ai.server.time_per_output_token",)
#: why the model stopped: OTel GenAI (a string array), OpenInference, OpenLLMetry's first completion
FINISH_REASON_KEYS = ("gen_ai.response.finish_reasons", "llm.finish_reason", "gen_ai.completion.0.finish_reason")
#: attributes whose array values the decoders keep (as a tuple of at most ``MAX_ARRAY_STRINGS`` strings)
STRING_ARRAY_KEYS = frozenset({"gen_ai.response.finish_reasons"})
MAX_ARRAY_STRINGS = 16

# --- Guardrails ------------------------------------------------------------------------------

#: a guardrail check span: OTel GenAI's proposed ``apply_guardrail`` operation (not yet a released
#: convention), OpenInference's ``GUARDRAIL`` span kind, or a span carrying a guardrail name
GUARDRAIL_OPERATION = "apply_guardrail"
GUARDRAIL_SPAN_KIND = "GUARDRAIL"
#: the guardrail's name: OpenLLMetry (traceloop-sdk guardrails), the OTel proposal; else the span name
GUARDRAIL_NAME_KEYS = ("gen_ai.guardrail.name", "gen_ai.guardrail.component.name")
#: the verdict, kept as the provider writes it (OpenLLMetry: PASSED / FAILED; the OTel proposal's result)
GUARDRAIL_OUTCOME_KEYS = ("gen_ai.guardrail.status", "gen_ai.guardrail.result.type")
GUARDRAIL_KEYS = frozenset((*GUARDRAIL_NAME_KEYS, *GUARDRAIL_OUTCOME_KEYS))

#: ``gen_ai.operation.name`` of a framework's agent-loop cycle span (one reasoning cycle of a run)
LOOP_CYCLE_OPERATIONS = frozenset({"execute_event_loop_cycle"})

#: agentprom's own span attributes (documented in docs/conventions.md).
OWN_PREFIX = "agent."
OWN_SESSION_ID = "agent.session.id"
OWN_SPAN_KIND = "agent.span.kind"
OWN_SPAN_KIND_SESSION = "session"
OWN_SESSION_STATUS = "agent.session.status"
OWN_PHASE_NAME = "agent.phase.name"
OWN_PHASE_ID = "agent.phase.id"
OWN_MEMORY_OPERATION = "agent.memory.operation"
OWN_CONTEXT_USED = "agent.context.tokens_used"
OWN_CONTEXT_AVAILABLE = "agent.context.tokens_available"
OWN_RETRY_ATTEMPT = "agent.retry.attempt"
OWN_ESCALATED = "agent.escalated"
#: span event name -> what it counts
OWN_EVENT_CHECKPOINT = "agent.checkpoint"
OWN_EVENT_CONTEXT_RESET = "agent.context_reset"
OWN_EVENT_MEMORY = {"agent.memory.read": "read", "agent.memory.write": "write"}
#: OTel HTTP client spans: resends after the first try (0 = first try).
HTTP_RESEND_COUNT = "http.request.resend_count"

# --- What the decoder keeps --------------------------------------------------


def _wanted_keys() -> frozenset[str]:
    keys: set[str] = {
        TRACELOOP_SPAN_KIND,
        OPENINFERENCE_SPAN_KIND,
        GENAI_OPERATION,
        MCP_METHOD,
        LLM_REQUEST_TYPE,
        ENTITY_NAME,
        ERROR_TYPE,
        *(rule.attribute for rule in SPAN_NAME_AGENTS.values() if rule.attribute),
        *(key for _kind, _value, key in AGENT_SPAN_NAME_KEYS),
        *AGENT_NAME_KEYS,
        *TOOL_NAME_KEYS,
        *MODEL_KEYS,
        *PROVIDER_KEYS,
        *COST_KEYS,
        *SESSION_KEYS,
        HTTP_RESEND_COUNT,
        *STREAMING_KEYS,
        *TTFT_KEYS,
        *TPOT_KEYS,
        *FINISH_REASON_KEYS,
        *GUARDRAIL_KEYS,
    }
    for spellings in TOKEN_KEYS.values():
        keys.update(spellings)
    return frozenset(keys)


#: Span attribute keys the decoder extracts; every other attribute is skipped
#: without decoding its value (the attribute walk is the hot path). Keys under
#: ``OWN_PREFIX`` are always kept.
WANTED_KEYS: frozenset[str] = _wanted_keys()
#: Resource attribute keys the decoder extracts.
WANTED_RESOURCE_KEYS: frozenset[str] = frozenset({SERVICE_NAME, "service.namespace", "service.instance.id"})
