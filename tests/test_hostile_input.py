"""The named hostile inputs of issue 7 against the real server: each gets its specified answer, and
the counts of earlier good data are unchanged afterwards."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.test_decode import SPAN, TRACE
from tests.runtime_api import get_json
from tests.test_jsonl import wait_for
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


def _rejected(payload: bytes) -> tuple[int, str]:
    response = ExportTraceServiceResponse.FromString(payload)
    return response.partial_success.rejected_spans, response.partial_success.error_message


def _no_infinity(text: str) -> None:
    """Every sample renders finitely (the +Inf bucket bound is a label, not a value)."""
    for line in text.splitlines():
        if not line.startswith("#"):
            value = line.rsplit(" ", 1)[-1].lower()
            assert "inf" not in value and "nan" not in value, line


def test_huge_amounts_are_refused_not_summed_to_infinity(guarded):
    """Fails on main: two costs of 1e308 summed to +Inf, and a counter at +Inf never recovers."""
    hostile = {"gen_ai.agent.name": AnyValue(string_value="spender")}
    cases = [
        {"gen_ai.usage.cost": AnyValue(double_value=1e308)},
        {"gen_ai.usage.cost": AnyValue(double_value=1e308)},
        {"llm.cost.total": AnyValue(string_value="1e300")},
        {"gen_ai.usage.input_tokens": AnyValue(int_value=2**62)},
        {"gen_ai.usage.output_tokens": AnyValue(double_value=1e300)},
        {"gen_ai.usage.cache_read.input_tokens": AnyValue(string_value="100000001")},
        {"llm.token_count.prompt_details.cache_write": AnyValue(int_value=10**12)},
    ]
    for attributes in cases:
        body = request_with({**hostile, **attributes}).SerializeToString()
        status, _headers, payload = guarded.post("/v1/traces", body, PROTOBUF)
        assert status == 200
        rejected, message = _rejected(payload)
        assert rejected == 1 and message == "1 span(s) rejected: amount_out_of_range"
    # the same over gRPC and OTLP/JSON
    with grpc.insecure_channel(guarded.grpc_address) as channel:
        payload = channel.unary_unary(EXPORT)(request_with(
            {**hostile, "gen_ai.usage.cost": AnyValue(double_value=1e308)}).SerializeToString(), timeout=30)
    assert _rejected(payload)[0] == 1
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE.hex(), "spanId": SPAN.hex(), "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                       {"key": "gen_ai.agent.name", "value": {"stringValue": "spender"}},
                       {"key": "gen_ai.usage.cost", "value": {"doubleValue": 1e308}}]}]}]}]}
    status, _headers, payload = guarded.post("/v1/traces", json.dumps(doc).encode(), JSON)
    assert status == 200
    assert json.loads(payload)["partialSuccess"] == {
        "rejectedSpans": "1", "errorMessage": "1 span(s) rejected: amount_out_of_range"}
    assert guarded.value("agentprom_spans_rejected_total", reason="amount_out_of_range") == len(cases) + 2
    text = guarded.scrape()
    assert 'agent="spender"' not in text  # not a call, not a token, not a cent
    _no_infinity(text)
    # at the bounds (limits.max_tokens_per_span, limits.max_cost_usd_per_span): counted
    body = request_with({**hostile, "gen_ai.usage.input_tokens": AnyValue(int_value=100_000_000),
                         "gen_ai.usage.cost": AnyValue(double_value=10_000.0)}).SerializeToString()
    status, _headers, payload = guarded.post("/v1/traces", body, PROTOBUF)
    assert status == 200 and _rejected(payload)[0] == 0
    assert guarded.value("agent_tokens_total", agent="spender", provider="unknown", model="unknown",
                         type="input") == 100_000_000
    assert guarded.value("agent_llm_cost_usd_total", agent="spender", provider="unknown", model="unknown") == 10_000


def test_agent_spans_with_huge_aggregated_usage_are_not_refused(guarded):
    """Usage on agent spans is never counted (it repeats the children's), so its size is no reason to refuse."""
    body = request_with({"gen_ai.operation.name": AnyValue(string_value="invoke_agent"),
                         "gen_ai.agent.name": AnyValue(string_value="aggregator"),
                         "gen_ai.usage.input_tokens": AnyValue(int_value=2**62)}).SerializeToString()
    status, _headers, payload = guarded.post("/v1/traces", body, PROTOBUF)
    assert status == 200 and _rejected(payload)[0] == 0
    assert guarded.value("agent_invocations_total", agent="aggregator", status="ok") == 1


def test_an_extreme_sampling_weight_is_refused(make_sidecar):
    """Fails on main: th:ffffffffffffff (p = 2^-56) added 7.2e16 calls, and times a cost of 1e300 an
    infinite one."""
    sidecar = make_sidecar({"sampling": {"probability_attribute": "sampling.probability"}})
    llm_labels = dict(agent="sampled", provider="unknown", model="unknown", operation="chat", status="ok")
    agent = {"gen_ai.agent.name": AnyValue(string_value="sampled")}
    kept = request_with(agent, trace_state="ot=th:c").SerializeToString()  # p = 1/4: counted as 4
    assert sidecar.post("/v1/traces", kept, PROTOBUF)[0] == 200
    hostile = [
        (request_with(agent, trace_state="ot=th:ffffffffffffff"), "sampling_weight_out_of_range"),
        (request_with({**agent, "sampling.probability": AnyValue(double_value=1e-300)}),
         "sampling_weight_out_of_range"),
        (request_with({**agent, "gen_ai.usage.cost": AnyValue(double_value=1e300)},
                      trace_state="ot=th:ffffffffffffff"), "amount_out_of_range"),
    ]
    for request, reason in hostile:
        status, _headers, payload = sidecar.post("/v1/traces", request.SerializeToString(), PROTOBUF)
        assert status == 200 and _rejected(payload) == (1, f"1 span(s) rejected: {reason}")
    assert sidecar.value("agentprom_spans_rejected_total", reason="sampling_weight_out_of_range") == 2
    assert sidecar.value("agentprom_spans_rejected_total", reason="amount_out_of_range") == 1
    assert sidecar.value("agentprom_spans_received_total", transport="http") == 4
    assert sidecar.value("agent_llm_calls_total", **llm_labels) == 4  # the earlier count, unchanged
    _no_infinity(sidecar.scrape())
    # at the bound (sampling.max_adjusted_count, default 1e6): counted
    at_bound = request_with({**agent, "sampling.probability": AnyValue(double_value=1e-6)})
    status, _headers, payload = sidecar.post("/v1/traces", at_bound.SerializeToString(), PROTOBUF)
    assert status == 200 and _rejected(payload)[0] == 0
    assert sidecar.value("agent_llm_calls_total", **llm_labels) == pytest.approx(4 + 1e6)


def test_refused_spans_reach_no_session_and_no_log(make_sidecar, tmp_path):
    """Fails on main: the hostile span's cost went into the session and the JSONL log."""
    sidecar = make_sidecar({"jsonl": {"enabled": True, "directory": str(tmp_path)}})
    session = {"agent.session.id": AnyValue(string_value="sess-hostile"),
               "gen_ai.agent.name": AnyValue(string_value="spender")}
    hostile = request_with({**session, "gen_ai.usage.cost": AnyValue(double_value=1e308)})
    assert sidecar.post("/v1/traces", hostile.SerializeToString(), PROTOBUF)[0] == 200
    good = request_with({**session, "gen_ai.usage.cost": AnyValue(double_value=0.5)},
                        span_id=b"\x03" * 8)
    assert sidecar.post("/v1/traces", good.SerializeToString(), PROTOBUF)[0] == 200
    log = tmp_path / "invocations.jsonl"
    # translation is first in, first out: once the good span's record is written, the hostile one would be
    wait_for(lambda: log.exists() and log.read_text().strip(), what="the good span's record")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["cost"] for r in records if r["kind"] == "llm_call"] == [0.5]
    status, detail = get_json(sidecar, "/runtime/session/sess-hostile")
    assert status == 200 and detail["llm_calls"] == 1 and detail["cost"] == 0.5
