"""End to end: the real OpenTelemetry SDK exports to the real sidecar over gRPC and HTTP."""

from __future__ import annotations

import pytest
from opentelemetry.trace import Status, StatusCode

from tests.otel import tracer

#: the receivers' contract holds with decode workers as in one process (receiver/decode_workers.py)
pytestmark = pytest.mark.parametrize("workers", [1, 2], indirect=True)


def _emit_agent_run(t) -> None:
    with t.start_as_current_span(
        "invoke_agent planner",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                    # aggregated usage on the agent span must not be counted again
                    "gen_ai.usage.input_tokens": 999},
    ):
        with t.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.agent.name": "planner",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 100,
            },
        ):
            pass
        with t.start_as_current_span(
            "execute_tool web_search",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "planner"},
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "timed out"))
            span.set_attribute("error.type", "TimeoutError")
        with t.start_as_current_span(
            "execute_tool web_search",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "planner"},
        ):
            pass


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_export_produces_agent_metrics(sidecar, protocol):
    endpoint = sidecar.grpc_address if protocol == "grpc" else sidecar.http_url
    with tracer(endpoint, protocol) as t:
        _emit_agent_run(t)
        _emit_agent_run(t)

    assert sidecar.value("agentprom_spans_received_total", transport=protocol) == 8
    assert sidecar.value("agent_invocations_total", agent="planner", status="ok") == 2
    llm = dict(agent="planner", provider="openai", model="gpt-4o-2024-08-06")
    assert sidecar.value("agent_llm_calls_total", **llm, operation="chat", status="ok") == 2
    assert sidecar.value("agent_tokens_total", **llm, type="input") == 240  # not 240 + 2 * 999
    assert sidecar.value("agent_tokens_total", **llm, type="output") == 60
    assert sidecar.value("agent_tokens_total", **llm, type="cache_read") == 200
    assert sidecar.value("agent_tool_calls_total", agent="planner", tool="web_search", status="ok") == 2
    assert sidecar.value("agent_tool_calls_total", agent="planner", tool="web_search", status="error") == 2
    assert sidecar.value("agent_tool_errors_total", agent="planner", tool="web_search", error_type="TimeoutError") == 2
    assert sidecar.value("agent_errors_total", agent="planner", component="tool", error_type="TimeoutError") == 2

    text = sidecar.scrape()
    assert 'agent_invocations_total{agent="planner",status="ok"} 2\n' in text
    assert 'agent_tool_duration_seconds_count{agent="planner",tool="web_search"} 4\n' in text
    assert "process_resident_memory_bytes" in text
    assert 'agentprom_build_info{version="' in text


def test_sdk_gzip_over_http_and_grpc(sidecar):
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    with tracer(sidecar.grpc_address, "grpc", compression=GrpcCompression.Gzip) as t:
        _emit_agent_run(t)
    with tracer(sidecar.http_url, "http", compression=HttpCompression.Gzip) as t:
        _emit_agent_run(t)
    assert sidecar.value("agent_invocations_total", agent="planner", status="ok") == 2
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 4
    assert sidecar.value("agentprom_spans_received_total", transport="http") == 4
