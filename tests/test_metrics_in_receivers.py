"""OTLP metrics in over the real receivers: SDK exporters, GenAI streams, exemplars, bad input, limits."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from agentprom.clock import ManualClock
from agentprom.metrics.catalog import doubling
from agentprom.receiver.otlp_grpc import METRICS_SERVICE
from tests.otel_metrics import otlp_meter_provider

DURATION_BUCKETS = doubling(0.01, 14)
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 4 16 ... 67108864 (the OTel GenAI gen_ai.client.token.usage buckets)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if v)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gauge_request(name: str, value: float, **labels) -> dict:
    return {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": name, "gauge": {"dataPoints": [{
        "timeUnixNano": "1700000000000000000", "asDouble": value,
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in labels.items()],
    }]}}]}]}]}


def post_json(sidecar, document, headers=None) -> tuple[int, dict, bytes]:
    return sidecar.post("/v1/metrics", json.dumps(document).encode(),
                        {"Content-Type": "application/json", **(headers or {})})


# -- GenAI metrics as OpenLIT (and the OTel GenAI conventions) emit them --------------

def _record_openlit_stream(provider) -> None:
    meter = provider.get_meter("openlit.otel.metrics", "1.30.0")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                    description="Measures number of input and output tokens used")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                      description="GenAI operation duration")
    cost = meter.create_histogram("gen_ai.usage.cost", unit="USD",
                                  description="The distribution of GenAI request costs.")
    requests = meter.create_counter("gen_ai.requests", unit="1", description="Number of requests to GenAI")
    base = {"gen_ai.system": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "server.address": "api.openai.com", "server.port": 443,
            "service.name": "openlit-agent", "deployment.environment": "dev"}
    for prompt, completion, seconds in ((120, 30, 0.7), (2000, 150, 3.2), (15, 4, 0.05)):
        tokens.record(prompt, {**base, "gen_ai.token.type": "input"})
        tokens.record(completion, {**base, "gen_ai.token.type": "output"})
        duration.record(seconds, base)
        cost.record(0.0005, base)
        requests.add(1, base)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_openlit_style_genai_stream_becomes_gen_ai_metrics(sidecar, promtool, protocol):
    import subprocess

    views = [
        View(instrument_name="gen_ai.client.token.usage",
             aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
        View(instrument_name="gen_ai.client.operation.duration",
             aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)),
    ]
    endpoint = sidecar.grpc_address if protocol == "grpc" else sidecar.http_url
    with otlp_meter_provider(endpoint, protocol, Resource.create({"service.name": "openlit-agent"}),
                             views=views) as provider:
        _record_openlit_stream(provider)
        assert provider.force_flush()

    text = sidecar.scrape()
    got = samples(text)
    scope = {("otel_scope_name", "openlit.otel.metrics"), ("otel_scope_version", "1.30.0")}
    labels = scope | {("gen_ai_system", "openai"), ("gen_ai_operation_name", "chat"),
                      ("gen_ai_request_model", "gpt-4o-mini"), ("gen_ai_response_model", "gpt-4o-mini-2024-07-18"),
                      ("server_address", "api.openai.com"), ("server_port", "443"),
                      ("service_name", "openlit-agent"), ("deployment_environment", "dev")}
    inputs = frozenset(labels | {("gen_ai_token_type", "input")})
    outputs = frozenset(labels | {("gen_ai_token_type", "output")})
    assert got[("gen_ai_client_token_usage_count", inputs)] == 3
    assert got[("gen_ai_client_token_usage_sum", inputs)] == 2135
    assert got[("gen_ai_client_token_usage_sum", outputs)] == 184
    assert got[("gen_ai_client_token_usage_bucket", inputs | {("le", "16.0")})] == 1
    assert got[("gen_ai_client_token_usage_bucket", inputs | {("le", "256.0")})] == 2
    token_bounds = sorted(float(dict(k)["le"]) for (name, k) in got if name == "gen_ai_client_token_usage_bucket"
                          and frozenset(kv for kv in k if kv[0] != "le") == inputs)
    assert token_bounds == sorted(TOKEN_BUCKETS + (float("inf"),))
    duration = frozenset(labels)
    assert got[("gen_ai_client_operation_duration_seconds_count", duration)] == 3
    assert got[("gen_ai_client_operation_duration_seconds_bucket", duration | {("le", "0.08")})] == 1
    assert got[("gen_ai_client_operation_duration_seconds_bucket", duration | {("le", "5.12")})] == 3
    assert got[("gen_ai_usage_cost_USD_count", duration)] == 3
    assert got[("gen_ai_requests_total", duration)] == 3
    assert "# TYPE gen_ai_client_token_usage histogram" in text
    assert "# HELP gen_ai_client_operation_duration_seconds GenAI operation duration" in text
    # 5 points, exported by the flush and again by the final export at shutdown
    assert sidecar.value("agentprom_metric_points_received_total", transport=protocol) == 10

    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr.decode()


def test_sdk_exemplars_reach_openmetrics_only(sidecar):
    tracer = TracerProvider().get_tracer("t")
    with otlp_meter_provider(sidecar.grpc_address) as provider:
        meter = provider.get_meter("agent")
        histogram = meter.create_histogram("tool.duration", unit="s")
        counter = meter.create_counter("tool.calls")
        with tracer.start_as_current_span("execute_tool search") as span:
            histogram.record(0.42)
            counter.add(1)
            context = span.get_span_context()
        assert provider.force_flush()
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    openmetrics = sidecar.scrape(openmetrics=True)
    exemplar = f'# {{trace_id="{trace_id}",span_id="{span_id}"}} 0.42'
    bucket = next(line for line in openmetrics.splitlines() if line.startswith('tool_duration_seconds_bucket{')
                  and 'le="5.0"' in line)  # the SDK's default bounds: 0, 5, 10, ...
    assert exemplar in bucket
    assert f'tool_calls_total{{otel_scope_name="agent"}} 1 # {{trace_id="{trace_id}",span_id="{span_id}"}} 1' \
        in openmetrics
    assert trace_id not in sidecar.scrape()  # never in the Prometheus text format


def test_observable_instruments_and_delta_over_http_gzip(sidecar):
    from opentelemetry.exporter.otlp.proto.http import Compression

    state = {"value": 1.0}

    def callback(options):
        yield Observation(state["value"], {"pool": "main"})

    with otlp_meter_provider(sidecar.http_url, "http", temporality="delta", compression=Compression.Gzip) as provider:
        meter = provider.get_meter("agent")
        meter.create_observable_up_down_counter("pool.size", [callback])
        counter = meter.create_counter("jobs")
        for n in range(3):
            state["value"] = 10.0 * (n + 1)
            counter.add(2)
            assert provider.force_flush()
    got = samples(sidecar.scrape())
    assert got[("pool_size", frozenset({("pool", "main"), ("otel_scope_name", "agent")}))] == 30
    assert got[("jobs_total", frozenset({("otel_scope_name", "agent")}))] == 6


# -- bad input: the specified status, and nothing counted before is disturbed ------------

def test_bad_http_input_gets_its_status_and_keeps_earlier_counts(make_sidecar):
    sidecar = make_sidecar({"server": {"max_request_bytes": 4096}})
    assert post_json(sidecar, gauge_request("queue.depth", 7, queue="a"))[0] == 200
    before = sidecar.scrape()
    assert 'queue_depth{queue="a"} 7' in before

    good = ExportMetricsServiceRequest()
    metric = good.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth")
    metric.gauge.data_points.add(as_double=9, time_unix_nano=1)
    truncated = good.SerializeToString()[:-3]
    status, headers, body = sidecar.post("/v1/metrics", truncated, {"Content-Type": "application/x-protobuf"})
    assert status == 400
    assert headers["Content-Type"] == "application/x-protobuf"
    assert "ExportMetricsServiceRequest" in Status.FromString(body).message

    status, headers, body = sidecar.post("/v1/metrics", b'{"resourceMetrics": [', {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"].startswith("invalid JSON")

    status, _, body = post_json(sidecar, {"resourceMetrics": [{"scopeMetrics": {"metrics": []}}]})
    assert status == 400
    assert json.loads(body)["message"] == "resourceMetrics[0].scopeMetrics: expected an array, got dict"

    status, _, body = sidecar.post("/v1/metrics", b"x", {"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type" in json.loads(body)["message"]
    assert "text/plain" not in json.loads(body)["message"]  # names the header, never echoes its value

    big = json.dumps(gauge_request("queue.depth", 1, queue="x" * 5000)).encode()
    assert sidecar.post("/v1/metrics", big, {"Content-Type": "application/json"})[0] == 413
    bomb = gzip.compress(b" " * 100_000)
    assert sidecar.post("/v1/metrics", bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"})[0] == 413
    status, _, _ = sidecar.post("/v1/metrics", b"not gzip", {"Content-Type": "application/json",
                                                            "Content-Encoding": "gzip"})
    assert status == 400
    assert sidecar.post("/v1/metrics", b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"})[0] == 415

    after = sidecar.scrape()
    assert 'queue_depth{queue="a"} 7' in after and "queue_depth{queue=\"x" not in after
    for reason, count in (("decode_error", 4), ("unsupported_media_type", 1), ("too_large", 2),
                          ("unsupported_encoding", 1)):
        assert sidecar.value("agentprom_requests_refused_total", transport="http", reason=reason) == count, reason


def test_bad_grpc_input_gets_its_status(make_sidecar):
    sidecar = make_sidecar({"server": {"max_request_bytes": 4096}})
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        export = channel.unary_unary(f"/{METRICS_SERVICE}/Export")
        with pytest.raises(grpc.RpcError) as error:
            export(b"\x0a\xff\xff\xff", timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "ExportMetricsServiceRequest" in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            export(b"\x0a" + b"\x00" * 10_000, timeout=10)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_partial_success_reports_rejected_data_points(sidecar):
    request = gauge_request("queue.depth", 3, queue="ok")
    metrics = request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    metrics.append({"name": "jobs", "sum": {"aggregationTemporality": 0,
                                            "dataPoints": [{"asInt": "1"}, {"asInt": "2"}]}})
    status, _, body = post_json(sidecar, request)
    assert status == 200
    assert json.loads(body) == {"partialSuccess": {
        "rejectedDataPoints": "2", "errorMessage": "2 data point(s) rejected: unspecified_temporality"}}

    message = ExportMetricsServiceRequest()
    metric = message.resource_metrics.add().scope_metrics.add().metrics.add(name="agent.invocations")
    metric.sum.aggregation_temporality = 2
    metric.sum.is_monotonic = True
    metric.sum.data_points.add(as_int=1, time_unix_nano=1)
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        raw = channel.unary_unary(f"/{METRICS_SERVICE}/Export")(message.SerializeToString(), timeout=10)
    response = ExportMetricsServiceResponse.FromString(raw)
    assert response.partial_success.rejected_data_points == 1
    assert response.partial_success.error_message == "1 data point(s) rejected: catalog_clash"
    assert 'queue_depth{queue="ok"} 3' in sidecar.scrape()
    assert sidecar.value("agentprom_metric_points_dropped_total", reason="catalog_clash") == 1
    assert sidecar.value("agentprom_metric_points_received_total", transport="grpc") == 1
    assert sidecar.value("agentprom_metric_points_received_total", transport="http") == 3


def test_disabled_metrics_in_refuses_both_transports(make_sidecar):
    sidecar = make_sidecar({"metrics_in": {"enabled": False}})
    assert post_json(sidecar, gauge_request("queue.depth", 1))[0] == 404
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(f"/{METRICS_SERVICE}/Export")(b"", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_incoming_series_expire_on_their_own_ttl(make_sidecar):
    clock = ManualClock()
    sidecar = make_sidecar({"metrics_in": {"series_ttl_seconds": 60}}, clock)
    assert post_json(sidecar, gauge_request("queue.depth", 1, queue="a"))[0] == 200
    clock.advance(59)
    assert 'queue_depth{queue="a"} 1' in sidecar.scrape()
    clock.advance(2)
    text = sidecar.scrape()
    assert not [line for line in text.splitlines() if line.startswith("queue_depth")]
    # incoming metrics are metric="otlp_in" in the self-metrics
    assert sidecar.value("agentprom_series_expired_total", metric="otlp_in") == 1
    assert "queue_depth" not in sidecar.call(lambda: sidecar.app.metrics_translator.families.families)
    assert 'agentprom_active_series{metric="queue_depth"}' not in text
    assert 'agentprom_active_series{metric="otlp_in"} 0\n' in text
