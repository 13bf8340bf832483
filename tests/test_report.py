"""``agentprom report`` on a hand-made log (with a torn last line), numbers computed by hand."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from agentprom.report import SCREEN_BUCKETS, ExactSum, parallelism, render_table, report_path, screen_width
from agentprom.report_records import epoch_timestamp

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
    assert report["source"] == {"lines": 11, "records": 9, "malformed_lines": 2, "files": [str(log_path)],
                                "shapes": {"snake_case": 9, "camelCase": 0}}
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
    assert "shapes: snake_case=9 camelCase=0" in out
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


# -- the camelCase record shape other tools write (issue #13) -------------------------------------

BASE = 1_771_545_600  # 2026-02-20T00:00:00Z


def camel(n, agent, start, **fields):
    return json.dumps({"invocationId": f"c{n}", "agent": agent, "timestamp": start, **fields})


CAMEL_LINES = [
    # every field; the split tokens make the total; ISO timestamp
    camel(1, "x", at(0), phase="plan", taskId="t1", durationMs=2_000, inputTokens=100, outputTokens=40,
          cachedTokens=10, cost=0.1, exitCode=0, success=True, attempt=1, outputParsed=True, model="m1",
          tier="fast", errorClass=None),
    # a failure by success: false; tokens as a total only; a retry; epoch seconds
    camel(2, "x", BASE + 10.0, phase="plan", durationMs=4_000, tokens=500, cost=0.2, success=False, exitCode=1,
          attempt=2, errorClass="ParseError"),
    '{"invocationId": "", "agent": "x"}',  # an empty invocationId: skipped
    # a failure by exitCode (no success); tokens total beside the split: the total counts; epoch ms
    camel(3, "y", (BASE + 20) * 1000, phase="code", durationMs=6_000, tokens=300, inputTokens=200,
          outputTokens=100, cost=0.3, exitCode=2, attempt=1),
    # strings where numbers belong: those fields are ignored, the record counts; exitCode 0 is a success
    camel(4, "y", at(30), durationMs="slow", inputTokens="many", outputTokens=50, exitCode=0, attempt=1),
    '{"agent": "x", "durationMs": 5}',  # neither shape: skipped
    # success wins over exitCode; a cost that is not a number is ignored
    camel(5, "y", at(40), phase="code", durationMs=1_000, success=True, exitCode=137, cost="free"),
]

CAMEL_TOTALS = {
    "invocations": 5, "tool_calls": 0, "llm_calls": 5, "successes": 3, "failures": 2, "success_rate": 0.6,
    "retries": 1, "infrastructure_retries": 0, "escalations": 0,
    "tokens": 990, "input_tokens": 300, "output_tokens": 190, "cached_tokens": 10,  # 140 + 500 + 300 + 50 + 0
    "cost": 0.6, "mean_duration_ms": 2600.0,  # (2 + 4 + 6 + 0 + 1) s / 5
    "sessions": 0, "sessions_by_status": {}, "phases": 0, "phases_by_status": {},
}


def torn_camel() -> str:
    return camel(6, "x", at(50), durationMs=1_000, success=True)[:30]


@pytest.fixture
def camel_path(tmp_path: Path) -> Path:
    path = tmp_path / "camel" / "invocations.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(CAMEL_LINES) + "\n" + torn_camel())
    return path


def test_report_on_camel_case_records(camel_path):
    report = report_path(camel_path, bucket_seconds=60)
    assert report["source"] == {"lines": 8, "records": 5, "malformed_lines": 3, "files": [str(camel_path)],
                                "shapes": {"snake_case": 0, "camelCase": 5}}
    assert report["totals"] == CAMEL_TOTALS
    assert report["period"] == {"first": at(0), "last": at(41)}
    x, y = report["by_agent"]["x"], report["by_agent"]["y"]
    assert (x["invocations"], x["success_rate"], x["retries"], x["tokens"], x["cost"], x["mean_duration_ms"]) == \
        (2, 0.5, 1, 640, 0.3, 3000.0)
    assert (y["invocations"], y["success_rate"], y["retries"], y["tokens"], y["cost"], y["mean_duration_ms"]) == \
        (3, 0.6667, 0, 350, 0.3, 2333.333)
    assert {name: g["invocations"] for name, g in report["by_phase"].items()} == {"(no phase)": 1, "code": 2, "plan": 2}
    # intervals [0,2) [10,14) [20,26) [30,30) [40,41): never two at once
    assert (report["parallelism"]["peak"], report["parallelism"]["peak_at"]) == (1, at(0))
    assert [b["invocations"] for b in report["parallelism"]["buckets"]] == [5]


def test_report_on_both_shapes_in_one_log(tmp_path, log_path):
    path = tmp_path / "mixed.jsonl"
    # the snake_case log, a snake_case call without session_id, the camelCase lines, a torn last line
    no_session = json.loads(call(8, "tool_call", "z", "plan", 200, 1_000, tool="ls"))
    del no_session["session_id"]
    path.write_text("\n".join(LOG_LINES + [json.dumps(no_session)] + CAMEL_LINES) + "\n" + torn_camel())
    report = report_path(path, bucket_seconds=60)
    assert report["source"]["shapes"] == {"snake_case": 10, "camelCase": 5}
    assert (report["source"]["records"], report["source"]["malformed_lines"]) == (15, 4)
    t = report["totals"]
    assert (t["invocations"], t["tool_calls"], t["llm_calls"], t["successes"]) == (12, 5, 7, 9)
    assert (t["tokens"], t["input_tokens"], t["output_tokens"], t["cached_tokens"]) == (1440, 600, 340, 30)
    assert (t["retries"], t["cost"], t["sessions"], t["phases"]) == (3, 1.35, 2, 1)
    alone = {**report_path(log_path, 60)["by_agent"], **report_path(_camel_only(tmp_path), 60)["by_agent"]}
    assert {name: g for name, g in report["by_agent"].items() if name != "z"} == alone
    assert report["by_agent"]["z"]["invocations"] == 1
    assert report["period"] == {"first": at(0), "last": at(201)}


def _camel_only(tmp_path: Path) -> Path:
    path = tmp_path / "camel-only.jsonl"
    path.write_text("\n".join(CAMEL_LINES) + "\n")
    return path


def test_cli_names_the_shapes_and_the_skipped_lines(camel_path):
    result = run_cli(str(camel_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["totals"] == CAMEL_TOTALS
    assert document["source"]["shapes"] == {"snake_case": 0, "camelCase": 5}
    for line in (3, 6, 8):
        assert f"line {line} skipped" in result.stderr
    table = run_cli(str(camel_path.parent))
    assert table.returncode == 0, table.stderr
    assert "5 records, 3 malformed lines skipped" in table.stdout
    assert "shapes: snake_case=0 camelCase=5" in table.stdout
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
    assert rows["all"][1:] == ["5", "60.0%", "1", "0", "990", "0.6000", "2600.0", "0"]


def test_epoch_timestamps():
    assert epoch_timestamp(BASE + 10) == at(10)
    assert epoch_timestamp((BASE + 10) * 1000) == at(10)  # milliseconds
    assert epoch_timestamp(BASE + 10.5) == "2026-02-20T00:00:10.500Z"
    for implausible in (-5, 1e20, 10**400, float("inf"), True, "1771545600", None):
        assert epoch_timestamp(implausible) is None


VALUES = [None, True, False, 0, -1, 1, 2.5, 1e308, 10**400, -(10**400), "", "x", "2026-02-20T00:00:00Z",
          "not a time", [], [1], {}, {"a": 1}, BASE, BASE * 1000, float("nan")]


def test_bad_values_never_crash_the_report(tmp_path):
    rng = random.Random(13)
    camel_keys = ["invocationId", "agent", "phase", "taskId", "durationMs", "tokens", "inputTokens", "outputTokens",
                  "cachedTokens", "cost", "exitCode", "success", "attempt", "outputParsed", "model", "tier",
                  "timestamp", "errorClass", "sessionId"]
    snake_keys = ["invocation_id", "kind", "agent", "phase", "session_id", "duration_ms", "success", "attempt",
                  "tokens", "input_tokens", "output_tokens", "cached_tokens", "cost", "timestamp", "status",
                  "retry_source", "escalated"]
    lines = []
    for n in range(400):
        keys = camel_keys if n % 2 else snake_keys
        record = {key: rng.choice(VALUES) for key in rng.sample(keys, rng.randint(0, len(keys)))}
        if rng.random() < 0.7:  # most lines have a valid id (and kind), so their fields get read
            record["invocationId" if n % 2 else "invocation_id"] = f"r{n}"
            if not n % 2:
                record["kind"] = rng.choice(["tool_call", "llm_call", "phase", "session"])
        lines.append(json.dumps(record))  # NaN is written as NaN, which Python's json reads back
    path = tmp_path / "invocations.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = report_path(path)
    src = report["source"]
    assert src["records"] + src["malformed_lines"] == 400
    assert sum(src["shapes"].values()) == src["records"] and min(src["shapes"].values()) > 0
    assert render_table(report)
    json.dumps(report, allow_nan=False)  # the report itself holds no NaN or infinity


def test_implausible_numbers_are_ignored_not_summed_to_infinity(tmp_path):
    path = tmp_path / "invocations.jsonl"
    path.write_text("\n".join([
        camel(1, "x", at(0), durationMs=1e308, cost=1e308),  # a duration above a year counts as 0
        camel(2, "x", at(5), durationMs=-3, cost=1e308),  # so does a negative one; the cost sum overflows
        camel(3, "x", at(9), durationMs=1_000),
    ]) + "\n")
    report = report_path(path, bucket_seconds=60)
    t = report["totals"]
    assert (t["invocations"], t["cost"], t["mean_duration_ms"]) == (3, None, round(1000 / 3, 3))
    assert report["period"] == {"first": at(0), "last": at(10)}
    assert "cost" in render_table(report)
    json.dumps(report, allow_nan=False)


def test_the_report_does_not_depend_on_the_order_of_its_records(tmp_path):
    """The journal and the database hand the same records over in different orders; float sums
    must not round differently (0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1 in floats)."""
    values = [0.0105, 0.0105, 0.01, 0.1, 0.3, 0.1]  # a mean on a rounding edge: 0.0885
    lines = [camel(n, "x", at(n), durationMs=value, cost=value) for n, value in enumerate(values)]
    plain = {round(sum(random.Random(seed).sample(values, len(values))) / len(values), 3) for seed in range(6)}
    assert plain == {0.088, 0.089}  # plain float sums round either way, by order
    reports = []
    for seed in range(6):
        random.Random(seed).shuffle(lines)
        path = tmp_path / f"order{seed}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        reports.append(report_path(path, bucket_seconds=60))
    for report in reports:
        del report["source"]  # the file's name
    assert all(r == reports[0] for r in reports)
    exact = float(sum(Fraction(v) for v in values))
    assert reports[0]["totals"]["cost"] == round(exact, 6)
    assert reports[0]["totals"]["mean_duration_ms"] == round(exact / len(values), 3)


def test_exact_sum_overflows_to_infinity_and_back():
    total = ExactSum()
    for value in (1e308, 1e308, -1e308):
        total.add(value)
    assert total.value() == 1e308  # a float sum would have stayed at inf
    total.add(1e308)
    assert total.value() == math.inf
