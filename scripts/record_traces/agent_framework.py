"""Record Microsoft Agent Framework's native OpenTelemetry GenAI spans (fixture ``agent_framework``).

Ran with (Python 3.11.7, 2026-12-03)::

    python3 -m venv /tmp/venv-maf
    /tmp/venv-maf/bin/pip install agent-framework-core agent-framework-openai opentelemetry-sdk \
        opentelemetry-exporter-otlp-proto-common
    # resolved: agent-framework-core 1.23.0, agent-framework-openai 1.17.0, openai 3.60.0,
    #           opentelemetry-api/sdk 1.45.2, opentelemetry-exporter-otlp-proto-common 1.45.2
    cd <repo> && /tmp/venv-maf/bin/python scripts/record_traces/agent_framework.py

The meta-package ``agent-framework`` pulls in every connector; ``agent-framework-core`` plus
``agent-framework-openai`` is what an OpenAI chat client needs. In this release ``ChatAgent`` is
called ``Agent`` and the Chat Completions client is ``OpenAIChatCompletionClient``
(``OpenAIChatClient`` speaks the Responses API, which the fake server does not serve).

Instrumentation is on by default (``ENABLE_INSTRUMENTATION``); ``enable_instrumentation()`` only
makes sure of it and never installs providers. Its tracer is ``trace.get_tracer(...)``, i.e. the
*global* provider, so the harness's in-memory provider is enough (``configure_otel_providers`` is
not called: it would install providers and exporters of its own). Sensitive data off, default
semantic conventions (no ``OTEL_SEMCONV_STABILITY_OPT_IN``): what a user gets out of the box.

Scenario: agent ``weather_agent`` (``OpenAIChatCompletionClient``, model ``gpt-4o-mini``, an
``AsyncOpenAI`` client with ``max_retries=0``) with one tool ``get_weather``.
Run 1: the model asks for the tool, the tool runs, the model answers.
Run 2: the model answers HTTP 500.
Run 3: agent ``travel_agent`` has ``weather_agent.as_tool()`` as its tool; the model asks for
the tool ``weather_agent``, the sub-agent runs (model -> get_weather -> model), then
``travel_agent``'s model answers.
Each run is its own trace.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

os.environ.pop("OTEL_SDK_DISABLED", None)
os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
os.environ.pop("ENABLE_INSTRUMENTATION", None)
os.environ.pop("ENABLE_SENSITIVE_DATA", None)
# this file is named agent_framework.py: keep its folder last on the path so that
# ``import agent_framework`` is the package
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(_HERE)] + [_HERE]

import harness  # noqa: E402
from harness import FakeOpenAI, Reply, Scripted  # noqa: E402

NAME = "agent_framework"
SERVICE = "agent-framework-demo"


async def run(fake: FakeOpenAI, errors: list[str]) -> None:
    from agent_framework import Agent, tool
    from agent_framework.observability import enable_instrumentation
    from agent_framework.openai import OpenAIChatCompletionClient
    from openai import AsyncOpenAI

    enable_instrumentation(enable_sensitive_data=False)

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"Sunny, 21 C in {city}"

    def client() -> OpenAIChatCompletionClient:
        return OpenAIChatCompletionClient(
            model="gpt-4o-mini",
            async_client=AsyncOpenAI(api_key="sk-fake", base_url=fake.base_url, max_retries=0))

    def weather_agent() -> Agent:
        return Agent(client(), "You answer weather questions.", name="weather_agent",
                     description="Answers weather questions.", tools=[get_weather])

    # run 1: LLM -> tool -> LLM
    await weather_agent().run("What is the weather in Paris?")
    # run 2: the model fails
    try:
        await weather_agent().run("And in Rome?")
    except Exception as exc:
        errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    # run 3: weather_agent as a tool of travel_agent
    travel = Agent(client(), "You plan trips; ask weather_agent about the weather.", name="travel_agent",
                   tools=[weather_agent().as_tool()])
    await travel.run("Should I pack an umbrella for Paris?")


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)
    policy = Scripted([
        # run 1
        Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
        Reply(text="It is sunny and 21 C in Paris."),
        # run 2
        Reply(error_status=500),
        # run 3: travel_agent -> weather_agent (get_weather) -> travel_agent
        Reply(tool_calls=[("weather_agent", '{"task": "Weather in Paris?"}')]),
        Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
        Reply(text="It is sunny and 21 C in Paris."),
        Reply(text="No umbrella needed."),
    ])
    errors: list[str] = []
    with FakeOpenAI(policy) as fake:
        asyncio.run(run(fake, errors))
        print("requests served:", len(fake.requests))

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    print("run 2 raised:", errors)
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "packages": harness.versions("agent-framework-core", "agent-framework-openai", "openai",
                                     "opentelemetry-sdk", "opentelemetry-api",
                                     "opentelemetry-exporter-otlp-proto-common"),
        "python": sys.version.split()[0],
        "semconv": "default (OTEL_SEMCONV_STABILITY_OPT_IN unset), sensitive data off",
        "scenario": "agent weather_agent (OpenAIChatCompletionClient gpt-4o-mini, tool get_weather). Run 1 "
                    "(trace 1): model calls get_weather, tool runs, model answers. Run 2 (trace 2): the model "
                    "answers HTTP 500, OpenAI client max_retries=0. Run 3 (trace 3): agent travel_agent with "
                    "weather_agent.as_tool(): model calls tool weather_agent, the sub-agent runs model -> "
                    "get_weather -> model, travel_agent's model answers.",
        "run2_exception": errors,
    })


if __name__ == "__main__":
    main()
