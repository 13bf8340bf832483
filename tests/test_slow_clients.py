"""Slowloris: HTTP clients that trickle their headers or body are cut off within the configured time."""

from __future__ import annotations

import socket
import time

import pytest

LIMITS = {"server": {"http_header_timeout_seconds": 0.5, "http_request_timeout_seconds": 0.8}}


def trickle(address: str, head: bytes, drip: bytes, interval: float = 0.05, give_up: float = 10.0):
    """Send ``head``, then ``drip`` one byte per ``interval`` until the server closes the connection.

    Returns (seconds until closed, bytes the server sent). The byte-by-byte pauses are the
    client's behaviour under test, not a wait for time to pass.
    """
    host, port = address.rsplit(":", 1)
    received = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        start = time.monotonic()
        if head:
            sock.sendall(head)
        sock.settimeout(interval)
        i = 0
        while time.monotonic() - start < give_up:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                chunk = None
            except ConnectionError:
                break
            if chunk == b"":
                break
            if chunk:
                received += chunk
                continue
            try:
                sock.sendall(drip[i % len(drip):i % len(drip) + 1])
            except (BrokenPipeError, ConnectionError):
                break
            i += 1
        return time.monotonic() - start, received


@pytest.mark.parametrize("listener", ["otlp_http", "metrics"])
def test_trickled_headers_are_cut_off_at_the_header_timeout(make_sidecar, listener):
    sidecar = make_sidecar(LIMITS)
    elapsed, received = trickle(sidecar.app.addresses[listener], b"POST /v1/traces HTTP/1.1\r\n",
                                b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
    assert 0.4 <= elapsed < 3.0, elapsed
    assert received == b""  # no answer is owed to a request that never finished its head


def test_a_silent_connection_is_closed_at_the_header_timeout(make_sidecar):
    sidecar = make_sidecar(LIMITS)
    host, port = sidecar.app.addresses["otlp_http"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""  # blocks until the server closes
        assert 0.4 <= time.monotonic() - start < 3.0


def test_a_trickled_body_gets_408_and_the_connection_closed(make_sidecar):
    sidecar = make_sidecar(LIMITS)
    head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    elapsed, received = trickle(sidecar.app.addresses["otlp_http"], head, b'{"resourceSpans": []}' * 10)
    assert 0.7 <= elapsed < 3.0, elapsed
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert b'"code": 4' in received  # a google.rpc.Status: DEADLINE_EXCEEDED
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="timeout") == 1
    # the receiver still serves well-behaved clients
    status, _h, _b = sidecar.post("/v1/traces", b'{"resourceSpans": []}', {"Content-Type": "application/json"})
    assert status == 200
