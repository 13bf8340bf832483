"""The Grafana dashboards in dashboards/: valid against Grafana's own dashboard schema, generated
from scripts/build_dashboards.py, and every query parses and names only metrics that exist."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from tests.promql_check import catalog_labels, label_values_query, problems, recording_rule_names, selectors
from tests.repo_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
GRAFANA = ROOT / ".tools" / "grafana"
FILES = sorted(DASHBOARD_DIR.glob("*.json"))

#: template variables each dashboard must offer (beyond `datasource`)
EXPECTED_VARIABLES = {
    "agentprom-overview.json": {"agent", "model", "tool"},
    "agentprom-tools.json": {"agent", "tool"},
    "agentprom-llm-cost.json": {"agent", "model"},
    "agentprom-sessions.json": {"agent"},
    "agentprom-sidecar-health.json": {"instance"},
    "agentprom-dimensions.json": {"dimension", "agent"},
    "agentprom-quality.json": {"agent", "model", "evaluation"},
}
#: variables used as a label name, not matched against values: one value, no All
SINGLE_VALUED = {"dimension"}
#: the dashboards over the call metrics offer Grafana's ad-hoc filters (any label, extra dimensions
#: included); the others do not, since the sessions' and the sidecar's metrics carry no dimension
AD_HOC = {"agentprom-overview.json", "agentprom-tools.json", "agentprom-llm-cost.json", "agentprom-quality.json",
          "agentprom-dimensions.json"}
_VARIABLE_USE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _targets(dashboard: dict) -> list[tuple[str, dict]]:
    return [(panel["title"], target) for panel in _panels(dashboard) for target in panel.get("targets", [])]


def _variables(dashboard: dict) -> dict[str, dict]:
    return {var["name"]: var for var in dashboard["templating"]["list"]}


@pytest.fixture(scope="session")
def grafana_schema() -> dict:
    path = GRAFANA / "dashboard.schema.json"
    if not path.exists():
        pytest.fail("Grafana dashboard schema missing: run scripts/fetch-tools.sh (the README test command does)")
    return json.loads(path.read_text())


def test_all_dashboards_present():
    assert [p.name for p in FILES] == sorted(EXPECTED_VARIABLES)
    uids = [_load(p)["uid"] for p in FILES]
    assert len(set(uids)) == len(uids)


def test_dashboards_are_generated_from_the_builder():
    rendered = load_script("build_dashboards").render()
    assert sorted(rendered) == [p.name for p in FILES]
    for name, text in rendered.items():
        assert (DASHBOARD_DIR / name).read_text() == text, (
            f"{name} is stale: python3 scripts/build_dashboards.py --write")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_matches_grafana_schema(path, grafana_schema):
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in jsonschema.Draft7Validator(grafana_schema).iter_errors(_load(path))]
    assert not errors


def test_schema_rejects_a_misspelt_field(grafana_schema):
    """The schema is strict enough to matter: unknown properties and wrong types fail."""
    validator = jsonschema.Draft7Validator(grafana_schema)
    good = _load(FILES[0])
    assert validator.is_valid(good)
    misspelt = copy.deepcopy(good)
    misspelt["panels"][1]["gridpos"] = misspelt["panels"][1].pop("gridPos")
    assert not validator.is_valid(misspelt)
    wrong_type = copy.deepcopy(good)
    wrong_type["schemaVersion"] = "42"
    assert not validator.is_valid(wrong_type)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_schema_version_is_current_grafanas(path):
    current = int((GRAFANA / "schema-version").read_text())
    assert _load(path)["schemaVersion"] == current


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_datasource_variable_drives_every_query(path):
    dashboard = _load(path)
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == ref, panel["title"]
    for title, target in _targets(dashboard):
        assert target["datasource"] == ref, title
    for name, var in variables.items():
        if var["type"] == "query":
            assert var["datasource"] == ref, name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_variables_are_defined_and_used(path):
    dashboard = _load(path)
    variables = _variables(dashboard)
    ad_hoc = {name for name, var in variables.items() if var["type"] == "adhoc"}
    assert ad_hoc == ({"filters"} if path.name in AD_HOC else set())
    for name in ad_hoc:  # applied by Grafana to every query of the datasource: never written in one
        assert variables.pop(name)["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert set(variables) == EXPECTED_VARIABLES[path.name] | {"datasource"}
    texts = [target["expr"] for _title, target in _targets(dashboard)]
    texts += [var["query"] for var in variables.values() if var["type"] == "query"]
    used = {name for text in texts for name in _VARIABLE_USE.findall(text) if not name.startswith("__")}
    assert used == set(variables) - {"datasource"}
    for name in used:
        var = variables[name]
        if name in SINGLE_VALUED:
            assert not var["includeAll"] and not var["multi"] and "allValue" not in var, name
        else:
            assert var["includeAll"] and var["allValue"] == ".*" and var["multi"], name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_variable_queries_name_real_metrics_and_labels(path):
    recorded = recording_rule_names()
    for name, var in _variables(_load(path)).items():
        if var["type"] != "query":
            continue
        selector, label = label_values_query(var["query"])
        assert selector, f"{name}: label_values() without a metric would scan every series"
        assert problems(selector, recorded) == [], name
        (found,) = selectors(selector)
        assert label in catalog_labels(found.name), f"{name}: {found.name} has no label {label}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_query_parses_and_names_known_metrics(path):
    recorded = recording_rule_names()
    dashboard = _load(path)
    targets = _targets(dashboard)
    assert targets
    bad = {}
    for title, target in targets:
        found = problems(target["expr"], recorded)
        if found:
            bad[f"{title} / {target['refId']}"] = found
    assert not bad
    assert "$__rate_interval" in json.dumps(dashboard)
    assert "[$__interval]" not in json.dumps(dashboard), "rates over $__interval miss samples; use $__rate_interval"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_layout_has_unique_ids_and_no_overlaps(path):
    panels = _panels(_load(path))
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_tool_latency_panel_shows_exemplars():
    dashboard = _load(DASHBOARD_DIR / "agentprom-tools.json")
    latency = [panel for panel in _panels(dashboard)
               if panel["type"] == "timeseries"
               and any("agent_tool_duration_seconds_bucket" in t["expr"] for t in panel.get("targets", []))]
    assert latency
    for panel in latency:
        assert all(target["exemplar"] for target in panel["targets"]), panel["title"]
        assert "trace" in panel["description"]


def test_panels_cover_the_issue_list():
    """The figures issue 5 asks of each dashboard appear there (by the metric they are built from)."""
    wanted = {
        "agentprom-overview.json": ["agent_sessions_active", "agent_invocations_total", "agent_tool_calls_total",
                                    "agent_tool_duration_seconds_bucket", "agent_tool_duration_seconds_sum",
                                    "agent_tokens_total", "agent_llm_cost_usd_total"],
        "agentprom-tools.json": ["agent_tool_calls_total", "agent_tool_duration_seconds_bucket",
                                 "agent_tool_errors_total", "agent_tool_retries_total", "agent_recoveries_total"],
        "agentprom-llm-cost.json": ["agent_llm_calls_total", "agent_llm_duration_seconds_bucket",
                                    "agent_tokens_total", "agent_llm_cost_usd_total"],
        "agentprom-sessions.json": ["agent_session_duration_seconds_bucket", "agent_status:agent_sessions:ratio_rate1h",
                                    "agent_session_continuity_score_bucket", "agent_phases_total"],
        "agentprom-sidecar-health.json": ["agentprom_spans_received_total", "agentprom_spans_rejected_total",
                                          "agentprom_active_series", "agentprom_series_overflow_total",
                                          "agentprom_label_overflow_total",
                                          "agentprom_series_expired_total", "scrape_duration_seconds",
                                          "process_cpu_seconds_total", "process_resident_memory_bytes"],
        # issue 16: streaming latency, guardrails, fan-out, the call graph
        "agentprom-quality.json": ["agent_evaluation_score_sum", "agent_evaluations_total",
                                   "agent_llm_time_to_first_token_seconds_bucket",
                                   "agent_guardrail_checks_total", "agent_invocation_llm_calls_bucket",
                                   "agent_subagent_calls_total", "agent_invocations_total"],
        # issue 15: cost by dimension, against the generated budgets
        "agentprom-dimensions.json": ["agent_llm_cost_usd_total", "agent_tokens_total",
                                      "agentprom:budget:cost_usd_per_hour_by_tenant",
                                      "agentprom:budget:tokens_per_hour_by_tenant"],
    }
    for name, metrics in wanted.items():
        used = {s.name for _title, t in _targets(_load(DASHBOARD_DIR / name)) for s in selectors(t["expr"])}
        assert set(metrics) <= used, f"{name} lacks {set(metrics) - used}"
    heatmaps = [p for p in _panels(_load(DASHBOARD_DIR / "agentprom-tools.json")) if p["type"] == "heatmap"]
    assert heatmaps and heatmaps[0]["targets"][0]["format"] == "heatmap"
