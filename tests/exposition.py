"""Helpers that check exposition text with real parsers: promtool for Prometheus text, and
prometheus_client's strict OpenMetrics parser (promtool 2.42 cannot parse OpenMetrics)."""

from __future__ import annotations

import subprocess

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore


def promtool_check(promtool: str, text: str) -> None:
    """Fail unless ``promtool check metrics`` accepts the text without complaint."""
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and not output.strip(), f"promtool check metrics:\n{output}\n---\n{text[:3000]}"


def openmetrics_families(text: str) -> dict:
    """Parse OpenMetrics strictly (the body must end with ``# EOF``); name -> family."""
    return {family.name: family for family in parse_openmetrics(text)}


def text_samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample of Prometheus text as (name, sorted labels, value)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in parse_text(text)
        for sample in family.samples
    }


def render(store: SeriesStore, openmetrics: bool = False) -> str:
    """The store's exposition; OpenMetrics output gets its ``# EOF`` terminator."""
    body = Renderer(store).render(openmetrics)
    return body + "# EOF\n" if openmetrics else body
