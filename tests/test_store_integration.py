"""The store's features through a real sidecar: SDK export in, the real /metrics body out, checked
by promtool (text) and the strict OpenMetrics parser, for several configurations."""

from __future__ import annotations

import pytest

from agentprom.clock import ManualClock
from tests.exposition import openmetrics_families, promtool_check
from tests.otel import tracer

CONFIGS = {
    "defaults": {},
    "bounded": {"store": {"max_series_per_metric": 3, "max_label_value_length": 12,
                          "label_allow": {"tool": "[a-z_]+"}}},
    "compat": {"compat": {"genai_metrics": True, "span_metrics": True}},
    "no_exemplars": {"store": {"exemplars": False}, "compat": {"span_metrics": True}},
}


def _emit(t, tools: list[str]) -> None:
    with t.start_as_current_span("invoke_agent planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
        with t.start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.agent.name": "planner", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}):
            pass
        for tool in tools:
            with t.start_as_current_span(f"execute_tool {tool}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "planner", "gen_ai.tool.name": tool}):
                pass


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_real_scrape_is_valid_in_both_formats(make_sidecar, promtool, name):
    sidecar = make_sidecar(CONFIGS[name])
    # bounded: web_search, the truncated long name and "other" (Weird Tool!, t1, t2, t3: outside
    # the allow pattern) take the 3 slots; calculator arrives after the limit and overflows
    tools = ["web_search", "a_very_long_tool_name_indeed", "Weird Tool!", "calculator", "t1", "t2", "t3"]
    with tracer(sidecar.grpc_address) as t:
        _emit(t, tools)
    text = sidecar.scrape()
    promtool_check(promtool, text)
    om = sidecar.scrape(openmetrics=True)
    families = openmetrics_families(om)
    exemplars = [s for f in families.values() for s in f.samples if s.exemplar is not None]
    assert "trace_id" not in text
    if name == "no_exemplars":
        assert not exemplars
    else:
        assert exemplars and all(len(s.exemplar.labels["trace_id"]) == 32 for s in exemplars)
    if name == "bounded":
        assert 'agent_tool_calls_total{agent="",tool="",status="",otel_metric_overflow="true"} 1\n' in text
        assert 'agent_tool_calls_total{agent="planner",tool="other",status="ok"} 4\n' in text
        assert 'tool="a_very_long_"' in text and "a_very_long_t" not in text
    if name == "compat":
        assert "gen_ai_client_token_usage_bucket" in text and "traces_span_metrics_calls_total" in text
    elif name != "no_exemplars":
        assert "traces_span_metrics" not in text and "gen_ai_client" not in text


def test_expiry_on_a_running_sidecar_with_a_manual_clock(make_sidecar):
    clock = ManualClock()
    sidecar = make_sidecar({"store": {"series_ttl_seconds": 60}}, clock)
    with tracer(sidecar.grpc_address) as t:
        _emit(t, ["web_search"])
    assert 'tool="web_search"' in sidecar.scrape()
    clock.advance(61)
    text = sidecar.scrape()  # every scrape expires first
    assert 'tool="web_search"' not in text
    assert 'agentprom_series_expired_total{metric="agent_tool_calls_total"} 1\n' in text
    assert 'agentprom_active_series{metric="agent_tool_calls_total"} 0\n' in text
