"""Streaming latency and finish reasons (issue 16, items 3 and 6) from hand-made spans of the shapes the
instrumentations write, through the real OTLP/JSON and protobuf decoders; the recorded shapes (Strands,
OpenLIT, OpenInference) are checked in test_frameworks.py. Hostile values are ignored or bounded."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentprom.clock import ManualClock
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver.decode import Batch, decode_traces
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000
LABELS = ("planner", "openai", "m")


def value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    return {"stringValue": v}


def document(*spans: dict, scope: str = "test") -> bytes:
    out = []
    for i, extra in enumerate(spans, start=1):
        events = extra.pop("_events", [])
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.agent.name": "planner", "gen_ai.provider.name": "openai",
                 "gen_ai.request.model": "m", **extra}
        out.append({"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": "chat m", "kind": 3,
                    "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 2 * 10**9),
                    "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()], "events": events})
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"scope": {"name": scope}, "spans": out}]}]}).encode()


def count(batch: Batch) -> SeriesStore:
    store = SeriesStore(clock=ManualClock())
    Translator(store).consume(batch, "http")
    return store


def histogram(store: SeriesStore, name: str) -> tuple[float, float]:
    series = store[name].series.get(LABELS)
    return (0, 0) if series is None else (sum(series.counts), series.sum)


def test_openllmetry_and_otel_shapes():
    store = count(decode_traces_json(document(
        # OpenLLMetry: a streaming flag and the first completion's finish reason, no times
        {"llm.is_streaming": True, "gen_ai.completion.0.finish_reason": "length"},
        # OTel GenAI: the time to first chunk, a finish-reason array with a repeated value
        {"gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.25,
         "gen_ai.response.finish_reasons": ["stop", "stop", "tool_call"]},
        # not streamed: its times are not latency of a stream
        {"gen_ai.request.stream": False, "gen_ai.server.time_to_first_token": 1.5},
    )))
    assert store.value("agent_llm_streaming_calls_total", LABELS) == 2
    assert histogram(store, "agent_llm_time_to_first_token_seconds") == (1, 0.25)
    reasons = {key[3]: s.value for key, s in store["agent_llm_finish_reasons_total"].series.items()}
    assert reasons == {"length": 1, "stop": 1, "tool_call": 1}


def test_milliseconds_only_from_the_scope_that_writes_them():
    strands = count(decode_traces_json(document({"gen_ai.server.time_to_first_token": 250},
                                                scope="strands.telemetry.tracer")))
    openlit = count(decode_traces_json(document({"gen_ai.server.time_to_first_token": 0.25},
                                                scope="openlit.instrumentation.openai")))
    for store in (strands, openlit):
        assert histogram(store, "agent_llm_time_to_first_token_seconds") == (1, pytest.approx(0.25))


@pytest.mark.parametrize("bad", ["fast", float("nan"), float("inf"), -1.0, True, [1.0]])
def test_a_time_that_is_no_finite_non_negative_number_is_ignored(bad):
    raw = document({"gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.0,
                    "gen_ai.server.time_per_output_token": 0.0})
    doc = json.loads(raw)
    for kv in doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]:
        if kv["key"] in ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_per_output_token"):
            kv["value"] = {"doubleValue": "NaN"} if isinstance(bad, float) and bad != bad else \
                {"doubleValue": "Infinity"} if bad == float("inf") else value(bad)
    store = count(decode_traces_json(json.dumps(doc).encode()))
    assert store.value("agent_llm_streaming_calls_total", LABELS) == 1  # the flag still says streamed
    assert histogram(store, "agent_llm_time_to_first_token_seconds") == (0, 0)
    assert histogram(store, "agent_llm_time_per_output_token_seconds") == (0, 0)


def test_first_token_event_over_protobuf_and_a_hostile_finish_reason_array():
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "ChatCompletion"
    span.start_time_unix_nano, span.end_time_unix_nano = T0, T0 + 10**9
    for key, text in (("openinference.span.kind", "LLM"), ("agent.name", "planner"), ("llm.system", "openai"),
                      ("llm.model_name", "m")):
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=text)))
    reasons = AnyValue()
    for i in range(5000):  # an array of 5000 reasons: only the first 16 are read
        reasons.array_value.values.add(string_value=f"r{i % 20}" + "x" * 100_000 * (i == 0))
    span.attributes.append(KeyValue(key="gen_ai.response.finish_reasons", value=reasons))
    span.events.add(name="First Token Stream Event", time_unix_nano=T0 + 40_000_000)
    span.events.add(name="First Token Stream Event", time_unix_nano=T0 + 90_000_000)  # the first one counts
    store = count(decode_traces(request.SerializeToString()))
    assert histogram(store, "agent_llm_time_to_first_token_seconds") == (1, pytest.approx(0.04))
    values = {key[3] for key in store["agent_llm_finish_reasons_total"].series}
    assert len(values) == 16 and all(len(v) <= 128 for v in values)
