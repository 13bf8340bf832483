"""The Prometheus rules in rules/: promtool accepts and unit-tests them, every alert is tested both
ways, names exist in the catalog, and docs/alerts.md and docs/runbooks.md match them."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import pytest
import yaml

from agentprom.dimension_rules import GENERATED_ALERTS
from tests.promql_check import RULE_FILES, RULES_DIR, iter_rules, problems, recording_rule_names, selectors
from tests.repo_scripts import load_script

ROOT = RULES_DIR.parent
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
ALERTS = [rule for rule in iter_rules() if "alert" in rule]
RECORDS = [rule for rule in iter_rules() if "record" in rule]
SEVERITIES = {"critical", "warning", "info"}
#: alerts whose value carries no information (up == 0, absent() == 1), so their description names none
NO_LIVE_VALUE = {"AgentpromTargetDown", "AgentpromAbsent"}
THRESHOLD_NAME = re.compile(r"^agentprom:(threshold|budget|config):[a-z0-9_]+$")


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


@functools.cache
def _alert_tests() -> list[dict]:
    cases = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append({**case, "file": path.name})
    return cases


def test_rule_files_exist():
    assert [p.name for p in RULE_FILES] == ["agentprom-alerts.rules.yml", "agentprom-recording.rules.yml"]
    assert len(ALERTS) >= 15 and len(RECORDS) >= 20


def test_promtool_check_rules_is_clean(promtool):
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("SUCCESS") == len(RULE_FILES), output
    assert "warn" not in output.lower(), output


def test_promtool_unit_tests_pass(promtool):
    result = subprocess.run([promtool, "test", "rules", *map(str, TEST_FILES)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES), result.stdout


def test_unit_tests_notice_a_changed_threshold(promtool, tmp_path):
    """The unit tests bind to the shipped files: moving one threshold breaks them."""
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    recording = tmp_path / "rules" / "agentprom-recording.rules.yml"
    text = recording.read_text()
    old = "- record: agentprom:threshold:tool_error_ratio\n        expr: vector(0.1)"
    assert old in text
    recording.write_text(text.replace(old, old.replace("0.1", "0.5")))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "rules" / "tests" / "agents.test.yml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "AgentToolErrorRateHigh" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_has_severity_summary_description_and_runbook(rule):
    name = rule["alert"]
    assert re.fullmatch(r"Agent(prom)?[A-Z][A-Za-z]+", name)
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook"}
    assert notes["summary"].strip() and notes["description"].strip()
    assert ("$value" in notes["description"]) == (name not in NO_LIVE_VALUE), name
    assert notes["runbook"] == f"docs/runbooks.md#{name.lower()}"
    assert _seconds(rule.get("for", "0s")) >= 5 * 60, "shipped alerts wait at least 5m before firing"


def test_severities_cover_all_levels():
    assert {rule["labels"]["severity"] for rule in ALERTS} == SEVERITIES


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_every_alert_is_tested_firing_and_quiet(rule):
    """A firing case, and a quiet case evaluated after the alert's `for` (so not merely pending)."""
    name = rule["alert"]
    cases = [case for case in _alert_tests() if case["alertname"] == name]
    firing = [case for case in cases if case.get("exp_alerts")]
    hold = _seconds(rule.get("for", "0s"))
    quiet = [case for case in cases if not case.get("exp_alerts") and _seconds(case["eval_time"]) > hold]
    assert firing, f"{name}: no promtool case where it fires"
    assert quiet, f"{name}: no promtool case after {rule.get('for')} where it stays quiet"
    for case in firing:
        for alert in case["exp_alerts"]:
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert alert["exp_annotations"]["runbook"] == rule["annotations"]["runbook"]


@pytest.mark.parametrize("rule", RECORDS, ids=lambda r: r["record"])
def test_every_recording_rule_has_an_expression_test(rule):
    tested = set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("promql_expr_test", []):
                tested.update(s.name for s in selectors(case["expr"]))
    assert rule["record"] in tested


def test_rules_use_only_known_metrics_and_labels():
    recorded = recording_rule_names()
    bad = {}
    for rule in iter_rules():
        found = problems(rule["expr"], recorded)
        if found:
            bad[rule.get("alert") or rule.get("record")] = found
    assert not bad


def test_name_check_catches_unknown_names_and_labels():
    recorded = recording_rule_names()
    assert problems("rate(agent_tool_calls_total[5m])", recorded) == []
    assert problems('up == 0 and on (job) process_cpu_seconds_total and scrape_duration_seconds', recorded) == []
    assert problems("rate(agent_tool_call_total[5m])", recorded) == ["unknown metric agent_tool_call_total"]
    assert problems('agent_errors_total{model="x"}', recorded) == ["agent_errors_total has no label 'model'"]
    assert problems('agent_tool_duration_seconds{agent="x"}', recorded) == [
        "unknown metric agent_tool_duration_seconds"]  # a histogram is selected by _bucket/_count/_sum
    assert problems("sum(rate(x[5m]", recorded)[0].startswith("does not parse")


def test_thresholds_are_constants_used_by_alerts():
    alert_text = "\n".join(rule["expr"] for rule in ALERTS)
    thresholds = [rule for rule in RECORDS if THRESHOLD_NAME.match(rule["record"])]
    assert len(thresholds) >= 10
    for rule in thresholds:
        assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"].strip()), rule
        assert rule["record"] in alert_text, f"{rule['record']} is used by no alert"


# --- docs -------------------------------------------------------------------------------------


def test_alerts_doc_is_generated_from_the_rules():
    build = load_script("build_alert_docs")
    assert (ROOT / "docs" / "alerts.md").read_text() == build.render(), (
        "docs/alerts.md is stale: python3 scripts/build_alert_docs.py --write")


def test_alerts_doc_describes_every_threshold():
    build = load_script("build_alert_docs")
    assert set(build.THRESHOLDS) == set(build.threshold_values())


def test_alerts_doc_lists_every_alert():
    text = (ROOT / "docs" / "alerts.md").read_text()
    for rule in ALERTS:
        assert f"\n### {rule['alert']}\n" in text


def test_runbooks_have_one_section_per_alert_with_a_summary():
    text = (ROOT / "docs" / "runbooks.md").read_text()
    sections = re.findall(r"^## (.+)$", text, re.M)
    # the shipped alerts and those `agentprom generate rules` writes (tests/test_dimension_rules.py)
    assert sorted(sections) == sorted([rule["alert"] for rule in ALERTS] + list(GENERATED_ALERTS))
    build = load_script("build_alert_docs")
    assert set(build.runbook_summaries()) == set(sections), "each section opens with **In short:**"
    for name in sections:
        body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in body, f"{name}: missing {part}"
