"""The built-in synthetic agent: sends planned sessions to the sidecar with the real OpenTelemetry SDK.

Spans follow agentprom's own convention (docs/conventions.md) on top of the
OTel GenAI attributes, and are exported as OTLP/HTTP protobuf to
``<sidecar>/v1/traces``:

* the session: ``invoke_agent <agent>``, ``agent.span.kind=session``,
  ``agent.session.id``; status ERROR and ``agent.session.status=failed`` when
  the session failed;
* its phases: ``phase <name>`` with ``agent.phase.name`` and ``agent.phase.id``
  (a rerun keeps the id), status ERROR when failed, an ``agent.checkpoint``
  event when completed;
* LLM calls: ``chat <model>`` with the GenAI model, provider and token usage
  attributes, ``agent.context.tokens_used``/``tokens_available`` and an
  ``agent.context_reset`` event when planned;
* tool calls: ``execute_tool <tool>`` with ``gen_ai.tool.name``.
Every call carries ``agent.retry.attempt``; failed attempts have status ERROR
and ``error.type``; every span carries ``agent.session.id`` and
``gen_ai.agent.name``.

Timestamps are the plan's, anchored at the wall-clock time the run started.
With ``pacing: simulated`` spans are sent as fast as the sidecar takes them, so
a day of agent time needs no day of waiting; with ``pacing: realtime`` each
span is sent when its planned end is reached on the (injected) clock, divided
by ``speed``. Spans are queued by the agent itself and exported in order,
synchronously (no background thread can drop or reorder them): at the end of
each session, and in realtime mode before every wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from agentprom.benchmark.plan import LLM, Call, PhaseRun, SessionPlan
from agentprom.benchmark.scenario import SyntheticScenario
from agentprom.clock import Clock, SystemClock
from agentprom.conventions import profile as P

MS = 1_000_000  # nanoseconds
#: spans per export request
BATCH = 512


class _InOrder(SpanProcessor):
    """Collects ended spans; ``flush`` exports them in the order they ended and counts the outcome."""

    def __init__(self, exporter: OTLPSpanExporter) -> None:
        self.exporter = exporter
        self.queue: list[ReadableSpan] = []
        self.exported = 0
        self.failed = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.queue.append(span)

    def flush(self) -> None:
        queue, self.queue = self.queue, []
        for i in range(0, len(queue), BATCH):
            batch: Sequence[ReadableSpan] = queue[i:i + BATCH]
            if self.exporter.export(batch) is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)

    def shutdown(self) -> None:
        self.flush()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flush()
        return True


@dataclass(frozen=True)
class Delivery:
    """What became of one session's spans."""

    spans: int
    failed: int

    @property
    def error(self) -> str | None:
        if not self.failed:
            return None
        return f"{self.failed} of {self.spans} span(s) were not accepted by the sidecar (OTLP/HTTP export failed)"


class Pacer:
    """Realtime pacing: waits until a planned offset (ms on the run's timeline) is reached on the
    clock, scaled by ``speed`` agent seconds per wall-clock second."""

    def __init__(self, clock: Clock, sleep: Callable[[float], None], speed: float,
                 before_wait: Callable[[], None]) -> None:
        self.clock = clock
        self.sleep = sleep
        self.speed = speed
        self.before_wait = before_wait
        self.origin = clock.monotonic()

    def until(self, offset_ms: int) -> None:
        delay = self.origin + offset_ms / 1000.0 / self.speed - self.clock.monotonic()
        if delay > 0:
            self.before_wait()  # what has ended so far reaches the sidecar now, not after the wait
            self.sleep(delay)


