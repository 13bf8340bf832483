"""The command line as a user runs it: serve with port 0, SIGTERM, check-config, docs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentprom", *args], capture_output=True, text=True,
                          env=_env(env), timeout=60, **kw)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPROM_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(extra or {})
    return env


def listening_addresses(process: subprocess.Popen, timeout: float) -> dict[str, str]:
    """The three addresses ``agentprom serve`` logs it listens on (read from its stderr)."""
    addresses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(addresses) < 3 and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        match = re.search(r"listening: (\w+) on (\S+)", line)
        if match:
            addresses[match[1]] = match[2]
    assert set(addresses) == {"otlp_grpc", "otlp_http", "metrics"}
    return addresses


def test_check_config_accepts_the_shipped_file():
    result = run_cli("check-config", str(ROOT / "config" / "agentprom.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_prints_every_error_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  otlp_grpc: x\n  nope: 1\nstore:\n  max_series_per_metric: -1\n")
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2
    for fragment in ("server.otlp_grpc", "'x'", "server.nope", "unknown key", "store.max_series_per_metric", "3 problem(s)"):
        assert fragment in result.stderr


def test_help_lists_flags_and_env_vars():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for fragment in ("--otlp-grpc", "AGENTPROM_OTLP_GRPC", "--metrics", "AGENTPROM_CONFIG", "--log-level"):
        assert fragment in result.stdout


def test_docs_metrics_matches_the_committed_file():
    result = run_cli("docs", "metrics")
    assert result.returncode == 0
    committed = (ROOT / "docs" / "metrics.md").read_text()
    assert result.stdout == committed, "docs/metrics.md is stale: run `agentprom docs metrics --write docs/metrics.md`"


def test_serve_on_port_zero_logs_addresses_serves_and_exits_zero_on_sigterm():
    env = _env({"AGENTPROM_OTLP_HTTP": "127.0.0.1:0", "AGENTPROM_METRICS": "127.0.0.1:0"})
    process = subprocess.Popen(
        [sys.executable, "-m", "agentprom", "serve", "--config", str(ROOT / "config" / "agentprom.yaml"),
         "--otlp-grpc", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        addresses = listening_addresses(process, 30)
        assert all(not a.endswith(":0") for a in addresses.values())
        with urllib.request.urlopen(f"http://{addresses['metrics']}/-/ready", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://{addresses['metrics']}/metrics", timeout=5) as response:
            assert b"agentprom_build_info" in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "shutting down" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("flag, what", [("--otlp-grpc", "OTLP/gRPC"), ("--otlp-http", "OTLP/HTTP"),
                                        ("--metrics", "/metrics")])
def test_serve_reports_a_busy_port_first_and_clearly_and_exits_one(flag, what):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        addresses = {"--otlp-grpc": "127.0.0.1:0", "--otlp-http": "127.0.0.1:0", "--metrics": "127.0.0.1:0",
                     flag: f"127.0.0.1:{port}"}
        result = run_cli("serve", *(item for pair in addresses.items() for item in pair))
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if " agentprom" in line]  # not gRPC's own C-core line
    error = next(i for i, line in enumerate(ours) if "ERROR" in line)
    assert error == len(ours) - 1, "nothing after the error:\n" + result.stderr
    assert not any("shutting down" in line or "stopped" in line for line in ours), result.stderr
    assert f"cannot start: cannot listen for {what} on 127.0.0.1:{port}: address already in use" in ours[error]
    assert flag in ours[error] and "port 0 picks a free one" in ours[error]


def test_serve_rejects_bad_flag_values_with_exit_two():
    result = run_cli("serve", "--metrics", "not-an-address")
    assert result.returncode == 2
    assert "server.metrics (from command line)" in result.stderr
