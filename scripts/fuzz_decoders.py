#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris, libFuzzer) of the OTLP decoders, translation and rendering.

    python3 scripts/fuzz_decoders.py TARGET [libFuzzer flags] [CORPUS_DIR ...]

TARGET is one of ``traces-protobuf``, ``traces-json``, ``metrics-protobuf``, ``metrics-json``,
``logs-protobuf``, ``logs-json``.
Each input goes through the decoder the receivers use; an input it refuses must raise
``DecodeError`` (the receivers answer it 400 / INVALID_ARGUMENT), and an accepted one is
translated into a fresh series store and rendered in both exposition formats. Any other
exception is a finding: atheris prints it (on stdout), libFuzzer saves the input as
``crash-*`` (under ``-artifact_prefix``) and exits non-zero.

Without a corpus directory the run starts from built-in seeds (a realistic agent request in the
target's encoding). Useful flags: ``-runs=N``, ``-max_total_time=SECONDS``, ``-max_len=BYTES``,
``-artifact_prefix=DIR/``. The hypothesis properties in tests/test_fuzz.py cover the same
decoders with structured inputs; this harness explores byte-level mutations guided by coverage.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

# coverage feedback from agentprom's own code only: instrumenting aiohttp, grpc and pydantic too
# costs minutes at start and steers the fuzzer towards code the decoders never call
with atheris.instrument_imports(include=["agentprom"]):
    from agentprom.app import metrics_in_settings, reserved_names
    from agentprom.config.loader import validate
    from agentprom.context.stage import TraceContext
    from agentprom.evaluations.counter import Evaluations
    from agentprom.metrics.catalog import active_catalog
    from agentprom.metrics.exposition import Renderer
    from agentprom.metrics.series_store import SeriesStore, StoreLimits
    from agentprom.metrics_in.translator import MetricsTranslator
    from agentprom.receiver.decode import DecodeError, decode_traces
    from agentprom.receiver.logs_decode import decode_logs
    from agentprom.receiver.logs_json import decode_logs_json
    from agentprom.receiver.metrics_decode import decode_metrics
    from agentprom.receiver.metrics_json import decode_metrics_json
    from agentprom.receiver.otlp_json import decode_traces_json
    from agentprom.translator import Translator

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

CONFIG = validate({})
RESERVED = reserved_names(active_catalog())


def _render(store: SeriesStore) -> None:
    renderer = Renderer(store)
    (renderer.render(False) + renderer.render(True)).encode("utf-8")  # what is served must encode


def _target(decode: Callable[[bytes], object],
            translate: Callable[[SeriesStore, object], None]) -> Callable[[bytes], None]:
    """One fuzz target: decode, and translate and render what the decoder accepts."""

    def one_input(data: bytes) -> None:
        try:
            batch = decode(data)
        except DecodeError:
            return
        store = SeriesStore(StoreLimits(max_series_per_metric=50))
        translate(store, batch)
        _render(store)

    return one_input


def _translate_traces(store: SeriesStore, batch) -> None:
    Translator(store).consume(batch, "grpc")


def _translate_metrics(store: SeriesStore, batch) -> None:
    MetricsTranslator(store, metrics_in_settings(CONFIG), RESERVED).consume(batch, "grpc")


def _translate_logs(store: SeriesStore, batch) -> None:
    e = CONFIG.evaluations
    evaluations = Evaluations(store, store.clock, TraceContext(CONFIG.attribution, store), e.max_abs_score,
                              e.max_wait_seconds, e.max_waiting)
    evaluations.consume(batch, "grpc")
    evaluations.drain()


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _seed_scope(resource, scopes):
    """Name the seed's resource and give it one instrumentation scope."""
    resource.resource.attributes.append(_kv("service.name", "seed-agent"))
    scope = scopes.add()
    scope.scope.name = "seed"
    return scope


def trace_seed() -> ExportTraceServiceRequest:
    """An agent run: an invocation, an LLM call with tokens, a failed tool call with its event."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    scope = _seed_scope(rs, rs.scope_spans)
    trace_id = bytes(range(1, 17))
    for n, attrs in enumerate([
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "agent.session.id": "s1"},
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 900,
         "gen_ai.usage.output_tokens": 100, "agent.phase.name": "plan"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "error.type": "Timeout",
         "agent.retry.attempt": 2},
    ]):
        span = scope.spans.add(trace_id=trace_id, span_id=(n + 1).to_bytes(8, "big"), name=f"span{n}",
                               start_time_unix_nano=1_700_000_000_000_000_000,
                               end_time_unix_nano=1_700_000_000_500_000_000)
        if n:
            span.parent_span_id = (1).to_bytes(8, "big")
        span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    scope.spans[2].status.code = 2
    scope.spans[2].events.add(name="exception", time_unix_nano=1_700_000_000_400_000_000).attributes.append(
        _kv("exception.type", "TimeoutError"))
    return request


def metrics_seed() -> ExportMetricsServiceRequest:
    """A GenAI token histogram, a monotonic sum and a gauge."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    scope = _seed_scope(rm, rm.scope_metrics)
    h = scope.metrics.add(name="gen_ai.client.token.usage", unit="{token}")
    h.histogram.aggregation_temporality = 2
    p = h.histogram.data_points.add(start_time_unix_nano=1, time_unix_nano=2, count=3, sum=1200,
                                    explicit_bounds=[1, 4, 16, 64, 256, 1024], bucket_counts=[0, 0, 0, 1, 1, 1, 0])
    p.attributes.append(_kv("gen_ai.token.type", "input"))
    s = scope.metrics.add(name="agent.requests", unit="1")
    s.sum.aggregation_temporality, s.sum.is_monotonic = 2, True
    s.sum.data_points.add(start_time_unix_nano=1, time_unix_nano=2, as_int=7)
    g = scope.metrics.add(name="agent.queue.depth", unit="{item}")
    g.gauge.data_points.add(time_unix_nano=2, as_double=3.5)
    return request


def logs_seed() -> ExportLogsServiceRequest:
    """Evaluation results (parented, by attribute, invalid) among an application's log records."""
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    scope = _seed_scope(rl, rl.scope_logs)
    result = scope.log_records.add(event_name="gen_ai.evaluation.result", trace_id=bytes(range(1, 17)),
                                   span_id=(2).to_bytes(8, "big"))
    result.attributes.extend([_kv("gen_ai.evaluation.name", "relevance"), _kv("gen_ai.evaluation.score.value", 0.8),
                              _kv("gen_ai.evaluation.score.label", "relevant"),
                              _kv("gen_ai.evaluation.explanation", "cites the source")])
    by_attribute = scope.log_records.add()
    by_attribute.attributes.extend([_kv("event.name", "gen_ai.evaluation.result"),
                                    _kv("gen_ai.evaluation.name", "helpfulness"),
                                    _kv("gen_ai.evaluation.score.value", 4)])
    scope.log_records.add(event_name="gen_ai.evaluation.result").attributes.append(
        _kv("gen_ai.evaluation.score.value", float("nan")))
    scope.log_records.add(severity_text="INFO").body.string_value = "user asked about the weather"
    return request


def otlp_json(message) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping, except that ids are hex, not base64."""
    document = MessageToDict(message)

    def fix(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(document)
    return json.dumps(document).encode()


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], bytes]]] = {
    "traces-protobuf": (_target(decode_traces, _translate_traces), lambda: trace_seed().SerializeToString()),
    "traces-json": (_target(decode_traces_json, _translate_traces), lambda: otlp_json(trace_seed())),
    "metrics-protobuf": (_target(decode_metrics, _translate_metrics), lambda: metrics_seed().SerializeToString()),
    "metrics-json": (_target(decode_metrics_json, _translate_metrics), lambda: otlp_json(metrics_seed())),
    "logs-protobuf": (_target(decode_logs, _translate_logs), lambda: logs_seed().SerializeToString()),
    "logs-json": (_target(decode_logs_json, _translate_logs), lambda: otlp_json(logs_seed())),
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [CORPUS_DIR ...]")
    one_input, seed = TARGETS[argv[1]]
    args = [argv[0], *argv[2:]]
    if not any(not a.startswith("-") for a in args[1:]):
        corpus = Path(tempfile.mkdtemp(prefix=f"agentprom-fuzz-{argv[1]}-"))
        (corpus / "seed").write_bytes(seed())
        args.append(str(corpus))
    one_input(seed())  # the seed itself must pass, or the run proves nothing
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
