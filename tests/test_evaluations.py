"""Evaluation results (gen_ai.evaluation.result) as span events and as OTLP log records, over both
transports with the real OpenTelemetry SDK exporters; scores on 0-1, 1-5 and 0-100 scales; content
never in labels; bad input refused or bounded; results waiting for their span bounded."""

from __future__ import annotations

import gzip
import json
import math
import random

import grpc
import pytest
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.evaluations.counter import Evaluations
from agentprom.metrics.catalog import CATALOG
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.receiver.decode import DecodeError
from agentprom.receiver.logs_decode import decode_logs
from agentprom.receiver.logs_json import decode_logs_json
from agentprom.receiver.otlp_grpc import LOGS_SERVICE

EVENT = "gen_ai.evaluation.result"
NAME, SCORE, LABEL = "gen_ai.evaluation.name", "gen_ai.evaluation.score.value", "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"
#: content: it must never appear in /metrics (not in a label, not anywhere)
SECRET = "SECRET-4111-1111-1111-1111"
CONTENT = f"The answer cited the customer's card {SECRET} and was otherwise relevant."


def scrape_samples(sidecar) -> dict[tuple[str, frozenset], float]:
    text = sidecar.scrape()
    assert SECRET not in text  # content is never a label, nor anywhere else on /metrics
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def bucket(samples, agent: str, evaluation: str, le: str) -> float:
    return samples.get(("agent_evaluation_score_bucket",
                        frozenset({"agent": agent, "evaluation": evaluation, "le": le}.items())), 0)


def score_count(samples, agent: str, evaluation: str) -> float:
    return samples.get(("agent_evaluation_score_count",
                        frozenset({"agent": agent, "evaluation": evaluation}.items())), 0)


def results(sidecar, agent: str, evaluation: str, label: str = "") -> float:
    return sidecar.value("agent_evaluations_total", agent=agent, evaluation=evaluation, label=label)


def dropped(sidecar, reason: str) -> float:
    return sidecar.value("agentprom_log_records_dropped_total", reason=reason)


# -- the real SDK: a traced agent run, and an evaluator that logs its results -----------------------

def tracer_provider(sidecar, protocol: str, service: str = "agent-service") -> TracerProvider:
    """A provider whose spans are exported only when flushed (the test decides when they arrive)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=sidecar.grpc_address, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=sidecar.http_url + "/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    return provider


def logger_provider(sidecar, protocol: str, service: str = "evaluator-service", batch: bool = False) -> LoggerProvider:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=sidecar.grpc_address, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=sidecar.http_url + "/v1/logs")
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    processor = BatchLogRecordProcessor(exporter, schedule_delay_millis=3_600_000) if batch \
        else SimpleLogRecordProcessor(exporter)
    provider.add_log_record_processor(processor)
    return provider


def agent_run(tracer, agent: str):
    """An agent invocation with one LLM call below it (the call names no agent: the trace gives it);
    returns the LLM call's span."""
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai"}) as chat:
            pass
    return chat


def evaluation(name: str, score=None, label=None, **extra) -> dict:
    attrs = {NAME: name, EXPLANATION: CONTENT, "gen_ai.response.id": "chatcmpl-" + SECRET, **extra}
    if score is not None:
        attrs[SCORE] = score
    if label is not None:
        attrs[LABEL] = label
    return attrs


