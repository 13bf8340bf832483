"""Compare two benchmark result files metric by metric and decide whether the candidate regressed.

For each metric (``METRICS``): the statistic of both runs, the change (in
percent of the baseline, or in points), a 95% bootstrap interval of the
change, and a one-sided test of "the candidate is worse" suited to small
samples. A metric regresses when its change in the bad direction exceeds its
threshold AND its p-value (Holm-adjusted over the gated metrics by default)
is below alpha: a change too small to matter never fails a build, and neither
does noise. Thresholds come from the defaults here, a YAML file and
``--threshold`` flags (docs/bench.md, "Statistics and thresholds").
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from agentprom.benchmark import stats
from agentprom.config.loader import ConfigError, Problem, read_yaml, validate_model

WHAT = "compare settings"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    #: the record field it reads
    field: str
    statistic: Literal["rate", "p50", "p95", "mean"]
    #: which way is a regression
    worse: Literal["up", "down"]
    #: "percent": change relative to the baseline; "points": difference (rates in percentage points)
    change: Literal["percent", "points"]
    test: Literal["fisher", "mann-whitney", "bootstrap"]
    default_threshold: float | None
    #: what the threshold means, in words (the settings schema's description)
    threshold_help: str
    unit: str = ""


METRICS = (
    Metric("success_rate", "success rate", "success", "rate", "down", "points", "fisher", 5.0,
           "Percentage points the success rate may drop.", "%"),
    Metric("duration_p50", "duration p50", "duration_ms", "p50", "up", "percent", "mann-whitney", 20.0,
           "Percent the median duration may grow.", "ms"),
    Metric("duration_p95", "duration p95", "duration_ms", "p95", "up", "percent", "bootstrap", 50.0,
           "Percent the 95th percentile duration may grow.", "ms"),
    Metric("tool_calls", "tool calls (mean)", "tool_calls", "mean", "up", "percent", "mann-whitney", 25.0,
           "Percent the mean tool calls per session may grow."),
    Metric("recovery_count", "recoveries (mean)", "recovery_count", "mean", "up", "percent", "mann-whitney", None,
           "Percent the mean recoveries per session may grow."),
    Metric("continuity_score", "continuity score (mean)", "continuity_score", "mean", "down", "points",
           "mann-whitney", 5.0, "Points the mean continuity score may drop."),
)
BY_NAME = {metric.name: metric for metric in METRICS}
STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "rate": stats.mean,
    "mean": stats.mean,
    "p50": lambda values: stats.quantile(values, 0.50),
    "p95": lambda values: stats.quantile(values, 0.95),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: How large a change in the bad direction is a regression, per metric (null: report only, never fail);
#: made from ``METRICS`` so the table above stays the one place that defines a metric.
Thresholds = create_model(
    "Thresholds",
    __base__=_Model,
    **{m.name: (float | None, Field(m.default_threshold, ge=0, description=m.threshold_help)) for m in METRICS},
)


class CompareSettings(_Model):
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of each (adjusted) test.")
    correction: Literal["holm", "none"] = Field("holm", description="Multiple-testing adjustment over gated metrics.")
    resamples: int = Field(2000, ge=100, le=1_000_000, description="Bootstrap resamples.")
    seed: int = Field(0, description="Seed of the bootstrap (results are reproducible).")
    thresholds: Thresholds = Field(default_factory=Thresholds)  # type: ignore[valid-type]


def parse_threshold_flag(text: str) -> tuple[str, float | None]:
    """``NAME=VALUE`` (VALUE a number, or ``off``) from ``--threshold``; ValueError when malformed."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip().removesuffix("%")
    if not sep or name not in BY_NAME:
        raise ValueError(f"--threshold {text!r}: expected NAME=VALUE with NAME one of {', '.join(BY_NAME)}")
    if value.lower() in ("off", "none", "null"):
        return name, None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--threshold {text!r}: VALUE must be a number or 'off'") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"--threshold {text!r}: VALUE must be a finite number >= 0")
    return name, number


