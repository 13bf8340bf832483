"""The configuration schema of the network side: listen addresses and request limits, TLS and auth, forwarding.

Part of the schema (config/schema.py imports these models into ``Config``); a module of its own so
that neither file passes a few hundred lines. Defaults live here as in schema.py.
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from agentprom.config.base import _Model
from agentprom.text import DEFAULT_MAX_STRING_BYTES

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.\-]+)):(?P<port>\d{1,5})$")


#: ``server.workers: auto``: one fewer than the usable cores (the process that keeps the state needs
#: a core of its own), at least 1, at most this many
MAX_DEFAULT_WORKERS = 4


def default_workers(cores: int) -> int:
    """What ``auto`` means on ``cores`` usable cores. (On two cores shared with other work, decode
    workers measured slower than one process, bench/ingest.py, hence not a default of their own.)"""
    return max(1, min(cores - 1, MAX_DEFAULT_WORKERS))


def usable_cores(cgroup: str = "/sys/fs/cgroup") -> int:
    """The cores this process may use: its CPU affinity (which a container's CPU set narrows), or
    fewer under a CPU quota (a Kubernetes CPU limit: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``),
    rounded up."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cpu_quota(cgroup: str) -> float:
    """The CPU quota in cores, or 0 for none (or none readable)."""
    for path, read in ((f"{cgroup}/cpu.max", lambda text: text.split()),
                       (f"{cgroup}/cpu/cpu.cfs_quota_us", lambda text: [text.strip(), _read(f"{cgroup}/cpu/cpu.cfs_period_us")])):
        try:
            with open(path) as f:
                quota, period = read(f.read())[:2]
            if quota not in ("max", "-1") and float(period) > 0:
                return float(quota) / float(period)
        except (OSError, ValueError, TypeError):
            continue
        return 0.0
    return 0.0


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def parse_address(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 means any free port."""
    match = _ADDRESS.match(value)
    if not match:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:4317 or [::1]:4317")
    port = int(match["port"])
    if port > 65535:
        raise ValueError("port must be between 0 and 65535")
    return match["v6"] or match["host"], port


def _check_address(value: str) -> str:
    parse_address(value)
    return value


Address = Annotated[str, AfterValidator(_check_address)]


def _check_readable(value: str) -> str:
    if value and not os.access(value, os.R_OK):
        raise ValueError(f"{value!r} is not a readable file")
    return value


#: a path checked at load (so check-config reports it); empty means unset
ReadableFile = Annotated[str, AfterValidator(_check_readable)]


class ServerConfig(_Model):
    """Where the sidecar listens and how much it accepts."""

    otlp_grpc: Address = Field("127.0.0.1:4317", description="OTLP/gRPC listen address (loopback by default).")
    otlp_http: Address = Field("127.0.0.1:4318", description="OTLP/HTTP and event API listen address.")
    metrics: Address = Field("0.0.0.0:9464", description="Prometheus /metrics and health listen address.")
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, le=2**31 - 1,
        description="Largest export request accepted, measured after decompression.",
    )
    max_string_bytes: int = Field(
        DEFAULT_MAX_STRING_BYTES, ge=16, le=65536,
        description="Every string kept from a span (attribute values, names, ids, error types) is cut to this "
        "many bytes of UTF-8 at decoding; lone surrogates become U+FFFD.",
    )
    max_json_request_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=2**31 - 1,
        description="Largest OTLP/JSON request accepted, after decompression (a parsed JSON document takes up to "
        "25 times its size in memory, and parsing holds the interpreter lock throughout); the smaller of this "
        "and max_request_bytes applies.",
    )
    max_spans_per_request: int = Field(
        50_000, ge=1, le=2**31 - 1,
        description="Spans in one export request; a request with more is refused whole (413 / RESOURCE_EXHAUSTED) "
        "before its spans are built.",
    )
    max_items_per_array: int = Field(
        10_000, ge=1, le=2**31 - 1,
        description="Items in one OTLP/JSON array (attributes, events, data points, ...; spans go by "
        "max_spans_per_request) and events on one span; more refuse the request (400 naming the path).",
    )
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        1,
        description="Processes that decode large export requests (worker_min_bytes and more) beside the one "
        "that keeps the state; 1 decodes everything in the main process. auto: one fewer than the usable "
        f"cores (a CPU limit counts, rounded up), at least 1 and at most {MAX_DEFAULT_WORKERS}. Workers "
        "make a span cost more CPU in all: they pay only where cores are free for them (docs/deploy.md).",
    )
    worker_min_bytes: int = Field(
        32 * 1024, ge=0, le=2**31 - 1,
        description="With workers above 1, export requests of at least this many bytes (after decompression) are "
        "decoded by the workers; smaller ones in the main process, where handing them over would cost more "
        "than it saves.",
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, le=3600, description="How long in-flight requests may take to finish on SIGTERM."
    )
    metrics_gzip_level: int = Field(1, ge=0, le=9, description="gzip level for /metrics (0 = never compress).")
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="An HTTP connection must deliver complete request headers within this long (slowloris guard); "
        "idle keep-alive connections are closed after it too.",
    )
    http_request_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="An HTTP request's body must arrive and be answered within this long (408)."
    )
    grpc_max_connections: int = Field(
        512, ge=1, le=1_000_000,
        description="OTLP/gRPC connections open at once; more are closed as they arrive (each costs a file "
        "descriptor: see docs/deploy.md on the open-files limit).",
    )
    grpc_max_concurrent_streams: int = Field(
        100, ge=1, le=1_000_000, description="Export calls in progress at once on one OTLP/gRPC connection.",
    )
    grpc_max_connection_idle_seconds: float = Field(
        300.0, gt=0, le=86400,
        description="An OTLP/gRPC connection without calls for this long is closed (GOAWAY); exporters reconnect.",
    )
    max_concurrent_scrapes: int = Field(
        4, ge=1, le=1000,
        description="/metrics scrapes served at once (concurrent scrapes share one rendered body); more get 503.",
    )
    scrape_write_timeout_seconds: float = Field(
        30.0, gt=0, le=3600,
        description="A /metrics client must read the whole body within this long, or its connection is closed.",
    )


    @property
    def decode_workers(self) -> int:
        """``workers``, or for ``auto`` what this machine gives."""
        return self.workers if self.workers != "auto" else default_workers(usable_cores())


class TlsConfig(_Model):
    """Server TLS; a ``client_ca_file`` makes it mutual (clients must present a certificate it signed)."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    @model_validator(mode="after")
    def _check(self) -> "TlsConfig":
        problems = []
        if bool(self.cert_file) != bool(self.key_file):
            problems.append("cert_file and key_file go together")
        if self.client_ca_file and not self.cert_file:
            problems.append("client_ca_file (mutual TLS) needs cert_file and key_file")
        problems += _unreadable(cert_file=self.cert_file, key_file=self.key_file, client_ca_file=self.client_ca_file)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BasicAuthConfig(_Model):
    username: str = ""
    password_file: str = ""

    @model_validator(mode="after")
    def _check(self) -> "BasicAuthConfig":
        problems = []
        if bool(self.username) != bool(self.password_file):
            problems.append("username and password_file go together")
        if ":" in self.username:
            problems.append("username must not contain ':'")
        problems += _unreadable(password_file=self.password_file)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ReceiverSecurityConfig(_Model):
    """TLS and bearer-token auth for both OTLP receivers and everything else on the OTLP/HTTP port."""

    tls: TlsConfig = Field(default_factory=TlsConfig)
    bearer_token_file: ReadableFile = Field("", description="Clients must send 'Authorization: Bearer <file content>'.")


class MetricsSecurityConfig(_Model):
    """TLS and optional auth for /metrics (health endpoints stay open for probes)."""

    tls: TlsConfig = Field(default_factory=TlsConfig)
    bearer_token_file: ReadableFile = ""
    basic_auth: BasicAuthConfig = Field(default_factory=BasicAuthConfig)


class SecurityConfig(_Model):
    receivers: ReceiverSecurityConfig = Field(default_factory=ReceiverSecurityConfig)
    metrics: MetricsSecurityConfig = Field(default_factory=MetricsSecurityConfig)
    attribute_deny: tuple[str, ...] = Field(
        (), description="Attribute keys never read (a trailing * matches a prefix), on spans, resources and events."
    )

    @field_validator("attribute_deny")
    @classmethod
    def _check_deny(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [key for key in value if not key or "*" in key[:-1]]
        if bad:
            raise ValueError(f"entries must be non-empty keys with at most a trailing '*': {bad!r}")
        return value


class ForwardTlsConfig(_Model):
    """TLS towards the upstream (used when the endpoint is https://)."""

    ca_file: str = Field("", description="CA bundle to verify the upstream (default: the system store).")
    cert_file: str = Field("", description="Client certificate for mutual TLS.")
    key_file: str = ""

    @model_validator(mode="after")
    def _check(self) -> "ForwardTlsConfig":
        problems = []
        if bool(self.cert_file) != bool(self.key_file):
            problems.append("cert_file and key_file go together")
        problems += _unreadable(ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)
        if problems:
            raise ValueError("; ".join(problems))
        return self


_ENDPOINT = re.compile(r"^(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(?P<port>\d{1,5}))?(?P<path>/.*)?$")


class ForwardConfig(_Model):
    """Forward every accepted export request, unchanged, to an upstream OTLP endpoint (sinks/forward.py)."""

    endpoint: str = Field("", description="http(s)://host:port of the upstream; empty = forwarding off.")
    protocol: Literal["grpc", "http"] = "grpc"
    compression: Literal["gzip", "none"] = "gzip"
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request (e.g. tenant, auth).")
    tls: ForwardTlsConfig = Field(default_factory=ForwardTlsConfig)
    timeout_seconds: float = Field(10.0, gt=0, le=600, description="Per upstream request.")
    max_batch_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=2**31 - 1, description="Requests are merged into batches up to this size."
    )
    flush_interval_seconds: float = Field(0.2, ge=0, le=60, description="How long a batch may wait to fill up.")
    buffer_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, le=2**40, description="Requests waiting (and retried) beyond this are dropped, counted."
    )
    retry_initial_seconds: float = Field(0.5, gt=0, le=60)
    retry_max_seconds: float = Field(30.0, gt=0, le=600, description="Longest wait between two attempts.")
    retry_max_elapsed_seconds: float = Field(
        120.0, ge=0, le=86400, description="A batch still failing after this long is dropped, counted (0 = one attempt)."
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if value:
            match = _ENDPOINT.match(value)
            if not match:
                raise ValueError("must be http://host:port or https://host:port")
            if match["port"] and int(match["port"]) > 65535:
                raise ValueError("port must be between 0 and 65535")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name)]
        bad += [name for name, text in value.items() if "\n" in text or "\r" in text]
        if bad:
            raise ValueError(f"invalid header name or value: {bad!r}")
        return value


def _unreadable(**files: str) -> list[str]:
    """Problems for configured files that cannot be read (checked at load, so check-config reports them)."""
    problems = []
    for name, path in files.items():
        if path and not os.access(path, os.R_OK):
            problems.append(f"{name} {path!r} is not a readable file")
    return problems
