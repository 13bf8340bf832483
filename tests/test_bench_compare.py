"""`bench compare`: regressions are flagged, unchanged reruns pass, thresholds and settings are configurable.

Records here are built offline from the synthetic workload's seeded ground truth
(the numbers a sidecar reports for them, as test_bench_synthetic.py proves), so
many runs are cheap; test_bench_cli.py compares real runs end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprom.benchmark.compare import (
    METRICS,
    CompareSettings,
    compare,
    load_settings,
    parse_threshold_flag,
    render_table,
    report,
)
from agentprom.benchmark.plan import plan_session
from agentprom.benchmark.scenario import Workload, load_scenario
from agentprom.config.loader import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENDURANCE = load_scenario(ROOT / "examples" / "bench" / "synthetic-endurance.yaml")


def records(workload: Workload, seed: int, sessions: int = 40) -> list[dict[str, Any]]:
    out, start = [], 0
    for index in range(sessions):
        plan = plan_session(workload, seed, index, start)
        start = plan.next_start_ms
        out.append({"session_id": f"s{seed}-{index}", "benchmark_name": "endurance", **plan.truth()})
    return out


def slower_and_flakier(workload: Workload) -> Workload:
    """The injected regression: tests fail twice as often and the model is half again as slow."""
    document = workload.model_dump()
    document["tools"]["run_tests"]["failure_probability"] = 0.6
    document["llm"]["duration_ms"]["median"] *= 1.5
    document["llm"]["duration_ms"]["p95"] *= 1.5
    return Workload.model_validate(document)


def verdicts(results) -> dict[str, str]:
    return {r.metric.name: r.verdict for r in results}


def test_an_unchanged_rerun_passes():
    for seed in range(1, 11):  # ten reruns of the same workload with other seeds: noise, never a regression
        results = compare(records(ENDURANCE.workload, 100), records(ENDURANCE.workload, 100 + seed))
        assert not any(r.regression for r in results), (seed, verdicts(results))


def test_an_injected_regression_is_flagged():
    results = compare(records(ENDURANCE.workload, 100, 60),
                      records(slower_and_flakier(ENDURANCE.workload), 200, 60))
    by_name = {r.metric.name: r for r in results}
    assert by_name["success_rate"].regression and by_name["success_rate"].change < -5
    assert by_name["duration_p50"].regression and by_name["duration_p50"].change > 20
    assert by_name["continuity_score"].regression
    assert by_name["recovery_count"].verdict == "not gated" and not by_name["recovery_count"].regression
    for name in ("success_rate", "duration_p50"):
        assert by_name[name].p_adjusted < 0.05 and by_name[name].test_method in ("exact", "normal")
        low, high = by_name[name].ci95
        assert low <= by_name[name].change <= high


def test_comparing_a_run_with_itself_gives_no_change():
    base = records(ENDURANCE.workload, 5, 20)
    for result in compare(base, base):
        assert result.change == 0 and not result.regression
        assert result.p_value >= 0.5


record_strategy = st.fixed_dictionaries({
    "session_id": st.text(min_size=1, max_size=5),
    "benchmark_name": st.just("b"),
    "success": st.booleans(),
    "tool_calls": st.none() | st.integers(0, 50),
    "duration_ms": st.none() | st.floats(0, 1e7, allow_nan=False),
    "recovery_count": st.none() | st.integers(0, 10),
    "continuity_score": st.none() | st.floats(0, 100, allow_nan=False),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(record_strategy, min_size=1, max_size=30),
       st.sampled_from([0.0, 5.0, 20.0]), st.sampled_from(["holm", "none"]), st.floats(0.001, 0.5))
def test_a_file_compared_with_itself_never_fails(rows, threshold, correction, alpha):
    thresholds = {metric.name: threshold for metric in METRICS}
    config = CompareSettings(alpha=alpha, correction=correction, resamples=100,
                             thresholds=thresholds)  # type: ignore[arg-type]
    assert not any(r.regression for r in compare(rows, rows, config))


def _constant(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"session_id": str(i), "benchmark_name": "b", "success": True, **fields} for i in range(n)]


def test_a_large_but_insignificant_change_passes_and_a_small_significant_one_too():
    base = [{**r, "duration_ms": 1000.0 + i} for i, r in enumerate(_constant(3))]
    cand = [{**r, "duration_ms": 3000.0 + i} for i, r in enumerate(_constant(3))]
    (p50,) = [r for r in compare(base, cand) if r.metric.name == "duration_p50"]
    assert p50.change > 100 and p50.p_value == pytest.approx(0.05) and not p50.regression  # 3 vs 3: p >= 1/20

    base = [{**r, "duration_ms": 1000.0 + i} for i, r in enumerate(_constant(30))]
    cand = [{**r, "duration_ms": 1100.0 + i} for i, r in enumerate(_constant(30))]
    (p50,) = [r for r in compare(base, cand) if r.metric.name == "duration_p50"]
    assert p50.p_value < 0.001 and p50.change == pytest.approx(9.86, abs=0.01) and p50.verdict == "ok"
    tight = CompareSettings(thresholds={"duration_p50": 5.0})  # type: ignore[arg-type]
    (p50,) = [r for r in compare(base, cand, tight) if r.metric.name == "duration_p50"]
    assert p50.regression


def test_a_rise_from_zero_is_unbounded_and_missing_data_is_reported():
    base = _constant(20, recovery_count=0, duration_ms=None)
    cand = [{**r, "recovery_count": 2} for r in _constant(20, duration_ms=None)]
    gate = CompareSettings(thresholds={"recovery_count": 50.0})  # type: ignore[arg-type]
    by_name = {r.metric.name: r for r in compare(base, cand, gate)}
    recoveries = by_name["recovery_count"]
    assert recoveries.unbounded and recoveries.change is None and recoveries.regression
    assert by_name["duration_p50"].verdict == "insufficient data" and by_name["duration_p50"].n_baseline == 0


def test_json_and_table_output():
    base, cand = records(ENDURANCE.workload, 1, 15), records(slower_and_flakier(ENDURANCE.workload), 2, 15)
    config = CompareSettings()
    results = compare(base, cand, config)
    side = {"path": "a.jsonl", "sessions": 15, "benchmarks": ["endurance"]}
    document = report(results, config, side, {**side, "path": "b.jsonl"})
    again = json.loads(json.dumps(document))  # plain JSON: no infinities or tuples left
    assert [m["metric"] for m in again["metrics"]] == [m.name for m in METRICS]
    assert again["passed"] is (not again["regressions"])
    first = again["metrics"][0]
    assert set(first) >= {"baseline", "candidate", "change", "ci95", "p_value", "p_adjusted", "threshold", "verdict"}
    table = render_table(document, results)
    assert "success rate" in table and "duration p50 (ms)" in table and "continuity score (mean)" in table
    assert table.rstrip().splitlines()[-1].startswith("result: ")


def test_settings_from_file_and_flags(tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text("alpha: 0.01\nthresholds:\n  duration_p50: 10\n  tool_calls: null\n")
    config = load_settings(path, {"duration_p95": 30.0}, correction="none")
    assert (config.alpha, config.correction) == (0.01, "none")
    t = config.thresholds
    assert (t.duration_p50, t.tool_calls, t.duration_p95, t.success_rate) == (10, None, 30, 5)
    shipped = load_settings(ROOT / "examples" / "bench" / "thresholds.yaml")
    assert shipped.thresholds.recovery_count == 100


def test_bad_settings_name_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("alpha: 2\nthresholds:\n  duration_p99: 10\n  success_rate: -1\nextra: 1\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    text = str(error.value)
    for fragment in ("invalid compare settings", "alpha", "thresholds.duration_p99", "unknown key",
                     "thresholds.success_rate", "extra", "4 problem(s)"):
        assert fragment in text


@pytest.mark.parametrize(("flag", "expected"), [("duration_p50=10", ("duration_p50", 10.0)),
                                                ("duration_p95=15%", ("duration_p95", 15.0)),
                                                ("recovery_count=off", ("recovery_count", None))])
def test_threshold_flags(flag, expected):
    assert parse_threshold_flag(flag) == expected


@pytest.mark.parametrize("flag", ["duration=10", "duration_p50", "duration_p50=fast", "duration_p50=-1",
                                  "duration_p50=inf"])
def test_bad_threshold_flags(flag):
    with pytest.raises(ValueError, match="--threshold"):
        parse_threshold_flag(flag)