def load_settings(path: str | Path | None = None, thresholds: Mapping[str, float | None] | None = None,
                  **overrides: Any) -> CompareSettings:
    """Defaults, then the YAML file, then flags (``thresholds`` by metric name, other settings by key;
    None = not given). ``ConfigError`` lists every problem."""
    document: dict[str, Any] = read_yaml(path, WHAT) if path else {}
    sources: dict[str, str] = {}
    for key, value in overrides.items():
        if value is not None:
            document[key] = value
            sources[key] = "command line"
    if thresholds:
        section = document.get("thresholds")
        if section is not None and not isinstance(section, dict):
            raise ConfigError([Problem("thresholds", "must be a mapping of metric name to number or null",
                                       section)], str(path or "command line"), WHAT)
        document["thresholds"] = {**(section or {}), **thresholds}
        sources.update({f"thresholds.{name}": "command line" for name in thresholds})
    return validate_model(CompareSettings, document, str(path or "command line"), sources, WHAT)


# -- the comparison ----------------------------------------------------------------------


@dataclass
class MetricResult:
    metric: Metric
    n_baseline: int
    n_candidate: int
    baseline: float | None = None
    candidate: float | None = None
    #: candidate - baseline, in percent of the baseline or in points (None: no data, or a zero baseline)
    change: float | None = None
    #: the change in the bad direction exceeds any finite threshold (a rise from a zero baseline)
    unbounded: bool = False
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    test_method: str = ""
    threshold: float | None = None
    regression: bool = False

    @property
    def verdict(self) -> str:
        if self.p_value is None:
            return "insufficient data"
        if self.threshold is None:
            return "not gated"
        return "REGRESSION" if self.regression else "ok"

    def as_dict(self) -> dict[str, Any]:
        m = self.metric
        return {
            "metric": m.name,
            "label": m.label,
            "field": m.field,
            "statistic": m.statistic,
            "worse": m.worse,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "change": self.change,
            "change_unit": "percent" if m.change == "percent" else "points",
            "change_unbounded": self.unbounded,
            "ci95": list(self.ci95) if self.ci95 else None,
            "test": m.test,
            "test_method": self.test_method,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "threshold": self.threshold,
            "regression": self.regression,
            "verdict": self.verdict,
        }


def _values(records: Sequence[dict[str, Any]], metric: Metric) -> list[float]:
    if metric.statistic == "rate":
        return [1.0 if record.get(metric.field) is True else 0.0 for record in records]
    values = (record.get(metric.field) for record in records)
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _changer(metric: Metric) -> Callable[[float, float], float | None]:
    """(baseline statistic, candidate statistic) -> change; infinite for a rise from zero."""
    if metric.change == "points":
        scale = 100.0 if metric.statistic == "rate" else 1.0
        return lambda base, cand: (cand - base) * scale
    def relative(base: float, cand: float) -> float:
        if base == 0:
            return 0.0 if cand == 0 else math.copysign(math.inf, cand)
        return (cand - base) / abs(base) * 100.0
    return relative


def _p_worse(metric: Metric, base: list[float], cand: list[float], changes: list[float]) -> tuple[float, str]:
    """One-sided p-value of "the candidate is worse" and how it was computed."""
    if metric.test == "fisher":
        return stats.fisher_less(round(sum(base)), len(base), round(sum(cand)), len(cand)), "exact"
    if metric.test == "mann-whitney":
        result = stats.mann_whitney(cand, base, "greater" if metric.worse == "up" else "less")
        return result.p, result.method
    sign = 1.0 if metric.worse == "up" else -1.0
    not_worse = sum(1 for change in changes if sign * change <= 0)
    return (1 + not_worse) / (len(changes) + 1), f"{len(changes)} resamples"