class SyntheticAgent:
    def __init__(self, sidecar_url: str, scenario: SyntheticScenario, run_id: str, *,
                 clock: Clock | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        clock = clock or SystemClock()
        self.workload = scenario.workload
        self.agent = scenario.workload.agent
        exporter = OTLPSpanExporter(endpoint=sidecar_url.rstrip("/") + "/v1/traces",
                                    timeout=scenario.export_timeout_seconds)
        self.processor = _InOrder(exporter)
        self.provider = TracerProvider(
            resource=Resource.create({
                "service.name": self.agent,
                "agentprom.benchmark.name": scenario.name,
                "agentprom.benchmark.run_id": run_id,
            }),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("agentprom.benchmark.synthetic")
        #: the run's timeline starts now on the wall clock
        self.anchor_ns = int(clock.now() * 1e9)
        self.pacer = (Pacer(clock, sleep, scenario.speed, self.processor.flush)
                      if scenario.pacing == "realtime" else None)

    def _ns(self, offset_ms: int) -> int:
        return self.anchor_ns + offset_ms * MS

    def _end(self, span: Span, offset_ms: int) -> None:
        if self.pacer is not None:
            self.pacer.until(offset_ms)
        span.end(end_time=self._ns(offset_ms))

    def emit(self, plan: SessionPlan, session_id: str) -> Delivery:
        """Send one session's spans (in the order they end) and wait until the sidecar has them."""
        before_ok, before_failed = self.processor.exported, self.processor.failed
        common = {P.OWN_SESSION_ID: session_id, "gen_ai.agent.name": self.agent}
        if self.pacer is not None:
            self.pacer.until(plan.start_ms)
        root = self.tracer.start_span(
            f"invoke_agent {self.agent}", start_time=self._ns(plan.start_ms),
            attributes={**common, "gen_ai.operation.name": "invoke_agent",
                        P.OWN_SPAN_KIND: P.OWN_SPAN_KIND_SESSION},
        )
        context = set_span_in_context(root)
        for phase in plan.phases:
            self._phase(phase, context, common)
        if not plan.ok:
            root.set_attribute(P.OWN_SESSION_STATUS, "failed")
            root.set_attribute("error.type", "PhaseFailed")
            root.set_status(Status(StatusCode.ERROR, "a phase failed"))
        self._end(root, plan.end_ms)
        self.processor.flush()
        ok = self.processor.exported - before_ok
        failed = self.processor.failed - before_failed
        return Delivery(ok + failed, failed)

    def _phase(self, phase: PhaseRun, context: Context, common: dict[str, str]) -> None:
        span = self.tracer.start_span(
            f"phase {phase.name}", context=context, start_time=self._ns(phase.start_ms),
            attributes={**common, P.OWN_PHASE_NAME: phase.name, P.OWN_PHASE_ID: phase.phase_id},
        )
        inner = set_span_in_context(span)
        for call in phase.calls:
            self._call(call, inner, common)
        if phase.ok:
            span.add_event(P.OWN_EVENT_CHECKPOINT, timestamp=self._ns(phase.end_ms))
        else:
            span.set_attribute("error.type", "PhaseFailed")
            span.set_status(Status(StatusCode.ERROR, "a call failed after its retries"))
        self._end(span, phase.end_ms)

    def _call(self, call: Call, context: Context, common: dict[str, str]) -> None:
        attributes: dict[str, str | int] = {**common, P.OWN_RETRY_ATTEMPT: call.attempt}
        if call.kind == LLM:
            llm = self.workload.llm
            attributes.update({
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": llm.provider,
                "gen_ai.request.model": call.name,
                "gen_ai.response.model": call.name,
            })
            if call.ok:
                attributes["gen_ai.usage.input_tokens"] = call.input_tokens
                attributes["gen_ai.usage.output_tokens"] = call.output_tokens
                if llm.context_window:
                    attributes[P.OWN_CONTEXT_USED] = call.input_tokens
                    attributes[P.OWN_CONTEXT_AVAILABLE] = llm.context_window
            name, kind = f"chat {call.name}", SpanKind.CLIENT
        else:
            attributes.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name})
            name, kind = f"execute_tool {call.name}", SpanKind.INTERNAL
        span = self.tracer.start_span(name, context=context, kind=kind, start_time=self._ns(call.start_ms),
                                      attributes=attributes)
        if call.context_reset:
            span.add_event(P.OWN_EVENT_CONTEXT_RESET, timestamp=self._ns(call.end_ms))
        if not call.ok:
            span.set_attribute("error.type", call.error_type or "_OTHER")
            span.set_status(Status(StatusCode.ERROR, call.error_type))
        self._end(span, call.end_ms)

    def close(self) -> None:
        self.provider.shutdown()
