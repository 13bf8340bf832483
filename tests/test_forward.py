"""Trace forwarding to a real upstream (a second agentprom): unchanged content over gRPC and HTTP,
gzip, headers, TLS; and with the upstream down: buffered, retried, then counted drops."""

from __future__ import annotations

import json
import socket

import pytest

from tests.certs import make_pki
from tests.otel import tracer
from tests.test_decode import JSON_DOC
from tests.test_overload import wait_for
from tests.test_receiver_errors import PROTOBUF, good_protobuf

FAST_RETRY = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.1, "flush_interval_seconds": 0.05}


def agent_run(t, agent: str) -> None:
    with t.start_as_current_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent",
                                                              "gen_ai.agent.name": agent}):
        with t.start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.agent.name": agent, "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}):
            pass


def agent_series(sidecar) -> str:
    """The span-derived series of a scrape (what must match between the two instances)."""
    lines = sidecar.scrape().splitlines()
    return "\n".join(line for line in lines if line.startswith("agent_"))


@pytest.mark.parametrize("protocol,compression", [("grpc", "gzip"), ("http", "gzip"), ("http", "none")])
def test_forwarded_traces_reach_the_upstream_unchanged(make_sidecar, protocol, compression):
    upstream = make_sidecar()
    endpoint = "http://" + upstream.app.addresses[f"otlp_{protocol}"]
    sidecar = make_sidecar({"forward": {"endpoint": endpoint, "protocol": protocol, "compression": compression,
                                        **FAST_RETRY}})
    with tracer(sidecar.grpc_address, "grpc") as t:
        for i in range(5):
            agent_run(t, f"agent-{i % 2}")
    # an OTLP/JSON request too: re-encoded as protobuf, same content
    assert sidecar.post("/v1/traces", json.dumps(JSON_DOC).encode(), {"Content-Type": "application/json"})[0] == 200
    sent = 11
    wait_for(lambda: sidecar.value("agentprom_forwarded_spans_total") == sent, what="forwarding")
    wait_for(lambda: upstream.value("agentprom_spans_received_total", transport=protocol) == sent, what="upstream")
    # the upstream derived exactly the same series from what it was sent
    assert agent_series(upstream) == agent_series(sidecar) != ""
    assert sidecar.value("agentprom_forward_buffer_bytes") == 0


def test_forwarding_with_tls_and_headers_and_a_rejecting_upstream(make_sidecar, tmp_path):
    pki = make_pki(tmp_path)
    token = tmp_path / "token"
    token.write_text("upstream-token")
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), "client_ca_file": str(pki.ca)}
    upstream = make_sidecar({"security": {"receivers": {"tls": tls, "bearer_token_file": str(token)}}})
    client_tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    for protocol in ("grpc", "http"):
        endpoint = "https://" + upstream.app.addresses[f"otlp_{protocol}"]
        good = make_sidecar({"forward": {"endpoint": endpoint, "protocol": protocol, "tls": client_tls,
                                         "headers": {"Authorization": "Bearer upstream-token"}, **FAST_RETRY}})
        bad = make_sidecar({"forward": {"endpoint": endpoint, "protocol": protocol, "tls": client_tls,
                                        "headers": {"Authorization": "Bearer wrong"}, **FAST_RETRY}})
        assert good.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
        assert bad.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200  # ingestion is never held up
        wait_for(lambda: good.value("agentprom_forwarded_spans_total") == 1, what="forwarding")
        wait_for(lambda: bad.value("agentprom_forward_dropped_spans_total", reason="rejected") == 1, what="drop")
        assert bad.value("agentprom_forwarded_spans_total") == 0
    assert upstream.value("agentprom_spans_received_total", transport="grpc") == 1
    assert upstream.value("agentprom_spans_received_total", transport="http") == 1
    assert upstream.value("agentprom_auth_failures_total", listener="otlp_grpc") == 1
    assert upstream.value("agentprom_auth_failures_total", listener="otlp_http") == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_upstream_down_buffers_then_counts_drops_without_blocking_ingestion(make_sidecar, protocol):
    body = good_protobuf()
    sidecar = make_sidecar({"forward": {
        "endpoint": f"http://127.0.0.1:{free_port()}", "protocol": protocol, **FAST_RETRY,
        "buffer_max_bytes": 3 * len(body) + 1024, "max_batch_bytes": 1024, "retry_max_elapsed_seconds": 0.5,
    }})
    for _ in range(10):
        assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200
    assert sidecar.value("agentprom_spans_received_total", transport="http") == 10  # counted locally
    dropped = lambda reason: sidecar.value("agentprom_forward_dropped_spans_total", reason=reason)  # noqa: E731
    wait_for(lambda: dropped("buffer_full") + dropped("retries_exhausted") == 10, what="drops")
    assert dropped("buffer_full") >= 1 and dropped("retries_exhausted") >= 1
    assert sidecar.value("agentprom_forward_retries_total") >= 1
    assert sidecar.value("agentprom_forwarded_spans_total") == 0
    assert sidecar.value("agentprom_forward_buffer_bytes") == 0


