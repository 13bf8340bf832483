#!/usr/bin/env python3
"""Build the Grafana dashboards in dashboards/ from the panel definitions below.

The JSON files are what users import or provision, and what the Helm chart and
compose files ship; this script is their source, so every dashboard shares one
datasource variable, one set of label filters and one panel style. Run
``python3 scripts/build_dashboards.py --write`` after editing, and commit both;
tests/test_dashboards.py fails when the files are stale (``--check`` does the
same here).

Queries use ``$__rate_interval`` for rates (it follows the scrape interval and
the zoom), ``$__range`` for totals over the shown time range, and ``=~"$var"``
label filters whose "All" value is ``.*``. Metric names come from
src/agentprom/metrics/catalog.py and rules/*.rules.yml; the tests check each one.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "dashboards"

#: What a new dashboard gets in Grafana 13 (npm @grafana/schema 13.2.3, see scripts/tools.d/50-grafana-schema.sh).
SCHEMA_VERSION = 42
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
TAG = "agentprom"


# --- targets and panels -------------------------------------------------------------------


def q(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series",
      exemplar: bool = False) -> dict[str, Any]:
    """A Prometheus query target (refId is assigned by the panel)."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "exemplar": exemplar,
    }


def _with_refs(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**target, "refId": chr(ord("A") + i)} for i, target in enumerate(targets)]


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


@dataclass
class Panel:
    type: str
    title: str
    description: str
    targets: list[dict[str, Any]]
    unit: str = "short"
    w: int = 12
    h: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        out = {
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "id": panel_id,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "datasource": DS,
            "fieldConfig": {"defaults": {"unit": self.unit, **self.defaults}, "overrides": []},
            "options": self.options,
            "targets": _with_refs(self.targets),
        }
        if self.transformations:
            out["transformations"] = self.transformations
        return out


def timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str = "short", *,
               stack: bool = False, bars: bool = False, w: int = 12, h: int = 8,
               minimum: float | None = 0, maximum: float | None = None) -> Panel:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else (25 if stack else 10),
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults: dict[str, Any] = {"custom": custom, "color": {"mode": "palette-classic"}}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    options = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["mean", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel("timeseries", title, description, targets, unit, w, h, options, defaults)


def stat(title: str, description: str, expr: str, unit: str = "short", *, w: int = 3, h: int = 4,
         thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),), decimals: int | None = None) -> Panel:
    defaults: dict[str, Any] = {"thresholds": _thresholds(*thresholds), "color": {"mode": "thresholds"},
                                "noValue": "0"}
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "value",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return Panel("stat", title, description, [q(expr)], unit, w, h, options, defaults)


def heatmap(title: str, description: str, expr: str, unit: str, *, w: int = 12, h: int = 8) -> Panel:
    """A heatmap of a histogram's buckets (the series must be ``sum by (le) (...)``)."""
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark", "scale": "exponential",
                  "exponent": 0.5, "steps": 64, "reverse": False},
        "yAxis": {"axisPlacement": "left", "unit": unit},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True},
        "legend": {"show": True},
        "filterValues": {"le": 1e-9},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
    }
    target = q(expr, "{{le}}", fmt="heatmap")
    return Panel("heatmap", title, description, [target], unit, w, h, options, {})


def table(title: str, description: str, expr: str, unit: str = "short", *, w: int = 12, h: int = 8) -> Panel:
    """An instant query shown as a table, one row per series, sorted by value."""
    options = {"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": "Value", "desc": True}]}
    return Panel("table", title, description, [q(expr, instant=True, fmt="table")], unit, w, h, options, {})


def node_graph(title: str, description: str, nodes: str, edges: str, *, w: int = 24, h: int = 12) -> Panel:
    """Grafana's node graph from two instant table queries: ``nodes`` must give each series an ``id``
    (and a ``title``) label, ``edges`` an ``id``, ``source`` and ``target``; Grafana tells the edge frame
    by its ``source`` field. Each value is shown as the node's or edge's main statistic."""
    targets = [q(nodes, instant=True, fmt="table"), q(edges, instant=True, fmt="table")]
    rename = {"id": "organize", "options": {"renameByName": {"Value": "mainstat", "Value #A": "mainstat",
                                                               "Value #B": "mainstat"},
                                            "excludeByName": {"Time": True}}}
    return Panel("nodeGraph", title, description, targets, "short", w, h, {"nodes": {}, "edges": {}}, {}, [rename])


@dataclass
class Row:
    title: str


@dataclass
class Var:
    """A query variable filled from a label's values, with an "All" that matches anything."""

    name: str
    label: str
    query: str
    #: one value at a time, no "All" (a variable used as a label name, not matched against values)
    single: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {
            "type": "query",
            "name": self.name,
            "label": self.label,
            "datasource": DS,
            "query": self.query,
            "refresh": 2,  # on time-range change: label values come and go with series expiry
            "includeAll": not self.single,
            "allValue": ".*",
            "multi": not self.single,
            "sort": 1,
            "current": {"text": "All", "value": "$__all"},
            "options": [],
            "hide": 0,
        }
        if self.single:
            del out["allValue"], out["current"]  # Grafana picks the first value
        return out


DATASOURCE_VAR = {
    "type": "datasource",
    "name": "datasource",
    "label": "Data source",
    "query": "prometheus",
    "options": [],
    "refresh": 1,
    "regex": "",
    "hide": 0,
}


