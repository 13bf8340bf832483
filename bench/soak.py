"""Soak: drive a real sidecar at (and past) its capacity for a bounded time and account for every span.

    python3 bench/soak.py [--seconds 180] [--senders 6] [--spans-per-request 256]
                          [--max-queue-spans N] [--memory-limit-mib M] [--quick]

The sidecar runs as its own process (``python -m agentprom serve``, ports 0). Sender threads
send pre-built OTLP/gRPC export requests back to back and behave like the OpenTelemetry SDK:
a request refused with UNAVAILABLE (or that timed out) is retried after the RetryInfo delay
(or a backoff) until accepted. Every ``--sample`` seconds the sidecar's resident memory is read
from /proc. At the end the sidecar's queue is left to drain and its counters are scraped.

Prints one JSON object. ``lost`` = spans sent (distinct spans offered) - spans counted by the
sidecar: it must be 0; ``duplicated`` > 0 would mean a retried request was counted twice.
``refused_attempts`` counts refusals that were then retried. The sidecar is then stopped with
SIGTERM and ``exit_code`` must be 0. --quick runs for 4 seconds (used by the test suite).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

ROOT = Path(__file__).resolve().parent.parent
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def export_request(spans: int, sender: int) -> bytes:
    """Agent-run spans: an invocation, LLM calls with tokens, tool calls, and a large prompt we skip."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=f"soak-{sender}")))
    scope = rs.scope_spans.add()
    prompt = "Plan a three-day trip to Lisbon. " * 20
    for i in range(spans):
        span = scope.spans.add(
            trace_id=(sender * 1_000_003 + i // 8 + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"), name="span",
            start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=1_700_000_000_050_000_000 + i,
        )
        attrs = {"gen_ai.agent.name": f"agent-{i % 4}"}
        if i % 8 == 0:
            attrs["gen_ai.operation.name"] = "invoke_agent"
        elif i % 2:
            attrs.update({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                          "gen_ai.usage.input_tokens": 1000 + i, "gen_ai.usage.output_tokens": 100,
                          "gen_ai.input.messages": prompt})
        else:
            attrs.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"tool-{i % 6}"})
        for key, value in attrs.items():
            any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
            span.attributes.append(KeyValue(key=key, value=any_value))
    return request.SerializeToString()


class Sidecar:
    """``agentprom serve`` in a child process; its addresses come from its start-up log."""

    def __init__(self, config: dict, log_path: Path, command_prefix: Sequence[str] = ()) -> None:
        """``command_prefix`` runs the server through another program (e.g. ``unshare``)."""
        self.config_path = log_path.with_suffix(".yaml")
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPROM_")}
        env["PYTHONPATH"] = str(ROOT / "src")
        self.log = open(log_path, "w+")
        self.process = subprocess.Popen(
            [*command_prefix, sys.executable, "-m", "agentprom", "serve", "--config", str(self.config_path)],
            stderr=self.log, stdout=subprocess.DEVNULL, env=env,
        )
        self.addresses: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(self.addresses) < 3:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                self.process.wait()
                raise RuntimeError("sidecar did not start:\n" + Path(log_path).read_text())
            self.addresses = dict(re.findall(r"listening: (\w+) on (\S+)", Path(log_path).read_text()))
            time.sleep(0.05)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def metrics(self) -> dict[str, float]:
        """Sum of each sample name over its label sets (enough for the totals we compare)."""
        url = f"http://{self.addresses['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name_labels, value = line.rsplit(" ", 1)
                name = name_labels.split("{", 1)[0]
                key = name
                if 'reason="' in name_labels:
                    key += ":" + name_labels.split('reason="', 1)[1].split('"', 1)[0]
                totals[key] = totals.get(key, 0.0) + float(value)
        return totals

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.log.close()


class Refused(Exception):
    def __init__(self, code: str, delay: float | None) -> None:
        self.code, self.delay = code, delay


