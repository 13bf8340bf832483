"""Golden files, one per translation rule: an OTLP/JSON request sequence in, the exposition out.

Each ``tests/golden/metrics_in/<case>.json`` holds a description, a config (the ``metrics_in``
and ``store`` sections), and steps: ``request`` (an OTLP/JSON ExportMetricsServiceRequest),
``advance`` (seconds on the manual clock) or ``expire``. The expected output is ``<case>.prom``
(Prometheus text, or OpenMetrics when the case says so): the run-time families followed by the
drop counters. Every case also runs through the protobuf decoder (the same request converted
with ``json_format``) and must give the same output, and every output passes
``promtool check metrics`` (lint findings about the sender's own naming are listed in the case
as ``promtool_lint``) or, for OpenMetrics, prometheus_client's strict OpenMetrics parser.

Regenerate the expected files only deliberately: ``AGENTPROM_UPDATE_GOLDEN=1 pytest tests/test_metrics_in_golden.py``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from agentprom.app import metrics_in_settings, reserved_names, store_limits
from agentprom.metrics.catalog import active_catalog
from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore
from agentprom.metrics_in.translator import MetricsTranslator
from agentprom.receiver.metrics_decode import decode_metrics
from agentprom.receiver.metrics_json import decode_metrics_json

GOLDEN = Path(__file__).parent / "golden" / "metrics_in"
CASES = sorted(path.stem for path in GOLDEN.glob("*.json"))
UPDATE = os.environ.get("AGENTPROM_UPDATE_GOLDEN") == "1"


def _hex_ids_to_base64(node):
    """OTLP JSON ids are hex; protobuf's JSON mapping wants base64."""
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode() if key in ("traceId", "spanId") else
            _hex_ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def to_protobuf(request: dict) -> bytes:
    message = json_format.ParseDict(_hex_ids_to_base64(copy.deepcopy(request)), ExportMetricsServiceRequest())
    return message.SerializeToString()


def run_case(case: dict, encoding: str) -> str:
    config = validate(case["config"])
    clock = ManualClock()
    store = SeriesStore(store_limits(config), clock)
    translator = MetricsTranslator(store, metrics_in_settings(config), reserved_names(active_catalog()))
    renderer = Renderer(store)
    for step in case["steps"]:
        if "advance" in step:
            clock.advance(step["advance"])
        elif "expire" in step:
            store.expire()
        else:
            request = step["request"]
            if encoding == "json":
                batch = decode_metrics_json(json.dumps(request).encode())
            else:
                batch = decode_metrics(to_protobuf(request))
            translator.consume(batch, "http")
    openmetrics = case.get("openmetrics", False)
    parts: list[str] = []
    for family in list(translator.families.families.values()) + [store["agentprom_metric_points_dropped_total"]]:
        renderer._renderer(family).render(parts, openmetrics)
    return "".join(parts) + ("# EOF\n" if openmetrics else "")


@pytest.mark.parametrize("name", CASES)
def test_golden(name, promtool, tmp_path):
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    got = run_case(case, "json")
    assert run_case(case, "protobuf") == got, "the protobuf and JSON decoders disagree"
    expected_path = GOLDEN / f"{name}.prom"
    if UPDATE:
        expected_path.write_text(got)
    assert expected_path.exists(), f"no golden file {expected_path.name}: run with AGENTPROM_UPDATE_GOLDEN=1"
    assert got == expected_path.read_text(), f"{name}: {case['description']}"
    if case.get("openmetrics"):
        # promtool 2.42 reads only the text format; prometheus_client's OpenMetrics parser is strict
        assert list(openmetrics_families(got))
    else:
        check = subprocess.run([promtool, "check", "metrics"], input=got.encode(), capture_output=True, timeout=30)
        # Lint findings about the sender's own naming (e.g. milliseconds rather than the base unit,
        # which translation must keep) are listed in the case; anything else fails.
        findings = sorted(line for line in check.stderr.decode().splitlines() if line)
        assert check.returncode in (0, 3), check.stderr.decode()
        assert findings == sorted(case.get("promtool_lint", [])), findings


def test_every_case_has_its_golden_file():
    assert len(CASES) >= 15
    assert {p.stem for p in GOLDEN.glob("*.prom")} == set(CASES)
