"""Slow clients: HTTP clients that trickle their headers or body, and scrapers that never read, are cut off."""

from __future__ import annotations

import socket
import time
import urllib.request

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


SCRAPE_LIMITS = {"server": {"max_concurrent_scrapes": 2, "scrape_write_timeout_seconds": 1.0},
                 "store": {"max_series_per_metric": 0, "max_label_values": 0}}


def fill_store(sidecar, series: int = 3500) -> None:
    """About 8 MB of exposition: more than loopback socket buffers hold for a client that never reads."""
    def fill():
        family = sidecar.app.store["agent_llm_duration_seconds"]
        for i in range(series):
            family.observe((f"agent-{i}", "provider", f"a-model-with-a-rather-long-name-{i}", "chat"), 0.5)
    sidecar.call(fill)


def scrape_and_never_read(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, as a stalled reader has
    sock.settimeout(5)
    sock.connect((host, int(port)))
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_scrapes_that_are_not_read_are_bounded_shared_and_cut_off(make_sidecar):
    from tests.test_overload import wait_for

    sidecar = make_sidecar(SCRAPE_LIMITS)
    fill_store(sidecar)
    routes = sidecar.app.metrics_routes
    renders = []
    snapshot = routes.snapshot
    routes.snapshot = lambda openmetrics: renders.append(openmetrics) or snapshot(openmetrics)
    failed = "agentprom_scrapes_failed_total"

    stalled = [scrape_and_never_read(sidecar.app.addresses["metrics"]) for _ in range(5)]
    try:
        wait_for(lambda: sidecar.value(failed, reason="concurrency_limit") == 3, 10, "3 scrapes refused")
        # health stays responsive while the two admitted scrapes are stalled
        start = time.monotonic()
        with urllib.request.urlopen(sidecar.metrics_url + "/-/healthy", timeout=2) as response:
            assert response.status == 200
        assert time.monotonic() - start < 1.0
        assert sidecar.call(lambda: routes.active) == 2
        wait_for(lambda: sidecar.value(failed, reason="write_timeout") == 2, 10, "stalled scrapes cut off")
        assert sidecar.call(lambda: routes.active) == 0
        status_lines = sorted(sock.recv(64).split(b"\r\n", 1)[0] for sock in stalled)
        assert status_lines == [b"HTTP/1.1 200 OK"] * 2 + [b"HTTP/1.1 503 Service Unavailable"] * 3
    finally:
        for sock in stalled:
            sock.close()
    assert renders == [False]  # the two admitted scrapes shared one body
    # a well-behaved scraper afterwards gets a fresh, complete body
    body = sidecar.scrape()
    assert body.count('agent_llm_duration_seconds_count{') == 3500
    assert len(renders) == 2
