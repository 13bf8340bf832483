"""Budgets per dimension value (issue 15, item 5): the rules `agentprom generate rules` writes pass
promtool's checks and unit tests, notice a changed budget, and the Helm chart renders the same rules
from config.dimensions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from agentprom.config.dimension_schema import RESERVED_LABELS, DimensionConfig
from agentprom.config.loader import validate
from agentprom.dimensions import DIMENSIONABLE
from agentprom.dimension_rules import ALERTS_GROUP, THRESHOLDS_GROUP, dimension_rules, render_rules
from tests.conftest import ROOT, tool
from tests.test_deploy_helm import OPERATOR_APIS, Helm, render
from tests.test_deploy_helm import validate as validate_manifest

DIMENSIONS = [
    {"label": "tenant", "attributes": ["app.tenant"], "default": "none",
     "metrics": ["agent_llm_cost_usd_total", "agent_tokens_total"],
     "budgets": {"globex": {"cost_usd_per_hour": 5.5}, "acme": {"cost_usd_per_hour": 20, "tokens_per_hour": 2000000}}},
    {"label": "environment", "attributes": ["deployment.environment.name"], "metrics": ["agent_llm_cost_usd_total"]},
]

UNIT_TESTS = """
rule_files:
  - agentprom-dimensions.rules.yml
evaluation_interval: 1m
tests:
  - name: cost above a tenant's budget fires for that tenant only
    interval: 1m
    input_series:
      # 60 USD per hour against a budget of 20
      - series: 'agent_llm_cost_usd_total{agent="planner",provider="openai",model="m",tenant="acme"}'
        values: '0+0.5x120'
      - series: 'agent_llm_cost_usd_total{agent="writer",provider="openai",model="m",tenant="acme"}'
        values: '0+0.5x120'
      # 3 USD per hour against 5.5
      - series: 'agent_llm_cost_usd_total{agent="planner",provider="openai",model="m",tenant="globex"}'
        values: '0+0.05x120'
      # no budget: never fires, however much it spends
      - series: 'agent_llm_cost_usd_total{agent="planner",provider="openai",model="m",tenant="initech"}'
        values: '0+100x120'
    alert_rule_test:
      - eval_time: 30m
        alertname: AgentDimensionCostBudgetExceeded
        exp_alerts: []
      - eval_time: 90m
        alertname: AgentDimensionCostBudgetExceeded
        exp_alerts:
          - exp_labels: {severity: critical, dimension: tenant, tenant: acme}
            exp_annotations:
              summary: tenant acme spends more than its budget.
              description: tenant acme spends 60.00 USD per hour over the last hour (budget 20.00 USD per hour).
              runbook: docs/runbooks.md#agentdimensioncostbudgetexceeded
  - name: input plus output tokens above the budget fire; cache reads are part of input and not added
    interval: 1m
    input_series:
      - series: 'agent_tokens_total{agent="planner",provider="openai",model="m",type="input",tenant="acme"}'
        values: '0+30000x120'
      - series: 'agent_tokens_total{agent="planner",provider="openai",model="m",type="output",tenant="acme"}'
        values: '0+10000x120'
      - series: 'agent_tokens_total{agent="planner",provider="openai",model="m",type="cache_read",tenant="acme"}'
        values: '0+900000x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: AgentDimensionTokenBudgetExceeded
        exp_alerts:
          - exp_labels: {severity: warning, dimension: tenant, tenant: acme}
            exp_annotations:
              summary: tenant acme uses more than its budget.
              description: tenant acme uses 2.4M tokens per hour over the last hour (budget 2M tokens per hour).
              runbook: docs/runbooks.md#agentdimensiontokenbudgetexceeded
  - name: tokens below the budget stay quiet, whatever the cache reads
    interval: 1m
    input_series:
      - series: 'agent_tokens_total{agent="planner",provider="openai",model="m",type="input",tenant="acme"}'
        values: '0+20000x120'
      - series: 'agent_tokens_total{agent="planner",provider="openai",model="m",type="cache_read",tenant="acme"}'
        values: '0+900000x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: AgentDimensionTokenBudgetExceeded
        exp_alerts: []
  - name: the budgets are series
    interval: 1m
    promql_expr_test:
      - expr: agentprom:budget:cost_usd_per_hour_by_tenant
        eval_time: 1m
        exp_samples:
          - labels: 'agentprom:budget:cost_usd_per_hour_by_tenant{tenant="acme"}'
            value: 20
          - labels: 'agentprom:budget:cost_usd_per_hour_by_tenant{tenant="globex"}'
            value: 5.5