# -- span events ------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_span_events_count_for_the_agent_the_trace_resolved_on_every_scale(sidecar, protocol):
    provider = tracer_provider(sidecar, protocol)
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}) as chat:
            chat.add_event(EVENT, evaluation("relevance", 0.8, "relevant"))  # 0-1
            chat.add_event(EVENT, evaluation("helpfulness", 4))  # 1-5, an int on the wire
            chat.add_event(EVENT, evaluation("quality", 87.0, "good"))  # 0-100
            chat.add_event(EVENT, evaluation("toxicity", label="non_toxic"))  # a label alone
            chat.add_event("gen_ai.user.message", {"content": CONTENT})  # not an evaluation: ignored
    provider.force_flush()
    provider.shutdown()

    # the LLM call names no agent: the trace resolves it to the planner
    assert results(sidecar, "planner", "relevance", "relevant") == 1
    assert results(sidecar, "planner", "helpfulness") == 1
    assert results(sidecar, "planner", "quality", "good") == 1
    assert results(sidecar, "planner", "toxicity", "non_toxic") == 1
    samples = scrape_samples(sidecar)
    assert bucket(samples, "planner", "relevance", "0.7") == 0 and bucket(samples, "planner", "relevance", "0.8") == 1
    assert bucket(samples, "planner", "helpfulness", "3.0") == 0
    assert bucket(samples, "planner", "helpfulness", "4.0") == 1
    assert bucket(samples, "planner", "quality", "80.0") == 0 and bucket(samples, "planner", "quality", "90.0") == 1
    assert score_count(samples, "planner", "toxicity") == 0  # no score: counted by its label only
    assert not [key for key in samples if key[0].startswith("agent_evaluation") and
                any(value in ("test-agent", "agent-service") for _label, value in key[1])]


def test_invalid_span_events_are_dropped_and_counted(sidecar):
    provider = tracer_provider(sidecar, "grpc")
    tracer = provider.get_tracer("agent")
    chat = None
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
                                                           "gen_ai.agent.name": "writer"}) as chat:
        chat.add_event(EVENT, {SCORE: 0.5, EXPLANATION: CONTENT})  # no name
        chat.add_event(EVENT, evaluation("relevance", float("nan")))  # NaN, no label
        chat.add_event(EVENT, evaluation("relevance", "0.9"))  # a string, no label
        chat.add_event(EVENT, evaluation("relevance"))  # neither score nor label
        chat.add_event(EVENT, evaluation("relevance", float("inf"), "relevant"))  # the label still counts
    provider.force_flush()
    provider.shutdown()
    events_dropped = "agentprom_evaluation_events_dropped_total"
    assert sidecar.value(events_dropped, reason="missing_name") == 1
    assert sidecar.value(events_dropped, reason="invalid_score") == 2
    assert sidecar.value(events_dropped, reason="no_result") == 1
    assert results(sidecar, "writer", "relevance", "relevant") == 1
    assert score_count(scrape_samples(sidecar), "writer", "relevance") == 0


# -- log records from the SDK's OTLP log exporters ---------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_log_records_count_for_the_evaluated_spans_agent(sidecar, protocol):
    traces = tracer_provider(sidecar, protocol)
    tracer = traces.get_tracer("agent")
    logs = logger_provider(sidecar, protocol)
    evaluator = logs.get_logger("evaluator")

    # 1. the span arrived (and was settled) before its evaluation: counted at once for its agent
    first = agent_run(tracer, "planner")
    traces.force_flush()
    sidecar.settle()
    evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(first), body=CONTENT,
                   attributes=evaluation("relevance", 0.9, "relevant"))
    assert results(sidecar, "planner", "relevance", "relevant") == 1

    # 2. the evaluation arrives before its span (the usual order: the log exporter sends first):
    # it waits for the span, then counts for the span's agent
    second = agent_run(tracer, "researcher")
    evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(second),
                   attributes=evaluation("helpfulness", 5))
    evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(second),
                   attributes=evaluation("quality", 35))
    assert sidecar.call(lambda: sidecar.app.evaluations.waiting_count) == 2
    assert results(sidecar, "researcher", "helpfulness") == 0
    traces.force_flush()
    assert results(sidecar, "researcher", "helpfulness") == 1
    assert results(sidecar, "researcher", "quality") == 1
    assert sidecar.call(lambda: sidecar.app.evaluations.waiting_count) == 0

    # 3. no trace context: the evaluator's service.name; older SDKs name the event in an attribute
    evaluator.emit(attributes={"event.name": EVENT, **evaluation("relevance", 0.25, "irrelevant")})
    # 4. every other log record is dropped and counted, never reported as rejected
    for i in range(3):
        evaluator.emit(body=f"user asked: {CONTENT} #{i}", attributes={"code.function": "handle"})
    evaluator.emit(event_name="gen_ai.choice", body={"message": {"content": CONTENT}})
    logs.force_flush()
    assert results(sidecar, "evaluator-service", "relevance", "irrelevant") == 1
    assert dropped(sidecar, "not_an_evaluation") == 4
    assert sidecar.value("agentprom_log_records_received_total", transport=protocol) == 8
    assert sidecar.value("agentprom_evaluation_fallbacks_total", reason="timeout") == 0

    samples = scrape_samples(sidecar)
    assert bucket(samples, "planner", "relevance", "0.9") == 1 and bucket(samples, "planner", "relevance", "0.8") == 0
    assert bucket(samples, "researcher", "helpfulness", "5.0") == 1
    assert bucket(samples, "researcher", "quality", "40.0") == 1 and bucket(samples, "researcher", "quality", "30.0") == 0
    assert bucket(samples, "evaluator-service", "relevance", "0.3") == 1
    logs.shutdown()
    traces.shutdown()


