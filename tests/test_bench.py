"""Every bench/ script runs in its quick mode and prints one JSON line with its figures.

These prove the scripts work for a new user; they assert shapes and invariants, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(name: str, *extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", *extra],
                            capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    report = json.loads(lines[0])
    assert report["bench"] == name
    return report


def test_ingest_against_rotel():
    report = run_bench("ingest")
    for target in ("agentprom", "rotel"):
        assert report[target]["requests"] > 0 and report[target]["errors"] == 0
        assert report[target]["spans_per_s"] > 0 and report[target]["cpu_s_per_1000_spans"] > 0
    assert report["throughput_ratio"] > 0
    # every acknowledged span counted once: the sidecar's counters grew by exactly what was sent
    check = report["agentprom"]["exactly_once"]
    assert check["ok"] and check["agentprom_spans_received_total"]["counted"] > 0, check


def test_ingest_reports_the_median_of_several_pairs():
    report = run_bench("ingest", "--pairs", "3")
    ratios = [pair["throughput_ratio"] for pair in report["pairs"]]
    assert len(ratios) == 3 and report["throughput_ratio"] == sorted(ratios)[1]
    assert report["exactly_once_every_pair"] is True
    assert report["agentprom"]["spans_per_s"] in [pair["agentprom_spans_per_s"] for pair in report["pairs"]]


def test_ingest_compares_worker_counts():
    report = run_bench("ingest", "--compare-workers", "1,2", "--rounds", "1")
    assert set(report["workers"]) == {"1", "2"}
    for summary in report["workers"].values():
        assert summary["best_spans_per_s"] > 0 and summary["main_process_cores_used"][0] > 0


def test_metrics_in_cost():
    report = run_bench("metrics_in")
    assert report["points"] == 150 and report["exposed_series"] > 0
    assert report["parse_only_points_per_cpu_s"] > 0 and report["decode_translate_points_per_cpu_s"] > 0


def test_decode_floor():
    report = run_bench("decode")
    assert report["parse_spans_per_cpu_s"] > report["decode_spans_per_cpu_s"] >= report["pipeline_spans_per_cpu_s"] > 0
    assert 0 < report["share_outside_parsing"] < 1
    assert report["decode_python_spans_per_cpu_s"] > 0
    assert (report["compiled_speedup"] is None) == (not report["decode_compiled"])


def test_scrape_cost():
    (row,) = run_bench("scrape")["results"]
    assert row["active_series"] >= 1000
    for fmt in ("text", "openmetrics"):
        assert row[fmt]["bytes"] > 100_000 and row[fmt]["p99_ms"] >= row[fmt]["p50_ms"] > 0
        assert row[fmt]["prometheus_client_ms"] > 0


def test_scrape_under_load():
    report = run_bench("scrape_under_load")
    quiet, scraped = report["runs"]["quiet"][0], report["runs"]["scraped"][0]
    assert quiet["scrapes"] == 0 and scraped["scrapes"] >= 2
    for run in (quiet, scraped):
        assert run["exports"] > 0 and run["export_p99_ms"] >= run["export_p50_ms"] > 0
        assert run["agent_series"] >= 1000
    assert report["p99_ratio_scraped_to_quiet"] > 0


def test_memory_under_cardinality_attack():
    report = run_bench("memory")
    # the store holds the tool label's budget (1,000 values per metric, tool calls and durations, plus
    # one tool="__overflow__" series each, the agent keeping its name), plus the 5 session series of
    # the one agent (each tool-call trace is a session: total, active, duration, tool calls, continuity)
    assert report["active_series"] == 2 * (1000 + 1) + 5
    assert report["replaced_tool_values"] == report["distinct_values"] - 1000
    assert report["folded_observations"] == 0  # the series limit, behind the budget, is never reached


def test_freshness():
    report = run_bench("freshness")
    assert report["samples"] == 20 and report["p99_ms"] >= report["p50_ms"] > 0


def test_stores_shipping_and_ingest_with_stores_on_and_off():
    report = run_bench("stores")
    shipping = report["shipping"]
    assert shipping["postgres"]["records"] == shipping["redis"]["records"] == shipping["journal_records"] > 0
    assert shipping["postgres"]["records_per_s"] > 0 and shipping["redis"]["records_per_s"] > 0
    assert shipping["postgres_rows_match"] is True
    ingest = report["ingest"]
    for name in ("journal_off", "journal_on", "stores_on"):
        assert ingest[name]["requests"] > 0 and ingest[name]["errors"] == 0
    assert set(ingest["stores_on"]["store_lag_records"]) == {"postgres", "redis"}
    assert ingest["stores_on_vs_journal_off_throughput"] > 0


def test_a_sidecar_that_cannot_start_fails_the_bench_at_once_with_its_log():
    """Not after the 30 s readiness wait: the harness sees the process end and shows why."""
    from bench.workload import SidecarProcess

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="(?s)exited before it was ready.*exit code 2.*server.bogus_key"):
        SidecarProcess("server: {bogus_key: 1}\n")
    assert time.monotonic() - started < 25


@pytest.mark.parametrize("steady", [False, True])
@pytest.mark.parametrize("part", ["", "decode", "classify", "-counting", "-SpanSessions", "-Runs",
                                  "-Guardrails", "-Evaluations"])
def test_instructions_ingest_program_runs_every_part(part, steady):
    """bench/instructions.py runs this program under valgrind (not installed here): run it bare, for
    the whole step and each --breakdown part, with the default bounds and --steady's, so a change it
    depends on cannot break it unseen."""
    from bench import instructions

    mode = f"ingest:{part}" if part else "ingest"
    config = json.dumps(instructions.STEADY_CONFIG if steady else {})
    spans = "3072" if steady else "1024"  # --steady: past its bounds (four requests' worth)
    out = subprocess.run([sys.executable, "-c", instructions._RUN_INGEST, str(ROOT), mode, spans, spans, "0", "0",
                          config], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == spans  # the spans built: whole requests
    assert "without the span bounds" not in out.stderr  # decoded as the receiver decodes


def test_instructions_ingest_program_refuses_an_unknown_listener():
    from bench import instructions

    out = subprocess.run([sys.executable, "-c", instructions._RUN_INGEST, str(ROOT), "ingest:-Nothing", "512", "512",
                          "0", "0", "{}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0 and "no listener 'Nothing'" in out.stderr
