"""Parse PromQL from rules and dashboards and check the names it uses against the catalog.

Shared by tests/test_rules.py and tests/test_dashboards.py. Parsing is done by
PyPI ``promql-parser`` (a port of the Prometheus parser); Grafana's macros are
replaced by durations first, since Prometheus never sees them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

from agentprom.dimensions import DIMENSIONABLE
from agentprom.metrics.catalog import BY_NAME, HISTOGRAM, all_exposed_names

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))

#: Grafana's interval macros -> a duration PromQL accepts (longest names first).
GRAFANA_MACROS = (
    ("${__rate_interval}", "5m"), ("$__rate_interval", "5m"),
    ("${__interval}", "1m"), ("$__interval", "1m"),
    ("${__range}", "1h"), ("$__range", "1h"),
)

#: Series that are not agentprom's but that the rules and dashboards may use.
EXTERNAL_NAMES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
EXTERNAL_PREFIXES = ("process_", "scrape_")

#: Labels every scraped series may carry besides its catalog labels.
TARGET_LABELS = frozenset({"job", "instance"})


#: the Spend by dimension dashboard's ``$dimension`` (a label name) stands for a configured extra
#: dimension: checked as this label, which every family that can take a dimension may carry, with the
#: budget series the generated rules record for it
DIMENSION_STAND_IN = "tenant"
DIMENSION_RECORDS = frozenset({f"agentprom:budget:cost_usd_per_hour_by_{DIMENSION_STAND_IN}",
                               f"agentprom:budget:tokens_per_hour_by_{DIMENSION_STAND_IN}"})


def substitute_macros(expr: str) -> str:
    for macro, value in GRAFANA_MACROS:
        expr = expr.replace(macro, value)
    return expr.replace("${dimension}", DIMENSION_STAND_IN).replace("$dimension", DIMENSION_STAND_IN)


@dataclass(frozen=True)
class Selector:
    """A series selector found in an expression: its metric name and the labels it matches on."""

    name: str | None
    labels: tuple[str, ...]


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in ``expr`` (raises ValueError when it does not parse)."""
    tree = promql_parser.parse(substitute_macros(expr))
    found: list[Selector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            labels = []
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
                    name = matcher.value
                else:
                    labels.append(matcher.name)
            found.append(Selector(name, tuple(labels)))

    promql_parser.walk(tree, visit)
    return found


def recording_rule_names(files: Iterable[Path] = RULE_FILES) -> frozenset[str]:
    return frozenset(rule["record"] for rule in iter_rules(files) if "record" in rule)


def iter_rules(files: Iterable[Path] = RULE_FILES) -> Iterable[dict]:
    for path in files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


def is_known(name: str, recorded: frozenset[str]) -> bool:
    return (
        name in all_exposed_names()
        or name in recorded
        or name in DIMENSION_RECORDS
        or name in EXTERNAL_NAMES
        or name.startswith(EXTERNAL_PREFIXES)
    )


def catalog_labels(name: str) -> frozenset[str] | None:
    """The labels a catalog sample name can carry, or None when it is not a catalog name."""
    for suffix, extra in (("", ()), ("_bucket", ("le",)), ("_count", ()), ("_sum", ())):
        base = name[: len(name) - len(suffix)] if suffix and name.endswith(suffix) else name
        spec = BY_NAME.get(base)
        if spec is None or (suffix and spec.type != HISTOGRAM) or (not suffix and spec.type == HISTOGRAM):
            continue
        dimension = (DIMENSION_STAND_IN,) if base in DIMENSIONABLE else ()
        return frozenset(spec.labels) | TARGET_LABELS | {"otel_metric_overflow", *extra, *dimension}
    return None


def problems(expr: str, recorded: frozenset[str]) -> list[str]:
    """Why ``expr`` is wrong: parse errors, unknown metric names, labels a metric does not have."""
    try:
        found = selectors(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    out = []
    for selector in found:
        if selector.name is None:
            out.append("selector without a metric name")
            continue
        if not is_known(selector.name, recorded):
            out.append(f"unknown metric {selector.name}")
            continue
        allowed = catalog_labels(selector.name)
        if allowed is not None:
            for label in selector.labels:
                if label not in allowed:
                    out.append(f"{selector.name} has no label {label!r}")
    return out


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")


def label_values_query(query: str) -> tuple[str | None, str]:
    """Split a Grafana ``label_values(selector, label)`` variable query."""
    match = _LABEL_VALUES.match(query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match["selector"], match["label"]