def test_a_log_record_counts_for_the_same_agent_before_and_after_its_span(sidecar):
    """The agent a result counts for is the one its span was counted for, whichever came first: here an
    LLM call that names its own agent, with no agent span above it, and one that names none."""
    traces = tracer_provider(sidecar, "grpc", service="agent-service")
    tracer = traces.get_tracer("agent")
    evaluator = logger_provider(sidecar, "grpc").get_logger("evaluator")

    def chat(agent: str | None):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
        if agent:
            attributes["gen_ai.agent.name"] = agent
        with tracer.start_as_current_span("chat gpt-4o", attributes=attributes) as span:
            pass
        return span

    for agent, expected in (("writer", "writer"), (None, "agent-service")):
        after = chat(agent)  # the span first, then its result
        traces.force_flush()
        sidecar.settle()
        evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(after),
                       attributes=evaluation("tone", 4))
        before = chat(agent)  # the result first: it waits for the span
        evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(before),
                       attributes=evaluation("tone", 4))
        traces.force_flush()
        assert results(sidecar, expected, "tone") == 2, agent
    assert results(sidecar, "evaluator-service", "tone") == 0
    traces.shutdown()


def test_a_batch_of_sdk_log_records_with_random_scales(sidecar):
    rng = random.Random(20240607)
    traces = tracer_provider(sidecar, "http")
    tracer = traces.get_tracer("agent")
    logs = logger_provider(sidecar, "grpc", batch=True)
    evaluator = logs.get_logger("evaluator")
    scales = {"faithfulness": (0.0, 1.0), "coherence": (1, 5), "overall": (0.0, 100.0)}
    expected: dict[tuple[str, str], list[float]] = {}
    for i in range(30):
        agent = rng.choice(["planner", "coder"])
        span = agent_run(tracer, agent)
        name = rng.choice(sorted(scales))
        low, high = scales[name]
        score = rng.randint(low, high) if isinstance(low, int) else round(rng.uniform(low, high), 3)
        expected.setdefault((agent, name), []).append(score)
        evaluator.emit(event_name=EVENT, context=trace.set_span_in_context(span), attributes=evaluation(name, score))
    logs.force_flush()  # the records arrive first, all at once
    traces.force_flush()
    samples = scrape_samples(sidecar)
    for (agent, name), scores in expected.items():
        assert score_count(samples, agent, name) == len(scores)
        total = samples[("agent_evaluation_score_sum", frozenset({"agent": agent, "evaluation": name}.items()))]
        assert math.isclose(total, sum(scores), rel_tol=1e-9)
        assert results(sidecar, agent, name) == len(scores)
    logs.shutdown()
    traces.shutdown()


