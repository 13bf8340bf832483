"""The named hostile inputs of issue 7 against the real server: each gets its specified answer, and
the counts of earlier good data are unchanged afterwards."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.test_decode import SPAN, TRACE
from tests.test_receiver_errors import JSON, PROTOBUF

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def request_with(attributes: dict[str, AnyValue] | None = None, **fields) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="hostile")))
    span = rs.scope_spans.add().spans.add(**{
        "trace_id": TRACE, "span_id": SPAN, "name": "execute_tool t", "start_time_unix_nano": 1_000,
        "end_time_unix_nano": 2_000, **fields})
    attrs = {"gen_ai.operation.name": AnyValue(string_value="chat"), **(attributes or {})}
    for key, value in attrs.items():
        span.attributes.append(KeyValue(key=key, value=value))
    return request


def baseline_request() -> bytes:
    return request_with({"gen_ai.agent.name": AnyValue(string_value="baseline"),
                         "gen_ai.usage.input_tokens": AnyValue(int_value=7)}).SerializeToString()


@pytest.fixture
def guarded(make_sidecar):
    """A sidecar with earlier good data whose series must survive each hostile case unchanged."""
    sidecar = make_sidecar({"store": {"max_series_per_metric": 50}})
    assert sidecar.post("/v1/traces", baseline_request(), PROTOBUF)[0] == 200

    def baseline_lines() -> list[str]:
        return [line for line in sidecar.scrape().splitlines() if 'agent="baseline"' in line]

    before = baseline_lines()
    assert len(before) > 5
    yield sidecar
    assert baseline_lines() == before


def llm(sidecar, agent: str, model: str = "unknown") -> float:
    return sidecar.value("agent_llm_calls_total", agent=agent, provider="unknown", model=model,
                         operation="chat", status="ok")


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (``tag`` is the whole key byte)."""
    return bytes([tag]) + _VarintBytes(len(payload)) + payload


def span_request(extra_span_bytes: bytes) -> bytes:
    """``request_with()`` with raw bytes appended to its span (protobuf fields may come in any order)."""
    request = request_with()
    rs = request.resource_spans[0]
    span = rs.scope_spans[0].spans[0].SerializeToString() + extra_span_bytes
    resource = field(0x0A, rs.resource.SerializeToString()) + field(0x12, field(0x12, span))
    return field(0x0A, resource)


def test_deeply_nested_any_values(guarded):
    def nested_attribute(depth: int) -> bytes:
        value = AnyValue(string_value="leaf").SerializeToString()
        for _ in range(depth):  # AnyValue.kvlist_value(6) -> KeyValueList.values(1) -> KeyValue{key(1), value(2)}
            value = field(0x32, field(0x0A, field(0x0A, b"k") + field(0x12, value)))
        return field(0x4A, field(0x0A, b"gen_ai.agent.name") + field(0x12, value))  # Span.attributes(9)

    # within protobuf's recursion limit: accepted, the nested value is not a usable name
    assert guarded.post("/v1/traces", span_request(nested_attribute(20)), PROTOBUF)[0] == 200
    assert llm(guarded, "hostile") == 1
    # past it: the whole request is undecodable (400), not a crash
    assert guarded.post("/v1/traces", span_request(nested_attribute(1000)), PROTOBUF)[0] == 400
    nested_json = '{"kvlistValue": {"values": [{"key": "k", "value": ' * 20000 + "{}" + "}]}}" * 20000
    body = ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "gen_ai.agent.name", '
            '"value": ' + nested_json + "}]}]}]}]}")
    assert guarded.post("/v1/traces", body.encode(), JSON)[0] == 400


def test_huge_attribute_values_are_truncated_in_labels(guarded):
    huge = "A" * (8 * 1024 * 1024)
    body = request_with({"gen_ai.agent.name": AnyValue(string_value=huge),
                         "gen_ai.request.model": AnyValue(string_value=huge + "m")}).SerializeToString()
    assert guarded.post("/v1/traces", body, PROTOBUF)[0] == 200
    assert llm(guarded, "A" * 128, "A" * 128) == 1
    assert max(len(line) for line in guarded.scrape().splitlines()) < 1000


def test_a_million_attributes_on_one_span(guarded):
    # built on the wire (repeating one encoded KeyValue), since a million protobuf objects are slow to make
    kv = KeyValue(key="junk", value=AnyValue(int_value=1)).SerializeToString()
    body = span_request(field(0x4A, kv) * 1_000_000)  # Span.attributes(9), a million times
    assert len(body) > 10_000_000
    assert guarded.post("/v1/traces", body, PROTOBUF)[0] == 200
    assert llm(guarded, "hostile") == 1


