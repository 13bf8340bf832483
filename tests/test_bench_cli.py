"""`agentprom bench` end to end, as a user runs it: `python -m agentprom bench ...` against a real sidecar."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.runtime_api import get_json, post_json

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "bench"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPROM_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run([sys.executable, "-m", "agentprom", "bench", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_and_compare_the_endurance_example(sidecar, tmp_path):
    base, rerun, slow = tmp_path / "base.jsonl", tmp_path / "rerun.jsonl", tmp_path / "slow.jsonl"
    scenario = str(EXAMPLES / "synthetic-endurance.yaml")
    result = bench("run", scenario, "--sidecar", sidecar.http_url, "--sessions", "60", "--out", str(base))
    assert result.returncode == 0, result.stderr
    assert "60 session(s)" in result.stderr and "0 without a sidecar record" in result.stderr
    records = lines(base)
    assert len(records) == 60 and all(r["mismatches"] == [] for r in records)
    assert list(records[0])[:7] == ["session_id", "benchmark_name", "success", "tool_calls", "duration_ms",
                                    "recovery_count", "continuity_score"]

    # an unchanged rerun (same workload, another seed) passes
    result = bench("run", scenario, "--sidecar", sidecar.http_url, "--sessions", "60", "--seed", "8",
                   "--out", str(rerun), "--quiet")
    assert result.returncode == 0 and result.stderr.count("\n") == 1, result.stderr
    result = bench("compare", str(base), str(rerun))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("result: pass")

    # an injected regression: tests fail far more often, every tool is slower
    document = yaml.safe_load(Path(scenario).read_text())
    document["workload"]["tools"]["run_tests"]["failure_probability"] = 0.6
    document["workload"]["llm"]["duration_ms"].update(median=4000, p95=14000)
    worse = tmp_path / "worse.yaml"
    worse.write_text(yaml.safe_dump(document))
    assert bench("run", str(worse), "--sidecar", sidecar.http_url, "--sessions", "60", "--seed", "9",
                 "--out", str(slow), "--quiet").returncode == 0
    result = bench("compare", str(base), str(slow), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert {"duration_p50", "success_rate", "continuity_score"} <= set(report["regressions"])
    # switching those thresholds off lets it pass
    off = [arg for name in report["regressions"] for arg in ("--threshold", f"{name}=off")]
    assert bench("compare", str(base), str(slow), *off).returncode == 0


def test_run_the_command_example(sidecar):
    result = bench("run", str(EXAMPLES / "toy-agent.yaml"), "--sidecar", sidecar.http_url, "--sessions", "2")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # no --out: standard output
    assert [r["run_index"] for r in records] == [0, 1]
    assert all(r["benchmark_name"] == "toy-agent" and r["tool_calls"] >= 4 for r in records)
    assert all(r["success"] is (r["exit_code"] == 0) for r in records)


def test_check_and_usage_errors(tmp_path):
    for name in ("synthetic-endurance.yaml", "toy-agent.yaml"):
        result = bench("check", str(EXAMPLES / name))
        assert result.returncode == 0 and "valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: command\ncommand: []\nruns: 0\nretries: 2\n")
    result = bench("check", str(bad))
    assert result.returncode == 2
    for fragment in ("invalid benchmark scenario", "command:", "runs:", "retries: unknown key", "3 problem(s)"):
        assert fragment in result.stderr
    assert bench("run", str(bad)).returncode == 2
    result = bench("run", str(EXAMPLES / "toy-agent.yaml"), "--sidecar", "localhost:4318")
    assert result.returncode == 2 and "http://" in result.stderr


def test_an_unreachable_sidecar_exits_1_with_a_clear_message():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = bench("run", str(EXAMPLES / "synthetic-endurance.yaml"), "--sidecar", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot reach the sidecar at http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_input_errors(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(json.dumps({"session_id": str(i), "benchmark_name": name, "success": True,
                                           "duration_ms": 100.0 + i}) for i, name in enumerate("aab")) + "\n")
    result = bench("compare", str(mixed), str(mixed))
    assert result.returncode == 2 and "mixes benchmarks (a, b)" in result.stderr
    assert bench("compare", str(mixed), str(mixed), "--benchmark", "a").returncode == 0
    assert bench("compare", str(mixed), str(mixed), "--benchmark", "c").returncode == 2

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"session_id": "1", "benchmark_name": "a", "success": true}\n{"session_id": \n')
    result = bench("compare", str(broken), str(mixed))
    assert result.returncode == 2 and f"{broken}:2: not a JSON line" in result.stderr
    assert bench("compare", str(tmp_path / "none.jsonl"), str(mixed)).returncode == 2
    result = bench("compare", str(mixed), str(mixed), "--benchmark", "a", "--threshold", "p50=3")
    assert result.returncode == 2 and "NAME one of" in result.stderr
    result = bench("compare", str(mixed), str(mixed), "--benchmark", "a", "--alpha", "3")
    assert result.returncode == 2 and "alpha (from command line)" in result.stderr


def test_help_texts():
    result = bench("run", "--help")
    for fragment in ("--sidecar", "AGENTPROM_BENCH_SIDECAR", "--out", "--sessions", "--seed", "--logs"):
        assert fragment in result.stdout
    result = bench("compare", "--help")
    for fragment in ("--threshold", "--thresholds", "--format", "Mann-Whitney", "duration_p50=20 %"):
        assert fragment in result.stdout
    assert bench().returncode == 2


def test_the_endurance_bench_script_runs():
    """bench/endurance.py --quick (prints one JSON line; figures are not asserted, only their shape)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "endurance.py"), "--quick"], capture_output=True,
                            text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = result.stdout.strip().splitlines()
    report = json.loads(line)
    assert report["bench"] == "endurance" and report["sessions"] == 20
    assert report["without_record"] == 0 and report["mismatched"] == 0
    assert report["spans"] > 20 and report["sessions_per_s"] > 0 and report["agent_hours"] > 0