def test_a_result_for_a_span_that_waits_for_its_ancestors_waits_with_it(sidecar):
    agents, calls = tracer_provider(sidecar, "grpc"), tracer_provider(sidecar, "http")
    with agents.get_tracer("agents").start_as_current_span("invoke_agent coder", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "coder"}):
        with calls.get_tracer("calls").start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}) as chat:
            pass
    calls.force_flush()  # the call arrives without its agent span: it waits for it
    sidecar.settle()
    ids = chat.get_span_context().trace_id.to_bytes(16, "big"), chat.get_span_context().span_id.to_bytes(8, "big")
    assert sidecar.call(lambda: sidecar.app.context.agent_at(*ids)) == (False, None)
    logs = logger_provider(sidecar, "grpc")
    logs.get_logger("evaluator").emit(event_name=EVENT, context=trace.set_span_in_context(chat),
                                      attributes=evaluation("correctness", 1.0, "correct"))
    assert results(sidecar, "coder", "correctness", "correct") == 0
    agents.force_flush()
    assert results(sidecar, "coder", "correctness", "correct") == 1
    assert sidecar.call(lambda: sidecar.app.context.agent_at(*ids)) == (True, "coder")
    for provider in (logs, agents, calls):
        provider.shutdown()


# -- hand-made requests: JSON, partial success, bad input ---------------------------------------------

def kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def logs_request(*records: dict, service: str = "evaluator-service") -> ExportLogsServiceRequest:
    """A request of log records, each ``{"attributes": {...}, "event_name": ..., "trace_id": ..., ...}``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", service))
    scope = resource_logs.scope_logs.add()
    for fields in records:
        record = scope.log_records.add(event_name=fields.get("event_name", EVENT),
                                       trace_id=fields.get("trace_id", b""), span_id=fields.get("span_id", b""))
        record.body.string_value = fields.get("body", CONTENT)
        record.attributes.extend(kv(key, value) for key, value in fields.get("attributes", {}).items())
    return request


def export_grpc(sidecar, body: bytes, **kwargs) -> ExportLogsServiceResponse:
    with grpc.insecure_channel(sidecar.grpc_address, options=[("grpc.max_send_message_length", -1)]) as channel:
        raw = channel.unary_unary(f"/{LOGS_SERVICE}/Export")(body, timeout=60, **kwargs)
    return ExportLogsServiceResponse.FromString(raw)


def post_logs(sidecar, body: bytes, content_type: str = "application/x-protobuf", **headers):
    return sidecar.post("/v1/logs", body, {"Content-Type": content_type, **headers})


def test_invalid_results_are_rejected_through_partial_success_on_both_transports(sidecar):
    bad = [
        {"attributes": evaluation("relevance", float("nan"))},  # not finite, no label
        {"attributes": evaluation("relevance", float("-inf"))},
        {"attributes": evaluation("relevance", "0.95")},  # a string score
        {"attributes": evaluation("relevance", True)},  # a boolean is no number
        {"attributes": evaluation("relevance", 1e300)},  # past evaluations.max_abs_score
        {"attributes": {SCORE: 0.5, EXPLANATION: CONTENT}},  # no name
        {"attributes": evaluation("", 0.5)},  # an empty name
        {"attributes": evaluation("relevance")},  # neither score nor label
    ]
    good = [
        {"attributes": evaluation("relevance", float("nan"), "relevant")},  # the label counts, the score not
        {"attributes": evaluation("relevance", 0.5)},
        {"attributes": {**evaluation("relevance"), "error.type": "timeout"}},  # a failed evaluation: dropped
        {"event_name": "gen_ai.user.message", "attributes": {"content": CONTENT}},
    ]
    request = logs_request(*bad, *good).SerializeToString()
    response = export_grpc(sidecar, request)
    assert response.partial_success.rejected_log_records == len(bad)
    message = response.partial_success.error_message
    assert "invalid_score" in message and "missing_name" in message and "no_result" in message
    assert SECRET not in message and "relevance" not in message  # rules, never values

    status, _headers, payload = post_logs(sidecar, request)
    assert status == 200
    assert ExportLogsServiceResponse.FromString(payload).partial_success.rejected_log_records == len(bad)

    assert dropped(sidecar, "invalid_score") == 2 * 5
    assert dropped(sidecar, "missing_name") == 2 * 2
    assert dropped(sidecar, "no_result") == 2 * 1
    assert dropped(sidecar, "evaluation_error") == 2
    assert dropped(sidecar, "not_an_evaluation") == 2
    assert results(sidecar, "evaluator-service", "relevance", "relevant") == 2
    assert results(sidecar, "evaluator-service", "relevance") == 2
    samples = scrape_samples(sidecar)
    assert score_count(samples, "evaluator-service", "relevance") == 2  # the two 0.5s; NaN never observed
    assert all(math.isfinite(value) for key, value in samples.items() if key[0].startswith("agent_evaluation_score"))


def test_otlp_json_logs_with_partial_success(sidecar):
    def record(attributes: dict, event_name: str | None = EVENT, **fields) -> dict:
        out = {"attributes": [{"key": k, "value": v} for k, v in attributes.items()],
               "body": {"kvlistValue": {"values": [{"key": "prompt", "value": {"stringValue": CONTENT}}]}}, **fields}
        if event_name is not None:
            out["eventName"] = event_name
        return out

    document = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-evaluator"}}]},
        "scopeLogs": [{"logRecords": [
            record({NAME: {"stringValue": "relevance"}, SCORE: {"doubleValue": 0.7},
                    EXPLANATION: {"stringValue": CONTENT}}, traceId="ab" * 16, spanId="cd" * 8),
            record({"event.name": {"stringValue": EVENT}, NAME: {"stringValue": "coherence"},
                    SCORE: {"intValue": "3"}, LABEL: {"stringValue": "ok"}}, event_name=None),
            record({NAME: {"stringValue": "relevance"}, SCORE: {"doubleValue": "NaN"}}),
            record({NAME: {"stringValue": "relevance"}, SCORE: {"stringValue": "high"}}),
            record({"code.function": {"stringValue": CONTENT}}, event_name=None),
            record({}, event_name="app.log"),
        ]}],
    }]}
    status, _headers, payload = post_logs(sidecar, json.dumps(document).encode(), "application/json")
    assert status == 200
    answer = json.loads(payload)
    assert answer["partialSuccess"]["rejectedLogRecords"] == "2"
    assert "invalid_score" in answer["partialSuccess"]["errorMessage"]
    # the span (ab.., cd..) never arrives: the result waits, the others count at once
    assert sidecar.call(lambda: sidecar.app.evaluations.waiting_count) == 1
    assert results(sidecar, "json-evaluator", "coherence", "ok") == 1
    assert dropped(sidecar, "not_an_evaluation") == 2
    sidecar.call(sidecar.app.evaluations.drain)  # as at shutdown
    assert results(sidecar, "json-evaluator", "relevance") == 1
    assert sidecar.value("agentprom_evaluation_fallbacks_total", reason="shutdown") == 1

    status, _headers, payload = post_logs(sidecar, b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [3]}]}]}',
                                          "application/json")
    assert status == 400 and b"logRecords[0]" in payload


def test_a_huge_evaluation_name_is_cut_never_a_label_of_content(make_sidecar):
    sidecar = make_sidecar()
    huge = "relevance-" + "x" * (1024 * 1024)
    request = logs_request({"attributes": evaluation(huge, 0.5, "L" * 100_000)})
    assert export_grpc(sidecar, request.SerializeToString()).partial_success.rejected_log_records == 0
    status, _headers, _payload = post_logs(sidecar, gzip.compress(request.SerializeToString()),
                                           **{"Content-Encoding": "gzip"})
    assert status == 200
    samples = scrape_samples(sidecar)
    series = [key for key in samples if key[0] == "agent_evaluations_total"]
    assert len(series) == 1 and samples[series[0]] == 2
    labels = dict(series[0][1])
    assert labels["evaluation"].startswith("relevance-x") and len(labels["evaluation"]) <= 128
    assert len(labels["label"]) <= 128
    assert all(len(value) <= 128 for key in samples for _name, value in key[1])


def test_a_60_mb_log_body_is_refused_before_it_is_parsed(sidecar):
    request = logs_request({"attributes": evaluation("relevance", 0.5), "body": "b" * (60 * 1000 * 1000)})
    body = request.SerializeToString()
    status, _headers, payload = post_logs(sidecar, body)
    assert status == 413
    assert "evaluations.max_request_bytes" in Status.FromString(payload).message
    status, _headers, _payload = post_logs(sidecar, gzip.compress(body, 1), **{"Content-Encoding": "gzip"})
    assert status == 413  # inflated no further than the limit
    with pytest.raises(grpc.RpcError) as refused:
        export_grpc(sidecar, body)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": EVENT, "body": {"stringValue": "b" * (60 * 1000 * 1000)}}]}]}]}
    status, _headers, _payload = post_logs(sidecar, json.dumps(document).encode(), "application/json")
    assert status == 413
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="too_large") == 3
    assert sidecar.value("agentprom_requests_refused_total", transport="grpc", reason="too_large") == 1
    assert sidecar.value("agentprom_log_records_received_total", transport="http") == 0  # never parsed
    # the sidecar goes on
    assert post_logs(sidecar, logs_request({"attributes": evaluation("relevance", 0.5)}).SerializeToString())[0] == 200
    assert results(sidecar, "evaluator-service", "relevance") == 1


def test_log_records_per_request_are_capped_on_the_wire(make_sidecar):
    sidecar = make_sidecar({"server": {"max_spans_per_request": 10}})
    records = [{"attributes": evaluation("relevance", 0.5)}] * 11
    status, _headers, payload = post_logs(sidecar, logs_request(*records).SerializeToString())
    assert status == 413 and "log records" in Status.FromString(payload).message
    with pytest.raises(grpc.RpcError) as refused:
        export_grpc(sidecar, logs_request(*records).SerializeToString())
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="too_many_log_records") == 1
    assert post_logs(sidecar, logs_request(*records[:10]).SerializeToString())[0] == 200
    assert results(sidecar, "evaluator-service", "relevance") == 10


def test_garbage_is_a_400_and_an_unknown_content_type_a_415(sidecar):
    assert post_logs(sidecar, b"\xff\xff\xff garbage")[0] == 400
    assert post_logs(sidecar, b"{", "application/json")[0] == 400
    assert post_logs(sidecar, b"x", "text/plain")[0] == 415
    with pytest.raises(grpc.RpcError) as bad:
        export_grpc(sidecar, b"\xff\xff\xff garbage")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- waiting for the span: bounded in time and in number --------------------------------------------

def _parented(i: int) -> dict:
    return {"attributes": evaluation("relevance", 0.5), "trace_id": bytes([i + 1]) * 16, "span_id": bytes([i + 1]) * 8}


def test_results_wait_for_their_span_at_most_max_wait_seconds(make_sidecar):
    clock = ManualClock()
    sidecar = make_sidecar({"evaluations": {"max_wait_seconds": 30}}, clock)
    export_grpc(sidecar, logs_request(_parented(0)).SerializeToString())
    sidecar.call(lambda: clock.advance(29))
    sidecar.call(sidecar.app.evaluations.expire)
    assert results(sidecar, "evaluator-service", "relevance") == 0
    sidecar.call(lambda: clock.advance(2))
    sidecar.call(sidecar.app.evaluations.expire)
    assert results(sidecar, "evaluator-service", "relevance") == 1
    assert sidecar.value("agentprom_evaluation_fallbacks_total", reason="timeout") == 1


def test_results_waiting_are_bounded(make_sidecar):
    sidecar = make_sidecar({"evaluations": {"max_waiting": 3}})
    export_grpc(sidecar, logs_request(*(_parented(i) for i in range(5))).SerializeToString())
    assert sidecar.call(lambda: sidecar.app.evaluations.waiting_count) == 3
    assert sidecar.value("agentprom_evaluation_fallbacks_total", reason="overflow") == 2
    assert results(sidecar, "evaluator-service", "relevance") == 2


def test_denied_attributes_are_never_read(make_sidecar):
    sidecar = make_sidecar({"security": {"attribute_deny": [LABEL, "service.name"]}})
    export_grpc(sidecar, logs_request({"attributes": evaluation("relevance", 0.5, "relevant")}).SerializeToString())
    assert results(sidecar, "unknown", "relevance") == 1  # no label, no service: unknown


def test_evaluations_off_means_no_logs_receiver(make_sidecar):
    sidecar = make_sidecar({"evaluations": {"enabled": False}})
    assert post_logs(sidecar, logs_request().SerializeToString())[0] == 404
    with pytest.raises(grpc.RpcError) as missing:
        export_grpc(sidecar, logs_request().SerializeToString())
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- the decoders on arbitrary input: a LogBatch or a DecodeError, and whatever they keep renders ----

CONFIG = validate({})


def count_and_render(batch) -> None:
    store = SeriesStore(StoreLimits(max_series_per_metric=50), ManualClock(), CATALOG)
    e = CONFIG.evaluations
    counter = Evaluations(store, store.clock, TraceContext(CONFIG.attribution, store), e.max_abs_score,
                          e.max_wait_seconds, e.max_waiting)
    counter.consume(batch, "grpc")
    counter.drain()
    # every record is counted, dropped or rejected; none waits after the drain
    assert batch.received == len(batch.records) + batch.dropped.get("not_an_evaluation", 0)
    counted = sum(series.value for series in store["agent_evaluations_total"].all_series())
    assert counted == len(batch.records) - batch.rejected_count - batch.dropped.get("evaluation_error", 0)
    assert counter.waiting_count == 0 and not counter.waiting
    text = Renderer(store).render(False) + Renderer(store).render(True)
    text.encode("utf-8")


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SEED = logs_request({"attributes": evaluation("relevance", 0.8, "relevant"), "trace_id": b"t" * 16, "span_id": b"s" * 8},
                    {"attributes": evaluation("coherence", 4)},
                    {"event_name": "app.log", "attributes": {"code.function": "main"}}).SerializeToString()


@FUZZ
@given(st.one_of(st.binary(max_size=1024),
                 st.builds(lambda i, b: SEED[:i] + bytes([b]) + SEED[i + 1:],
                           st.integers(0, len(SEED) - 1), st.integers(0, 255))))
def test_logs_protobuf_decoder_on_arbitrary_bytes(data):
    try:
        batch = decode_logs(data)
    except DecodeError:
        return
    count_and_render(batch)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))


@FUZZ
@given(st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["resourceLogs", "scopeLogs", "logRecords", "eventName", "attributes", "key",
                                     "value", "stringValue", "doubleValue", "intValue", "traceId", "spanId",
                                     "resource", NAME, SCORE, LABEL, "event.name", EVENT]), inner, max_size=4)),
    max_leaves=25))
def test_logs_json_decoder_on_arbitrary_documents(document):
    try:
        batch = decode_logs_json(json.dumps(document).encode())
    except DecodeError as error:
        assert str(error)
        return
    count_and_render(batch)