def test_non_utf8_strings(guarded):
    name = "gen_ai.agent.name"
    valid = request_with({name: AnyValue(string_value="\u00e9t\u00e9")}).SerializeToString()
    broken = valid.replace("\u00e9t\u00e9".encode(), b"\xff\xfe\xfd\xfc\xfb")
    assert len(broken) == len(valid)  # same length, so every length prefix stays right
    assert guarded.post("/v1/traces", broken, PROTOBUF)[0] == 400  # proto3 strings must be UTF-8
    assert guarded.post("/v1/traces", b'{"resourceSpans": [\xff]}', JSON)[0] == 400
    # JSON can smuggle a lone surrogate: accepted, made valid UTF-8 by the decoder (U+FFFD), so /metrics,
    # the sessions and the JSONL log never meet it
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE.hex(), "spanId": SPAN.hex(), "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                       {"key": name, "value": {"stringValue": "x\ud800y"}}]}]}]}]}
    assert guarded.post("/v1/traces", json.dumps(doc).encode(), JSON)[0] == 200
    assert 'agent="x\ufffdy"' in guarded.scrape()


def test_absurd_times(guarded):
    response = guarded.post("/v1/traces", request_with(end_time_unix_nano=999).SerializeToString(), PROTOBUF)
    assert response[0] == 200  # end before start: rejected through partial success
    assert guarded.value("agentprom_spans_rejected_total", reason="end_before_start") == 1
    # the widest protobuf allows (year 2554): accepted, lands in the +Inf bucket, renders finitely
    widest = request_with(start_time_unix_nano=0, end_time_unix_nano=2**64 - 1).SerializeToString()
    assert guarded.post("/v1/traces", widest, PROTOBUF)[0] == 200
    assert 'agent_llm_duration_seconds_bucket{agent="hostile",provider="unknown",model="unknown",' \
           'operation="chat",le="+Inf"} 1' in guarded.scrape()
    # year 9999 does not fit OTLP's uint64 nanoseconds: the request is refused, naming the field
    year_9999 = str(253402300799 * 10**9)
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE.hex(), "spanId": SPAN.hex(), "startTimeUnixNano": "1", "endTimeUnixNano": year_9999}]}]}]})
    status, _headers, payload = guarded.post("/v1/traces", body.encode(), JSON)
    assert status == 400 and "endTimeUnixNano" in json.loads(payload)["message"]


def test_nan_and_infinite_token_counts_are_not_counted(guarded):
    for value in (float("nan"), float("inf"), float("-inf"), -5.0):
        body = request_with({"gen_ai.agent.name": AnyValue(string_value="nan-agent"),
                             "gen_ai.usage.input_tokens": AnyValue(double_value=value),
                             "llm.cost.total": AnyValue(double_value=value)}).SerializeToString()
        assert guarded.post("/v1/traces", body, PROTOBUF)[0] == 200
    for token in ('"NaN"', '"Infinity"', "NaN", "-Infinity", "1" + "0" * 400, '"1e999"'):
        body = ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "%s", "spanId": "%s", '
                '"startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": ['
                '{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},'
                '{"key": "gen_ai.agent.name", "value": {"stringValue": "nan-agent"}},'
                '{"key": "gen_ai.usage.input_tokens", "value": {"doubleValue": %s}}]}]}]}]}') % (
            TRACE.hex(), SPAN.hex(), token)
        assert guarded.post("/v1/traces", body.encode(), JSON)[0] in (200, 400)
    assert llm(guarded, "nan-agent") >= 4
    text = guarded.scrape()
    assert 'agent_tokens_total{agent="nan-agent"' not in text
    assert 'agent_llm_cost_usd_total{agent="nan-agent"' not in text


def test_gzip_bombs_over_http_and_grpc(make_sidecar):
    sidecar = make_sidecar({"server": {"max_request_bytes": 1024 * 1024}})
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 100_000
    assert sidecar.post("/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})[0] == 413
    big = request_with({"gen_ai.agent.name": AnyValue(string_value="z" * (16 * 1024 * 1024))})
    with grpc.insecure_channel(sidecar.grpc_address, compression=grpc.Compression.Gzip) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(EXPORT)(big.SerializeToString(), timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sidecar.post("/v1/traces", baseline_request(), PROTOBUF)[0] == 200


def test_a_new_tool_name_per_request_is_bounded(guarded):
    for i in range(300):
        body = request_with({"gen_ai.operation.name": AnyValue(string_value="execute_tool"),
                             "gen_ai.tool.name": AnyValue(string_value=f"attacker-{i}")}).SerializeToString()
        assert guarded.post("/v1/traces", body, PROTOBUF)[0] == 200
    series = [line for line in guarded.scrape().splitlines() if line.startswith("agent_tool_calls_total{")]
    assert len(series) == 51  # the limit, plus the one overflow series
    overflow = [line for line in series if 'otel_metric_overflow="true"' in line]
    assert overflow == ['agent_tool_calls_total{agent="",tool="",status="",otel_metric_overflow="true"} 250']
    assert guarded.value("agentprom_series_overflow_total", metric="agent_tool_calls_total") == 250
