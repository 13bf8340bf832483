"""TLS, mutual TLS and credentials on every listener, with certificates made at test time and the
real SDK exporters; the attribute deny-list; no span content in labels or logs."""

from __future__ import annotations

import base64
import logging
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc.status_pb2 import Status

from agentprom.config.loader import ConfigError, validate
from tests.certs import make_pki
from tests.otel import tracer
from tests.test_receiver_errors import PROTOBUF, good_protobuf, llm_calls

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def emit(t, n: int = 3) -> None:
    for i in range(n):
        with t.start_as_current_span("execute_tool lookup", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "secure-agent"}):
            pass


def tls_config(pki, mutual: bool) -> dict:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    if mutual:
        tls["client_ca_file"] = str(pki.ca)
    return {"security": {"receivers": {"tls": tls}, "metrics": {"tls": tls}}}


def https_get(url: str, pki, client: tuple | None = None, headers: dict | None = None):
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client:
        context.load_cert_chain(*map(str, client))
    request = urllib.request.Request(url, headers=headers or {})
    return urllib.request.urlopen(request, timeout=10, context=context)


def grpc_credentials(pki, client: tuple | None = None) -> grpc.ChannelCredentials:
    key = cert = None
    if client:
        cert, key = (path.read_bytes() for path in client)
    return grpc.ssl_channel_credentials(pki.ca.read_bytes(), private_key=key, certificate_chain=cert)


def raw_grpc(address: str, credentials=None, metadata=()) -> None:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        channel.unary_unary(EXPORT)(good_protobuf(), timeout=5, metadata=metadata)


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_on_both_receivers_and_metrics_with_the_real_sdk(make_sidecar, pki, mutual, monkeypatch):
    # requests lets these override the exporter's own CA file (requests' session-verify quirk)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    sidecar = make_sidecar(tls_config(pki, mutual))
    client = (pki.client_cert, pki.client_key) if mutual else None
    with tracer(sidecar.grpc_address, "grpc", credentials=grpc_credentials(pki, client)) as t:
        emit(t)
    http_kw = {"certificate_file": str(pki.ca)}
    if mutual:
        http_kw.update(client_certificate_file=str(pki.client_cert), client_key_file=str(pki.client_key))
    https_endpoint = "https://" + sidecar.app.addresses["otlp_http"]
    with tracer(https_endpoint, "http", **http_kw) as t:
        emit(t)
    sidecar.settle()
    with https_get(f"https://{sidecar.app.addresses['metrics']}/metrics", pki, client) as response:
        text = response.read().decode()
    assert 'agent_tool_calls_total{agent="secure-agent",tool="lookup",status="ok"} 6\n' in text
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 3

    # plaintext clients get nowhere
    with pytest.raises(grpc.RpcError) as plain:
        raw_grpc(sidecar.grpc_address)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    for address in (sidecar.app.addresses["otlp_http"], sidecar.app.addresses["metrics"]):
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://{address}/-/healthy", timeout=5).read()
    if mutual:  # no client certificate, or one from a CA the server does not trust: handshake refused
        for rogue in (None, (pki.rogue_cert, pki.rogue_key)):
            with pytest.raises(grpc.RpcError) as refused:
                raw_grpc(sidecar.grpc_address, grpc_credentials(pki, rogue))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            for address in (sidecar.app.addresses["otlp_http"], sidecar.app.addresses["metrics"]):
                with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                    https_get(f"https://{address}/-/healthy", pki, rogue).read()
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 3


