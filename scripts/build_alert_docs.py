#!/usr/bin/env python3
"""Generate docs/alerts.md from the rule files in rules/.

The alert list, their expressions, severities and thresholds are read from
rules/*.rules.yml, so the page cannot drift from what Prometheus loads. What
each threshold means is written here (THRESHOLDS); tests/test_rules.py checks
that it names exactly the threshold series the rules define, and that
docs/alerts.md is what this script writes. Run with ``--write`` after changing
rules/, ``--check`` to verify.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
RECORDING = RULES / "agentprom-recording.rules.yml"
ALERTS = RULES / "agentprom-alerts.rules.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
OUT = ROOT / "docs" / "alerts.md"

#: threshold series -> (unit, what it bounds)
THRESHOLDS = {
    "agentprom:threshold:tool_error_ratio": ("ratio", "share of an agent's calls to one tool that fail"),
    "agentprom:threshold:tool_latency_p95_seconds": ("seconds", "95th percentile duration of calls to one tool"),
    "agentprom:threshold:llm_error_ratio": ("ratio", "share of an agent's calls to one model that fail"),
    "agentprom:threshold:llm_rate_limit_ratio": ("ratio", "share of an agent's LLM calls failing with a rate limit"),
    "agentprom:threshold:min_calls_per_minute": (
        "calls per minute", "traffic below which the tool and LLM error alerts stay quiet"),
    "agentprom:threshold:session_failure_ratio": ("ratio", "share of an agent's ended sessions that failed"),
    "agentprom:threshold:session_abandoned_ratio": ("ratio", "share of an agent's ended sessions that were abandoned"),
    "agentprom:threshold:min_sessions_per_hour": (
        "sessions per hour", "session traffic below which the session alerts stay quiet"),
    "agentprom:threshold:continuity_score_min": ("score 0-100", "lowest acceptable mean continuity score"),
    "agentprom:budget:tokens_per_hour": ("tokens per hour", "token budget of each agent (input plus output)"),
    "agentprom:budget:cost_usd_per_hour": ("USD per hour", "LLM cost budget of each agent"),
    "agentprom:threshold:runs_over_fanout_limit": (
        "runs per 15 minutes", "runs of more than 64 LLM calls (with sub-agents') that make a fan-out explosion"),
    "agentprom:threshold:evaluation_score_ratio": (
        "ratio", "share of the day before's mean evaluation score below which the last hour's mean is falling"),
    "agentprom:threshold:min_evaluations_per_hour": (
        "evaluations per hour", "evaluation results per hour below which AgentEvaluationScoreFalling stays quiet"),
    "agentprom:threshold:spans_rejected_ratio": ("ratio", "share of received spans a sidecar rejects"),
    "agentprom:config:max_series_per_metric": (
        "series", "must equal the sidecar's store.max_series_per_metric (default 2000)"),
    "agentprom:threshold:series_limit_ratio": ("ratio", "share of that limit at which a metric counts as near it"),
}

_VECTOR = re.compile(r"^\s*vector\(\s*([-+0-9.eE]+)\s*\)\s*$")
_SERIES_NAME = re.compile(r"agentprom:(?:threshold|budget|config):[a-z0-9_]+")


def load(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]


def threshold_values() -> dict[str, str]:
    """Threshold series name -> its value as written in vector(...)."""
    values = {}
    for group in load(RECORDING):
        for rule in group["rules"]:
            name = rule.get("record", "")
            if _SERIES_NAME.fullmatch(name):
                match = _VECTOR.match(rule["expr"])
                if not match:
                    raise ValueError(f"{name}: expected vector(NUMBER), got {rule['expr']!r}")
                values[name] = match[1]
    return values


def alerts() -> list[tuple[str, dict]]:
    return [(group["name"], rule) for group in load(ALERTS) for rule in group["rules"]]


def _one_line(text: str) -> str:
    return " ".join(text.split())


_QUERY = re.compile(r'\{\{\s*with query "([^"]+)"\s*\}\}.*?\{\{\s*end\s*\}\}')
_LABEL = re.compile(r"\{\{\s*\$labels\.([A-Za-z_]+)\s*\}\}")
_VALUE = re.compile(r"\{\{\s*\$value[^}]*\}\}")


def readable(template: str) -> str:
    """An annotation template with its placeholders named: {agent}, {value}, `threshold series`."""
    text = _QUERY.sub(lambda m: f"`{m[1]}`", _one_line(template))
    text = _LABEL.sub(lambda m: f"{{{m[1]}}}", text)
    return _VALUE.sub("{value}", text)


_RUNBOOK_SECTION = re.compile(r"^## (\S+)\n+\*\*In short:\*\* (.+?)\n\n", re.M | re.S)


def runbook_summaries() -> dict[str, str]:
    """Alert name -> the "In short" paragraph that opens its section of docs/runbooks.md."""
    text = RUNBOOKS.read_text(encoding="utf-8")
    return {m[1]: _one_line(m[2]) for m in _RUNBOOK_SECTION.finditer(text)}


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def render() -> str:
    values = threshold_values()
    all_alerts = alerts()
    in_short = runbook_summaries()
    used_by: dict[str, list[str]] = {name: [] for name in values}
    for _group, rule in all_alerts:
        for name in sorted(set(_SERIES_NAME.findall(rule["expr"]))):
            used_by.setdefault(name, []).append(rule["alert"])

    lines = [
        "# Alerts and recording rules",
        "",
        "<!-- Generated by `python3 scripts/build_alert_docs.py --write` from rules/*.rules.yml; do not edit. -->",
        "",
        "agentprom ships Prometheus rules in [rules/](../rules): "
        "[agentprom-recording.rules.yml](../rules/agentprom-recording.rules.yml) (derived series and the "
        "thresholds) and [agentprom-alerts.rules.yml](../rules/agentprom-alerts.rules.yml) (the alerts). "
        "Load both, e.g. in `prometheus.yml`:",
        "",
        "```yaml",
        "rule_files:",
        "  - /etc/prometheus/rules/agentprom-recording.rules.yml",
        "  - /etc/prometheus/rules/agentprom-alerts.rules.yml",
        "```",
        "",
        "Every alert carries a `severity` label (`critical`, `warning` or `info`) and the annotations "
        "`summary`, `description` (with the live value) and `runbook`, a link to its section of "
        "[runbooks.md](runbooks.md) relative to the repository root; rewrite the prefix if you serve the "
        "docs elsewhere. Agent alerts aggregate over all sidecars by `agent` (and `tool`, `model`); the "
        "sidecar alerts are per scrape target (`job`, `instance`). Each alert has promtool unit tests in "
        "[rules/tests/](../rules/tests) where it fires and where it stays quiet.",
        "",
        "## Thresholds",
        "",
        "Every number an alert compares against is a series recorded in the `agentprom-thresholds` group "
        "of agentprom-recording.rules.yml, so it is tuned in one place: change the number in `vector(...)` "
        "and reload Prometheus (`kill -HUP` or `POST /-/reload`). The alerts read the series with "
        "`on () group_left ()`, so one value applies to every agent (and every tool or model). "
        "An alert whose threshold series is missing never fires: keep them all.",
        "",
        "| series | default | unit | what it bounds | used by |",
        "|---|---|---|---|---|",
    ]
    for name, value in values.items():
        unit, meaning = THRESHOLDS.get(name, ("?", "?"))
        users = ", ".join(f"[{a}](#{a.lower()})" for a in used_by[name]) or "-"
        lines.append(f"| `{name}` | {value} | {unit} | {meaning} | {users} |")
    lines += [
        "",
        "Also tunable, in agentprom-alerts.rules.yml itself:",
        "",
        "- each alert's `for:` duration (how long the condition must hold before it fires);",
        "- the rate-limit pattern in `agent:agent_llm_rate_limit_errors:ratio_rate5m` "
        "(`error_type=~\"(?i).*(429|rate.?limit|too.?many.?requests).*\"`), if your provider names "
        "its rate-limit error differently;",
        "- `agentprom:config:max_series_per_metric` must follow the sidecar's configuration: with "
        "`store.max_series_per_metric: 0` (unlimited) delete AgentpromSeriesNearLimit instead.",
        "",
        "## Alerts",
        "",
        "| alert | severity | for | summary |",
        "|---|---|---|---|",
    ]
    for _group, rule in all_alerts:
        name = rule["alert"]
        lines.append(f"| [{name}](#{name.lower()}) | {rule['labels']['severity']} | {rule.get('for', '0s')} "
                     f"| {_cell(readable(rule['annotations']['summary']))} |")
    for group, rule in all_alerts:
        name = rule["alert"]
        notes = rule["annotations"]
        thresholds = sorted(set(_SERIES_NAME.findall(rule["expr"])))
        lines += [
            "",
            f"### {name}",
            "",
            f"- severity: `{rule['labels']['severity']}`; fires after the condition holds for "
            f"`{rule.get('for', '0s')}`; group `{group}`",
            f"- means: {readable(notes['description'])}",
            f"- what to do: {in_short.get(name, '(no runbook section)')}",
        ]
        if thresholds:
            lines.append("- thresholds: " + ", ".join(f"`{t}` = {values[t]}" for t in thresholds))
        lines += [
            f"- runbook: [runbooks.md#{name.lower()}](runbooks.md#{name.lower()}) (diagnosis and mitigation)",
            "",
            "```promql",
            rule["expr"].rstrip(),
            "```",
        ]
    lines += [
        "",
        "## Budgets per dimension",
        "",
        "With extra dimensions (`dimensions:` in the sidecar configuration; docs/metrics.md), each value of a "
        "dimension may have budgets of its own: `dimensions[].budgets`, e.g. "
        "`{acme: {cost_usd_per_hour: 20, tokens_per_hour: 2000000}}` for `label: tenant`. "
        "`agentprom generate rules --config FILE --write agentprom-dimensions.rules.yml` writes a rule file to "
        "load beside the two above; the Helm chart renders the same rules as the `<release>-dimensions` "
        "PrometheusRule from `config.dimensions` (with `prometheusRule.enabled`). It holds:",
        "",
        "- group `agentprom-dimension-thresholds`: one series per budgeted value, e.g. "
        "`agentprom:budget:cost_usd_per_hour_by_tenant{tenant=\"acme\"} 20` and "
        "`agentprom:budget:tokens_per_hour_by_tenant{tenant=\"acme\"} 2000000`, like the thresholds above;",
        "- group `agentprom-dimension-alerts`: [AgentDimensionCostBudgetExceeded](runbooks.md#agentdimensioncostbudgetexceeded) "
        "(critical) and [AgentDimensionTokenBudgetExceeded](runbooks.md#agentdimensiontokenbudgetexceeded) (warning), "
        "each labelled `dimension` and with the value's label, firing after 15m when the value's spend per hour "
        "over the last hour (`sum by (tenant) (rate(agent_llm_cost_usd_total[1h])) * 3600`, and input plus "
        "output tokens) is above its budget. Values without a budget never fire.",
        "",
        "Change a budget in the configuration and generate the file again (do not edit it).",
        "",
        "## Recording rules",
        "",
        "Derived series for dashboards and alerts (thresholds above not repeated). Names follow "
        "`level:metric:operations`; `per_minute_rate5m` is a 5-minute rate scaled to a minute.",
        "",
        "| series | group | expression |",
        "|---|---|---|",
    ]
    for group in load(RECORDING):
        for rule in group["rules"]:
            if _SERIES_NAME.fullmatch(rule["record"]):
                continue
            lines.append(f"| `{rule['record']}` | {group['name']} | `{_cell(rule['expr'])}` |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write docs/alerts.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/alerts.md is not up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUT.write_text(text, encoding="utf-8")
        return 0
    if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
        print("docs/alerts.md is stale; run python3 scripts/build_alert_docs.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