"""


def dimensions(document: list[dict] = DIMENSIONS):
    return validate({"dimensions": document}).dimensions


def write(tmp_path, text: str) -> None:
    (tmp_path / "agentprom-dimensions.rules.yml").write_text(text)
    (tmp_path / "dimensions.test.yml").write_text(UNIT_TESTS)


def promtool_test(promtool: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, "test", "rules", "dimensions.test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_generated_rules_pass_promtool_check_and_unit_tests(promtool, tmp_path):
    write(tmp_path, render_rules(dimensions()))
    check = subprocess.run([promtool, "check", "rules", "agentprom-dimensions.rules.yml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, check.stdout + check.stderr
    done = promtool_test(promtool, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unit_tests_notice_a_changed_budget(promtool, tmp_path):
    changed = [dict(DIMENSIONS[0], budgets={"acme": {"cost_usd_per_hour": 100, "tokens_per_hour": 2000000},
                                            "globex": {"cost_usd_per_hour": 5.5}})]
    write(tmp_path, render_rules(dimensions(changed)))
    done = promtool_test(promtool, tmp_path)
    assert done.returncode != 0 and "AgentDimensionCostBudgetExceeded" in done.stdout + done.stderr


def test_one_budget_series_per_value_and_no_rules_without_budgets():
    groups = dimension_rules(dimensions())["groups"]
    assert [g["name"] for g in groups] == [THRESHOLDS_GROUP, ALERTS_GROUP]
    records = [(r["record"], r["labels"], r["expr"]) for r in groups[0]["rules"]]
    assert records == [
        ("agentprom:budget:cost_usd_per_hour_by_tenant", {"tenant": "acme"}, "vector(20)"),
        ("agentprom:budget:cost_usd_per_hour_by_tenant", {"tenant": "globex"}, "vector(5.5)"),
        ("agentprom:budget:tokens_per_hour_by_tenant", {"tenant": "acme"}, "vector(2000000)"),
    ]
    assert [r["alert"] for r in groups[1]["rules"]] == ["AgentDimensionCostBudgetExceeded",
                                                        "AgentDimensionTokenBudgetExceeded"]
    assert dimension_rules(dimensions(DIMENSIONS[1:])) == {"groups": []}


def test_generate_rules_command(tmp_path):
    config = tmp_path / "agentprom.yaml"
    config.write_text(yaml.safe_dump({"dimensions": DIMENSIONS}))
    out = tmp_path / "dims.rules.yml"
    done = subprocess.run([sys.executable, "-m", "agentprom", "generate", "rules", "--config", str(config),
                           "--write", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == render_rules(dimensions())
    config.write_text("dimensions: [{label: agent, attributes: [x], metrics: [agent_tokens_total]}]\n")
    done = subprocess.run([sys.executable, "-m", "agentprom", "generate", "rules", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "dimensions.0.label" in done.stderr


def test_runbooks_cover_the_generated_alerts():
    text = (ROOT / "docs" / "runbooks.md").read_text()
    for rule in dimension_rules(dimensions())["groups"][1]["rules"]:
        assert f"\n## {rule['alert']}\n" in text
        assert rule["annotations"]["runbook"] == f"docs/runbooks.md#{rule['alert'].lower()}"


# -- the Helm chart renders the same -------------------------------------------------------------------

@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Helm:
    return Helm(tool("helm"), tmp_path_factory.mktemp("helm-home"))


def dimension_rule(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "PrometheusRule" and d["metadata"]["name"].endswith("-dimensions")]


def test_helm_renders_the_generated_rules(helm):
    docs = render(helm, {"prometheusRule": {"enabled": True}, "config": {"dimensions": DIMENSIONS}})
    found = dimension_rule(docs)
    assert len(found) == 1
    assert found[0]["spec"]["groups"] == dimension_rules(dimensions())["groups"]
    validate_manifest(found[0])
    # the same dimensions reach the sidecar's configuration
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "agentprom.yaml" in d.get("data", {}))
    assert yaml.safe_load(config["data"]["agentprom.yaml"])["dimensions"][0]["label"] == "tenant"


@pytest.mark.parametrize("values", [
    {"prometheusRule": {"enabled": True}, "config": {"dimensions": DIMENSIONS[1:]}},  # no budgets
    {"prometheusRule": {"enabled": False}, "config": {"dimensions": DIMENSIONS}},  # rules off
    {"config": {"dimensions": DIMENSIONS}},  # auto, without the operator's API
])
def test_helm_renders_no_dimension_rules_when_there_is_nothing_to_render(helm, values):
    assert dimension_rule(render(helm, values)) == []
    if "enabled" not in values.get("prometheusRule", {}):
        assert len(dimension_rule(render(helm, values, api_versions=OPERATOR_APIS))) == 1


def test_helm_values_schema_refuses_a_bad_dimension(helm):
    bad = dict(DIMENSIONS[0], label="agent")
    done = helm.template({"config": {"dimensions": [bad]}})
    assert done.returncode != 0 and "label" in done.stderr
    done = helm.template({"config": {"dimensions": [dict(DIMENSIONS[0], metrics=["agent_sessions_total"])]}})
    assert done.returncode != 0 and "metrics" in done.stderr


def test_helm_values_schema_reserves_the_labels_the_sidecar_reserves():
    """The chart refuses at install what the sidecar would refuse at start (dimension_schema.RESERVED_LABELS:
    the catalog's labels grow with it), and allows any dimension the sidecar's schema allows."""
    schema = json.loads((ROOT / "helm" / "agentprom" / "values.schema.json").read_text())
    item = schema["properties"]["config"]["properties"]["dimensions"]["items"]
    assert set(item["properties"]["label"]["not"]["enum"]) == RESERVED_LABELS
    assert item["properties"]["metrics"]["items"]["enum"] == list(DIMENSIONABLE)
    assert set(item["properties"]) == set(DimensionConfig.model_fields)
