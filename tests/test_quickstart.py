"""README.md's Quick start, run as written: its commands are parsed out of the file, so it cannot drift.

The sidecar is started by the README's own ``agentprom serve`` line with the three
listen addresses moved to free ports through their documented ``AGENTPROM_*``
variables (no fixed ports in tests); the commands after it get the addresses the
sidecar logged in place of the default ones, and ``agentprom demo`` gets its endpoint
through the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``, as ``--help`` says. The pip line
is checked, not run: it would reinstall the package the suite is testing.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from agentprom.config.schema import ServerConfig
from agentprom.demo import plan as demo_plan
from tests.conftest import tool

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEFAULTS = {name: ServerConfig.model_fields[name].default for name in ("otlp_grpc", "otlp_http", "metrics")}


def quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M)
    assert match, "README.md has no '## Quick start' section"
    return match.group(1)


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.S | re.M)


def commands() -> list[str]:
    lines = [line.strip() for line in blocks(quick_start(), "sh")[0].splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def loopback(address: str) -> str:
    """The address a client on this machine uses for a listen address (0.0.0.0 -> 127.0.0.1)."""
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``agentprom`` is this checkout's, run by this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "agentprom"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m agentprom "$@"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTPROM_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Serve:
    """The README's serve line in the background; collects the addresses it logs."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        env = {**env, **{f"AGENTPROM_{name.upper()}": "127.0.0.1:0" for name in DEFAULTS}}
        self.process = subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.addresses: dict[str, str] = {}
        self.log: list[str] = []
        self._listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            found = re.search(r"listening: (\w+) on (\S+)", line)
            if found:
                self.addresses[found.group(1)] = found.group(2)
                if set(DEFAULTS) <= set(self.addresses):
                    self._listening.set()

    def wait_listening(self, timeout: float = 60) -> None:
        if not self._listening.wait(timeout):
            raise AssertionError("the sidecar did not log its three addresses:\n" + "".join(self.log))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        assert self.process.wait(30) == 0, "".join(self.log)


def test_quick_start_commands_show_agent_series(shim):
    steps = commands()
    install, serve_line, *rest = steps
    assert install.startswith("python3 -m pip install "), install
    extras = set(re.findall(r"\[([\w,-]+)\]", install)[0].split(",")) if "[" in install else set()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(declared), f"the Quick start installs extras pyproject.toml lacks: {extras - set(declared)}"
    assert " . " in install + " " or "'.[" in install, "the Quick start installs from the checkout"
    assert serve_line.startswith("agentprom serve"), serve_line
    assert any(line.startswith("agentprom demo") for line in rest), "the Quick start sends demo traffic"

    serve = Serve(serve_line, shim)
    try:
        serve.wait_listening()
        env = {**shim, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + serve.addresses["otlp_grpc"]}
        for i, line in enumerate(rest):
            for name, default in DEFAULTS.items():
                line = line.replace(loopback(default), loopback(serve.addresses[name]))
            last = i == len(rest) - 1
            deadline = time.monotonic() + 30
            while True:  # the last command reads /metrics: the sidecar may still be translating the spans
                done = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, env=env,
                                      capture_output=True, text=True, timeout=120)
                if done.returncode == 0 and (not last or "agent_invocations_total{" in done.stdout):
                    break
                assert last and time.monotonic() < deadline, f"{line!r} failed:\n{done.stdout}{done.stderr}"
        for metric in ("agent_invocations_total", "agent_llm_calls_total", "agent_tokens_total",
                       "agent_llm_cost_usd_total", "agent_tool_calls_total", "agent_tool_errors_total",
                       "agent_sessions_total", "agent_phases_total"):
            assert re.search(rf'^{metric}{{agent="demo-[^"]+"', done.stdout, re.M), metric
    finally:
        serve.stop()


def test_scrape_config_example_is_valid_and_targets_the_metrics_port(tmp_path):
    (example,) = blocks(quick_start(), "yaml")
    assert len(example.strip().splitlines()) == 3
    config = yaml.safe_load(example)
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [loopback(DEFAULTS["metrics"])]
    path = tmp_path / "prometheus.yml"
    path.write_text(example)
    done = subprocess.run([tool("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_real_agent_paragraph_names_the_default_endpoints():
    section = quick_start()
    for name in ("otlp_grpc", "otlp_http"):
        assert f"http://{DEFAULTS[name]}" in section, name
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in section and "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in section
    assert "opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter" in section
    assert f"http://{DEFAULTS['otlp_http']}/v1/traces" in section


def test_demo_defaults_are_the_ones_the_quick_start_states():
    from agentprom.demo import cli as demo_cli

    section = " ".join(quick_start().split())
    agents = {2: "two", 3: "three", 4: "four"}[len(demo_plan.AGENTS)]
    assert f"`agentprom demo` sends {demo_cli.DEFAULT_SESSIONS} sessions of {agents} simulated agents" in section
    assert f"over OTLP/gRPC to `{demo_cli.DEFAULT_ENDPOINT.removeprefix('http://')}`" in section
    assert f"`service.name={demo_cli.DEFAULT_SERVICE_NAME}`" in section
    assert "agent names starting with `demo-`" in section
    assert all(agent.startswith("demo-") for agent in demo_plan.AGENTS)


@pytest.mark.parametrize("module", ["grpc", "http"])
def test_the_exporters_written_in_the_quick_start_reach_a_sidecar(make_sidecar, module):
    """The paragraph's exporter calls, as written (default addresses moved to the test sidecar's)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    section = " ".join(quick_start().split())
    call = re.search(r"`(opentelemetry\.exporter\.otlp\.proto\.grpc\.trace_exporter\.OTLPSpanExporter\([^`]*\))`",
                     section)[1]
    if module == "http":  # "the `proto.http` one with `endpoint=...`"
        endpoint = re.search(r"the `proto\.http` one with `(endpoint=[^`]*)`", section)[1]
        call = "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter(" + endpoint + ")"
    sidecar = make_sidecar()
    for name, default in DEFAULTS.items():
        call = call.replace(loopback(default), sidecar.app.addresses[name])
    module_path, arguments = call.split(".OTLPSpanExporter(", 1)
    exporter_class = importlib.import_module(module_path).OTLPSpanExporter
    exporter = eval("OTLPSpanExporter(" + arguments, {"OTLPSpanExporter": exporter_class})  # noqa: S307 (README text)
    provider = TracerProvider(resource=Resource.create({"service.name": "quickstart-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("quickstart")
    with tracer.start_as_current_span("invoke_agent helper", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}):
        pass
    provider.force_flush()
    provider.shutdown()
    assert sidecar.value("agent_invocations_total", agent="helper", status="ok") == 1