def test_buffered_spans_are_delivered_when_the_upstream_comes_up(make_sidecar):
    port = free_port()
    sidecar = make_sidecar({"forward": {"endpoint": f"http://127.0.0.1:{port}", "protocol": "http",
                                        **FAST_RETRY, "retry_max_elapsed_seconds": 60}})
    for _ in range(3):
        assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    wait_for(lambda: sidecar.value("agentprom_forward_retries_total") >= 2, what="retries")
    assert sidecar.value("agentprom_forward_buffer_bytes") > 0
    upstream = make_sidecar({"server": {"otlp_http": f"127.0.0.1:{port}"}})
    wait_for(lambda: upstream.value("agentprom_spans_received_total", transport="http") == 3, what="delivery")
    assert sidecar.value("agentprom_forwarded_spans_total") == 3
    assert sidecar.value("agentprom_forward_dropped_spans_total", reason="retries_exhausted") == 0


def test_shutdown_counts_what_could_not_be_sent(make_sidecar):
    sidecar = make_sidecar({"server": {"shutdown_grace_seconds": 0.2},
                            "forward": {"endpoint": f"http://127.0.0.1:{free_port()}", **FAST_RETRY,
                                        "retry_max_elapsed_seconds": 60}})
    for _ in range(4):
        assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    sidecar.settle()
    sidecar.call(sidecar.app.stop())
    assert sidecar.app.store.value("agentprom_forward_dropped_spans_total", ("shutdown",)) == 4


def _json_spans(n: int, bad_ids: int, unconvertible: int) -> bytes:
    """``n`` valid spans, then ``bad_ids`` with a non-hex spanId (rejected by the receiver), then
    ``unconvertible`` valid ones whose unread attribute protobuf's JSON mapping refuses."""
    spans = []
    for i in range(n + bad_ids + unconvertible):
        span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{i + 1:016x}", "name": "chat m",
                "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
        if n <= i < n + bad_ids:
            span["spanId"] = "not-hex-zzzzzzzz"
        elif i >= n + bad_ids:
            span["attributes"].append({"key": "x.unread", "value": {"arrayValue": 5}})
        spans.append(span)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_only_accepted_spans_are_forwarded_and_counted(make_sidecar, encoding):
    upstream = make_sidecar()
    sidecar = make_sidecar({"forward": {"endpoint": "http://" + upstream.app.addresses["otlp_grpc"], **FAST_RETRY}})
    if encoding == "json":
        body, headers, accepted, unconvertible = _json_spans(20, 10, 3), {"Content-Type": "application/json"}, 23, 3
    else:
        from tests.test_decode import pb_request
        request = pb_request()
        spans = request.resource_spans[0].scope_spans[0].spans
        for i in range(29):
            spans.add().CopyFrom(spans[0])
            spans[-1].span_id = (i + 2).to_bytes(8, "big") if i < 19 else b"\x01\x02"  # the last 10 rejected
        body, headers, accepted, unconvertible = request.SerializeToString(), PROTOBUF, 20, 0
    status, _h, payload = sidecar.post("/v1/traces", body, headers)
    assert status == 200
    assert sidecar.value("agentprom_spans_rejected_total", reason="invalid_span_id") == 10
    forwarded = accepted - unconvertible
    wait_for(lambda: sidecar.value("agentprom_forwarded_spans_total") == forwarded, what="forwarding")
    wait_for(lambda: upstream.value("agentprom_spans_received_total", transport="grpc") == forwarded, what="upstream")
    assert upstream.value("agentprom_spans_rejected_total", reason="invalid_span_id") == 0
    assert sidecar.value("agentprom_forward_dropped_spans_total", reason="unconvertible") == unconvertible
    assert sidecar.value("agentprom_forward_buffer_bytes") == 0
