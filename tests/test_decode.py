"""The OTLP decoders (protobuf and JSON) produce the same spans, and reject what they must."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from agentprom.receiver.decode import DecodeError, decode_traces
from agentprom.receiver.otlp_json import decode_traces_json

# every test here runs with the Python and the compiled decoder (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("trace_decoder")

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def pb_request(**span_fields) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    rs.resource.attributes.append(KeyValue(key="host.name", value=AnyValue(string_value="h")))
    ss = rs.scope_spans.add()
    ss.scope.name = "scope"
    fields = dict(trace_id=TRACE, span_id=SPAN, name="chat m", kind=3,
                  start_time_unix_nano=1_000, end_time_unix_nano=2_001)
    fields.update(span_fields)
    span = ss.spans.add(**fields)
    for key, value in {
        "gen_ai.operation.name": AnyValue(string_value="chat"),
        "gen_ai.usage.input_tokens": AnyValue(int_value=12),
        "llm.cost.total": AnyValue(double_value=0.5),
        "agent.checkpoint": AnyValue(bool_value=True),
        "gen_ai.prompt": AnyValue(string_value="secret prompt text"),  # not a key we read
    }.items():
        span.attributes.append(KeyValue(key=key, value=value))
    event = span.events.add(name="exception", time_unix_nano=1_500)
    event.attributes.append(KeyValue(key="exception.type", value=AnyValue(string_value="ValueError")))
    span.events.add(name="agent.context_reset", time_unix_nano=1_600)
    span.status.code = 2
    return request


JSON_DOC = {
    "resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}},
            {"key": "host.name", "value": {"stringValue": "h"}},
        ]},
        "scopeSpans": [{
            "scope": {"name": "scope"},
            "spans": [{
                "traceId": TRACE.hex(), "spanId": SPAN.hex(), "name": "chat m", "kind": 3,
                "startTimeUnixNano": "1000", "endTimeUnixNano": 2001,
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                    {"key": "llm.cost.total", "value": {"doubleValue": 0.5}},
                    {"key": "agent.checkpoint", "value": {"boolValue": True}},
                    {"key": "gen_ai.prompt", "value": {"stringValue": "secret prompt text"}},
                ],
                "events": [
                    {"name": "exception", "timeUnixNano": "1500",
                     "attributes": [{"key": "exception.type", "value": {"stringValue": "ValueError"}}]},
                    {"name": "agent.context_reset", "timeUnixNano": "1600"},
                ],
                "status": {"code": 2},
                "someFutureField": {"ignored": True},
            }],
        }],
    }],
}


def test_protobuf_and_json_decode_to_the_same_span():
    pb = decode_traces(pb_request().SerializeToString())
    js = decode_traces_json(json.dumps(JSON_DOC).encode())
    assert pb.rejected == js.rejected == {}
    assert len(pb.spans) == len(js.spans) == 1
    a, b = pb.spans[0], js.spans[0]
    assert a == b
    assert a.trace_id == TRACE and a.span_id == SPAN
    assert a.duration_s == pytest.approx(1.001e-6)
    assert a.status_code == 2 and a.exception_type == "ValueError"
    assert a.resource == {"service.name": "svc"}  # only the resource keys we use
    assert a.attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12, "llm.cost.total": 0.5,
        "agent.checkpoint": True,
    }
    assert [name for name, _t, _a in a.events] == ["agent.context_reset"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"\x01" * 8}, "invalid_trace_id"),
        ({"trace_id": b"\x00" * 16}, "invalid_trace_id"),
        ({"span_id": b"\x01" * 4}, "invalid_span_id"),
        ({"span_id": b""}, "invalid_span_id"),
        ({"start_time_unix_nano": 5, "end_time_unix_nano": 4}, "end_before_start"),
    ],
)
def test_invalid_spans_are_rejected_individually(fields, reason):
    batch = decode_traces(pb_request(**fields).SerializeToString())
    assert batch.spans == []
    assert batch.rejected == {reason: 1}
    assert reason in batch.error_message()


def test_json_bad_hex_id_is_a_span_rejection_not_a_request_failure():
    doc = json.loads(json.dumps(JSON_DOC))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "zz" * 16
    batch = decode_traces_json(json.dumps(doc).encode())
    assert batch.rejected == {"invalid_trace_id": 1}


@pytest.mark.parametrize(
    "body",
    [
        b"{",  # invalid JSON
        b"[]",  # not an object
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "x"}}]}]}]}]}',
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # hostile nesting
    ],
)
def test_json_structural_errors_refuse_the_request(body):
    with pytest.raises(DecodeError):
        decode_traces_json(body)


def test_json_error_names_the_path():
    with pytest.raises(DecodeError, match=r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.startTimeUnixNano"):
        decode_traces_json(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}')


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff", pb_request().SerializeToString()[:-3], b"\x00garbage"])
def test_protobuf_garbage_is_a_decode_error(body):
    with pytest.raises(DecodeError):
        decode_traces(body)


def test_empty_requests_are_valid():
    assert decode_traces(b"").spans == []
    assert decode_traces_json(b"{}").spans == []
