"""The map view of OTLP traces (receiver/trace_view.py) decodes exactly what the published schema does."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentprom.conventions.profile import OWN_PREFIX, STRING_ARRAY_KEYS, WANTED_KEYS
from agentprom.receiver.decode import DecodeError, KeyFilter, any_value, decode_traces, string_array
from agentprom.text import DEFAULT_MAX_STRING_BYTES
from tests.test_fuzz import export_requests

# every test here runs with the Python and the compiled decoder (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("trace_decoder")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_attributes(body: bytes) -> list[dict]:
    """Every span's kept attributes, walked over the published ``repeated KeyValue`` (last key wins); the
    few array attributes read as their string items (``STRING_ARRAY_KEYS``)."""
    request = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {}
                for kv in span.attributes:
                    if kv.key in STRING_ARRAY_KEYS:
                        attrs[kv.key] = string_array(kv.value, DEFAULT_MAX_STRING_BYTES)
                    elif kv.key in WANTED_KEYS or kv.key.startswith(OWN_PREFIX):
                        attrs[kv.key] = any_value(kv.value)
                out.append(attrs)
    return out


def accepted(body: bytes) -> bool:
    try:
        ExportTraceServiceRequest.FromString(body)
    except Exception:
        return False
    return True


@SETTINGS
@given(export_requests())
def test_view_decodes_the_same_attributes_as_the_published_schema(request):
    body = request.SerializeToString()
    batch = decode_traces(body)
    kept = [_comparable(span.attributes) for span in batch.spans]
    # the rejected spans are the ones failing validate_span; compare the kept ones in order
    expected = [attrs for attrs, span in zip(reference_attributes(body), _all_spans(request)) if _valid(span)]
    assert kept == [_comparable(attrs) for attrs in expected]


@SETTINGS
@given(export_requests(), st.integers(0, 4096), st.binary(min_size=1, max_size=3))
def test_view_accepts_and_refuses_the_same_bodies(request, position, patch):
    body = bytearray(request.SerializeToString())
    if body:
        position %= len(body)
        body[position:position + len(patch)] = patch
    body = bytes(body)
    try:
        decode_traces(body)
        ours = True
    except DecodeError:
        ours = False
    assert ours == accepted(body)


def test_key_filter_keeps_own_keys_past_its_memory():
    keys = KeyFilter(frozenset({"a"}), limit=2)
    assert keys({"x": 1, "y": 2, "a": 3}) == {"a"}  # x and y fill the memory
    assert keys({"agent.new": 1, "z": 2, "a": 3}) == {"agent.new", "a"}  # not remembered, still kept
    assert keys({"agent.new": 1}) == {"agent.new"}
    assert keys({"x": 1, "y": 1}) == set()


def _comparable(attrs: dict) -> str:
    """Order-free and NaN-safe (NaN != NaN, but its repr is stable)."""
    return repr(sorted(attrs.items()))


def _all_spans(request):
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def _valid(span) -> bool:
    return (len(span.trace_id) == 16 and any(span.trace_id) and len(span.span_id) == 8 and any(span.span_id)
            and span.end_time_unix_nano >= span.start_time_unix_nano)
