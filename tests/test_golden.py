"""Golden files: realistic OTLP/JSON traces of each convention in, exact exposition out.

Inputs and expected outputs live in tests/golden/core/. Regenerate the expected
files only deliberately: AGENTPROM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "core"
UPDATE = os.environ.get("AGENTPROM_UPDATE_GOLDEN") == "1"
INPUTS = sorted(p.stem for p in GOLDEN.glob("*.json"))


def agent_lines(exposition: str) -> str:
    """The span-derived part of a scrape (process metrics and the version vary by machine)."""
    keep = []
    for line in exposition.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("#") else line
        if name.startswith(("agent_", "agentprom_spans", "agentprom_requests")):
            keep.append(line)
    return "\n".join(keep) + "\n"


@pytest.mark.parametrize("case", INPUTS)
def test_golden_exposition(sidecar, case):
    body = (GOLDEN / f"{case}.json").read_bytes()
    status, _headers, response = sidecar.post("/v1/traces", body, {"Content-Type": "application/json"})
    assert status == 200, response
    actual = agent_lines(sidecar.scrape())
    expected_path = GOLDEN / f"{case}.prom"
    if UPDATE:
        expected_path.write_text(actual)
    assert actual == expected_path.read_text(), f"exposition differs from {expected_path.name}"


def test_partial_success_reports_each_bad_span(sidecar):
    body = (GOLDEN / "own_and_mcp.json").read_bytes()
    status, headers, response = sidecar.post("/v1/traces", body, {"Content-Type": "application/json"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    partial = json.loads(response)["partialSuccess"]
    assert partial["rejectedSpans"] == "3"
    for reason in ("invalid_span_id", "end_before_start", "invalid_trace_id"):
        assert reason in partial["errorMessage"]
    assert sidecar.value("agentprom_spans_rejected_total", reason="end_before_start") == 1
    assert sidecar.value("agentprom_spans_received_total", transport="http") == 8
