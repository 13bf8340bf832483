"""Seeded random trace forests for the tests that compare a compiled part with its Python twin
(test_context_compiled.py, test_sessions_compiled.py): spans of every kind the trace context tells
apart, and plans to send them by."""

from __future__ import annotations

import dataclasses
import random

from agentprom.model import Span

AGENTS = ("planner", "writer", "researcher")
#: own-convention attributes a span may carry, and values for each (some of them malformed)
OWN = (
    ("agent.span.kind", ("session", "other")),
    ("agent.session.status", ("completed", "failed", "bogus")),
    ("agent.retry.attempt", (1, 2, 3, "2", "x")),
    ("http.request.resend_count", (0, 1, 2)),
    ("agent.escalated", (True, False)),
    ("agent.memory.operation", ("read", "write", "other")),
    ("agent.context.tokens_used", (100, 900, -1)),
    ("agent.phase.id", ("p1", "p2")),
)
#: own-convention span events
EVENTS = ("agent.checkpoint", "agent.context_reset", "agent.memory.read", "agent.memory.write", "other")


def _attributes(rng: random.Random, kind: str) -> dict:
    attrs: dict = {}
    if kind == "agent":
        attrs["gen_ai.operation.name"] = rng.choice(("invoke_agent", "invoke_agent", "create_agent"))
        if rng.random() < 0.6:
            attrs["gen_ai.agent.name"] = rng.choice(AGENTS)
    elif kind == "llm":
        attrs.update({"gen_ai.operation.name": "chat", "gen_ai.request.model": rng.choice(("gpt-4o", "gpt-4o", "", 42)),
                      "gen_ai.usage.input_tokens": rng.randrange(500)})
        if rng.random() < 0.5:
            attrs["gen_ai.usage.output_tokens"] = rng.randrange(200)
        if rng.random() < 0.5:
            attrs["gen_ai.response.model"] = "gpt-4o-2024-08-06"
        if rng.random() < 0.3:
            attrs["gen_ai.agent.name"] = rng.choice(AGENTS)
    elif kind == "tool":
        attrs.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": rng.choice(("search", "calc"))})
        if rng.random() < 0.3:
            attrs["gen_ai.agent.name"] = rng.choice(AGENTS)
    elif kind == "chain":
        attrs["openinference.span.kind"] = "CHAIN"
    if rng.random() < 0.15:
        attrs["gen_ai.conversation.id"] = f"conv-{rng.randrange(4)}"
    if rng.random() < 0.1:  # many attributes no stage reads: a key check then walks the few keys it looks for
        attrs.update({f"app.detail.{k}": k for k in range(12)})
    if rng.random() < 0.2:  # agentprom's own convention (docs/conventions.md), now and then
        key, values = rng.choice(OWN)
        attrs[key] = rng.choice(values)
    if rng.random() < 0.1 and kind not in ("llm", "tool"):
        attrs["agent.phase.name"] = rng.choice(("plan", "act"))
        if rng.random() < 0.5:
            attrs["agent.phase.id"] = f"p{rng.randrange(3)}"
    return attrs


def forest(rng: random.Random, traces: int) -> list[Span]:
    """Random traces: each span's parent an earlier span of its trace, none, one never sent, itself, or
    remote; now and then a span id used twice."""
    spans = []
    for t in range(traces):
        trace_id = rng.randbytes(16)
        ids: list[bytes] = []
        for i in range(rng.randrange(1, 14)):
            span_id = rng.choice(ids) if ids and rng.random() < 0.03 else rng.randbytes(8)
            roll = rng.random()
            if not ids or roll < 0.08:
                parent, remote = b"", False
            elif roll < 0.12:
                parent, remote = rng.randbytes(8), False  # an ancestor that never arrives (or comes later)
            elif roll < 0.14:
                parent, remote = span_id, False  # its own parent
            elif roll < 0.17:
                parent, remote = rng.randbytes(8), True  # in another process
            else:
                parent, remote = rng.choice(ids), False
            ids.append(span_id)
            kind = rng.choice(("agent", "agent", "llm", "llm", "tool", "other", "chain"))
            spans.append(Span(trace_id, span_id, parent, f"{kind} {i}", rng.randrange(6), 1_000 * i, 1_000 * i + 500,
                              2 if rng.random() < 0.1 else 0, _attributes(rng, kind),
                              {"service.name": rng.choice(("svc-a", "svc-b"))}, parent_remote=remote,
                              events=tuple((rng.choice(EVENTS), 1_000 * i, {}) for _ in range(rng.random() < 0.1))))
            if "agent.context.tokens_used" in spans[-1].attributes:
                spans[-1].attributes["agent.context.tokens_available"] = rng.choice((1000, 0))
        if rng.random() < 0.2 and len(ids) > 2:  # a parent cycle across two spans of the trace
            a, b = rng.sample(range(len(spans) - len(ids), len(spans)), 2)
            spans[a].parent_span_id, spans[b].parent_span_id = spans[b].span_id, spans[a].span_id
    return spans


def copies(spans: list[Span]) -> list[Span]:
    return [dataclasses.replace(span, attributes=dict(span.attributes)) for span in spans]


def plan_for(rng: random.Random, n: int) -> list:
    order = list(range(n))
    how = rng.random()
    if how < 0.4:
        order.reverse()  # children first, mostly, as spans end
    elif how < 0.7:
        rng.shuffle(order)
    plan, at = [], 0
    while at < n:
        size = rng.randrange(1, 40)
        plan.append(("batch", order[at:at + size]))
        at += size
        roll = rng.random()
        if roll < 0.1:
            plan.append(("wait", rng.choice((1.0, 61.0))))
        elif roll < 0.15:
            plan.append(("end", f"conv-{rng.randrange(4)}"))
    return plan


class OwnSpan(Span):
    """Another class of span, whose parent reads as none while its slot holds one: a path that read it
    by slot offset would place it under its parent, the Python path makes it a root."""

    __slots__ = ()

    @property
    def parent_span_id(self) -> bytes:
        return b""

    @parent_span_id.setter
    def parent_span_id(self, value: bytes) -> None:
        Span.parent_span_id.__set__(self, value)