def test_bearer_token_guards_both_receivers(make_sidecar, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    sidecar = make_sidecar({"security": {"receivers": {"bearer_token_file": str(token_file)}}})

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
        status, response_headers, payload = sidecar.post("/v1/traces", good_protobuf(), {**PROTOBUF, **headers})
        assert status == 401 and response_headers["WWW-Authenticate"] == "Bearer"
        assert Status.FromString(payload).code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as refused:
            raw_grpc(sidecar.grpc_address, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert sidecar.value("agentprom_auth_failures_total", listener="otlp_http") == 3
    assert sidecar.value("agentprom_auth_failures_total", listener="otlp_grpc") == 2
    assert llm_calls(sidecar) == 0

    with tracer(sidecar.grpc_address, "grpc", headers={"authorization": "Bearer s3cret-token"}) as t:
        emit(t)
    with tracer(sidecar.http_url, "http", headers={"Authorization": "Bearer s3cret-token"}) as t:
        emit(t)
    assert sidecar.value("agent_tool_calls_total", agent="secure-agent", tool="lookup", status="ok") == 6


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_metrics_auth_leaves_health_open(make_sidecar, tmp_path, scheme):
    secret = tmp_path / "secret"
    secret.write_text("hunter2")
    metrics = ({"basic_auth": {"username": "prometheus", "password_file": str(secret)}} if scheme == "basic"
               else {"bearer_token_file": str(secret)})
    sidecar = make_sidecar({"security": {"metrics": metrics}})
    good = ("Basic " + base64.b64encode(b"prometheus:hunter2").decode()) if scheme == "basic" else "Bearer hunter2"
    wrong = ("Basic " + base64.b64encode(b"prometheus:hunter3").decode()) if scheme == "basic" else "Bearer hunter3"

    def get(path: str, authorization: str | None = None) -> int:
        headers = {"Authorization": authorization} if authorization else {}
        request = urllib.request.Request(sidecar.metrics_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert get("/metrics") == 401 and get("/metrics", wrong) == 401
    assert get("/metrics", good) == 200
    assert get("/-/healthy") == 200 and get("/-/ready") == 200
    assert sidecar.value("agentprom_auth_failures_total", listener="metrics") == 2


def test_tls_and_auth_config_problems_are_reported_with_paths(tmp_path):
    with pytest.raises(ConfigError) as info:
        validate({"security": {
            "receivers": {"tls": {"cert_file": str(tmp_path / "missing.crt")}, "bearer_token_file": "/nonexistent"},
            "metrics": {"tls": {"client_ca_file": "x"}, "basic_auth": {"username": "u"}},
            "attribute_deny": ["a*b"],
        }})
    paths = {p.path for p in info.value.problems}
    assert paths == {"security.receivers.tls", "security.receivers.bearer_token_file", "security.metrics.tls",
                     "security.metrics.basic_auth", "security.attribute_deny"}
    assert "not a readable file" in str(info.value)


def test_attribute_deny_list_keeps_values_out_of_labels(make_sidecar):
    sidecar = make_sidecar({"security": {"attribute_deny": ["gen_ai.agent.name", "gen_ai.tool.*"]}})
    with tracer(sidecar.http_url, "http", service="payments") as t:
        with t.start_as_current_span("execute_tool refund", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "customer-ssn-123",
                "gen_ai.tool.name": "card-4111111111111111"}):
            pass
    text = sidecar.scrape()
    assert "customer-ssn-123" not in text and "4111111111111111" not in text
    # the agent falls back to service.name, the tool to the span name
    assert sidecar.value("agent_tool_calls_total", agent="payments", tool="refund", status="ok") == 1


def test_span_content_never_reaches_labels_or_logs(make_sidecar, caplog):
    caplog.set_level(logging.DEBUG)
    sidecar = make_sidecar()
    marker = "CONFIDENTIAL-7f3a"
    content = {
        "gen_ai.input.messages": f'[{{"role":"user","content":"{marker} prompt"}}]',
        "gen_ai.output.messages": f"{marker} completion",
        "gen_ai.prompt": marker, "gen_ai.completion": marker, "llm.input_messages": marker,
        "input.value": marker, "output.value": marker, "gen_ai.tool.call.arguments": f'{{"q": "{marker}"}}',
        "gen_ai.tool.call.result": marker, "gen_ai.system_instructions": marker,
    }
    with tracer(sidecar.grpc_address, "grpc") as t:
        for operation in ("chat", "execute_tool", "invoke_agent"):
            with t.start_as_current_span(f"{operation} x", attributes={
                    "gen_ai.operation.name": operation, "gen_ai.request.model": "m", **content}) as span:
                span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": marker})
                span.add_event("agent.checkpoint", {"note": marker})
    # the same content in a malformed request: its error message must not echo it either
    sidecar.post("/v1/traces", b'{"resourceSpans": [{"scopeSpans": "' + marker.encode() + b'"}]}',
                 {"Content-Type": "application/json"})
    assert marker not in sidecar.scrape() and marker not in sidecar.scrape(openmetrics=True)
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 3
    leaked = [record.getMessage() for record in caplog.records if marker in record.getMessage()]
    assert not leaked
