"""Classification per convention: kind, labels, tokens, errors."""

from __future__ import annotations

import math

import pytest

from agentprom.conventions.classify import Classified, classify, tool_from_span_name
from agentprom.model import STATUS_ERROR, STATUS_OK, Kind, Span


def make(attrs=None, name="span", status=STATUS_OK, resource=None, exception_type=None) -> Span:
    return Span(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=b"", name=name, kind=1,
        start_ns=0, end_ns=1_000_000, status_code=status, attributes=attrs or {},
        resource={"service.name": "svc"} if resource is None else resource, exception_type=exception_type,
    )


@pytest.mark.parametrize(
    ("attrs", "kind", "operation"),
    [
        ({"gen_ai.operation.name": "invoke_agent"}, Kind.AGENT, ""),
        # building an agent, or a workflow around agents, is not an agent invocation
        ({"gen_ai.operation.name": "invoke_workflow"}, Kind.OTHER, ""),
        ({"gen_ai.operation.name": "create_agent"}, Kind.OTHER, ""),
        ({"gen_ai.operation.name": "create_agent", "gen_ai.request.model": "m"}, Kind.OTHER, ""),
        ({"gen_ai.operation.name": "execute_tool"}, Kind.TOOL, ""),
        ({"gen_ai.operation.name": "chat"}, Kind.LLM, "chat"),
        ({"gen_ai.operation.name": "text_completion"}, Kind.LLM, "text_completion"),
        ({"gen_ai.operation.name": "text_completions"}, Kind.LLM, "text_completion"),
        ({"gen_ai.operation.name": "generate_content"}, Kind.LLM, "generate_content"),
        ({"gen_ai.operation.name": "embeddings"}, Kind.LLM, "embeddings"),
        ({"gen_ai.operation.name": "execute_task"}, Kind.OTHER, ""),
        ({"gen_ai.operation.name": "invoke_swarm", "gen_ai.request.model": "m"}, Kind.LLM, "other"),
        ({"openinference.span.kind": "AGENT"}, Kind.AGENT, ""),
        ({"openinference.span.kind": "TOOL"}, Kind.TOOL, ""),
        ({"openinference.span.kind": "LLM"}, Kind.LLM, "chat"),
        ({"openinference.span.kind": "EMBEDDING"}, Kind.LLM, "embeddings"),
        ({"openinference.span.kind": "CHAIN"}, Kind.OTHER, ""),
        ({"openinference.span.kind": "RETRIEVER"}, Kind.OTHER, ""),
        ({"traceloop.span.kind": "agent"}, Kind.AGENT, ""),
        ({"traceloop.span.kind": "tool"}, Kind.TOOL, ""),
        ({"traceloop.span.kind": "workflow"}, Kind.OTHER, ""),
        # OpenLLMetry's CrewAI pattern: a task/workflow is never an agent invocation
        ({"traceloop.span.kind": "task", "gen_ai.operation.name": "invoke_agent"}, Kind.OTHER, ""),
        ({"traceloop.span.kind": "workflow", "gen_ai.operation.name": "invoke_agent"}, Kind.OTHER, ""),
        ({"llm.request.type": "chat"}, Kind.LLM, "chat"),
        ({"llm.request.type": "completion"}, Kind.LLM, "text_completion"),
        ({"llm.request.type": "rerank"}, Kind.LLM, "other"),
        ({"mcp.method.name": "tools/call"}, Kind.TOOL, ""),
        ({"mcp.method.name": "tools/list"}, Kind.OTHER, ""),
        ({"http.method": "GET"}, Kind.OTHER, ""),
        ({}, Kind.OTHER, ""),
    ],
)
def test_kind_and_operation(attrs, kind, operation):
    c = classify(make(attrs))
    assert c.kind is kind
    assert c.operation == operation


