"""Scenario files (schema, located errors, the shipped examples) and the synthetic workload's seeded plan."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from agentprom.benchmark.plan import LLM, TOOL, plan_session
from agentprom.benchmark.scenario import CommandScenario, SyntheticScenario, Workload, load_scenario, parse_scenario
from agentprom.config.loader import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "bench"


def problems(document, origin="s.yaml") -> str:
    with pytest.raises(ConfigError) as error:
        parse_scenario(document, origin)
    return str(error.value)


def test_the_shipped_examples_are_valid():
    endurance = load_scenario(EXAMPLES / "synthetic-endurance.yaml")
    assert isinstance(endurance, SyntheticScenario)
    assert endurance.sessions and endurance.sessions >= 100 and endurance.pacing == "simulated"
    toy = load_scenario(EXAMPLES / "toy-agent.yaml")
    assert isinstance(toy, CommandScenario)
    assert toy.command[:2] == ("{python}", "toy_agent.py")
    assert (toy.working_directory() / "toy_agent.py").is_file()  # relative to the scenario's folder


def test_every_problem_is_reported_with_its_path():
    text = problems({
        "name": "bad name!", "kind": "synthetic", "sessions": 0, "surprise": 1,
        "workload": {
            "phases": [{"name": "a", "tool_calls": {"min": 3, "max": 1}, "colour": "red"}],
            "llm": {"duration_ms": {"distribution": "lognormal", "median": 10, "p95": 5},
                    "input_tokens": {"distribution": "zipf"}, "failure_probability": 1.5},
        },
    })
    for fragment in ("invalid benchmark scenario in s.yaml", "8 problem(s)", "name:", "sessions:",
                     "surprise: unknown key", "workload.phases.0.tool_calls: max must not be less than min",
                     "workload.phases.0.colour: unknown key", "workload.llm.duration_ms.lognormal: p95",
                     "workload.llm.input_tokens", "'zipf'", "workload.llm.failure_probability"):
        assert fragment in text, fragment


def test_cross_field_rules():
    base = {"name": "x", "kind": "synthetic", "sessions": 1}
    assert "unknown tool(s) nope" in problems({**base, "workload": {
        "phases": [{"name": "a", "tools": ["nope"]}], "tools": {"t": {}}}})
    assert "makes tool calls but has no tools" in problems({**base, "workload": {"phases": [{"name": "a"}]}})
    assert "at least one phase" in problems({**base, "workload": {"phases": []}})
    assert "must be bounded" in problems({"name": "x", "kind": "synthetic",
                                          "workload": {"phases": [{"name": "a", "tool_calls": 0}]}})


def test_kind_and_command_problems():
    assert "kind: is required and must be one of synthetic, command" in problems({"name": "x"})
    assert "name: is required" in problems({"kind": "unknown"})
    assert "command:" in problems({"name": "x", "kind": "command", "command": []})
    assert "cannot split the command line" in problems({"name": "x", "kind": "command", "command": "a 'b"})
    assert "base_dir: unknown key" in problems({"name": "x", "kind": "command", "command": "a", "base_dir": "/"})


def test_an_unreadable_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ConfigError, match="(?s)invalid benchmark scenario in .*missing.yaml.*cannot read file"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [x\n")
    with pytest.raises(ConfigError, match="not valid YAML: line"):
        load_scenario(broken)


def workload(**overrides) -> Workload:
    document = {
        "phases": [{"name": "a", "llm_calls": {"min": 1, "max": 2}, "tool_calls": {"min": 0, "max": 4}},
                   {"name": "b", "tool_calls": 3, "reruns": 2}],
        "tools": {"x": {"failure_probability": 0.3}, "y": {"weight": 3, "failure_probability": 0.1}},
        "llm": {"failure_probability": 0.2},
        "retry": {"max_attempts": 2, "probability": 0.7},
    }
    document.update(overrides)
    return Workload.model_validate(document)


def test_distributions_respect_their_bounds_and_shape():
    w = Workload.model_validate({
        "phases": [{"name": "a", "tool_calls": 0}],
        "think_time_ms": {"distribution": "lognormal", "median": 100, "p95": 1000, "max": 5000},
        "session_gap_ms": {"distribution": "normal", "mean": 10, "stddev": 50, "min": 2},
        "llm": {"duration_ms": {"distribution": "exponential", "mean": 200},
                "input_tokens": {"distribution": "uniform", "min": 10, "max": 20}, "output_tokens": 7},
    })
    rng = random.Random(3)
    think = [w.think_time_ms.sample(rng) for _ in range(20000)]
    assert max(think) <= 5000 and statistics.median(think) == pytest.approx(100, rel=0.05)
    assert sorted(think)[int(0.95 * len(think))] == pytest.approx(1000, rel=0.1)
    assert min(w.session_gap_ms.sample(rng) for _ in range(2000)) == 2
    assert statistics.mean(w.llm.duration_ms.sample(rng) for _ in range(20000)) == pytest.approx(200, rel=0.05)
    tokens = [w.llm.input_tokens.sample(rng) for _ in range(2000)]
    assert 10 <= min(tokens) and max(tokens) <= 20 and w.llm.output_tokens.sample(rng) == 7


def test_a_session_plan_depends_only_on_seed_and_index():
    w = workload()
    assert plan_session(w, 1, 5, 0) == plan_session(w, 1, 5, 0)
    assert plan_session(w, 1, 5, 0).truth() != plan_session(w, 2, 5, 0).truth() or \
        plan_session(w, 1, 6, 0).truth() != plan_session(w, 2, 6, 0).truth()
    moved = plan_session(w, 1, 5, 10_000)
    assert moved.start_ms == 10_000 and moved.end_ms - moved.start_ms == plan_session(w, 1, 5, 0).end_ms


def test_plans_follow_the_workload_rules():
    w = workload()
    for index in range(300):
        plan = plan_session(w, 9, index, 0)
        truth = plan.truth()
        calls = plan.calls
        assert truth["tool_calls"] + truth["llm_calls"] == len(calls)
        assert all(c.attempt <= 2 for c in calls)
        previous_end = plan.start_ms
        for phase in plan.phases:
            assert phase.start_ms >= previous_end  # phases and reruns never overlap: reruns are resets
            times = [phase.start_ms] + [t for c in phase.calls for t in (c.start_ms, c.end_ms)] + [phase.end_ms]
            assert times == sorted(times)
            previous_end = phase.end_ms
            if phase.calls and phase.calls[0].attempt == 1 and any(c.kind == LLM for c in phase.calls):
                assert phase.calls[0].kind == LLM  # the agent thinks first
            # a phase fails exactly when its last call failed (out of attempts or not retried)
            assert phase.ok == (not phase.calls or phase.calls[-1].ok)
        # a failed phase is rerun up to twice; the session fails when a phase is still failing
        names = [p.name for p in plan.phases]
        assert names.count("b") <= 3 and names.count("a") == 1
        assert plan.ok == plan.phases[-1].ok and plan.ok == (truth["status"] == "completed")
        assert truth["execution_resets"] == names.count("b") - ("b" in names)
        assert truth["checkpoints"] == truth["phases_completed"]
        assert 0 <= truth["continuity_score"] <= 100
        assert all(c.kind in (TOOL, LLM) for c in calls)
    totals = [plan_session(w, 9, i, 0).truth() for i in range(300)]
    assert any(t["recovery_count"] for t in totals) and any(not t["success"] for t in totals)
    assert any(t["execution_resets"] and t["success"] for t in totals)


def test_continue_after_failure_runs_every_phase():
    w = workload(phases=[{"name": "a", "tool_calls": 1, "llm_calls": 0}, {"name": "b", "tool_calls": 1,
                                                                         "llm_calls": 0}],
                 tools={"x": {"failure_probability": 1.0}}, retry={"max_attempts": 2},
                 continue_after_failure=True)
    plan = plan_session(w, 1, 0, 0)
    assert [p.name for p in plan.phases] == ["a", "b"] and not plan.ok
    truth = plan.truth()
    assert (truth["tool_calls"], truth["tool_errors"], truth["retries"]) == (4, 4, 2)
    stop = plan_session(w.model_copy(update={"continue_after_failure": False}), 1, 0, 0)
    assert [p.name for p in stop.phases] == ["a"]
