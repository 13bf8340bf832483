"""Plan the demo agent's sessions: agents, phases, LLM calls with tokens and cost, failing tools.

Pure and seeded: the same ``random.Random`` state plans the same sessions, and
``summarize`` says what the sidecar must count for them (the tests compare the
two). ``agentprom.demo.send`` turns a planned session into spans.

Span convention (OTel GenAI attributes plus agentprom's own ``agent.*`` keys,
docs/deploy.md, "The demo agent"):

* session root ``invoke_agent <agent>``: ``gen_ai.operation.name=invoke_agent``,
  ``gen_ai.agent.name``, ``gen_ai.conversation.id``, ``agent.session.id``,
  ``agent.span.kind=session``;
* phase children ``phase <name>``: ``agent.span.kind=phase``, ``agent.phase.name``,
  ``agent.phase.id``; each ends with an ``agent.checkpoint`` event;
* LLM calls ``chat <model>``: ``gen_ai.operation.name=chat``, ``gen_ai.provider.name``,
  ``gen_ai.request.model``/``gen_ai.response.model``, ``gen_ai.usage.*`` tokens,
  ``gen_ai.usage.cost`` (US dollars, from ``PRICES``),
  ``agent.context.tokens_used``/``agent.context.tokens_available``; a full
  context window produces an ``agent.context_reset`` event;
* tool calls ``execute_tool <tool>``: ``gen_ai.operation.name=execute_tool``,
  ``gen_ai.tool.name``; failures have status ERROR and ``error.type`` and are
  retried once with ``agent.retry.attempt=2``.

Every agent name starts with ``demo-`` so that demo series are recognisable in
Prometheus, where the resource's ``service.name`` is not a label.
"""

from __future__ import annotations

import random
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
# US dollars per million tokens (input, cached input read, output) by response model: list prices
# of mid-2025, close enough for a demo (https://openai.com/api/pricing/,
# https://www.anthropic.com/pricing#api).
PRICES = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.60),
    "gpt-4o-2024-08-06": (2.50, 1.25, 10.00),
    "claude-sonnet-4-20250514": (3.00, 0.30, 15.00),
}
# agent -> (phases, tools, models it uses)
AGENTS = {
    "demo-research-assistant": (("plan", "research", "write"), ("web_search", "fetch_page", "read_file"), (0, 2)),
    "demo-code-reviewer": (("plan", "inspect", "test", "report"), ("read_file", "run_tests", "grep_repo"), (1, 2)),
    "demo-support-bot": (("triage", "resolve"), ("search_docs", "lookup_order", "create_ticket"), (0,)),
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
    cost_usd: float = 0.0
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
                cost_usd=price_usd(response_model, input_tokens, cache_read, output_tokens),
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


def price_usd(model: str, input_tokens: int, cache_read: int, output_tokens: int) -> float:
    """What one call costs at ``PRICES`` (cache reads are part of the input, billed at their own rate)."""
    per_input, per_cached, per_output = PRICES[model]
    return ((input_tokens - cache_read) * per_input + cache_read * per_cached + output_tokens * per_output) / 1e6


def summarize(sessions: Sequence[Session]) -> dict:
    """What the planned sessions will send, by the labels a metrics backend would see.

    ``sessions`` counts agent invocations (status ok/error), ``sessions_ended`` the same
    sessions by how they end (completed/failed). A recovery is a failed call followed, in the
    same session, by a successful call of the same tool, or of the same requested model (one
    per run of failures): a failed LLM call has no response model, its retry a dated one."""
    spans = 0
    counts: dict[str, Counter] = {key: Counter() for key in (
        "sessions", "sessions_ended", "llm_calls", "tokens", "cost_usd", "tool_calls", "tool_errors", "tool_retries",
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
                    if call.cost_usd:
                        counts["cost_usd"][(s.agent, call.provider, call.response_model)] += call.cost_usd
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
        "cost_usd": ("agent", "provider", "model"),
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
