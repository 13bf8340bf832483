"""The /metrics output passes the real promtool, and OpenMetrics is negotiated."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

GOLDEN = Path(__file__).parent / "golden" / "core"


def feed_all_conventions(sidecar) -> None:
    for path in sorted(GOLDEN.glob("*.json")):
        status, _h, _b = sidecar.post("/v1/traces", path.read_bytes(), {"Content-Type": "application/json"})
        assert status == 200


def test_promtool_check_metrics_is_clean(sidecar, promtool):
    feed_all_conventions(sidecar)
    text = sidecar.scrape()
    assert "agent_tool_calls_total" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_openmetrics_is_negotiated_and_strictly_parseable(sidecar):
    feed_all_conventions(sidecar)
    body = sidecar.scrape(openmetrics=True)
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["agent_tool_calls"].type == "counter"
    assert families["agent_llm_duration_seconds"].type == "histogram"
    assert "process_resident_memory_bytes" in families
    assert "# EOF" not in sidecar.scrape()
