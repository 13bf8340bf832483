"""Send planned demo sessions to a sidecar as spans, through the OpenTelemetry SDK's OTLP exporters.

The spans are current-dated: each session ends when it is sent. The resource's
``service.name`` (``agentprom-demo`` unless told otherwise) marks them as demo
traffic. Exporter endpoints follow the OTLP exporter specification
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/): for
``http/protobuf`` the base URL gets ``/v1/traces`` appended; for ``grpc`` an
``http://`` URL means a plaintext connection.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from agentprom.demo.plan import AGENTS, Session, plan_session, summarize

SDK_MISSING = ("the demo needs the OpenTelemetry SDK and OTLP exporters ({name} is missing): "
               "from the agentprom checkout, python3 -m pip install '.[demo]'")


class DemoError(Exception):
    """A demo run that cannot start: missing SDK, unreachable sidecar, bad endpoint."""


@dataclass(frozen=True)
class DemoRun:
    """What to send and where: the ``agentprom demo`` options."""

    endpoint: str
    protocol: str
    sessions: int
    duration: float
    rate: float
    seed: int
    agents: Sequence[str]
    service_name: str
    timeout: float


def check_reachable(endpoint: str, timeout: float) -> None:
    """Fail early and clearly when nothing listens at ``endpoint`` (the exporters would retry for
    their whole timeout and then log a stack of warnings)."""
    parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise DemoError(f"--endpoint {endpoint!r}: expected http://HOST:PORT (or https://)")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            pass
    except OSError as exc:
        raise DemoError(f"cannot reach a sidecar at {endpoint} ({exc.strerror or exc}): start one with "
                        "`agentprom serve`, or give --endpoint") from None


def make_exporter(protocol: str, endpoint: str, timeout: float):
    """The SDK's OTLP span exporter for ``protocol``, sending to ``endpoint``."""
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            secure = endpoint.startswith("https://")
            return Grpc(endpoint=endpoint, insecure=not secure, timeout=timeout)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=timeout)
    except ImportError as exc:
        raise DemoError(SDK_MISSING.format(name=exc.name)) from None


class CountingExporter:
    """Wraps the OTLP exporter to count the spans the receiver confirmed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

def emit(tracer, session: Session, end_ns: int) -> None:
    """Export one planned session as spans that end at ``end_ns`` (wall-clock nanoseconds)."""
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    ms = 1_000_000
    start_ns = end_ns - session.duration_ms * ms
    agent = session.agent
    root = tracer.start_span(
        f"invoke_agent {agent}",
        kind=SpanKind.INTERNAL,
        start_time=start_ns,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": session.session_id,
            "agent.session.id": session.session_id,
            "agent.span.kind": "session",
        },
    )
    root_ctx = set_span_in_context(root)
    for index, phase in enumerate(session.phases):
        phase_span = tracer.start_span(
            f"phase {phase.name}",
            context=root_ctx,
            start_time=start_ns + phase.start_ms * ms,
            attributes={
                "gen_ai.agent.name": agent,
                "agent.session.id": session.session_id,
                "agent.span.kind": "phase",
                "agent.phase.name": phase.name,
                "agent.phase.id": f"{session.session_id}/{index + 1}",
            },
        )
        phase_ctx = set_span_in_context(phase_span)
        for call in phase.calls:
            call_start = start_ns + call.start_ms * ms
            if call.kind == "llm":
                attributes = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.agent.name": agent,
                    "gen_ai.provider.name": call.provider,
                    "gen_ai.request.model": call.name,
                    "agent.session.id": session.session_id,
                }
                if not call.error_type:
                    attributes.update({
                        "gen_ai.response.model": call.response_model,
                        "gen_ai.usage.input_tokens": call.tokens["input"],
                        "gen_ai.usage.output_tokens": call.tokens["output"],
                        "gen_ai.usage.cache_read.input_tokens": call.tokens["cache_read"],
                        "gen_ai.usage.cost": call.cost_usd,
                        "agent.context.tokens_used": call.context_used,
                        "agent.context.tokens_available": call.context_available,
                    })
                span = tracer.start_span(f"chat {call.name}", context=phase_ctx, kind=SpanKind.CLIENT,
                                         start_time=call_start, attributes=attributes)
                if call.context_reset:
                    span.add_event("agent.context_reset", {"agent.context.tokens_used": call.context_used},
                                   timestamp=call_start + call.duration_ms * ms)
            else:
                attributes = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.agent.name": agent,
                    "gen_ai.tool.name": call.name,
                    "agent.session.id": session.session_id,
                }
                if call.attempt > 1:
                    attributes["agent.retry.attempt"] = call.attempt
                span = tracer.start_span(f"execute_tool {call.name}", context=phase_ctx,
                                         start_time=call_start, attributes=attributes)
            if call.error_type:
                span.set_attribute("error.type", call.error_type)
                span.set_status(Status(StatusCode.ERROR, call.error_type))
            span.end(end_time=call_start + call.duration_ms * ms)
        phase_end = start_ns + (phase.start_ms + phase.duration_ms) * ms
        phase_span.add_event("agent.checkpoint", {"agent.phase.name": phase.name}, timestamp=phase_end)
        phase_span.end(end_time=phase_end)
    if session.error_type:
        root.set_attribute("error.type", session.error_type)
        root.set_status(Status(StatusCode.ERROR, session.error_type))
    root.end(end_time=end_ns)




def send(run: DemoRun, tracer) -> list[Session]:
    """Plan and emit sessions until ``run.sessions`` or ``run.duration`` is reached, paced at ``run.rate``."""
    rng = random.Random(run.seed)
    interval = 60.0 / run.rate if run.rate else 0.0
    deadline = time.monotonic() + run.duration if run.duration else None
    sessions: list[Session] = []
    while run.sessions == 0 or len(sessions) < run.sessions:
        if deadline is not None and time.monotonic() >= deadline:
            break
        session = plan_session(rng, rng.choice(list(run.agents)))
        emit(tracer, session, time.time_ns())
        sessions.append(session)
        if interval:
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)  # real-time pacing is the point of --rate
    return sessions


def run_demo(run: DemoRun) -> dict:
    """Send the demo sessions; return ``summarize``'s counts plus what the exporter confirmed."""
    unknown = sorted(set(run.agents) - set(AGENTS))
    if unknown:
        raise DemoError(f"unknown agent(s) {', '.join(unknown)}; known: {', '.join(AGENTS)}")
    exporter = CountingExporter(make_exporter(run.protocol, run.endpoint, run.timeout))  # SDK missing: say so first
    check_reachable(run.endpoint, run.timeout)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({
        "service.name": run.service_name, "service.version": "demo", "deployment.environment.name": "demo",
    }))
    # A queue large enough that a fast run never drops spans before the exporter sends them.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 17, schedule_delay_millis=200))
    try:
        sessions = send(run, provider.get_tracer("agentprom-demo"))
    finally:
        provider.force_flush()
        provider.shutdown()
    summary = summarize(sessions)
    summary.update(endpoint=run.endpoint, protocol=run.protocol, seed=run.seed, service_name=run.service_name,
                   exported_spans=exporter.exported, failed_spans=exporter.failed)
    return summary
