"""Extra dimensions: labels the configuration adds to chosen metrics, from span or resource attributes.

A dimension (``dimensions:`` in the config) names a label (``tenant``), the attributes its value
is read from (``enduser.id``, ``app.tenant``: the first one present wins, looked up on the span,
then on its resource, as the OTel Collector's spanmetrics connector does), a default for spans
that carry none, and the metric families that get the label. Only the span-derived call metrics
(``DIMENSIONABLE``) can: they are counted from one span, whose attributes are at hand. A call
reported through the runtime event API has no attributes, so it gets each default.

The store never sees a dimension as special: ``with_dimensions`` appends the labels to the
families' specs (so exposition, label hygiene, per-label budgets and the series limit apply to
them as to any label), and the translator wraps those families in ``Dimensioned``, which
appends the current span's values to each key it is given. With no dimension configured
nothing is wrapped and the hot path is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Protocol

from agentprom.metrics.catalog import MetricSpec

#: the families counted from one LLM, tool or agent span (translator.Translator.record), which
#: may carry extra dimensions
DIMENSIONABLE: tuple[str, ...] = (
    "agent_invocations_total",
    "agent_invocation_duration_seconds",
    "agent_llm_calls_total",
    "agent_llm_duration_seconds",
    "agent_tokens_total",
    "agent_llm_cost_usd_total",
    "agent_llm_unpriced_calls_total",
    "agent_tool_calls_total",
    "agent_tool_duration_seconds",
    "agent_tool_errors_total",
    "agent_errors_total",
)


class DimensionSpec(Protocol):
    """What a dimension is (config.schema.DimensionConfig has these fields)."""

    label: str
    attributes: tuple[str, ...]
    default: str
    metrics: tuple[str, ...]


def with_dimensions(catalog: Iterable[MetricSpec], dimensions: Sequence[DimensionSpec]) -> tuple[MetricSpec, ...]:
    """The catalog with each dimension's label appended, in configuration order, to its families."""
    out = []
    for spec in catalog:
        extra = tuple(d.label for d in dimensions if spec.name in d.metrics)
        out.append(replace(spec, labels=spec.labels + extra) if extra else spec)
    return tuple(out)


def _text(value: Any) -> str | None:
    """An attribute value as a label value: scalars as text, anything else (arrays, maps) as absent."""
    if value.__class__ is str:
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


class DimensionValues:
    """Reads every configured dimension's value off a span; the values of the span being counted
    are kept in ``current`` for the ``Dimensioned`` families to read."""

    __slots__ = ("keys", "defaults", "current")

    def __init__(self, dimensions: Sequence[DimensionSpec]) -> None:
        self.keys = tuple(d.attributes for d in dimensions)
        self.defaults = tuple(d.default for d in dimensions)
        self.current = self.defaults

    def read(self, attributes: dict[str, Any], resource: dict[str, Any]) -> tuple[str, ...]:
        """Each dimension's value: its first attribute present on the span, else on the resource,
        else its default."""
        values = []
        for keys, default in zip(self.keys, self.defaults):
            found = None
            for key in keys:
                value = attributes.get(key)
                if value is not None and (found := _text(value)) is not None:
                    break
            if found is None:
                for key in keys:
                    value = resource.get(key)
                    if value is not None and (found := _text(value)) is not None:
                        break
            values.append(default if found is None else found)
        return tuple(values)


class Dimensioned:
    """A family whose keys get the current span's values of its dimensions appended.

    Has the two update methods the translator calls (``inc``, ``observe``); everything else
    (scrapes, expiry) goes to the family itself, which the store holds."""

    __slots__ = ("family", "values", "positions")

    #: no series is stored under a key without its dimensions: a handle (metrics/handles.py) of
    #: a dimensioned family holds none, and each of its updates comes through ``inc``/``observe``
    series: Mapping[tuple[str, ...], Any] = MappingProxyType({})

    def __init__(self, family: Any, values: DimensionValues, positions: tuple[int, ...]) -> None:
        self.family = family
        self.values = values
        #: indexes into ``values.current`` of this family's dimensions, in label order
        self.positions = positions

    def _key(self, key: tuple[str, ...]) -> tuple[str, ...]:
        current = self.values.current
        return key + tuple(current[i] for i in self.positions)

    def inc(self, key: tuple[str, ...], amount: float = 1, exemplar: Any = None) -> None:
        self.family.inc(self._key(key), amount, exemplar)

    def observe(self, key: tuple[str, ...], value: float, exemplar: Any = None, weight: float = 1) -> None:
        self.family.observe(self._key(key), value, exemplar, weight)


def dimensioned(families: dict[str, Any], dimensions: Sequence[DimensionSpec],
                values: DimensionValues) -> dict[str, Any]:
    """``families`` with each family that has a dimension replaced by its ``Dimensioned`` wrapper."""
    out = dict(families)
    for name in DIMENSIONABLE:
        positions = tuple(i for i, d in enumerate(dimensions) if name in d.metrics)
        if positions and name in families:
            out[name] = Dimensioned(families[name], values, positions)
    return out
