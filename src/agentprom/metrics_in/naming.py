"""OTel metric names, units and attribute keys as Prometheus names and labels.

Implements "OTLP Metric points to Prometheus" of the OpenTelemetry
specification (compatibility/prometheus_and_openmetrics.md, sections "Metric
Metadata" and "Metric Attributes"), with the unit table of the reference
Python exporter (opentelemetry-exporter-prometheus ``_mapping.py``, itself
copied from the Collector's ``normalize_name.go``). Where the two differ we
follow the specification; docs/metrics-in.md lists each difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9:]+")  # "_" is in the class so runs of it collapse too
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")

#: UCUM / SI abbreviations -> Prometheus unit words
UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes",
    "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "%": "percent",
}
#: the denominator of "foo/bar" units, singular
PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def sanitize_name(name: str) -> str:
    """Invalid characters (and runs of them, ``_`` included) become one ``_``; a leading digit is invalid too."""
    if name[:1].isdigit():
        name = "_" + name[1:]
    return _INVALID_NAME.sub("_", name)


def sanitize_label(key: str) -> str:
    """Like ``sanitize_name`` without ``:``; "" for a key with nothing left to name."""
    if key[:1].isdigit():
        key = "_" + key[1:]
    label = _INVALID_LABEL.sub("_", key)
    return "" if label == "_" else label


def unit_word(unit: str, gauge: bool) -> str:
    """The Prometheus unit suffix for an OTel unit ("" for none).

    ``{annotations}`` are dropped (a count of things is unitless); ``1`` is
    ``ratio`` for gauges only, as the Collector does (a counter or histogram of
    unit 1 counts things); ``foo/bar`` is ``foo_per_bar``.
    """
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if gauge else ""
    if unit in UNIT_WORDS:
        return UNIT_WORDS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and bottom.strip():
        top_word = UNIT_WORDS.get(top, sanitize_name(top).strip("_")) if top else ""
        bottom = bottom.strip()
        bottom_word = PER_UNIT_WORDS.get(bottom, sanitize_name(bottom).strip("_"))
        return f"{top_word}_per_{bottom_word}" if top_word else f"per_{bottom_word}"
    return sanitize_name(unit).strip("_")


def metric_name(name: str, unit: str, counter: bool, gauge: bool, translate: bool = True) -> str:
    """The Prometheus family name of an OTel metric (for counters, with ``_total``).

    With ``translate`` off only invalid characters are replaced: no unit or
    ``_total`` suffixes (the Collector's ``add_metric_suffixes: false``).
    """
    base = sanitize_name(name)
    if not translate:
        return base
    if counter and base.endswith("_total"):
        base = base[: -len("_total")]  # re-added after the unit, which comes before type suffixes
    word = unit_word(unit, gauge)
    if word and not base.endswith("_" + word) and base != word:
        base = f"{base}_{word}"
    return f"{base}_total" if counter else base


def label_value(value: Any) -> str:
    """An attribute value as label text: strings as they are, everything else as JSON
    (``true``, ``5``, ``1.5``, ``["a", "b"]``), as the reference exporter writes them."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


class LabelNamer:
    """Sanitizes attribute keys into label names, with a bounded cache (keys repeat)."""

    #: labels that the exposition itself writes; an attribute with that name is renamed
    RESERVED = frozenset({"le", "quantile", "otel_metric_overflow"})
    _CACHE_LIMIT = 10_000

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def label(self, key: str) -> str:
        label = self._cache.get(key)
        if label is None:
            label = sanitize_label(key)
            if label in self.RESERVED:
                label = "exported_" + label
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = label
        return label

    def labels(self, attributes: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
        """Attributes as labels. Keys that sanitize to the same label have their values
        joined with ``;`` in the lexicographic order of the original keys (specification,
        "Metric Attributes"); keys that sanitize to nothing are dropped."""
        out: dict[str, str] = {}
        collided = False
        for key, value in attributes.items():
            label = self.label(prefix + key) if prefix else self.label(key)
            if not label:
                continue
            if label in out:
                collided = True
            out[label] = label_value(value)
        if not collided:
            return out
        joined: dict[str, list[str]] = {}
        for key in sorted(attributes):
            label = self.label(prefix + key) if prefix else self.label(key)
            if label:
                joined.setdefault(label, []).append(label_value(attributes[key]))
        return {label: ";".join(values) for label, values in joined.items()}
