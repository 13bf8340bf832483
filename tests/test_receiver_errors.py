"""Bad input over the real HTTP and gRPC receivers: the specified status, and earlier counts intact."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentprom.receiver.ingest import FAILURES
from tests.test_decode import JSON_DOC, pb_request

#: the receivers' contract holds with decode workers as in one process (receiver/decode_workers.py)
pytestmark = pytest.mark.parametrize("workers", [1, 2], indirect=True)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def good_protobuf() -> bytes:
    request = pb_request()
    request.resource_spans[0].scope_spans[0].spans[0].status.code = 0
    return request.SerializeToString()


def llm_calls(sidecar) -> float:
    return sidecar.value("agent_llm_calls_total", agent="svc", provider="unknown", model="unknown",
                         operation="chat", status="ok")


def test_good_request_then_bad_requests_then_good_again(sidecar):
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    assert llm_calls(sidecar) == 1

    cases = [
        (good_protobuf()[:-4], PROTOBUF, 400, "decode_error"),                     # truncated protobuf
        (b'{"resourceSpans": [', JSON, 400, "decode_error"),                       # invalid JSON
        (good_protobuf(), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "decode_error"),
        (gzip.compress(good_protobuf())[:-6], {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "decode_error"),
        (good_protobuf(), {**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported_encoding"),
    ]
    for body, headers, status, reason in cases:
        got, response_headers, payload = sidecar.post("/v1/traces", body, headers)
        assert got == status, (headers, payload)
        expected_code = FAILURES[reason].grpc_code.value[0]
        if headers["Content-Type"] == "application/x-protobuf":  # error body in the request's encoding
            assert response_headers["Content-Type"] == "application/x-protobuf"
            message = Status.FromString(payload)
        else:
            assert response_headers["Content-Type"].startswith("application/json")
            message = Status(**json.loads(payload))
        assert message.code == expected_code and message.message
        assert sidecar.value("agentprom_requests_refused_total", transport="http", reason=reason) >= 1

    assert llm_calls(sidecar) == 1  # nothing counted twice or lost
    status, headers, payload = sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(payload) == ExportTraceServiceResponse()
    assert llm_calls(sidecar) == 2


def test_json_success_body_is_json(sidecar):
    status, headers, payload = sidecar.post("/v1/traces", json.dumps(JSON_DOC).encode(), JSON)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(payload) == {}


def test_oversize_bodies_get_413_before_and_after_decompression(make_sidecar):
    sidecar = make_sidecar({"server": {"max_request_bytes": 4096}})
    big = ExportTraceServiceRequest()
    rs = big.resource_spans.add()
    for i in range(200):
        rs.scope_spans.add().scope.name = f"scope-{i:04d}" * 3
    raw = big.SerializeToString()
    assert len(raw) > 4096
    assert sidecar.post("/v1/traces", raw, PROTOBUF)[0] == 413
    # a gzip bomb: a small body that inflates far past the limit is refused, not inflated in full
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    status, _h, payload = sidecar.post("/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413
    assert Status.FromString(payload).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="too_large") == 2
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200


def test_partial_success_over_protobuf(sidecar):
    request = pb_request(span_id=b"\x01\x02")
    request.resource_spans[0].scope_spans[0].spans.add().CopyFrom(
        ExportTraceServiceRequest.FromString(good_protobuf()).resource_spans[0].scope_spans[0].spans[0]
    )
    status, _h, payload = sidecar.post("/v1/traces", request.SerializeToString(), PROTOBUF)
    assert status == 200
    response = ExportTraceServiceResponse.FromString(payload)
    assert response.partial_success.rejected_spans == 1
    assert "invalid_span_id" in response.partial_success.error_message
    assert llm_calls(sidecar) == 1


def _grpc_export(sidecar, body: bytes):
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString,
        )
        return export(body, timeout=10)


def test_grpc_errors_map_to_status_codes(make_sidecar):
    sidecar = make_sidecar({"server": {"max_request_bytes": 4096}})
    assert _grpc_export(sidecar, good_protobuf()) == ExportTraceServiceResponse()
    with pytest.raises(grpc.RpcError) as bad:
        _grpc_export(sidecar, good_protobuf()[:-4])
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as big:
        _grpc_export(sidecar, b"\x0a\x80\x40" + b"\x00" * 8192)
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    partial = _grpc_export(sidecar, pb_request(end_time_unix_nano=1).SerializeToString())
    assert partial.partial_success.rejected_spans == 1
    assert _grpc_export(sidecar, good_protobuf()) == ExportTraceServiceResponse()
    assert llm_calls(sidecar) == 2
    assert sidecar.value("agentprom_requests_refused_total", transport="grpc", reason="decode_error") == 1


def _agent_request(agent: str) -> bytes:
    request = pb_request()
    request.resource_spans[0].scope_spans[0].spans[0].status.code = 0
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="gen_ai.agent.name").value.string_value = agent
    return request.SerializeToString()


def test_every_gzip_member_is_decoded_and_trailing_garbage_is_refused(make_sidecar):
    """RFC 1952 2.2: a gzip body is a series of members; none may be dropped silently."""
    sidecar = make_sidecar({"server": {"max_request_bytes": 4096}})
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}

    def calls(agent: str) -> float:
        return sidecar.value("agent_llm_calls_total", agent=agent, provider="unknown", model="unknown",
                             operation="chat", status="ok")

    # protobuf messages concatenate, so gzip(a) + gzip(b) carries both spans
    two = gzip.compress(_agent_request("first")) + gzip.compress(_agent_request("second"))
    assert sidecar.post("/v1/traces", two, gz)[0] == 200
    assert calls("first") == calls("second") == 1
    for tail in (b"garbage", b"\x00\x00\x00\x00", b"\x1f\x8b"):  # trailing bytes, padding, a truncated member
        status, _h, payload = sidecar.post("/v1/traces", gzip.compress(_agent_request("tail")) + tail, gz)
        assert status == 400, tail
        assert Status.FromString(payload).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert calls("tail") == 0
    # the limit covers all members together
    half = gzip.compress(b"\x0a\x00" * 1200)  # 2400 bytes of empty ResourceSpans each
    assert sidecar.post("/v1/traces", half, gz)[0] == 200
    assert sidecar.post("/v1/traces", half + half, gz)[0] == 413
    # the metrics path shares the same inflation
    status, _h, _p = sidecar.post("/v1/metrics", gzip.compress(b"") + b"garbage",
                                  {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert status == 400
    assert calls("first") == calls("second") == 1


SECRET = "sk-live-4111111111111111111111"


def _span_json(**fields) -> bytes:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", **fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_error_messages_never_echo_request_values(make_sidecar, caplog):
    """docs/security.md: error messages name a path and a rule, never a value from the request."""
    sidecar = make_sidecar()
    digits = SECRET.removeprefix("sk-live-")  # a secret that is also a (too large) integer
    metric = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [
        {"asInt": SECRET}]}}]}]}]}
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}
    otlp_cases = [
        ("/v1/traces", _span_json(startTimeUnixNano=SECRET), JSON),
        ("/v1/traces", _span_json(startTimeUnixNano=int(digits)), JSON),
        ("/v1/traces", _span_json(kind=digits), JSON),
        ("/v1/traces", _span_json(attributes=[{"key": "gen_ai.usage.input_tokens", "value": {"intValue": SECRET}}]), JSON),
        ("/v1/traces", _span_json(events=[{"name": "agent.checkpoint", "timeUnixNano": SECRET}]), JSON),
        ("/v1/traces", f'{{"resourceSpans": "\\q{SECRET}"}}'.encode(), JSON),
        ("/v1/traces", b"\xff" + SECRET.encode(), JSON),
        ("/v1/traces", SECRET.encode(), PROTOBUF),
        ("/v1/traces", gzip.compress(good_protobuf()) + SECRET.encode(), gz),
        ("/v1/traces", good_protobuf(), {"Content-Type": "application/" + SECRET}),
        ("/v1/traces", good_protobuf(), {**PROTOBUF, "Content-Encoding": SECRET}),
        ("/v1/metrics", json.dumps(metric).encode(), JSON),
    ]
    event = {"event_type": "tool_completed", "session_id": "s", "tool_name": "t"}
    event_cases = [
        ("/runtime/event", json.dumps({**event, field: SECRET}).encode())
        for field in ("timestamp", "duration_ms", "success", "status", "attempt", "input_tokens", "cost",
                      "escalated", "context_tokens_used")
    ] + [
        ("/runtime/event", json.dumps({**event, "tool_name": SECRET * 20}).encode()),
        ("/runtime/event", json.dumps({**event, "event_type": SECRET}).encode()),
        ("/runtime/event", f'{{"session_id": "\\q{SECRET}"}}'.encode()),
        ("/runtime/session/end", json.dumps({"session_id": SECRET}).encode()),
    ]
    with caplog.at_level("DEBUG"):
        for path, body, headers in otlp_cases:
            status, _h, payload = sidecar.post(path, body, headers)
            assert status in (400, 415), (path, body[:60], status)
            assert digits.encode() not in payload and b"sk-live" not in payload, payload
        for path, body in event_cases:
            status, _h, payload = sidecar.post(path, body, JSON)
            assert status in (400, 404), (body, status)
            assert digits.encode() not in payload and b"sk-live" not in payload, payload
        status, _h, payload = sidecar.post("/runtime/event", json.dumps(event).encode(),
                                           {"Content-Type": "text/" + SECRET})
        assert status == 415 and b"sk-live" not in payload
        with grpc.insecure_channel(sidecar.grpc_address) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                    b"\x0a\x20" + SECRET.encode(), timeout=10)
        assert "sk-live" not in (refused.value.details() or "")
    assert "sk-live" not in caplog.text and digits not in caplog.text
