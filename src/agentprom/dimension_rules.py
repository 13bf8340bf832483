"""Prometheus rules for the configured dimensions' budgets: one budget series and one alert per value.

``agentprom generate rules --config FILE`` writes what this module builds; the Helm chart's
PrometheusRule template builds the same from ``config.dimensions`` (a test renders both and
compares them). For each dimension (``tenant``) with budgets:

* group ``agentprom-dimension-thresholds``: ``agentprom:budget:cost_usd_per_hour_by_tenant`` and
  ``agentprom:budget:tokens_per_hour_by_tenant``, one series per budgeted value
  (``{tenant="acme"}``), held as series like the thresholds of agentprom-recording.rules.yml;
* group ``agentprom-dimension-alerts``: ``AgentDimensionCostBudgetExceeded`` and
  ``AgentDimensionTokenBudgetExceeded``, labelled ``dimension="tenant"``, for each value whose spend
  over the last hour, per hour, is above its budget. Values without a budget never fire.

The spend is read from the raw counters (no recording rule in between), so the alerts work with
the static rule files or without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from agentprom.dimensions import DimensionSpec

THRESHOLDS_GROUP = "agentprom-dimension-thresholds"
ALERTS_GROUP = "agentprom-dimension-alerts"

#: (budget field, record name stem, alert, severity, spend expression over one hour with {label},
#: what is spent, how the annotations print an amount)
_KINDS = (
    ("cost_usd_per_hour", "agentprom:budget:cost_usd_per_hour_by_", "AgentDimensionCostBudgetExceeded", "critical",
     "sum by ({label}) (rate(agent_llm_cost_usd_total[1h])) * 3600", "spends", "USD", 'printf "%.2f"'),
    ("tokens_per_hour", "agentprom:budget:tokens_per_hour_by_", "AgentDimensionTokenBudgetExceeded", "warning",
     'sum by ({label}) (rate(agent_tokens_total{{type=~"input|output"}}[1h])) * 3600', "uses", "tokens",
     "humanize"),
)

#: the alerts the generated rules may hold
GENERATED_ALERTS: tuple[str, ...] = tuple(kind[2] for kind in _KINDS)

HEADER = """\
# Budgets and alerts of agentprom's configured dimensions, generated from the sidecar configuration
# by `agentprom generate rules --config FILE`; do not edit: change the configuration's
# dimensions[].budgets and generate again. Load it beside agentprom-recording.rules.yml and
# agentprom-alerts.rules.yml (docs/alerts.md, "Budgets per dimension").
"""


def _number(value: float) -> str:
    """A budget as PromQL writes it (20, not 20.0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def dimension_rules(dimensions: Sequence[DimensionSpec]) -> dict[str, Any]:
    """The rule file's document: ``{"groups": [...]}``, with no group when no dimension has a budget."""
    thresholds: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for d in dimensions:
        label = d.label
        for field, stem, alert, severity, spend, verb, unit, format_ in _KINDS:
            # values in sorted order, as the Helm chart's template ranges over a map
            budgeted = [(value, getattr(d.budgets[value], field)) for value in sorted(d.budgets)
                        if getattr(d.budgets[value], field) is not None]
            if not budgeted:
                continue
            record = stem + label
            thresholds += [{"record": record, "expr": f"vector({_number(amount)})", "labels": {label: value}}
                           for value, amount in budgeted]
            budget_query = f'{record}{{{label}="%s"}}'
            alerts.append({
                "alert": alert,
                "expr": f"{spend.format(label=label)} > on ({label}) {record}",
                "for": "15m",
                "labels": {"severity": severity, "dimension": label},
                "annotations": {
                    "summary": f"{label} {{{{ $labels.{label} }}}} {verb} more than its budget.",
                    "description": (
                        f"{label} {{{{ $labels.{label} }}}} {verb} {{{{ $value | {format_} }}}} {unit} per hour "
                        f"over the last hour (budget {{{{ with printf `{budget_query}` $labels.{label} | query }}}}"
                        f"{{{{ . | first | value | {format_} }}}}{{{{ end }}}} {unit} per hour)."
                    ),
                    "runbook": f"docs/runbooks.md#{alert.lower()}",
                },
            })
    groups = []
    if thresholds:
        groups.append({"name": THRESHOLDS_GROUP, "rules": thresholds})
        groups.append({"name": ALERTS_GROUP, "rules": alerts})
    return {"groups": groups}


def render_rules(dimensions: Sequence[DimensionSpec]) -> str:
    """The rule file's text (``HEADER`` and the document as YAML)."""
    return HEADER + yaml.safe_dump(dimension_rules(dimensions), sort_keys=False, width=120)
