"""Record the OpenAI Agents SDK through OpenInference (fixture ``openai_agents_openinference``).

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-oaiagents
    /tmp/venv-oaiagents/bin/pip install openai-agents openinference-instrumentation-openai-agents \
        opentelemetry-sdk opentelemetry-exporter-otlp-proto-common
    # resolved: openai-agents 0.24.0, openai 3.60.0, openinference-instrumentation-openai-agents 2.6.0,
    #           openinference-instrumentation 0.1.72, openinference-semantic-conventions 0.1.42,
    #           opentelemetry-api/sdk 1.45.2, opentelemetry-exporter-otlp-proto-common 1.45.2
    cd <repo> && /tmp/venv-oaiagents/bin/python scripts/record_traces/openai_agents_openinference.py

The SDK's own tracing (its trace/span objects) is what OpenInference turns into OTel spans:
``OpenAIAgentsInstrumentor().instrument()`` registers an ``OpenInferenceTracingProcessor`` and,
by default (``exclusive_processor=True``), *replaces* the SDK's processors, so the SDK's own
exporter to the OpenAI tracing endpoint is gone; no tracing export key is ever set, and the
only client is an ``AsyncOpenAI(api_key="sk-fake", base_url=<fake>, max_retries=0)`` given with
``set_default_openai_client(..., use_for_tracing=False)``. Chat-completions mode:
``set_default_openai_api("chat_completions")``. The SDK's runner-managed retries are opt-in
(``ModelSettings.retry``) and left off.

Scenario: agent ``Triage`` (gpt-4o-mini) has one tool ``ask_weather`` = ``Weather.as_tool(...)``;
agent ``Weather`` (gpt-4o-mini) has one function tool ``get_weather``.
Run 1 (trace 1): Triage's model calls ask_weather -> Weather's model calls get_weather -> the tool
runs -> Weather's model answers -> Triage's model answers.
Run 2 (trace 2): Triage's first model call gets HTTP 500.
Run 3 (trace 3): the same roles as a *handoff*: ``Triage`` (handoffs=[Weather]) -> its model calls
transfer_to_weather -> ``Weather``'s model calls get_weather -> the tool runs -> Weather answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.pop("OTEL_SDK_DISABLED", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI, Reply  # noqa: E402

NAME = "openai_agents_openinference"
SERVICE = "openai-agents-oi-demo"


class Policy:
    """Each agent calls each offered tool once (the one it routes to first), then answers.

    ``fail`` makes every request fail with HTTP 500."""

    ORDER = ("get_weather", "ask_weather", "transfer_to_weather")

    def __init__(self) -> None:
        self.fail = False

    def __call__(self, request: dict[str, Any]) -> Reply:
        if self.fail:
            return Reply(error_status=500)
        messages = request.get("messages") or []
        offered = [t["function"]["name"] for t in request.get("tools") or []]
        called = {call["function"]["name"] for m in messages if m.get("role") == "assistant"
                  for call in m.get("tool_calls") or []}
        for name in self.ORDER:
            if name in offered and name not in called:
                arguments = {"get_weather": {"city": "Paris"}, "ask_weather": {"input": "Weather in Paris?"}}
                return Reply(tool_calls=[(name, json.dumps(arguments.get(name, {})))])
        return Reply(text="It is sunny and 21 C in Paris.")


async def run(fake: FakeOpenAI, policy: Policy) -> list[str]:
    from agents import (Agent, Runner, function_tool, set_default_openai_api, set_default_openai_client)
    from openai import AsyncOpenAI

    set_default_openai_client(AsyncOpenAI(api_key="sk-fake", base_url=fake.base_url, max_retries=0),
                              use_for_tracing=False)
    set_default_openai_api("chat_completions")

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"Sunny, 21 C in {city}"

    weather = Agent(name="Weather", instructions="Answer weather questions with get_weather.",
                    model="gpt-4o-mini", tools=[get_weather])
    triage = Agent(name="Triage", instructions="Route weather questions to ask_weather.", model="gpt-4o-mini",
                   tools=[weather.as_tool(tool_name="ask_weather", tool_description="Ask the weather agent.")])

    result = await Runner.run(triage, "What is the weather in Paris?")
    print("run 1 output:", result.final_output)
    errors = []
    policy.fail = True
    try:
        await Runner.run(triage, "And in Rome?")
    except Exception as exc:
        errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    policy.fail = False

    # run 3: the same two roles as a handoff instead of agent-as-tool
    weather_after_handoff = Agent(name="Weather", instructions="Answer weather questions with get_weather.",
                                  model="gpt-4o-mini", tools=[get_weather])
    desk = Agent(name="Triage", instructions="Hand weather questions to Weather.", model="gpt-4o-mini",
                 handoffs=[weather_after_handoff])
    result = await Runner.run(desk, "What is the weather in Oslo?")
    print("run 3 output:", result.final_output, "last agent:", result.last_agent.name)
    return errors


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)

    policy = Policy()
    with FakeOpenAI(policy) as fake:
        errors = asyncio.run(run(fake, policy))
        print("requests served:", len(fake.requests), [r.get("model") for r in fake.requests])

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    print("run 2 raised:", errors)
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "packages": harness.versions("openai-agents", "openai", "openinference-instrumentation-openai-agents",
                                     "openinference-instrumentation", "openinference-semantic-conventions",
                                     "opentelemetry-sdk", "opentelemetry-api",
                                     "opentelemetry-exporter-otlp-proto-common"),
        "python": sys.version.split()[0],
        "mode": "set_default_openai_api('chat_completions'); OpenAIAgentsInstrumentor exclusive processor "
                "(SDK's OpenAI trace exporter replaced, no tracing key)",
        "scenario": "Triage (gpt-4o-mini) calls Weather.as_tool as tool ask_weather; Weather calls get_weather. "
                    "Run 1 (trace 1): Triage LLM -> ask_weather -> [Weather LLM -> get_weather -> Weather LLM] "
                    "-> Triage LLM. Run 2 (trace 2): Triage's first model call gets HTTP 500 (max_retries=0). "
                    "Run 3 (trace 3): handoff instead: Triage LLM -> transfer_to_weather -> Weather LLM -> "
                    "get_weather -> Weather LLM.",
        "run2_exception": errors,
    })


if __name__ == "__main__":
    main()