class Sender(threading.Thread):
    """Sends one request after another until the deadline; retries refusals like the SDK."""

    def __init__(self, protocol: str, address: str, body: bytes, spans: int, deadline: float,
                 stop_retrying: float) -> None:
        super().__init__(daemon=True)
        self.body, self.spans = body, spans
        self.deadline, self.stop_retrying = deadline, stop_retrying
        if protocol == "grpc":
            self.channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
            self.grpc_export = self.channel.unary_unary(EXPORT)
            self.export = self._export_grpc
        else:
            host, port = address.rsplit(":", 1)
            self.connection = http.client.HTTPConnection(host, int(port), timeout=10)
            self.export = self._export_http
        self.sent = self.accepted = self.refused_attempts = self.abandoned = 0
        self.refusals: dict[str, int] = {}

    def _export_grpc(self) -> None:
        try:
            self.grpc_export(self.body, timeout=10)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE:
                raise
            info = dict(error.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
            delay = None
            if info is not None:
                retry = RetryInfo.FromString(info).retry_delay
                delay = retry.seconds + retry.nanos / 1e9
            raise Refused(error.code().name, delay) from None

    def _export_http(self) -> None:
        try:
            self.connection.request("POST", "/v1/traces", self.body, {"Content-Type": "application/x-protobuf"})
            response = self.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise Refused("connection", None) from None
        if response.status in (429, 502, 503, 504):
            after = response.headers.get("Retry-After")
            raise Refused(str(response.status), float(after) if after else None)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            self.sent += self.spans
            backoff = 0.1
            while True:
                try:
                    self.export()
                    self.accepted += self.spans
                    break
                except Refused as refused:
                    if time.monotonic() > self.stop_retrying:
                        self.abandoned += self.spans
                        return
                    self.refused_attempts += self.spans
                    self.refusals[refused.code] = self.refusals.get(refused.code, 0) + 1
                    time.sleep(refused.delay if refused.delay is not None else backoff)
                    backoff = min(backoff * 2, 5.0)
                except (grpc.RpcError, RuntimeError):
                    self.abandoned += self.spans
                    return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to send (default 180)")
    parser.add_argument("--quick", action="store_true", help="4 seconds, for the test suite")
    parser.add_argument("--senders", type=int, default=6)
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--spans-per-request", type=int, default=256)
    parser.add_argument("--max-queue-spans", type=int, default=2048)
    parser.add_argument("--memory-limit-mib", type=int, default=0)
    parser.add_argument("--sample", type=float, default=0.0, help="RSS sampling interval (default seconds/30)")
    args = parser.parse_args(argv)
    seconds = 4.0 if args.quick else args.seconds
    sample_every = args.sample or max(seconds / 30, 0.2)

    config = {
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        "queue": {"max_spans": args.max_queue_spans, "memory_limit_mib": args.memory_limit_mib},
        "log": {"level": "info"},  # the start-up lines carry the bound addresses
    }
    with tempfile.TemporaryDirectory(prefix="agentprom-soak-") as scratch:
        sidecar = Sidecar(config, Path(scratch) / "sidecar.log")
        try:
            start = time.monotonic()
            deadline = start + seconds
            senders = [
                Sender(args.protocol, sidecar.addresses[f"otlp_{args.protocol}"], export_request(args.spans_per_request, n),
                       args.spans_per_request, deadline, deadline + 60)
                for n in range(args.senders)
            ]
            for sender in senders:
                sender.start()
            rss: list[tuple[float, int]] = []
            while any(sender.is_alive() for sender in senders):
                rss.append((round(time.monotonic() - start, 1), sidecar.rss_bytes() >> 20))
                time.sleep(sample_every)
            elapsed = time.monotonic() - start
            drain_deadline = time.monotonic() + 60
            metrics = sidecar.metrics()
            while metrics.get("agentprom_queue_spans", 0) and time.monotonic() < drain_deadline:
                time.sleep(0.1)
                metrics = sidecar.metrics()
            rss.append((round(time.monotonic() - start, 1), sidecar.rss_bytes() >> 20))
        finally:
            exit_code = sidecar.stop()

    sent = sum(s.sent for s in senders)
    accepted = sum(s.accepted for s in senders)
    abandoned = sum(s.abandoned for s in senders)
    counted = int(metrics.get("agentprom_spans_received_total", 0))
    refusals: dict[str, int] = {}
    for sender in senders:
        for code, n in sender.refusals.items():
            refusals[code] = refusals.get(code, 0) + n
    settled = [mib for t, mib in rss if t >= seconds * 0.25] or [mib for _t, mib in rss]
    result = {
        "seconds": round(elapsed, 1),
        "protocol": args.protocol,
        "senders": args.senders,
        "spans_per_request": args.spans_per_request,
        "max_queue_spans": args.max_queue_spans,
        "spans_sent": sent,
        "spans_accepted": accepted,
        "spans_counted": counted,
        "spans_abandoned": abandoned,
        "lost": max(accepted - counted, 0),
        "duplicated": max(counted - accepted, 0),
        "refused_attempts_spans": sum(s.refused_attempts for s in senders),
        "refusals_by_code": refusals,
        "server_refused_requests": {k.split(":", 1)[1]: int(v) for k, v in metrics.items()
                                    if k.startswith("agentprom_requests_refused_total:")},
        "spans_per_second": round(counted / elapsed),
        "rss_mib_first": rss[0][1] if rss else 0,
        "rss_mib_after_warmup_min": min(settled) if settled else 0,
        "rss_mib_after_warmup_max": max(settled) if settled else 0,
        "rss_mib_last": rss[-1][1] if rss else 0,
        "rss_samples": rss,
        "exit_code": exit_code,
    }
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 and abandoned == 0 and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
