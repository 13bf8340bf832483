#!/usr/bin/env python3
"""A demo AI agent that emits realistic agent traces over OTLP with the real OpenTelemetry SDK.

It calls no model and no tool: it plans sessions from a seeded random generator
and exports the spans an instrumented agent would produce, so agentprom (and
the dashboards behind it) have something lifelike to show. Every run is
bounded by ``--sessions`` and/or ``--duration``; the same ``--seed`` plans the
same sessions.

Span convention (OTel GenAI attributes plus agentprom's own ``agent.*`` keys,
docs/deploy.md):

* session root ``invoke_agent <agent>``: ``gen_ai.operation.name=invoke_agent``,
  ``gen_ai.agent.name``, ``gen_ai.conversation.id``, ``agent.session.id``,
  ``agent.span.kind=session``;
* phase children ``phase <name>``: ``agent.span.kind=phase``, ``agent.phase.name``,
  ``agent.phase.id``; each ends with an ``agent.checkpoint`` event;
* LLM calls ``chat <model>``: ``gen_ai.operation.name=chat``, ``gen_ai.provider.name``,
  ``gen_ai.request.model``/``gen_ai.response.model``, ``gen_ai.usage.*`` tokens,
  ``agent.context.tokens_used``/``agent.context.tokens_available``; a full
  context window produces an ``agent.context_reset`` event;
* tool calls ``execute_tool <tool>``: ``gen_ai.operation.name=execute_tool``,
  ``gen_ai.tool.name``; failures have status ERROR and ``error.type`` and are
  retried once with ``agent.retry.attempt=2``.

The endpoint comes from the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc``, the default, or ``http/protobuf``).
At the end the demo prints one JSON object on stdout: what it planned and sent
(``spans``, per-label counts of sessions, LLM calls, tokens and tool calls) and
how many spans the exporter confirmed. It exits 1 if any export failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

# (provider, request model, response model, context window in tokens)
MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 128_000),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 128_000),
    ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514", 200_000),
)
# agent -> (phases, tools, models it uses)
AGENTS = {
    "research-assistant": (("plan", "research", "write"), ("web_search", "fetch_page", "read_file"), (0, 2)),
    "code-reviewer": (("plan", "inspect", "test", "report"), ("read_file", "run_tests", "grep_repo"), (1, 2)),
    "support-bot": (("triage", "resolve"), ("search_docs", "lookup_order", "create_ticket"), (0,)),
}
TOOL_ERRORS = ("TimeoutError", "ConnectionError", "PermissionError", "RateLimitError")
LLM_ERRORS = ("RateLimitError", "InternalServerError")


@dataclass
class Call:
    """One LLM or tool call, with offsets in milliseconds from its session's start."""

    kind: str  # "llm" or "tool"
    name: str  # model (request) or tool name
    start_ms: int
    duration_ms: int
    error_type: str = ""
    attempt: int = 1
    provider: str = ""
    response_model: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    context_used: int = 0
    context_available: int = 0
    context_reset: bool = False


@dataclass
class Phase:
    name: str
    start_ms: int
    duration_ms: int
    calls: list[Call]


@dataclass
class Session:
    agent: str
    session_id: str
    duration_ms: int
    phases: list[Phase]
    error_type: str = ""


def plan_session(rng: random.Random, agent: str) -> Session:
    """Plan one session: phases, LLM and tool calls with their outcomes. Pure: no I/O."""
    phase_names, tools, model_choices = AGENTS[agent]
    provider, request_model, response_model, window = MODELS[rng.choice(model_choices)]
    session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    used = rng.randint(4_000, 40_000)  # system prompt and conversation so far
    if rng.random() < 0.2:  # a long conversation carried over: close to the window, soon reset
        used = int(window * rng.uniform(0.6, 0.8))
    clock = rng.randint(5, 40)  # ms between the session span's start and its first phase
    phases: list[Phase] = []
    unrecovered = ""
    for index, name in enumerate(phase_names):
        phase_start = clock
        calls: list[Call] = []
        for _ in range(rng.randint(1, 3)):
            clock += rng.randint(5, 60)
            duration = rng.randint(300, 4_000)
            if rng.random() < 0.04:
                calls.append(Call("llm", request_model, clock, duration // 4, rng.choice(LLM_ERRORS),
                                  provider=provider, response_model=response_model))
                clock += duration // 4
                continue
            input_tokens = used + rng.randint(200, 1_500)
            output_tokens = rng.randint(50, 900)
            cache_read = rng.randint(0, used) if index else 0
            used = input_tokens + output_tokens
            reset = used > 0.85 * window
            calls.append(Call(
                "llm", request_model, clock, duration, provider=provider, response_model=response_model,
                tokens={"input": input_tokens, "output": output_tokens, "cache_read": cache_read},
                context_used=used, context_available=window, context_reset=reset,
            ))
            if reset:  # the agent summarises its work and goes on with a small context
                used = rng.randint(4_000, 10_000)
            clock += duration
            if rng.random() < 0.7:
                tool = rng.choice(tools)
                clock += rng.randint(2, 20)
                duration = rng.randint(20, 2_500)
                error = rng.choice(TOOL_ERRORS) if rng.random() < 0.15 else ""
                calls.append(Call("tool", tool, clock, duration, error))
                clock += duration
                used += 0 if error else rng.randint(500, 12_000)  # the tool's result joins the context
                if error:
                    clock += rng.randint(50, 500)  # back-off before the retry
                    duration = rng.randint(20, 2_500)
                    retry_error = rng.choice(TOOL_ERRORS) if rng.random() < 0.25 else ""
                    calls.append(Call("tool", tool, clock, duration, retry_error, attempt=2))
                    clock += duration
                    used += 0 if retry_error else rng.randint(500, 12_000)
                    unrecovered = unrecovered or retry_error
        clock += rng.randint(5, 50)
        phases.append(Phase(name, phase_start, clock - phase_start, calls))
    error_type = "ToolFailure" if unrecovered and rng.random() < 0.5 else ""
    return Session(agent, session_id, clock + rng.randint(5, 40), phases, error_type)


