"""``agentprom report`` on a hand-made log (with a torn last line), numbers computed by hand."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentprom.report import SCREEN_BUCKETS, parallelism, report_path, screen_width

ROOT = Path(__file__).resolve().parent.parent


def at(seconds: int) -> str:
    return f"2026-02-20T00:{seconds // 60:02d}:{seconds % 60:02d}.000Z"


def call(n, kind, agent, phase, start, duration_ms, success=True, **extra):
    record = {"invocation_id": f"i{n}", "kind": kind, "agent": agent, "phase": phase, "session_id": f"s-{agent}",
              "duration_ms": duration_ms, "success": success, "attempt": 1, "error_class": None,
              "model": "m" if kind == "llm_call" else None, "timestamp": at(start)}
    record.update(extra)
    return json.dumps(record)


LOG_LINES = [
    call(1, "tool_call", "a", "plan", 0, 10_000, tool="read"),
    call(2, "tool_call", "a", "plan", 5, 10_000, success=False, error_class="Timeout", tool="fetch"),
    call(3, "tool_call", "a", "plan", 15, 5_000, attempt=2, retry_source="agent", tool="fetch"),
    call(4, "llm_call", "a", "plan", 2, 4_000, tokens=150, input_tokens=100, output_tokens=50, cached_tokens=20,
         cost=0.5),
    "garbage that is not JSON",
    # no "tokens" key: the total is input + output; a transport-level retry; an escalation
    call(5, "llm_call", "b", None, 70, 20_000, input_tokens=200, output_tokens=100, cost=0.25, attempt=2,
         retry_source="transport", escalated=True, some_future_key=[1, 2]),
    call(6, "tool_call", "b", "build", 60, 30_000, tool="compile"),
    json.dumps({"invocation_id": "p1", "kind": "phase", "agent": "a", "phase": "plan", "session_id": "s-a",
                "duration_ms": 20_000, "success": True, "status": "completed", "timestamp": at(0)}),
    json.dumps({"invocation_id": "s-a", "kind": "session", "agent": "a", "phase": None, "session_id": "s-a",
                "duration_ms": 20_000, "success": True, "status": "completed", "timestamp": at(0), "tokens": 150}),
    json.dumps({"invocation_id": "s-b", "kind": "session", "agent": "b", "phase": None, "session_id": "s-b",
                "duration_ms": 30_000, "success": False, "status": "failed", "timestamp": at(60)}),
]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "invocations.jsonl"
    torn = call(7, "tool_call", "a", "plan", 100, 1_000, tool="lost")[:40]  # a crash cut this line short
    path.write_text("\n".join(LOG_LINES) + "\n" + torn)
    return path


EXPECTED_TOTALS = {
    "invocations": 6, "tool_calls": 4, "llm_calls": 2, "successes": 5, "failures": 1,
    "success_rate": 0.8333, "retries": 2, "infrastructure_retries": 1, "escalations": 1,
    "tokens": 450, "input_tokens": 300, "output_tokens": 150, "cached_tokens": 20, "cost": 0.75,
    "mean_duration_ms": 13166.667,  # (10 + 10 + 5 + 4 + 20 + 30) s / 6
    "sessions": 2, "sessions_by_status": {"completed": 1, "failed": 1},
    "phases": 1, "phases_by_status": {"completed": 1},
}


def test_report_numbers(log_path):
    report = report_path(log_path, bucket_seconds=60)
    assert report["source"] == {"lines": 11, "records": 9, "malformed_lines": 2, "files": [str(log_path)]}
    assert report["totals"] == EXPECTED_TOTALS
    assert report["period"] == {"first": at(0), "last": at(90)}

    a, b = report["by_agent"]["a"], report["by_agent"]["b"]
    assert (a["invocations"], a["success_rate"], a["retries"], a["tokens"], a["cost"], a["mean_duration_ms"]) == \
        (4, 0.75, 1, 150, 0.5, 7250.0)
    assert (b["invocations"], b["success_rate"], b["retries"], b["infrastructure_retries"], b["tokens"],
            b["cost"], b["mean_duration_ms"], b["escalations"]) == (2, 1.0, 1, 1, 300, 0.25, 25000.0, 1)
    assert set(report["by_phase"]) == {"plan", "build", "(no phase)"}
    assert report["by_phase"]["plan"] == {**a}
    assert (report["by_phase"]["build"]["invocations"], report["by_phase"]["build"]["mean_duration_ms"]) == (1, 30000)
    assert report["by_phase"]["(no phase)"]["llm_calls"] == 1

    # intervals [0,10) [5,15) [15,20) [2,6) | [60,90) [70,90): three overlap at 00:00:05; the call ending
    # at 00:00:15 and the one starting then do not overlap
    par = report["parallelism"]
    assert (par["peak"], par["peak_at"], par["bucket_seconds"]) == (3, at(5), 60)
    assert par["buckets"] == [
        {"start": at(0), "invocations": 4, "mean_parallelism": round(29 / 60, 4), "peak": 3},
        {"start": at(60), "invocations": 2, "mean_parallelism": round(50 / 60, 4), "peak": 2},
    ]
    par30 = report_path(log_path, bucket_seconds=30)["parallelism"]
    assert [(x["invocations"], x["mean_parallelism"], x["peak"]) for x in par30["buckets"]] == [
        (4, round(29 / 30, 4), 3), (0, 0.0, 0), (2, round(50 / 30, 4), 2),
    ]


def test_parallelism_edge_cases():
    assert parallelism([], 60)["peak"] == 0
    only_instants = parallelism([(10.0, 10.0), (10.0, 10.0)], 60)
    assert only_instants["peak"] == 1 and only_instants["buckets"][0]["invocations"] == 2
    wide = parallelism([(0.0, 1.0), (1_000_000.0, 1_000_001.0)], 1)
    assert len(wide["buckets"]) <= 1000 and wide["bucket_seconds"] == 1001  # ceil(1000001 s / 1000)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "agentprom", "report", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_cli_json_and_table(log_path):
    result = run_cli(str(log_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"] == EXPECTED_TOTALS
    assert "line 5 skipped" in result.stderr and "line 11 skipped" in result.stderr

    result = run_cli(str(log_path.parent))  # the directory: table by default
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "9 records, 2 malformed lines skipped" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["all"][1:] == ["6", "83.3%", "2", "1", "450", "0.7500", "13166.7", "1"]
    assert rows["a"][1:4] == ["4", "75.0%", "1"] and rows["build"][1] == "1"
    assert "sessions: 2 (completed=1 failed=1)" in out
    assert "parallelism: peak 3 at 2026-02-20T00:00:05.000Z" in out


def test_cli_errors(tmp_path):
    missing = run_cli(str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    empty_dir = run_cli(str(tmp_path))
    assert empty_dir.returncode == 2 and "no invocations.jsonl" in empty_dir.stderr
    assert run_cli(str(tmp_path), "--bucket-seconds", "0").returncode == 2


def burst_log(path: Path, days: float, seed: int) -> int:
    """Agent activity in short bursts, hours apart, over ``days`` days (seeded); returns the call count."""
    rng = random.Random(seed)
    start = datetime(2026, 2, 20, tzinfo=timezone.utc).timestamp()
    lines, t, n = [], start, 0
    while t < start + days * 86400:
        for _ in range(rng.randint(5, 30)):  # a burst: calls overlapping within a few minutes
            n += 1
            begin = t + rng.uniform(0, 300)
            stamp = datetime.fromtimestamp(begin, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            lines.append(json.dumps({"invocation_id": f"i{n}", "kind": rng.choice(["tool_call", "llm_call"]),
                                     "agent": rng.choice(["a", "b"]), "phase": "work", "session_id": f"s{n // 10}",
                                     "duration_ms": rng.randint(100, 60_000), "success": True, "attempt": 1,
                                     "timestamp": stamp}))
        t += rng.uniform(2, 9) * 3600
    path.write_text("\n".join(lines) + "\n")
    return n


def bucket_lines(table: str) -> list[str]:
    lines = table.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("bucket start")) + 1:]


def test_a_three_day_log_fits_one_screen_by_default(tmp_path):
    path = tmp_path / "invocations.jsonl"
    calls = burst_log(path, days=3, seed=18)
    table = run_cli(str(path))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) <= 45, table.stdout  # a screen (and the parallelism part is at most 20 lines)
    assert len(bucket_lines(table.stdout)) <= SCREEN_BUCKETS
    assert "buckets of 21600s" in table.stdout  # 6 h: the smallest round width giving at most 20 buckets

    full = json.loads(run_cli(str(path), "--format", "json").stdout)["parallelism"]
    assert 60 < full["bucket_seconds"] <= math.ceil(3.5 * 86400 / 1000)  # 60 s, widened to keep 1000 buckets
    assert SCREEN_BUCKETS < len(full["buckets"]) <= 1000
    assert sum(1 for b in full["buckets"] if b["invocations"] == 0) > len(full["buckets"]) / 2  # kept, not folded
    assert max(b["invocations"] for b in full["buckets"]) <= calls


def test_runs_of_empty_buckets_are_one_line_in_the_table(tmp_path):
    path = tmp_path / "invocations.jsonl"
    path.write_text(call(1, "tool_call", "a", "p", 0, 1_000) + "\n" + call(2, "tool_call", "a", "p", 1800, 1_000) + "\n")
    table = run_cli(str(path), "--bucket-seconds", "60").stdout
    rows = bucket_lines(table)
    assert len(rows) == 3, table
    assert rows[1].split() == [at(60), "-", "(29", "empty", "buckets,", "to", f"{at(1740)})"]
    full = json.loads(run_cli(str(path), "--bucket-seconds", "60", "--format", "json").stdout)["parallelism"]
    assert len(full["buckets"]) == 31 and [b["invocations"] for b in full["buckets"]].count(0) == 29


@pytest.mark.parametrize("span, width", [
    (90, 60), (20 * 60, 60), (21 * 60, 120), (17 * 3600, 3600), (3 * 86400, 21600), (10 * 86400, 43200), (11 * 86400, 86400),
    (100 * 86400, 6 * 86400),
])
def test_screen_width_is_round_and_keeps_a_screenful(span, width):
    first = 1_771_545_600.0  # 2026-02-20T00:00:00Z, a whole day
    assert screen_width(first, first + span) == width
    assert math.ceil(span / width) <= SCREEN_BUCKETS