def test_agent_label_sources_in_priority_order():
    assert classify(make({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a", "agent.name": "b"})).agent == "a"
    assert classify(make({"openinference.span.kind": "AGENT", "agent.name": "b"})).agent == "b"
    # traceloop.entity.name names the agent on agent spans only
    assert classify(make({"traceloop.span.kind": "agent", "traceloop.entity.name": "booker"})).agent == "booker"
    assert classify(make({"traceloop.span.kind": "tool", "traceloop.entity.name": "find"})).agent == "svc"
    assert classify(make({"gen_ai.operation.name": "chat"})).agent == "svc"
    assert classify(make({"gen_ai.operation.name": "chat"}, resource={})).agent == "unknown"


def test_tool_label_sources():
    tool = {"gen_ai.operation.name": "execute_tool"}
    assert classify(make({**tool, "gen_ai.tool.name": "a", "tool.name": "b"})).tool == "a"
    assert classify(make({"openinference.span.kind": "TOOL", "tool.name": "b"})).tool == "b"
    assert classify(make({"traceloop.span.kind": "tool", "traceloop.entity.name": "find"})).tool == "find"
    assert classify(make(tool, name="execute_tool web_search")).tool == "web_search"
    assert classify(make(tool, name="lookup")).tool == "lookup"
    assert tool_from_span_name("execute_tool") == "unknown"
    assert tool_from_span_name("tools/call read_file") == "read_file"
    assert tool_from_span_name("execute_toolbox") == "execute_toolbox"


def test_model_and_provider_fallbacks():
    llm = {"gen_ai.operation.name": "chat"}
    c = classify(make({**llm, "gen_ai.response.model": "r", "gen_ai.request.model": "q", "llm.model_name": "l"}))
    assert c.model == "r"
    assert classify(make({**llm, "gen_ai.request.model": "q", "llm.model_name": "l"})).model == "q"
    assert classify(make({"openinference.span.kind": "LLM", "llm.model_name": "l"})).model == "l"
    assert classify(make(llm)).model == "unknown"
    assert classify(make({**llm, "gen_ai.provider.name": "p", "gen_ai.system": "s"})).provider == "p"
    assert classify(make({**llm, "gen_ai.system": "s"})).provider == "s"
    assert classify(make({"openinference.span.kind": "LLM", "llm.provider": "x", "llm.system": "y"})).provider == "x"
    assert classify(make({"openinference.span.kind": "LLM", "llm.system": "y"})).provider == "y"
    assert classify(make(llm)).provider == "unknown"


def test_tokens_read_old_and_new_spellings_on_llm_spans_only():
    new = classify(make({
        "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 4, "gen_ai.usage.cache_creation.input_tokens": 2,
    }))
    assert new.tokens == {"input": 10, "output": 3, "cache_read": 4, "cache_write": 2}
    old = classify(make({
        "gen_ai.operation.name": "chat", "gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 1,
        "gen_ai.usage.cache_write.input_tokens": 5,
    }))
    assert old.tokens == {"input": 7, "output": 1, "cache_write": 5}
    oi = classify(make({
        "openinference.span.kind": "LLM", "llm.token_count.prompt": 9, "llm.token_count.completion": 2,
        "llm.token_count.prompt_details.cache_read": 1, "llm.token_count.prompt_details.cache_write": 3,
    }))
    assert oi.tokens == {"input": 9, "output": 2, "cache_read": 1, "cache_write": 3}
    agent = classify(make({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 99}))
    assert agent.tokens == {}


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, -math.inf, "lots", True, None])
def test_bad_token_counts_are_ignored(bad):
    c = classify(make({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": bad, "gen_ai.usage.output_tokens": 5}))
    assert c.tokens == {"output": 5}


def test_numeric_strings_and_floats_are_token_counts():
    c = classify(make({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": 3.0}))
    assert c.tokens == {"input": 12, "output": 3}


def test_cost():
    assert classify(make({"openinference.span.kind": "LLM", "llm.cost.total": 0.5})).cost == 0.5
    assert classify(make({"gen_ai.operation.name": "chat", "gen_ai.usage.cost": "0.25"})).cost == 0.25
    assert classify(make({"gen_ai.operation.name": "chat", "gen_ai.usage.cost": math.nan})).cost is None
    assert classify(make({"gen_ai.operation.name": "chat", "gen_ai.usage.cost": -1})).cost is None


def test_error_type_sources():
    tool = {"gen_ai.operation.name": "execute_tool"}
    assert classify(make({**tool, "error.type": "Timeout"}, status=STATUS_ERROR, exception_type="X")).error_type == "Timeout"
    assert classify(make(tool, status=STATUS_ERROR, exception_type="ValueError")).error_type == "ValueError"
    assert classify(make(tool, status=STATUS_ERROR)).error_type == "_OTHER"
    ok = classify(make({**tool, "error.type": "Timeout"}))
    assert ok.ok and ok.error_type == ""


def test_error_type_is_the_last_dotted_component_in_every_convention():
    tool = {"gen_ai.operation.name": "execute_tool"}
    for raw in ("openai.InternalServerError", "InternalServerError",
                "langchain_openai.chat_models.base.InternalServerError"):
        assert classify(make({**tool, "error.type": raw}, status=STATUS_ERROR)).error_type == "InternalServerError"
        assert classify(make(tool, status=STATUS_ERROR, exception_type=raw)).error_type == "InternalServerError"
    assert classify(make({**tool, "error.type": "trailing."}, status=STATUS_ERROR)).error_type == "trailing."
    assert classify(make({**tool, "error.type": "_OTHER"}, status=STATUS_ERROR)).error_type == "_OTHER"


def test_own_agent_names_by_convention():
    def agent(attrs, name="span", scope=""):
        span = make(attrs, name=name)
        span.scope_name = scope
        c = classify(span)
        return c.agent, c.named

    assert agent({"gen_ai.operation.name": "chat", "gen_ai.agent.name": "a"}) == ("a", True)
    assert agent({"openinference.span.kind": "AGENT", "agent.name": "b"}) == ("b", True)
    assert agent({"traceloop.span.kind": "agent", "traceloop.entity.name": "c"}) == ("c", True)
    # the entity name of a tool names the tool, not an agent
    assert agent({"traceloop.span.kind": "tool", "traceloop.entity.name": "t"}) == ("svc", False)
    # CrewAI via OpenInference: the role only in graph.node.id
    assert agent({"openinference.span.kind": "AGENT", "graph.node.id": "Weather researcher"}) == (
        "Weather researcher", True)
    assert agent({"openinference.span.kind": "TOOL", "graph.node.id": "x"}) == ("svc", False)
    # OpenInference LangChain: a LangGraph graph is named by its span name, its node runs are not
    langchain = "openinference.instrumentation.langchain"
    graph = {"openinference.span.kind": "AGENT", "metadata": '{"ls_integration": "langgraph"}'}
    node = {"openinference.span.kind": "AGENT",
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 1, "langgraph_node": "agent"}'}
    assert agent(graph, "weather_agent", langchain) == ("weather_agent", True)
    assert agent(node, "agent", langchain) == ("svc", False)
    assert agent(graph, "weather_agent", "another.scope") == ("svc", False)
    assert agent({"gen_ai.operation.name": "chat"}) == ("svc", False)
    assert agent({}) == ("svc", False)


@pytest.mark.parametrize("key", [
    "gen_ai.usage.reasoning.output_tokens",  # OTel GenAI
    "llm.token_count.completion_details.reasoning",  # OpenInference
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry
])
def test_reasoning_tokens_are_their_own_type_from_the_wire_to_the_counter(key):
    """Reasoning tokens are part of output (the conventions say so): counted as type="reasoning"
    beside output, never added to it. From a protobuf request, so the decoder must keep the key."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    from agentprom.metrics.series_store import SeriesStore
    from agentprom.receiver.decode import decode_traces
    from agentprom.translator import Translator

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    span = scope.spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat m", kind=3,
                           start_time_unix_nano=1_000, end_time_unix_nano=2_000)
    for name, value in {"gen_ai.operation.name": AnyValue(string_value="chat"),
                        "gen_ai.agent.name": AnyValue(string_value="a"),
                        "gen_ai.usage.output_tokens": AnyValue(int_value=50), key: AnyValue(int_value=30)}.items():
        span.attributes.append(KeyValue(key=name, value=value))
    store = SeriesStore()
    Translator(store).consume(decode_traces(request.SerializeToString()), "grpc")
    tokens = {s.labels[-1]: s.value for s in store["agent_tokens_total"].all_series()}
    assert tokens == {"output": 50, "reasoning": 30}


def test_classified_constructor_sets_every_field_to_its_declared_default():
    """The hand-written constructor (the hot path) must agree with the fields declared: a field
    added without it would be unset, and a default changed in one place only would differ."""
    import dataclasses

    first, second = Classified(Kind.LLM, "agent", True, ""), Classified(Kind.LLM, "agent", True, "")
    assert (first.kind, first.agent, first.ok, first.error_type) == (Kind.LLM, "agent", True, "")
    for f in dataclasses.fields(Classified):
        if f.name in ("kind", "agent", "ok", "error_type"):
            continue
        declared = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(first, f.name) == declared, f.name
    assert first.tokens is not second.tokens  # each its own dict: the translator fills it per span