def summarize(sessions: Sequence[Session]) -> dict:
    """What the planned sessions will send, by the labels a metrics backend would see.

    ``sessions`` counts agent invocations (status ok/error), ``sessions_ended`` the same
    sessions by how they end (completed/failed). A recovery is a failed call followed, in the
    same session, by a successful call of the same tool, or of the same requested model (one
    per run of failures): a failed LLM call has no response model, its retry a dated one."""
    spans = 0
    counts: dict[str, Counter] = {key: Counter() for key in (
        "sessions", "sessions_ended", "llm_calls", "tokens", "tool_calls", "tool_errors", "tool_retries",
        "recoveries", "phases", "checkpoints", "context_resets")}
    for s in sessions:
        spans += 1 + len(s.phases)
        counts["sessions"][(s.agent, "error" if s.error_type else "ok")] += 1
        counts["sessions_ended"][(s.agent, "failed" if s.error_type else "completed")] += 1
        failing: set[tuple[str, str]] = set()
        for phase in s.phases:
            counts["phases"][(s.agent, phase.name, "completed")] += 1  # phase spans never fail here
            counts["checkpoints"][(s.agent,)] += 1
            for call in phase.calls:
                spans += 1
                status = "error" if call.error_type else "ok"
                model = call.response_model if not call.error_type else call.name
                key = (call.kind, call.name)
                if call.error_type:
                    failing.add(key)
                elif key in failing:
                    failing.discard(key)
                    counts["recoveries"][(s.agent, call.kind)] += 1
                if call.kind == "llm":
                    counts["llm_calls"][(s.agent, call.provider, model, status)] += 1
                    for token_type, n in call.tokens.items():
                        counts["tokens"][(s.agent, call.provider, call.response_model, token_type)] += n
                    counts["context_resets"][(s.agent,)] += call.context_reset
                else:
                    counts["tool_calls"][(s.agent, call.name, status)] += 1
                    if call.error_type:
                        counts["tool_errors"][(s.agent, call.name, call.error_type)] += 1
                    if call.attempt > 1:
                        counts["tool_retries"][(s.agent, call.name)] += 1
    labels = {
        "sessions": ("agent", "status"),
        "sessions_ended": ("agent", "status"),
        "recoveries": ("agent", "component"),
        "llm_calls": ("agent", "provider", "model", "status"),
        "tokens": ("agent", "provider", "model", "type"),
        "tool_calls": ("agent", "tool", "status"),
        "tool_errors": ("agent", "tool", "error_type"),
        "tool_retries": ("agent", "tool"),
        "phases": ("agent", "phase", "status"),
        "checkpoints": ("agent",),
        "context_resets": ("agent",),
    }
    out: dict = {"sessions_planned": len(sessions), "spans": spans}
    for key, counter in counts.items():
        out[key] = [
            {**dict(zip(labels[key], label_values)), "count": count}
            for label_values, count in sorted(counter.items())
            if count
        ]
    return out


# --- emitting spans ---------------------------------------------------------

def _exporter(protocol: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise SystemExit(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} (grpc or http/protobuf)")


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


def run(args: argparse.Namespace) -> int:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    exporter = CountingExporter(_exporter(protocol))
    provider = TracerProvider(resource=Resource.create({
        "service.name": args.service_name, "service.version": "demo",
    }))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    tracer = provider.get_tracer("agentprom-demo-agent")

    rng = random.Random(args.seed)
    agents = args.agents.split(",") if args.agents else list(AGENTS)
    unknown = sorted(set(agents) - set(AGENTS))
    if unknown:
        raise SystemExit(f"unknown agent(s) {', '.join(unknown)}; known: {', '.join(AGENTS)}")
    interval = 60.0 / args.rate if args.rate else 0.0
    deadline = time.monotonic() + args.duration if args.duration else None
    sessions: list[Session] = []
    while args.sessions == 0 or len(sessions) < args.sessions:
        if deadline is not None and time.monotonic() >= deadline:
            break
        session = plan_session(rng, rng.choice(agents))
        emit(tracer, session, time.time_ns())
        sessions.append(session)
        if interval:
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)  # pacing for a live demo; tests run with --rate 0
    provider.force_flush()
    provider.shutdown()
    summary = summarize(sessions)
    summary.update(protocol=protocol, seed=args.seed, exported_spans=exporter.exported,
                   failed_spans=exporter.failed)
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if exporter.failed == 0 and exporter.exported == summary["spans"] else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=None,
                        help="stop after this many sessions (default 10; 0 = until --duration ends)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds of wall-clock time (0 = no time limit)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="sessions per minute, paced in real time (0 = as fast as possible)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed plans the same sessions")
    parser.add_argument("--agents", default="", help=f"comma-separated subset of: {', '.join(AGENTS)}")
    parser.add_argument("--service-name", default=os.environ.get("OTEL_SERVICE_NAME", "demo-agent"),
                        help="resource service.name (default $OTEL_SERVICE_NAME or demo-agent)")
    args = parser.parse_args(argv)
    if args.sessions is None:
        args.sessions = 0 if args.duration else 10
    if args.sessions < 0 or args.duration < 0 or args.rate < 0:
        parser.error("--sessions, --duration and --rate must not be negative")
    if args.sessions == 0 and not args.duration:
        parser.error("the run must be bounded: give --sessions N (N > 0) or --duration SECONDS")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
