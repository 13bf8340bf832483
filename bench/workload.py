"""Benchmark workload: pre-serialized OTLP export requests of realistic agent spans, and
the helpers every bench script shares (free ports, starting the sidecar, CPU and RSS readings).

A request holds 512 spans in the mix a tool-using agent produces: per run one
``invoke_agent`` span, LLM ``chat`` spans with token usage, ``execute_tool``
spans, and plain HTTP client spans, each with the attributes real
instrumentations set (including large ones agentprom skips, such as messages).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

ROOT = Path(__file__).resolve().parent.parent
SPANS_PER_REQUEST = 512
GRPC_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
T0 = 1_700_000_000_000_000_000


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


#: the first 8 bytes of every trace id in a request (``with_trace_ids`` replaces them)
TRACE_PREFIX = bytes.fromhex("5B8EFFF798038103")


def _span(i: int, name: str, kind: int, ms: float, attrs: dict, error: bool = False) -> Span:
    return Span(
        trace_id=TRACE_PREFIX + (0xD269B633813FC60C + i // 8).to_bytes(8, "big"),
        span_id=(0x1000 + i).to_bytes(8, "big"),
        parent_span_id=(0x1000 + i - i % 8).to_bytes(8, "big") if i % 8 else b"",
        name=name,
        kind=kind,
        start_time_unix_nano=T0 + i * 1000,
        end_time_unix_nano=T0 + i * 1000 + int(ms * 1e6),
        attributes=[_kv(k, v) for k, v in attrs.items()],
        status=Status(code=2 if error else 0),
    )


def agent_spans(n: int, variant: str = "", tool_of=None) -> list[Span]:
    """``n`` spans in a fixed agent-run mix; ``tool_of(i)`` overrides tool names (cardinality tests)."""
    spans = []
    messages = json.dumps([{"role": "user", "content": "Plan a three-day trip to Lisbon. " * 8}])
    for i in range(n):
        agent = f"agent-{(i // 8) % 4}{variant}"
        slot = i % 8
        if slot == 0:
            spans.append(_span(i, f"invoke_agent {agent}", 1, 2400.0, {
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
                "gen_ai.provider.name": "openai", "gen_ai.conversation.id": f"conv-{i // 64}",
                "logfire.msg": f"{agent} run",
            }))
        elif slot in (1, 3, 5):
            model = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")[slot // 2]
            spans.append(_span(i, f"chat {model}", 3, 100.0 + 37 * slot, {
                "gen_ai.operation.name": "chat", "gen_ai.agent.name": agent,
                "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
                "gen_ai.request.model": model, "gen_ai.response.model": model + "-2024",
                "gen_ai.usage.input_tokens": 1200 + i, "gen_ai.usage.output_tokens": 200 + slot,
                "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.request.temperature": 0.2,
                "server.address": "api.example.com", "gen_ai.input.messages": messages,
                "gen_ai.response.finish_reasons": "stop",
            }, error=(i % 97 == 0)))
        elif slot in (2, 4):
            tool = tool_of(i) if tool_of else ("web_search", "calculator")[slot // 4]
            spans.append(_span(i, f"execute_tool {tool}", 1, 35.0 * slot, {
                "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": agent, "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": f"call_{i}", "gen_ai.tool.call.arguments": '{"q": "lisbon hotels"}',
            }, error=(i % 50 == 2)))
        else:
            spans.append(_span(i, "POST /v1/chat/completions", 3, 90.0, {
                "http.request.method": "POST", "url.full": "https://api.example.com/v1/chat/completions",
                "http.response.status_code": 200, "server.address": "api.example.com", "server.port": 443,
            }))
    return spans


def request(spans: list[Span], service: str = "bench-agent") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", service), _kv("service.version", "1.0.0"),
                                   _kv("telemetry.sdk.language", "python")])
    ss = rs.scope_spans.add()
    ss.scope.name = "pydantic-ai"
    ss.spans.extend(spans)
    return req


def request_bytes(variant: str = "") -> bytes:
    """One serialized 512-span request."""
    return request(agent_spans(SPANS_PER_REQUEST, variant)).SerializeToString()


def with_trace_ids(body: bytes, prefix: bytes) -> bytes:
    """``body`` (from ``request_bytes``) with the traces renamed by an 8-byte ``prefix``: a
    replayed request then carries new traces, as real traffic does. Replaying the same ids would
    measure a sidecar that sees every span id twice (the trace context resolves such spans apart
    and counts them as ``duplicate_span_id`` fallbacks)."""
    return body.replace(TRACE_PREFIX, prefix)


# -- processes, ports, readings -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (the sidecar's decode workers and shippers), from /proc."""
    found, i = [pid], 0
    while i < len(found):
        for task in Path(f"/proc/{found[i]}/task").glob("*/children"):
            try:
                found += [int(child) for child in task.read_text().split()]
            except OSError:
                pass
        i += 1
    return found


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process alone (and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile: its time is in its parent's reaped-children fields
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (alive, or ended and reaped), from /proc."""
    return sum(own_cpu_seconds(p) for p in process_tree(pid))


def _own_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    raise RuntimeError("no VmRSS")


def rss_bytes(pid: int, tree: bool = False) -> int:
    """Resident memory of a process, or with ``tree`` the sum over it and its descendants."""
    return sum(_own_rss(p) for p in process_tree(pid)) if tree else _own_rss(pid)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
        return response.read()


class SidecarProcess:
    """``python -m agentprom serve`` from this checkout, on free loopback ports."""

    def __init__(self, config: str = "", log_path: str | None = None, prefix: list[str] | None = None,
                 ready_seconds: float = 30, env: dict[str, str] | None = None) -> None:
        """``prefix`` runs the sidecar under another program (``bench/instructions.py``: valgrind),
        which may need longer than ``ready_seconds`` to start it; ``env`` adds to its environment."""
        self.grpc = f"127.0.0.1:{free_port()}"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.http = f"127.0.0.1:{free_port()}"
        self._config_path = None
        args = [*(prefix or ()), sys.executable, "-m", "agentprom", "serve", "--otlp-grpc", self.grpc,
                "--otlp-http", self.http, "--metrics", self.metrics, "--log-level", "warning"]
        if config:
            handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
            handle.write(config)
            handle.close()
            self._config_path = handle.name
            args += ["--config", handle.name]
        env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT / "src")}
        # the sidecar's own log (warnings and up), kept to explain a sidecar that never became ready
        self._log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self._ready(), ready_seconds, "sidecar ready")
        except (TimeoutError, RuntimeError) as exc:
            self._log.seek(0)
            tail = self._log.read()[-3000:].decode(errors="replace")
            self.proc.kill()
            self.proc.wait()
            self._log.close()
            if self._config_path:
                os.unlink(self._config_path)
            raise RuntimeError(f"{exc} (exit code {self.proc.returncode}); its log:\n{tail}") from None

    def _ready(self) -> bool:
        if self.proc.poll() is not None:  # it ended: waiting longer would not help
            raise RuntimeError("the sidecar exited before it was ready")
        return b"ready" in http_get(f"http://{self.metrics}/-/ready", timeout=2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def scrape(self, openmetrics: bool = False) -> bytes:
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        return http_get(f"http://{self.metrics}/metrics", accept)

    def stop(self, grace: float = 15) -> bytes:
        """SIGTERM, then SIGKILL after ``grace`` seconds; return the sidecar's log."""
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        if self._config_path:
            os.unlink(self._config_path)
        return log


def emit(result: dict) -> None:
    """Print the one JSON line a bench script reports."""
    print(json.dumps(result, sort_keys=False), flush=True)