def test_synthetic_run_refuses_a_sidecar_with_real_sessions_unless_forced(sidecar, tmp_path):
    scenario = str(EXAMPLES / "synthetic-endurance.yaml")  # pacing: simulated, so dated ahead of now
    # sessions of earlier benchmark runs are no reason to refuse: baseline, then candidate, on one sidecar
    first = bench("run", scenario, "--sidecar", sidecar.http_url, "--sessions", "2", "--quiet")
    assert first.returncode == 0, first.stderr
    status, _ = post_json(sidecar, "/runtime/session/start", {"session_id": "real-1", "agent": "support-bot"})
    assert status == 201

    refused = bench("run", scenario, "--sidecar", sidecar.http_url, "--sessions", "2", "--quiet")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"bench run: the sidecar at {sidecar.http_url} already holds 1 session(s) "
                                     "no benchmark sent (e.g. 'real-1' of agent 'support-bot')"), refused.stderr
    assert refused.stderr.rstrip().endswith("or pass --force")
    status, listed = get_json(sidecar, "/runtime/sessions?limit=100")
    assert listed["total"] == 3, "nothing was sent"

    forced = bench("run", scenario, "--sidecar", sidecar.http_url, "--sessions", "2", "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr

    realtime = yaml.safe_load(Path(scenario).read_text())
    realtime.update(pacing="realtime", speed=1.0, name="realtime")
    realtime["workload"]["phases"] = realtime["workload"]["phases"][:1]
    path = tmp_path / "realtime.yaml"
    path.write_text(yaml.safe_dump(realtime))
    paced = bench("run", str(path), "--sidecar", sidecar.http_url, "--sessions", "1", "--quiet")
    assert paced.returncode == 0, paced.stderr  # dated as it happens: nothing to refuse
