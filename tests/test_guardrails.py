"""Guardrail checks (issue 16, item 2) in the shapes OpenLLMetry, OpenInference and the OTel GenAI proposal
write, under an agent span that gives them their agent, through the real translator and trace context."""

from __future__ import annotations

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.stage import TraceContext
from agentprom.conventions.classify import classify
from agentprom.guardrails import Guardrails
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import STATUS_ERROR, Kind, Span
from agentprom.receiver.decode import Batch
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000


def span(n: int, parent: int, name: str, attrs: dict, error: bool = False, ms: int = 10) -> Span:
    return Span(b"\x01" * 16, n.to_bytes(8, "big"), parent.to_bytes(8, "big") if parent else b"", name, 1,
                T0, T0 + ms * 1_000_000, STATUS_ERROR if error else 0, attrs, {"service.name": "svc"})


def run(spans: list[Span]) -> SeriesStore:
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store, context=TraceContext(validate({}).attribution, store))
    translator.listeners.append(Guardrails(store).on_resolved)
    translator.consume(Batch(spans=spans), "grpc")
    return store


def test_three_shapes_counted_under_the_agent_above_with_their_own_verdicts():
    agent = span(1, 0, "invoke_agent support", {"gen_ai.operation.name": "invoke_agent",
                                                 "gen_ai.agent.name": "support"}, ms=100)
    spans = [
        # OpenLLMetry (traceloop-sdk guardrails): name and status, content attributes never read
        span(2, 1, "pii.guardrail", {"gen_ai.guardrail.name": "pii", "gen_ai.guardrail.status": "FAILED",
                                     "gen_ai.guardrail.input": "my card is 4111 1111 1111 1111"}, ms=20),
        span(3, 1, "pii.guardrail", {"gen_ai.guardrail.name": "pii", "gen_ai.guardrail.status": "PASSED"}),
        # the OTel GenAI proposal: the operation, the component's name in the span name and attribute
        span(4, 1, "apply_guardrail toxicity", {"gen_ai.operation.name": "apply_guardrail",
                                                "gen_ai.guardrail.component.name": "toxicity",
                                                "gen_ai.guardrail.result.type": "block",
                                                "gen_ai.request.model": "guard-model"}),
        # OpenInference: the span kind only; no verdict (unknown), or a failed span (error)
        span(5, 1, "ContentFilter", {"openinference.span.kind": "GUARDRAIL"}),
        span(6, 1, "ContentFilter", {"openinference.span.kind": "GUARDRAIL"}, error=True),
        agent,
    ]
    store = run(spans)
    checks = {key: s.value for key, s in store["agent_guardrail_checks_total"].series.items()}
    assert checks == {("support", "pii", "FAILED"): 1, ("support", "pii", "PASSED"): 1,
                      ("support", "toxicity", "block"): 1, ("support", "ContentFilter", "unknown"): 1,
                      ("support", "ContentFilter", "error"): 1}
    duration = store["agent_guardrail_duration_seconds"].series[("support", "pii")]
    assert sum(duration.counts) == 2 and duration.sum == pytest.approx(0.03)
    # a guardrail with a model is not an LLM call, and no guardrail is a tool call
    assert not store["agent_llm_calls_total"].series and not store["agent_tool_calls_total"].series
    assert "4111" not in "".join(v for key in store["agent_guardrail_checks_total"].series for v in key)


def test_classification_of_guardrail_spans():
    c = classify(span(9, 0, "apply_guardrail", {"gen_ai.operation.name": "apply_guardrail"}))
    assert c.kind is Kind.OTHER and c.guardrail == "apply_guardrail" and c.outcome == "unknown"
    plain = classify(span(9, 0, "GET /", {"http.method": "GET"}))
    assert plain.guardrail is None