def compare(baseline: Sequence[dict[str, Any]], candidate: Sequence[dict[str, Any]],
            settings: CompareSettings | None = None) -> list[MetricResult]:
    settings = settings or CompareSettings()
    results = []
    for metric in METRICS:
        base, cand = _values(baseline, metric), _values(candidate, metric)
        result = MetricResult(metric, len(base), len(cand), threshold=getattr(settings.thresholds, metric.name))
        results.append(result)
        if not base or not cand:
            continue
        statistic, change = STATISTICS[metric.statistic], _changer(metric)
        result.baseline, result.candidate = statistic(base), statistic(cand)
        delta = change(result.baseline, result.candidate)
        result.unbounded = math.isinf(delta) and (delta > 0) == (metric.worse == "up")
        result.change = delta if math.isfinite(delta) else None
        # one generator per metric: a metric's numbers do not depend on which metrics came before
        rng = random.Random(f"{settings.seed}:{metric.name}")
        changes = stats.bootstrap(base, cand, statistic, change, settings.resamples, rng)
        if changes:
            result.ci95 = (stats.quantile(changes, 0.025), stats.quantile(changes, 0.975))
        result.p_value, result.test_method = _p_worse(metric, base, cand, changes)
    gated = [r for r in results if r.p_value is not None and r.threshold is not None]
    adjusted = (stats.holm([r.p_value for r in gated]) if settings.correction == "holm"  # type: ignore[misc]
                else [r.p_value for r in gated])
    for result, p in zip(gated, adjusted, strict=True):
        result.p_adjusted = p
        sign = 1.0 if result.metric.worse == "up" else -1.0
        worse_by = math.inf if result.unbounded else sign * (result.change or 0.0)
        result.regression = worse_by > result.threshold and p < settings.alpha  # type: ignore[operator]
    return results


# -- output -----------------------------------------------------------------------------


def report(results: Sequence[MetricResult], settings: CompareSettings, baseline: dict[str, Any],
           candidate: dict[str, Any]) -> dict[str, Any]:
    """The comparison as one JSON document (``--format json``)."""
    regressions = [r.metric.name for r in results if r.regression]
    return {
        "baseline": baseline,
        "candidate": candidate,
        "alpha": settings.alpha,
        "correction": settings.correction,
        "resamples": settings.resamples,
        "metrics": [r.as_dict() for r in results],
        "regressions": regressions,
        "passed": not regressions,
    }


def _number(value: float | None, metric: Metric) -> str:
    if value is None:
        return "-"
    if metric.statistic == "rate":
        return f"{value * 100:.1f}%"
    return f"{value:.1f}" if metric.statistic != "mean" else f"{value:.2f}"


def _change(value: float | None, metric: Metric, unbounded: bool = False) -> str:
    if unbounded:
        return "+inf%" if metric.change == "percent" else "+inf"
    if value is None:
        return "-"
    return f"{value:+.1f}%" if metric.change == "percent" else f"{value:+.1f} pts"


def _threshold(result: MetricResult) -> str:
    if result.threshold is None:
        return "off"
    sign = "+" if result.metric.worse == "up" else "-"
    unit = "%" if result.metric.change == "percent" else " pts"
    return f"{sign}{result.threshold:g}{unit}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_table(document: dict[str, Any], results: Sequence[MetricResult]) -> str:
    base, cand = document["baseline"], document["candidate"]
    correction = "Holm-adjusted over the gated metrics" if document["correction"] == "holm" else "not adjusted"
    lines = [
        f"baseline:  {base['path']} ({base['sessions']} sessions; {', '.join(base['benchmarks']) or '-'})",
        f"candidate: {cand['path']} ({cand['sessions']} sessions; {', '.join(cand['benchmarks']) or '-'})",
        f"one-sided tests of 'candidate is worse', alpha {document['alpha']:g}, p {correction}; "
        f"95% bootstrap intervals from {document['resamples']} resamples",
        "",
    ]
    header = ("metric", "baseline", "candidate", "change", "95% CI of change", "test", "p", "p adj",
              "threshold", "verdict")
    rows = [header]
    for r in results:
        m = r.metric
        label = f"{m.label} ({m.unit})" if m.unit and m.unit != "%" else m.label
        ci = "-" if r.ci95 is None else f"[{_change(r.ci95[0], m)}, {_change(r.ci95[1], m)}]"
        rows.append((label, _number(r.baseline, m), _number(r.candidate, m), _change(r.change, m, r.unbounded),
                     ci, m.test, _p(r.p_value), _p(r.p_adjusted), _threshold(r), r.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) if i in (0, 5, 9) else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    lines.append("")
    regressions = document["regressions"]
    lines.append(f"result: REGRESSION ({', '.join(regressions)})" if regressions else "result: pass")
    return "\n".join(lines) + "\n"
