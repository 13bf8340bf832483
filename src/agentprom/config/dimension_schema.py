"""The configuration schema of extra dimensions (``dimensions:``): labels from span or resource attributes.

Part of the schema (config/schema.py imports it); a module of its own because a dimension is
checked against the whole catalog. What a dimension does at runtime: dimensions.py.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from agentprom.config.base import _Model, key_list_problems, listed_twice
from agentprom.dimensions import DIMENSIONABLE
from agentprom.metrics.catalog import CATALOG

#: a Prometheus label name (the classic character set, which every Prometheus version accepts)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: labels a dimension may not take: the catalog's own, those Prometheus adds or reserves on its
#: side (a clash would rename ours to exported_*), and the series limit's overflow marker
RESERVED_LABELS = frozenset(label for spec in CATALOG for label in spec.labels) | {
    "le", "quantile", "job", "instance", "otel_metric_overflow", "otel_scope_name", "otel_scope_version",
}
_COST, _TOKENS = "agent_llm_cost_usd_total", "agent_tokens_total"


class DimensionBudget(_Model):
    """Budgets of one value of a dimension (e.g. one tenant), for the generated alerts
    (``agentprom rules``, and the Helm chart's PrometheusRule)."""

    cost_usd_per_hour: float | None = Field(
        None, gt=0, description="Alert (AgentDimensionCostBudgetExceeded) when this value spends more US dollars per hour "
        "on LLM calls, over the last hour. Needs agent_llm_cost_usd_total in the dimension's metrics.",
    )
    tokens_per_hour: float | None = Field(
        None, gt=0, description="Alert (AgentDimensionTokenBudgetExceeded) when this value uses more input plus output "
        "tokens per hour, over the last hour. Needs agent_tokens_total in the dimension's metrics.",
    )


class DimensionConfig(_Model):
    """One extra label on chosen metrics, read from span or resource attributes (docs/metrics.md,
    "Extra dimensions")."""

    label: str = Field(description="The label's name, e.g. tenant; must not be a label agentprom or Prometheus uses.")
    attributes: tuple[str, ...] = Field(
        min_length=1, description="Attribute keys holding the value, e.g. [enduser.id, app.tenant]: the first one "
        "present wins, looked up on the span and then on its resource.",
    )
    default: str = Field("unknown", min_length=1, max_length=128,
                         description="The label's value on a span (or runtime event) that carries none of them.")
    metrics: tuple[str, ...] = Field(
        min_length=1, description=f"The metrics that get the label: any of {', '.join(DIMENSIONABLE)}.",
    )
    budgets: dict[str, DimensionBudget] = Field(
        default_factory=dict, description="label value -> its budgets, e.g. {acme: {cost_usd_per_hour: 20}}.",
    )

    @field_validator("label")
    @classmethod
    def _check_label(cls, value: str) -> str:
        if not _LABEL_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Prometheus label name (letters, digits and _, not starting "
                             "with a digit)")
        if value.startswith("__"):
            raise ValueError(f"{value!r}: label names starting with __ are reserved by Prometheus")
        if value in RESERVED_LABELS:
            raise ValueError(f"{value!r} is already a label of agentprom's metrics or of Prometheus; choose "
                             "another name")
        return value

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = key_list_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [f"{name!r} cannot take a dimension (one of: {', '.join(DIMENSIONABLE)})"
                    for name in value if name not in DIMENSIONABLE]
        problems += listed_twice(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _check_budgets(self) -> "DimensionConfig":
        problems = []
        for value, budget in self.budgets.items():
            if budget.cost_usd_per_hour is not None and _COST not in self.metrics:
                problems.append(f"budgets.{value}.cost_usd_per_hour needs {_COST} in metrics")
            if budget.tokens_per_hour is not None and _TOKENS not in self.metrics:
                problems.append(f"budgets.{value}.tokens_per_hour needs {_TOKENS} in metrics")
            if not value:
                problems.append("budgets: a label value must not be empty")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def check_dimensions(dimensions: tuple[DimensionConfig, ...], deny: tuple[str, ...], max_value_length: int = 0,
                     allow: dict[str, str] | None = None) -> list[str]:
    """Problems of the dimensions together (each one alone is checked by ``DimensionConfig``):
    two with one label, attributes that ``security.attribute_deny`` removes before anything
    reads them, and budgeted values no series can have (longer than ``store.max_label_value_length``,
    or outside the label's ``store.label_allow`` pattern), whose alert could never fire."""
    problems = []
    problems += listed_twice([d.label for d in dimensions], "dimensions: label ", "configured")
    for i, d in enumerate(dimensions):
        problems += [f"dimensions[{i}].attributes: {key!r} is removed by security.attribute_deny, so it would "
                     "never be read" for key in d.attributes if _denied(key, deny)]
        pattern = re.compile((allow or {})[d.label]) if d.label in (allow or {}) else None
        for value in d.budgets:
            if max_value_length and len(value) > max_value_length:
                problems.append(f"dimensions[{i}].budgets: {value[:40]!r}... is longer than "
                                f"store.max_label_value_length ({max_value_length}): no series has it")
            elif pattern is not None and not pattern.fullmatch(value):
                problems.append(f"dimensions[{i}].budgets: {value!r} does not match store.label_allow for "
                                f"{d.label!r}: its series are labelled 'other'")
    return problems


def _denied(key: str, deny: tuple[str, ...]) -> bool:
    """Whether an ``attribute_deny`` entry (a key, or a prefix with a trailing ``*``) matches ``key``."""
    return any(key.startswith(entry[:-1]) if entry.endswith("*") else key == entry for entry in deny)
