"""Log flooding: requests a remote client controls never make us log per request.

Malformed HTTP requests are answered 400 by aiohttp before authentication; they
are counted and described in at most one line per interval, without a traceback.
"""

from __future__ import annotations

import logging
import socket

import pytest

from agentprom.clock import ManualClock
from agentprom.log_limit import RateLimitedLog

MALFORMED = [
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32),  # TLS to a plain-text port
]


def send_raw(address: str, payload: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_malformed_requests_are_counted_and_logged_once_per_interval(make_sidecar, tmp_path, caplog):
    token = tmp_path / "token"
    token.write_text("s3cret")
    clock = ManualClock()
    sidecar = make_sidecar({"security": {"receivers": {"bearer_token_file": str(token)},
                                         "metrics": {"bearer_token_file": str(token)}}}, clock)
    caplog.set_level(logging.DEBUG)
    per_listener = 60
    for listener in ("otlp_http", "metrics"):
        for i in range(per_listener):
            answer = send_raw(sidecar.app.addresses[listener], MALFORMED[i % len(MALFORMED)])
            assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
    for listener in ("otlp_http", "metrics"):
        assert sidecar.value("agentprom_malformed_requests_total", listener=listener) == per_listener
    # not authentication failures: no credentials were ever looked at
    assert sidecar.value("agentprom_auth_failures_total", listener="otlp_http") == 0

    def request_lines():
        return [r for r in caplog.records if r.name.startswith("aiohttp") or "malformed" in r.getMessage()]

    lines = request_lines()
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]  # one line per template and interval
    assert all(r.exc_info is None and r.exc_text is None for r in lines)
    assert all(len(r.getMessage()) < 400 and "\n" not in r.getMessage() for r in lines)

    clock.advance(60)  # the next interval: one more line, telling how many were held back
    send_raw(sidecar.app.addresses["otlp_http"], MALFORMED[0])
    held_back = [r.getMessage() for r in request_lines()[len(lines):]]
    assert len(held_back) == 1 and "more like this" in held_back[0], held_back
    # well-formed requests still work
    assert sidecar.post("/v1/traces", b"{}", {"Content-Type": "application/json",
                                               "Authorization": "Bearer s3cret"})[0] == 200


def test_rate_limited_log_counts_what_it_holds_back(caplog):
    clock = ManualClock()
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=10, clock=clock)
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    written = [log.warning("bad request from %s", i) for i in range(100)]
    assert written == [True] + [False] * 99
    assert log.warning("another kind of line") is True  # templates are limited separately
    clock.advance(9.9)
    assert log.warning("bad request from %s", "x") is False
    clock.advance(0.1)
    assert log.warning("bad request from %s", "y") is True
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["bad request from 0", "another kind of line",
                        "bad request from y (100 more like this in the last 10s not logged)"]
    log.logger.setLevel(logging.ERROR)
    assert log.warning("bad request from %s", "z") is False  # disabled levels cost nothing and count nothing


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/metrics"])
def test_internal_errors_are_logged_rate_limited(make_sidecar, caplog, monkeypatch, path):
    sidecar = make_sidecar(clock=ManualClock())
    ingest = sidecar.app.ingest if path == "/v1/traces" else sidecar.app.metrics_ingest

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest, "decode", broken)
    caplog.set_level(logging.ERROR)
    for _ in range(20):
        assert sidecar.post(path, b"{}", {"Content-Type": "application/json"})[0] == 500
    errors = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None  # a bug keeps its traceback, once