#: Grafana's ad-hoc filters: any label = value, added to every query of the dashboard. How the call
#: metrics are filtered by an extra dimension (tenant, environment: docs/metrics.md), whatever it is
#: called; with none configured it lists only the catalog's labels and changes nothing until used.
ADHOC_VAR = {
    "type": "adhoc",
    "name": "filters",
    "label": "Filters",
    "datasource": DS,
    "hide": 0,
}


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[Var]
    items: list[Panel | Row]
    time_from: str = "now-1h"
    refresh: str = "30s"
    #: offer ad-hoc filters (dashboards over the call metrics, which extra dimensions label)
    filters: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": [TAG],
            "editable": True,
            "graphTooltip": 1,
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "annotations": {"list": [{
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }]},
            "links": [{
                "title": "agentprom dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "targetBlank": False,
                "tooltip": "",
            }],
            "templating": {"list": [DATASOURCE_VAR] + [var.to_json() for var in self.variables]
                           + ([ADHOC_VAR] if self.filters else [])},
            "panels": self._layout(),
        }

    def _layout(self) -> list[dict[str, Any]]:
        """Place panels left to right in a 24-column grid; a row starts a new line."""
        out: list[dict[str, Any]] = []
        x = y = line_height = 0
        for panel_id, item in enumerate(self.items, start=1):
            if isinstance(item, Row):
                y += line_height
                x = line_height = 0
                out.append({"type": "row", "title": item.title, "id": panel_id, "collapsed": False,
                            "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
                y += 1
                continue
            if x + item.w > 24:
                y += line_height
                x = line_height = 0
            out.append(item.to_json(panel_id, x, y))
            x += item.w
            line_height = max(line_height, item.h)
        return out


# --- the dashboards -------------------------------------------------------------------------

AGENT = 'agent=~"$agent"'
TOOL = 'agent=~"$agent", tool=~"$tool"'
MODEL = 'agent=~"$agent", model=~"$model"'
INSTANCE = 'instance=~"$instance"'
#: keeps only targets that are agentprom sidecars, whatever their job is called
SIDECARS = "and on (job, instance) agentprom_build_info"


def agent_var(metric: str) -> Var:
    """The agent filter, listing the agents that have ``metric``."""
    return Var("agent", "Agent", f"label_values({metric}, agent)")


MODEL_VAR = Var("model", "Model", 'label_values(agent_llm_calls_total{agent=~"$agent"}, model)')
TOOL_VAR = Var("tool", "Tool", 'label_values(agent_tool_calls_total{agent=~"$agent"}, tool)')


def quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    """The q-quantile of a histogram, per ``by`` labels (comma-separated, may be empty)."""
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/\n{denominator}"


def overview() -> Dashboard:
    tool_calls = f"rate(agent_tool_calls_total{{{TOOL}}}[{RATE}])"
    llm_calls = f"rate(agent_llm_calls_total{{{MODEL}}}[{RATE}])"
    items: list[Panel | Row] = [
        Row("Now"),
        stat("Active sessions", "Runtime sessions open now.",
             f"sum(agent_sessions_active{{{AGENT}}})"),
        stat("Active agents", "Agents that produced an agent, LLM or tool span in the last 5 minutes.",
             f"count(\n  sum by (agent) (rate(agent_invocations_total{{{AGENT}}}[5m])) > 0\n"
             f"  or sum by (agent) (rate(agent_llm_calls_total{{{AGENT}}}[5m])) > 0\n"
             f"  or sum by (agent) (rate(agent_tool_calls_total{{{AGENT}}}[5m])) > 0\n)"),
        stat("Tool calls / min", "Tool calls per minute.", f"sum({tool_calls}) * 60", decimals=1),
        stat("Tool error rate", "Share of tool calls that failed.",
             ratio(f'sum(rate(agent_tool_calls_total{{{TOOL}, status="error"}}[{RATE}]))', f"sum({tool_calls})"),
             "percentunit", thresholds=((None, "green"), (0.05, "orange"), (0.1, "red"))),
        stat("LLM calls / min", "LLM calls per minute.", f"sum({llm_calls}) * 60", decimals=1),
        stat("LLM error rate", "Share of LLM calls that failed.",
             ratio(f'sum(rate(agent_llm_calls_total{{{MODEL}, status="error"}}[{RATE}]))', f"sum({llm_calls})"),
             "percentunit", thresholds=((None, "green"), (0.05, "orange"), (0.1, "red"))),
        stat("Tokens / min", "Input plus output tokens per minute (cache reads are part of input).",
             f'sum(rate(agent_tokens_total{{{MODEL}, type=~"input|output"}}[{RATE}])) * 60', decimals=0),
        stat("Cost / hour", "LLM cost in US dollars per hour, where spans report cost.",
             f"sum(rate(agent_llm_cost_usd_total{{{MODEL}}}[{RATE}])) * 3600", "currencyUSD", decimals=2),
        Row("Activity"),
        timeseries("Tool calls per minute", "Tool calls per minute by tool.",
                   [q(f"sum by (tool) ({tool_calls}) * 60", "{{tool}}")], stack=True),
        timeseries("LLM calls per minute", "LLM calls per minute by model.",
                   [q(f"sum by (model) ({llm_calls}) * 60", "{{model}}")], stack=True),
        timeseries("Latency: mean and p95", "Mean and 95th percentile duration of tool and LLM calls.", [
            q(ratio(f"sum(rate(agent_tool_duration_seconds_sum{{{TOOL}}}[{RATE}]))",
                    f"sum(rate(agent_tool_duration_seconds_count{{{TOOL}}}[{RATE}]))"), "tool mean"),
            q(quantile(0.95, "agent_tool_duration_seconds", TOOL), "tool p95"),
            q(ratio(f"sum(rate(agent_llm_duration_seconds_sum{{{MODEL}}}[{RATE}]))",
                    f"sum(rate(agent_llm_duration_seconds_count{{{MODEL}}}[{RATE}]))"), "LLM mean"),
            q(quantile(0.95, "agent_llm_duration_seconds", MODEL), "LLM p95"),
        ], "s"),
        timeseries("Error rate", "Share of failed tool and LLM calls.", [
            q(ratio(f'sum(rate(agent_tool_calls_total{{{TOOL}, status="error"}}[{RATE}]))', f"sum({tool_calls})"),
              "tool calls"),
            q(ratio(f'sum(rate(agent_llm_calls_total{{{MODEL}, status="error"}}[{RATE}]))', f"sum({llm_calls})"),
              "LLM calls"),
        ], "percentunit", maximum=1),
        timeseries("Tokens per minute", "Tokens per minute by type; cache_read and cache_write are parts of input.",
                   [q(f"sum by (type) (rate(agent_tokens_total{{{MODEL}}}[{RATE}])) * 60", "{{type}}")]),
        timeseries("Cost per minute", "LLM cost in US dollars per minute by agent.",
                   [q(f"sum by (agent) (rate(agent_llm_cost_usd_total{{{MODEL}}}[{RATE}])) * 60", "{{agent}}")],
                   "currencyUSD", stack=True),
    ]
    return Dashboard(
        "agentprom-overview", "agentprom / Overview",
        "Live view of every agent: sessions, tool and LLM traffic, latency, errors, tokens and cost.",
        [agent_var("agent_llm_calls_total"), MODEL_VAR, TOOL_VAR],
        items, time_from="now-1h", refresh="30s", filters=True)


def tools() -> Dashboard:
    calls = f"rate(agent_tool_calls_total{{{TOOL}}}[{RATE}])"
    items: list[Panel | Row] = [
        Row("Traffic and errors"),
        timeseries("Calls per minute by tool", "Tool calls per minute.",
                   [q(f"sum by (tool) ({calls}) * 60", "{{tool}}")], stack=True),
        timeseries("Error rate by tool", "Share of each tool's calls that failed.",
                   [q(ratio(f'sum by (tool) (rate(agent_tool_calls_total{{{TOOL}, status="error"}}[{RATE}]))',
                            f"sum by (tool) ({calls})"), "{{tool}}")], "percentunit", maximum=1),
        timeseries("Errors per minute by error type", "Failed tool calls by error.type / exception type.",
                   [q(f"sum by (error_type) (rate(agent_tool_errors_total{{{TOOL}}}[{RATE}])) * 60", "{{error_type}}")],
                   stack=True, bars=True),
        table("Top errors in range", "The ten tool/error type pairs with most failures in the shown time range.",
              f"topk(10, sum by (tool, error_type) (increase(agent_tool_errors_total{{{TOOL}}}[$__range])))"),
        Row("Latency"),
        timeseries("Latency p50 / p95 by tool (exemplars link to traces)",
                   "Percentiles of tool-call duration. Dots are exemplars: spans whose trace_id the datasource "
                   "links to the tracing backend (exemplarTraceIdDestinations, see docs/dashboards.md).",
                   [q(quantile(0.95, "agent_tool_duration_seconds", TOOL, "tool"), "p95 {{tool}}", exemplar=True),
                    q(quantile(0.5, "agent_tool_duration_seconds", TOOL, "tool"), "p50 {{tool}}", exemplar=True)], "s"),
        heatmap("Latency distribution", "Tool-call durations per histogram bucket.",
                f"sum by (le) (rate(agent_tool_duration_seconds_bucket{{{TOOL}}}[{RATE}]))", "s"),
        Row("Retries and recoveries"),
        timeseries("Retries per minute by tool", "Tool calls that were retries of an earlier attempt.",
                   [q(f"sum by (tool) (rate(agent_tool_retries_total{{{TOOL}}}[{RATE}])) * 60", "{{tool}}")],
                   stack=True, w=8),
        timeseries("Recovery rate", "Failed tool calls that a later successful call of the same tool recovered "
                   "from, by agent (recoveries carry no tool label).",
                   [q(ratio(f'sum by (agent) (rate(agent_recoveries_total{{{AGENT}, component="tool"}}[{RATE}]))',
                            f'sum by (agent) (rate(agent_errors_total{{{AGENT}, component="tool"}}[{RATE}]))'),
                      "{{agent}}")], "percentunit", maximum=1, w=8),
        timeseries("Calls in flight", "Tool calls started through the event API and not yet finished.",
                   [q(f"sum by (agent) (agent_tool_calls_in_flight{{{AGENT}}})", "{{agent}}")], w=8),
    ]
    return Dashboard(
        "agentprom-tools", "agentprom / Tools",
        "Per-tool call rate, errors by type, latency percentiles and distribution, retries and recoveries.",
        [agent_var("agent_tool_calls_total"), TOOL_VAR],
        items, filters=True)


def llm_cost() -> Dashboard:
    calls = f"rate(agent_llm_calls_total{{{MODEL}}}[{RATE}])"
    items: list[Panel | Row] = [
        Row("Calls"),
        timeseries("Calls per minute by model", "LLM calls per minute by model and outcome.",
                   [q(f"sum by (model, status) ({calls}) * 60", "{{model}} {{status}}")], stack=True, w=8),
        timeseries("Latency p95 by model", "95th percentile LLM-call duration; dots are exemplars.",
                   [q(quantile(0.95, "agent_llm_duration_seconds", MODEL, "model"), "{{model}}", exemplar=True)],
                   "s", w=8),
        timeseries("Error rate by model", "Share of each model's calls that failed.",
                   [q(ratio(f'sum by (model) (rate(agent_llm_calls_total{{{MODEL}, status="error"}}[{RATE}]))',
                            f"sum by (model) ({calls})"), "{{model}}")], "percentunit", maximum=1, w=8),
        timeseries("LLM errors per minute by error type", "Failed LLM calls by error type, by agent "
                   "(rate limits show up as 429 or *RateLimitError).",
                   [q(f'sum by (error_type) (rate(agent_errors_total{{{AGENT}, component="llm"}}[{RATE}])) * 60',
                      "{{error_type}}")], stack=True, bars=True),
        timeseries("Rate-limited share", "Share of LLM calls that failed with a rate-limit error (recording rule).",
                   [q(f"agent:agent_llm_rate_limit_errors:ratio_rate5m{{{AGENT}}}", "{{agent}}")],
                   "percentunit", maximum=1),
        Row("Tokens"),
        timeseries("Tokens per minute by type", "cache_read and cache_write are parts of input.",
                   [q(f"sum by (type) (rate(agent_tokens_total{{{MODEL}}}[{RATE}])) * 60", "{{type}}")], w=8),
        timeseries("Tokens per minute by model", "Input plus output tokens per minute.",
                   [q(f'sum by (model) (rate(agent_tokens_total{{{MODEL}, type=~"input|output"}}[{RATE}])) * 60',
                      "{{model}}")], stack=True, w=8),
        timeseries("Prompt cache hit share", "Input tokens read from the provider's prompt cache.",
                   [q(ratio(f'sum by (model) (rate(agent_tokens_total{{{MODEL}, type="cache_read"}}[{RATE}]))',
                            f'sum by (model) (rate(agent_tokens_total{{{MODEL}, type="input"}}[{RATE}]))'),
                      "{{model}}")], "percentunit", maximum=1, w=8),
        timeseries("Tokens per hour by agent vs budget", "The AgentTokenBudgetExceeded alert compares the "
                   "one-hour rate with agentprom:budget:tokens_per_hour.",
                   [q(f'sum by (agent) (rate(agent_tokens_total{{{AGENT}, type=~"input|output"}}[1h])) * 3600',
                      "{{agent}}"),
                    q("agentprom:budget:tokens_per_hour", "budget")], w=24),
        Row("Cost"),
        stat("Cost in range", "LLM cost in US dollars over the shown time range.",
             f"sum(increase(agent_llm_cost_usd_total{{{MODEL}}}[$__range]))", "currencyUSD", w=4, h=8,
             decimals=2),
        timeseries("Cost per hour by agent and model", "LLM cost in US dollars per hour.",
                   [q(f"sum by (agent, model) (rate(agent_llm_cost_usd_total{{{MODEL}}}[{RATE}])) * 3600",
                      "{{agent}} {{model}}")], "currencyUSD", stack=True, w=10),
        table("Cost by agent and model in range", "US dollars over the shown time range.",
              f"sum by (agent, provider, model) (increase(agent_llm_cost_usd_total{{{MODEL}}}[$__range]))",
              "currencyUSD", w=10),
        timeseries("Cost per hour by agent vs budget", "The AgentCostBudgetExceeded alert compares the one-hour "
                   "rate with agentprom:budget:cost_usd_per_hour.",
                   [q(f"sum by (agent) (rate(agent_llm_cost_usd_total{{{AGENT}}}[1h])) * 3600", "{{agent}}"),
                    q("agentprom:budget:cost_usd_per_hour", "budget")], "currencyUSD", w=24),
        timeseries("Unpriced LLM calls per minute", "Calls that reported token usage but no cost, for a model the "
                   "price table has no entry for: their cost is missing from the panels above. Add the model to "
                   "pricing.models (docs/conventions.md, Cost).",
                   [q('sum by (provider, model) (rate(agent_llm_unpriced_calls_total{model=~"$model"}'
                      f"[{RATE}])) * 60", "{{provider}} {{model}}")], w=24),
    ]
    return Dashboard(
        "agentprom-llm-cost", "agentprom / LLM and cost",
        "LLM calls, latency and errors by model; tokens by type; cost by agent and model against the budgets.",
        [agent_var("agent_llm_calls_total"), MODEL_VAR],
        items, time_from="now-6h", refresh="1m", filters=True)


def sessions() -> Dashboard:
    ended = f"rate(agent_sessions_total{{{AGENT}}}[{RATE}])"
    items: list[Panel | Row] = [
        Row("Sessions"),
        timeseries("Active sessions", "Runtime sessions open, by agent.",
                   [q(f"sum by (agent) (agent_sessions_active{{{AGENT}}})", "{{agent}}")], stack=True, w=8),
        timeseries("Sessions ended per hour", "By final status: completed, failed or abandoned.",
                   [q(f"sum by (status) ({ended}) * 3600", "{{status}}")], stack=True, bars=True, w=8),
        timeseries("Completion rate", "Share of sessions ended in the last hour that completed (recording rule).",
                   [q(f'agent_status:agent_sessions:ratio_rate1h{{{AGENT}, status="completed"}}', "{{agent}}")],
                   "percentunit", maximum=1, w=8),
        timeseries("Session duration p50 / p95", "Duration of ended sessions.",
                   [q(quantile(0.95, "agent_session_duration_seconds", AGENT, "agent"), "p95 {{agent}}"),
                    q(quantile(0.5, "agent_session_duration_seconds", AGENT, "agent"), "p50 {{agent}}")], "s"),
        timeseries("Tool calls per session p50 / p95", "Tool calls made in each ended session.",
                   [q(quantile(0.95, "agent_session_tool_calls", AGENT, "agent"), "p95 {{agent}}"),
                    q(quantile(0.5, "agent_session_tool_calls", AGENT, "agent"), "p50 {{agent}}")]),
        Row("Continuity"),
        heatmap("Continuity score distribution", "Continuity score (0-100) of ended sessions; see docs/sessions.md.",
                f"sum by (le) (increase(agent_session_continuity_score_bucket{{{AGENT}}}[{RATE}]))", "short"),
        timeseries("Mean continuity score", "Mean score of sessions ended in the last hour (recording rule).",
                   [q(f"agent:agent_session_continuity_score:mean_rate1h{{{AGENT}}}", "{{agent}}")],
                   maximum=100),
        timeseries("Recovery rate", "Failed tool and LLM calls recovered by a later call of the same tool or "
                   "model in the session (recording rule, one-hour window).",
                   [q(f"agent_component:agent_recoveries:ratio_rate1h{{{AGENT}}}", "{{agent}} {{component}}")],
                   "percentunit", maximum=1, w=8),
        timeseries("Checkpoints and context resets per hour", "Checkpoints created and context resets.",
                   [q(f"sum by (agent) (rate(agent_checkpoints_total{{{AGENT}}}[{RATE}])) * 3600",
                      "checkpoints {{agent}}"),
                    q(f"sum by (agent) (rate(agent_context_resets_total{{{AGENT}}}[{RATE}])) * 3600",
                      "context resets {{agent}}")], w=8),
        timeseries("Context utilization p95", "Context tokens used divided by context tokens available.",
                   [q(quantile(0.95, "agent_context_utilization_ratio", AGENT, "agent"), "{{agent}}")],
                   "percentunit", w=8),
        Row("Phases and memory"),
        timeseries("Phases ended per hour", "Ended phases by phase and outcome.",
                   [q(f"sum by (phase, status) (rate(agent_phases_total{{{AGENT}}}[{RATE}])) * 3600",
                      "{{phase}} {{status}}")], stack=True, w=8),
        timeseries("Phase duration p95", "95th percentile duration of ended phases.",
                   [q(quantile(0.95, "agent_phase_duration_seconds", AGENT, "phase"), "{{phase}}")], "s", w=8),
        timeseries("Memory operations per minute", "Agent memory reads and writes.",
                   [q(f"sum by (operation) (rate(agent_memory_operations_total{{{AGENT}}}[{RATE}])) * 60",
                      "{{operation}}")], stack=True, w=8),
    ]
    return Dashboard(
        "agentprom-sessions", "agentprom / Sessions and continuity",
        "Historical view of runtime sessions: outcomes, duration, continuity score, recoveries, phases and memory.",
        [agent_var("agent_sessions_total")],
        items, time_from="now-7d", refresh="5m")


def sidecar_health() -> Dashboard:
    items: list[Panel | Row] = [
        Row("Ingest"),
        stat("Sidecars up", "agentprom targets scraped successfully now, of those seen in the last hour.",
             f"sum(up{{{INSTANCE}}} and on (job, instance) max_over_time(agentprom_build_info[1h]))", w=4, h=8),
        timeseries("Spans received per second", "Spans in decodable export requests, by transport.",
                   [q(f"sum by (transport) (rate(agentprom_spans_received_total{{{INSTANCE}}}[{RATE}]))",
                      "{{transport}}")], stack=True, w=10),
        timeseries("Spans rejected and requests refused per second",
                   "Spans rejected individually (partial success) and whole requests refused, by reason.",
                   [q(f"sum by (reason) (rate(agentprom_spans_rejected_total{{{INSTANCE}}}[{RATE}]))",
                      "rejected {{reason}}"),
                    q(f"sum by (transport, reason) (rate(agentprom_requests_refused_total{{{INSTANCE}}}[{RATE}]))",
                      "refused {{transport}} {{reason}}")], w=10),
        Row("Series"),
        timeseries("Active series by metric", "Series exposed per metric on the busiest sidecar, against "
                   "the limit held in agentprom:config:max_series_per_metric.",
                   [q(f"max by (metric) (agentprom_active_series{{{INSTANCE}}})", "{{metric}}"),
                    q("agentprom:config:max_series_per_metric", "limit")], w=8),
        timeseries("Overflowed observations per minute", "Observations folded into otel_metric_overflow series "
                   "(the series limit), and label values replaced by __overflow__ (a label's value budget; the "
                   "other labels keep theirs).",
                   [q(f"sum by (metric) (rate(agentprom_series_overflow_total{{{INSTANCE}}}[{RATE}])) * 60",
                      "{{metric}}"),
                    q(f"sum by (metric, label) (rate(agentprom_label_overflow_total{{{INSTANCE}}}[{RATE}])) * 60",
                      "{{metric}} {{label}}=__overflow__")], w=8),
        timeseries("Expired series per minute", "Series dropped because they were not updated in time.",
                   [q(f"sum by (metric) (rate(agentprom_series_expired_total{{{INSTANCE}}}[{RATE}])) * 60",
                      "{{metric}}")], w=8),
        Row("Stores"),
        timeseries("Store lag", "Journal records each store (PostgreSQL, Redis) does not have yet; 0 when it has "
                   "everything (docs/stores.md). AgentpromStoreBehind fires after 15 minutes behind.",
                   [q(f"max by (instance, store) (agentprom_store_lag_records{{{INSTANCE}}})", "{{instance}} {{store}}")],
                   w=8),
        timeseries("Records shipped per second", "Journal records written into each store (with the journal "
                   "position, in one transaction).",
                   [q(f"sum by (store) (rate(agentprom_store_records_total{{{INSTANCE}, outcome=\"shipped\"}}"
                      f"[{RATE}]))", "{{store}}")], w=8),
        timeseries("Store errors per minute", "Failed store operations by reason (unavailable, auth, timeout, "
                   "rejected); each is retried with backoff.",
                   [q(f"sum by (store, reason) (rate(agentprom_store_errors_total{{{INSTANCE}}}[{RATE}])) * 60",
                      "{{store}} {{reason}}")], w=8),
        Row("Process"),
        timeseries("Scrape duration", "How long Prometheus takes to scrape each sidecar.",
                   [q(f"scrape_duration_seconds{{{INSTANCE}}} {SIDECARS}", "{{instance}}")], "s", w=6),
        timeseries("Samples per scrape", "Samples each scrape of a sidecar returns.",
                   [q(f"scrape_samples_scraped{{{INSTANCE}}} {SIDECARS}", "{{instance}}")], w=6),
        timeseries("CPU", "CPU seconds per second used by each sidecar process.",
                   [q(f"rate(process_cpu_seconds_total{{{INSTANCE}}}[{RATE}]) {SIDECARS}", "{{instance}}")],
                   "percentunit", w=6),
        timeseries("Resident memory", "Resident memory of each sidecar process.",
                   [q(f"process_resident_memory_bytes{{{INSTANCE}}} {SIDECARS}", "{{instance}}")], "bytes", w=6),
        table("Versions", "agentprom version per sidecar.", f"agentprom_build_info{{{INSTANCE}}}", w=12),
        table("Firing agentprom alerts", "Alerts from rules/agentprom-alerts.rules.yml firing now.",
              'ALERTS{alertstate="firing", alertname=~"Agent.*"}', w=12),
    ]
    return Dashboard(
        "agentprom-sidecar", "agentprom / Sidecar health",
        "The sidecar itself: spans received and rejected, series and overflow, its stores, scrape cost, CPU and memory.",
        [Var("instance", "Sidecar", "label_values(agentprom_build_info, instance)")],
        items, time_from="now-3h", refresh="1m")


def quality() -> Dashboard:
    run = f'{AGENT}, scope="all"'
    llm = f"rate(agent_llm_calls_total{{{MODEL}}}[{RATE}])"
    evaluation = f'{AGENT}, evaluation=~"$evaluation"'
    items: list[Panel | Row] = [
        Row("Evaluations"),
        timeseries("Mean evaluation score by agent and evaluation", "Mean score of the evaluation results "
                   "(gen_ai.evaluation.result) in each interval; compare an evaluation with itself, scales "
                   "differ between evaluations.",
                   [q(ratio(f"sum by (agent, evaluation) (rate(agent_evaluation_score_sum{{{evaluation}}}[{RATE}]))",
                            f"sum by (agent, evaluation) (rate(agent_evaluation_score_count{{{evaluation}}}"
                            f"[{RATE}]))"), "{{agent}} {{evaluation}}")], w=12),
        timeseries("Mean score, last hour vs the day before", "What AgentEvaluationScoreFalling compares "
                   "(recording rules).",
                   [q(f"agent_evaluation:agent_evaluation_score:mean_rate1h{{{evaluation}}}",
                      "{{agent}} {{evaluation}} 1h"),
                    q(f"agent_evaluation:agent_evaluation_score:mean_rate1d{{{evaluation}}} offset 1h",
                      "{{agent}} {{evaluation}} day before")], w=12),
        timeseries("Evaluation results per minute by label", "Results by the evaluator's label (pass, fail, "
                   "relevant, ...; empty when it gives none).",
                   [q(f"sum by (evaluation, label) (rate(agent_evaluations_total{{{evaluation}}}[{RATE}])) * 60",
                      "{{evaluation}} {{label}}")], stack=True, w=24),
        Row("Streaming"),
        timeseries("Time to first token p95 by model", "How long users wait for the first chunk of a streamed "
                   "response; dots are exemplars (click through to the trace).",
                   [q(quantile(0.95, "agent_llm_time_to_first_token_seconds", MODEL, "model"), "{{model}}",
                      exemplar=True)], "s", w=8),
        timeseries("Time per output token p50 by model", "Mean time between output chunks of streamed calls "
                   "(instrumentations that report it: OpenLIT).",
                   [q(quantile(0.5, "agent_llm_time_per_output_token_seconds", MODEL, "model"), "{{model}}")],
                   "s", w=8),
        timeseries("Streamed share of LLM calls", "LLM calls that streamed their response.",
                   [q(ratio(f"sum by (model) (rate(agent_llm_streaming_calls_total{{{MODEL}}}[{RATE}]))",
                            f"sum by (model) ({llm})"), "{{model}}")], "percentunit", maximum=1, w=8),
        timeseries("Finish reasons per minute", "Why the model stopped, as the provider says it; length and "
                   "max_tokens are token-limit hits (answers cut short).",
                   [q(f"sum by (reason) (rate(agent_llm_finish_reasons_total{{{MODEL}}}[{RATE}])) * 60",
                      "{{reason}}")], stack=True, bars=True, w=24),
        Row("Guardrails"),
        timeseries("Guardrail checks per minute by verdict", "Checks by guardrail and the verdict the "
                   "instrumentation reports (FAILED, block, ...: interventions).",
                   [q(f"sum by (guardrail, outcome) (rate(agent_guardrail_checks_total{{{AGENT}}}[{RATE}])) * 60",
                      "{{guardrail}} {{outcome}}")], stack=True, w=12),
        timeseries("Guardrail latency p95", "95th percentile duration of guardrail checks.",
                   [q(quantile(0.95, "agent_guardrail_duration_seconds", AGENT, "guardrail"), "{{guardrail}}")],
                   "s", w=12),
        Row("Runs: fan-out per invocation (with sub-agents)"),
        timeseries("LLM calls per run p95", "LLM calls of one agent invocation, its sub-agents' included: "
                   "a rising line is an agent starting to loop.",
                   [q(quantile(0.95, "agent_invocation_llm_calls", run, "agent"), "{{agent}}")], w=8),
        timeseries("Tool calls per run p95", "Tool calls of one invocation, its sub-agents' included.",
                   [q(quantile(0.95, "agent_invocation_tool_calls", run, "agent"), "{{agent}}")], w=8),
        timeseries("Reasoning cycles per run p95", "Loop cycles of one invocation (framework cycle spans, else "
                   "its own LLM calls).",
                   [q(quantile(0.95, "agent_invocation_cycles", AGENT, "agent"), "{{agent}}")], w=8),
        timeseries("Tokens per run p95", "Input plus output tokens of one invocation, sub-agents included.",
                   [q(quantile(0.95, "agent_invocation_tokens", run, "agent"), "{{agent}}")], w=8),
        timeseries("Cost per run p95", "US dollars of one invocation, sub-agents included.",
                   [q(quantile(0.95, "agent_invocation_cost_usd", run, "agent"), "{{agent}}")], "currencyUSD", w=8),
        timeseries("Runs above 64 LLM calls (15 min)", "What AgentRunFanOutHigh counts (recording rule).",
                   [q(f"agent:agent_invocation_llm_calls_over_64:increase15m{{{AGENT}}}", "{{agent}}")],
                   bars=True, w=8),
        Row("Agent call graph"),
        node_graph("Who calls whom", "Agents as nodes (invocations in the shown range: every agent, so that the "
                   "sub-agents of the chosen agents have their node), sub-agent invocations as edges from the "
                   "calling agent's run (agent_subagent_calls_total; the Agent filter picks the callers).",
                   "label_replace(label_replace(sum by (agent) (increase(agent_invocations_total"
                   '[$__range])), "id", "$1", "agent", "(.+)"), "title", "$1", "agent", "(.+)")',
                   "label_replace(label_replace(label_join(sum by (agent, subagent) (increase("
                   f'agent_subagent_calls_total{{{AGENT}}}[$__range])), "id", "->", "agent", "subagent"), '
                   '"source", "$1", "agent", "(.+)"), "target", "$1", "subagent", "(.+)")'),
        timeseries("Sub-agent calls per minute", "Invocations of each sub-agent by each calling agent, by outcome.",
                   [q(f"sum by (agent, subagent, status) (rate(agent_subagent_calls_total{{{AGENT}}}[{RATE}])) * 60",
                      "{{agent}} -> {{subagent}} {{status}}")], stack=True, w=12),
        timeseries("Sub-agent duration p95", "How long the sub-agent runs take, by caller and callee.",
                   [q(quantile(0.95, "agent_subagent_duration_seconds", AGENT, "agent, subagent"),
                      "{{agent}} -> {{subagent}}")], "s", w=12),
    ]
    return Dashboard(
        "agentprom-quality", "agentprom / Quality",
        "How good and how costly the agents' runs are: evaluation scores, streaming latency, finish reasons, "
        "guardrail verdicts, per-run fan-out and the agent call graph.",
        [agent_var("agent_invocations_total"), MODEL_VAR,
         Var("evaluation", "Evaluation", 'label_values(agent_evaluations_total{agent=~"$agent"}, evaluation)')],
        items, time_from="now-6h", refresh="1m", filters=True)


#: the configured extra dimension shown (a label name: the queries group by it)
DIMENSION = "$dimension"
#: the series of the chosen agents that carry the chosen dimension (a family without it has none)
BY_DIMENSION = f'{AGENT}, {DIMENSION}!=""'


def spend_by_dimension() -> Dashboard:
    cost = f"agent_llm_cost_usd_total{{{BY_DIMENSION}}}"
    tokens = f'agent_tokens_total{{{BY_DIMENSION}, type=~"input|output"}}'
    legend = "{{" + DIMENSION + "}}"
    need = ("Needs an extra dimension on this metric (dimensions: in the sidecar configuration, "
            "docs/metrics.md).")
    items: list[Panel | Row] = [
        Row("Cost"),
        stat("Cost in range", f"LLM cost in US dollars over the shown time range, of the series that carry the "
             f"dimension. {need}", f"sum(increase({cost}[$__range]))", "currencyUSD", w=4, h=8, decimals=2),
        timeseries("Cost per hour by $dimension", f"LLM cost in US dollars per hour by the dimension's value. {need}",
                   [q(f"sum by ({DIMENSION}) (rate({cost}[{RATE}])) * 3600", legend)], "currencyUSD",
                   stack=True, w=10),
        table("Cost by $dimension, agent and model in range", "US dollars over the shown time range.",
              f"sum by ({DIMENSION}, agent, model) (increase({cost}[$__range]))", "currencyUSD", w=10),
        timeseries("Cost per hour by $dimension vs budget", "The one-hour rate that AgentDimensionCostBudgetExceeded "
                   "compares with each value's budget (agentprom:budget:cost_usd_per_hour_by_<dimension>, from "
                   "dimensions[].budgets through agentprom generate rules or the Helm chart).",
                   [q(f"sum by ({DIMENSION}) (rate({cost}[1h])) * 3600", legend),
                    q(f'{{__name__="agentprom:budget:cost_usd_per_hour_by_{DIMENSION}"}}', "budget " + legend)],
                   "currencyUSD", w=24),
        Row("Tokens"),
        timeseries("Tokens per minute by $dimension and type", "cache_read and cache_write are parts of input, "
                   "reasoning is part of output.",
                   [q(f"sum by ({DIMENSION}, type) (rate(agent_tokens_total{{{BY_DIMENSION}}}[{RATE}])) * 60",
                      legend + " {{type}}")], w=12),
        timeseries("Tokens per hour by $dimension vs budget", "Input plus output tokens: the one-hour rate that "
                   "AgentDimensionTokenBudgetExceeded compares with agentprom:budget:tokens_per_hour_by_<dimension>.",
                   [q(f"sum by ({DIMENSION}) (rate({tokens}[1h])) * 3600", legend),
                    q(f'{{__name__="agentprom:budget:tokens_per_hour_by_{DIMENSION}"}}', "budget " + legend)], w=12),
        Row("Calls"),
        timeseries("Invocations per minute by $dimension", f"Agent invocations. {need}",
                   [q(f"sum by ({DIMENSION}) (rate(agent_invocations_total{{{BY_DIMENSION}}}[{RATE}])) * 60",
                      legend)], stack=True, w=8),
        timeseries("LLM calls per minute by $dimension", f"LLM calls. {need}",
                   [q(f"sum by ({DIMENSION}) (rate(agent_llm_calls_total{{{BY_DIMENSION}}}[{RATE}])) * 60",
                      legend)], stack=True, w=8),
        timeseries("Tool calls per minute by $dimension", f"Tool calls. {need}",
                   [q(f"sum by ({DIMENSION}) (rate(agent_tool_calls_total{{{BY_DIMENSION}}}[{RATE}])) * 60",
                      legend)], stack=True, w=8),
    ]
    return Dashboard(
        "agentprom-dimensions", "agentprom / Spend by dimension",
        "Cost, tokens and calls by an extra dimension (tenant, user, environment: dimensions: in the sidecar "
        "configuration), against each value's budget. The Dimension list holds the configured dimensions "
        "(agentprom_dimension_info); it is empty, and the panels too, until one is configured.",
        [Var("dimension", "Dimension", "label_values(agentprom_dimension_info, dimension)", single=True),
         agent_var("agent_invocations_total")],
        items, time_from="now-6h", refresh="1m", filters=True)


DASHBOARDS = {
    "agentprom-overview.json": overview,
    "agentprom-tools.json": tools,
    "agentprom-llm-cost.json": llm_cost,
    "agentprom-sessions.json": sessions,
    "agentprom-sidecar-health.json": sidecar_health,
    "agentprom-dimensions.json": spend_by_dimension,
    "agentprom-quality.json": quality,
}


def render() -> dict[str, str]:
    """File name -> the file's text."""
    return {name: json.dumps(build().to_json(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write dashboards/*.json")
    mode.add_argument("--check", action="store_true", help="exit 1 if dashboards/*.json are not up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.write:
            OUT_DIR.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"stale: {', '.join(stale)}; run python3 scripts/build_dashboards.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
