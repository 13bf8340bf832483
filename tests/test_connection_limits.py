"""Connections cannot exhaust file descriptors: OTLP/gRPC connections are capped, idle and
half-open ones are closed, and the process raises its open-files limit at start."""

from __future__ import annotations

import resource
import socket
import time

import grpc

from tests.test_receiver_errors import good_protobuf

#: the HTTP/2 client preface and an empty SETTINGS frame (RFC 9113, section 3.4)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LIMITS = {"server": {"grpc_max_connections": 3, "grpc_max_connection_idle_seconds": 1.0,
                     "http_header_timeout_seconds": 1.0}}


def connect(address: str, preface: bool = True) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    if preface:
        sock.sendall(PREFACE)
    return sock


def seconds_until_closed(sock: socket.socket, start: float) -> float:
    try:
        while sock.recv(4096):
            pass
    except ConnectionError:
        pass
    return time.monotonic() - start


def test_grpc_connections_beyond_the_cap_are_closed_at_once(make_sidecar):
    sidecar = make_sidecar(LIMITS)
    socks = [connect(sidecar.grpc_address) for _ in range(6)]
    try:
        start = time.monotonic()
        first = [sock.recv(9) for sock in socks]  # the server's SETTINGS frame, or EOF when refused
        assert sum(1 for frame in first if frame) == 3
        assert all(frame[3:4] == b"\x04" for frame in first if frame)  # a SETTINGS frame
        refused = [sock for sock, frame in zip(socks, first) if not frame]
        assert all(seconds_until_closed(sock, start) < 0.5 for sock in refused)
        # idle connections go too (GOAWAY, then close), which makes room again
        kept = [sock for sock, frame in zip(socks, first) if frame]
        assert all(0.5 < seconds_until_closed(sock, start) < 4.0 for sock in kept)
    finally:
        for sock in socks:
            sock.close()
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        channel.unary_unary(EXPORT)(good_protobuf(), timeout=5)
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 1


def test_a_grpc_connection_that_never_sends_its_preface_is_closed(make_sidecar):
    sidecar = make_sidecar(LIMITS)
    with connect(sidecar.grpc_address, preface=False) as sock:
        elapsed = seconds_until_closed(sock, time.monotonic())
    assert 0.5 < elapsed < 4.0, elapsed


def test_serve_raises_the_open_files_soft_limit_to_the_hard_limit(monkeypatch):
    from agentprom.cli import raise_open_files_limit

    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.__setitem__("now", value))
    assert raise_open_files_limit() == (1024, 4096)
    assert limits["now"] == (4096, 4096)
    limits["now"] = (1024, resource.RLIM_INFINITY)  # "unlimited" hard limits are capped, not taken literally
    assert raise_open_files_limit() == (1024, 1024 * 1024)
    assert limits["now"] == (1024 * 1024, resource.RLIM_INFINITY)

    def refuse(which, value):
        raise ValueError("not permitted")
    monkeypatch.setattr(resource, "setrlimit", refuse)
    limits["now"] = (1024, 4096)
    assert raise_open_files_limit() == (1024, 1024)  # kept as it was, and said so
