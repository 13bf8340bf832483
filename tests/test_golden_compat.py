"""Golden files for the compatibility outputs: one shared OTLP/JSON input, one config and one
expected exposition per case (tests/golden/compat/CASE.yaml -> CASE.prom).

Regenerate the expected files only deliberately: ``AGENTPROM_UPDATE_GOLDEN=1 pytest tests/test_golden_compat.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentprom.app import App
from agentprom.clock import ManualClock
from agentprom.config.loader import load_config
from agentprom.metrics.catalog import CATALOG
from agentprom.metrics.exposition import FamilyRenderer
from agentprom.receiver.ingest import JSON
from tests.exposition import openmetrics_families, promtool_check, render

GOLDEN = Path(__file__).parent / "golden" / "compat"
CASES = sorted(path.stem for path in GOLDEN.glob("*.yaml"))
COMPAT_NAMES = [spec.name for spec in CATALOG if spec.group == "compat"]
UPDATE = os.environ.get("AGENTPROM_UPDATE_GOLDEN") == "1"


def ingest_input(case: str) -> App:
    app = App(load_config(GOLDEN / f"{case}.yaml", env={}), ManualClock())
    app.ingest.export((GOLDEN / "input.json").read_bytes(), JSON, "http")
    return app


def compat_exposition(app: App) -> str:
    parts: list[str] = []
    for name in COMPAT_NAMES:
        if name in app.store.families:
            FamilyRenderer(app.store[name]).render(parts, openmetrics=False)
    return "".join(parts)


def test_every_case_has_an_expected_file():
    assert set(CASES) == {"off", "genai", "span_metrics", "both"}
    for case in CASES:
        assert (GOLDEN / f"{case}.prom").exists() or UPDATE, f"missing {case}.prom"


@pytest.mark.parametrize("case", CASES)
def test_compat_output_matches_golden(case, promtool):
    app = ingest_input(case)
    actual = compat_exposition(app)
    expected_path = GOLDEN / f"{case}.prom"
    if UPDATE:
        expected_path.write_text(actual, encoding="utf-8")
    assert actual == expected_path.read_text(encoding="utf-8"), f"{case}: set AGENTPROM_UPDATE_GOLDEN=1 to regenerate"

    # the whole exposition of this configuration is valid in both formats
    promtool_check(promtool, render(app.store))
    openmetrics_families(render(app.store, openmetrics=True))


def test_compat_families_are_registered_only_when_enabled():
    registered = {case: {n for n in COMPAT_NAMES if n in ingest_input(case).store.families} for case in CASES}
    assert registered["off"] == set()
    assert registered["genai"] == {n for n in COMPAT_NAMES if n.startswith("gen_ai_")}
    assert registered["span_metrics"] == {n for n in COMPAT_NAMES if n.startswith("traces_")}
    assert registered["both"] == set(COMPAT_NAMES)


def test_golden_facts():
    """A few facts read straight off the expected files, so a regenerated file that went wrong shows."""
    genai = (GOLDEN / "genai.prom").read_text()
    spans = (GOLDEN / "span_metrics.prom").read_text()
    both = (GOLDEN / "both.prom").read_text()
    # the sampled claude call (th:c, p = 1/4) counts 4 times; its 5000 input tokens land in le=16384
    assert ('gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",'
            'gen_ai_request_model="claude-sonnet-4",gen_ai_response_model="",gen_ai_token_type="input",'
            'le="16384.0"} 4\n') in genai
    assert ('gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name='
            '"openai",gen_ai_request_model="gpt-4o",gen_ai_response_model="",error_type="RateLimitError"} 1\n') in genai
    assert ('gen_ai_execute_tool_duration_seconds_count{gen_ai_operation_name="execute_tool",gen_ai_agent_name='
            '"planner",gen_ai_tool_name="web_search",error_type="TimeoutError"} 1\n') in genai
    assert 'gen_ai_token_type="cache_read"' not in genai  # not a spec token type
    # every span, including plain HTTP ones, is in span metrics; 12 spans, the sampled one 4 times
    assert ('traces_span_metrics_calls_total{service_name="trip-planner",span_name="POST /v1/chat/completions",'
            'span_kind="SPAN_KIND_CLIENT",status_code="STATUS_CODE_UNSET"} 1\n') in spans
    assert ('traces_span_metrics_calls_total{service_name="unknown_service",span_name="Agent workflow",'
            'span_kind="SPAN_KIND_UNSPECIFIED",status_code="STATUS_CODE_OK"} 1\n') in spans
    assert 'span_name="other"' in both and "POST /v1" not in both  # label_allow applies to compat labels
