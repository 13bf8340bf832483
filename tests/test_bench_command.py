"""Command scenarios: the user's agent run N times with a timeout, against a real sidecar.

The agent is examples/bench/toy_agent.py (real OpenTelemetry SDK, configured by
the environment the harness sets) or a small inline Python program.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentprom.benchmark.command import run_command
from agentprom.benchmark.runner import BenchError, Runner
from agentprom.benchmark.scenario import CommandScenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "bench"


def scenario(command: list[str], **overrides: Any) -> CommandScenario:
    document = {"name": "cmd", "kind": "command", "command": command, "runs": 1, "timeout_seconds": 60,
                "record_timeout_seconds": 10}
    document.update(overrides)
    return parse_scenario(document, base_dir=EXAMPLES)  # type: ignore[return-value]


def run(sidecar, sc: CommandScenario, **kw: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    Runner(sc, sidecar.http_url, records.append, **kw).run()
    return records


def _alive(pid: int) -> bool:
    """Running (a killed process whose parent died may linger as a zombie until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


HANGING = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)
""")


def test_a_hanging_command_is_killed_at_its_timeout_with_its_children_and_recorded_as_failed(sidecar, tmp_path):
    pids = tmp_path / "pids"
    sc = scenario(["{python}", "-c", HANGING, str(pids)], timeout_seconds=1.5, kill_grace_seconds=0.5,
                  record_timeout_seconds=0.5)
    (record,) = run(sidecar, sc)
    parent, child = (int(pid) for pid in pids.read_text().split())
    assert not _alive(parent) and not _alive(child)  # the whole process group went
    assert record["success"] is False and record["timed_out"] is True
    assert record["failure_reason"].startswith("timed out after 1.5s")
    # it sent no spans: the sidecar never heard of the session
    assert record["status"] is None and record["tool_calls"] is None


def test_a_command_that_ignores_sigterm_gets_sigkill(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
               "time.sleep(600)"
    result = run_command([sys.executable, "-c", stubborn], dict(os.environ), tmp_path, timeout=1.0,
                         kill_grace=0.2, log_dir=tmp_path, log_name="stubborn")
    assert result.timed_out and result.exit_code == -9 and not result.ok
    assert (tmp_path / "stubborn.stdout").read_text() == "up\n"


def test_a_hung_agent_session_is_ended_as_failed_with_what_it_sent(sidecar):
    sc = scenario(["{python}", "toy_agent.py", "--hang-after", "2", "--seed", "1"], timeout_seconds=3,
                  kill_grace_seconds=0.5)
    (record,) = run(sidecar, sc)
    assert record["success"] is False and record["timed_out"] is True
    # the harness ended the open session in the sidecar as failed; the two steps it sent are counted
    assert record["status"] == "failed"
    assert (record["tool_calls"], record["llm_calls"]) == (2, 2)


def test_toy_agent_runs_are_recorded_from_the_sidecar(sidecar):
    sc = scenario(["{python}", "toy_agent.py", "--steps", "3", "--fail-rate", "0.5", "--seed", "3"], runs=3)
    records = run(sidecar, sc)
    assert [r["run_index"] for r in records] == [0, 1, 2]
    for record in records:
        assert record["status"] in ("completed", "failed")
        assert record["success"] is (record["exit_code"] == 0) is (record["status"] == "completed")
        assert record["tool_calls"] >= 1 and record["continuity_score"] is not None
        assert record["tool_errors"] >= record["recovery_count"]
    # the seed makes every run the same, with failed reads, retries and recoveries
    assert len({(r["tool_calls"], r["tool_errors"], r["recovery_count"]) for r in records}) == 1
    assert records[0]["tool_errors"] > 0 and records[0]["retries"] > 0


def test_the_command_gets_the_sidecar_and_session_in_its_environment(sidecar, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://elsewhere:4318/v1/traces")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    dump = tmp_path / "env.json"
    program = f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"
    sc = scenario(["{python}", "-c", program], env={"EXTRA": "1"}, record_timeout_seconds=0.3)
    (record,) = run(sidecar, sc)
    env = json.loads(dump.read_text())
    session_id = record["session_id"]
    assert env["AGENTPROM_SESSION_ID"] == session_id
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == sidecar.http_url
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in env  # would send the spans elsewhere
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"deployment.environment=ci,agent.session.id={session_id},agentprom.benchmark.name=cmd,"
        f"agentprom.benchmark.run_id={record['run_id']}")
    assert env["AGENTPROM_BENCHMARK_NAME"] == "cmd" and env["AGENTPROM_RUN_INDEX"] == "0"
    assert env["EXTRA"] == "1"
    # it exited 0 but never sent a span: no record, so the session is failed with the reason
    assert record["success"] is False and record["exit_code"] == 0
    assert "never appeared in the sidecar" in record["failure_reason"]


def test_a_failing_command_is_failed_with_the_end_of_its_stderr(sidecar):
    program = "import sys; print('x' * 1000 + ' disk full', file=sys.stderr); sys.exit(3)"
    (record,) = run(sidecar, scenario(["{python}", "-c", program], record_timeout_seconds=0.3))
    assert record["exit_code"] == 3 and record["success"] is False
    assert record["failure_reason"].startswith("exited with code 3: xxx")
    assert record["failure_reason"].endswith("disk full") and len(record["failure_reason"]) < 450


def test_a_command_that_cannot_start_is_failed(sidecar):
    (record,) = run(sidecar, scenario(["/nonexistent/agent"], record_timeout_seconds=0.2))
    assert record["success"] is False and record["exit_code"] is None
    assert "cannot start '/nonexistent/agent'" in record["failure_reason"]


def test_logs_keep_each_runs_output(sidecar, tmp_path):
    sc = scenario(["{python}", "-c", "print('hello')"], runs=2, record_timeout_seconds=0.2)
    records = run(sidecar, sc, log_dir=tmp_path / "logs")
    for record in records:
        assert (tmp_path / "logs" / f"{record['session_id']}.stdout").read_text() == "hello\n"


@pytest.mark.parametrize("command", ["{python} toy_agent.py --steps 2", ["{python}", "toy_agent.py", "--steps", "2"]])
def test_a_command_string_is_split_like_a_shell_would(command):
    assert scenario(command).command == ("{python}", "toy_agent.py", "--steps", "2")


def test_a_missing_working_directory_stops_the_run(sidecar):
    with pytest.raises(BenchError, match="working directory .*nowhere does not exist"):
        run(sidecar, scenario(["{python}", "-c", "pass"], cwd="nowhere"))
