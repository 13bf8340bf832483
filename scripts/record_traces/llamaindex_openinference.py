"""Record a LlamaIndex FunctionAgent traced by OpenInference's LlamaIndex instrumentation.

Scenario (one trace per run, service.name ``llamaindex-oi-demo``):

* run 1: ``FunctionAgent(name="weather_agent")`` with one tool ``get_weather`` answers
  "What is the weather in Paris?": LLM (asks for the tool) -> tool -> LLM (answers);
* run 2: same agent, the fake model answers HTTP 500 to the first call; ``max_retries=0``
  so the OpenAI client raises ``openai.InternalServerError`` at once and the run fails.

FunctionAgent streams its model calls (``astream_chat_with_tools``); the fake server streams.

Packages (installed in a fresh virtualenv on 2026-12-03, Python 3.11; pip picked these versions)::

    python3 -m venv /tmp/venv-llamaindex
    /tmp/venv-llamaindex/bin/pip install llama-index-core==0.14.25 llama-index-llms-openai==0.8.3 \
        openinference-instrumentation-llama-index==4.6.1 opentelemetry-sdk==1.45.2 \
        opentelemetry-exporter-otlp-proto-common==1.45.2
    # pulled in: llama-index-workflows 2.26.1, llama-index-instrumentation 0.6.0, openai 2.54.0,
    # openinference-instrumentation 0.1.72, openinference-semantic-conventions 0.1.42

Run (from the repository root)::

    /tmp/venv-llamaindex/bin/python scripts/record_traces/llamaindex_openinference.py

OTEL_SEMCONV_STABILITY_OPT_IN is not set.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI, Reply, Scripted  # noqa: E402

NAME = "llamaindex_openinference"
SERVICE = "llamaindex-oi-demo"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    LlamaIndexInstrumentor().instrument(tracer_provider=provider)

    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai import OpenAI

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return f"It is sunny in {city}."

    policy = Scripted([
        Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
        Reply(text="It is sunny in Paris."),
        Reply(error_status=500),
    ])
    with FakeOpenAI(policy) as fake:
        llm = OpenAI(model="gpt-4o-mini", api_key="sk-fake", api_base=fake.base_url, max_retries=0)
        agent = FunctionAgent(name="weather_agent", description="Answers weather questions.",
                              tools=[get_weather], llm=llm, system_prompt="You answer weather questions.")

        async def runs() -> None:
            print("run 1:", await agent.run("What is the weather in Paris?"))
            try:
                await agent.run("What is the weather in Oslo?")
            except Exception as error:  # the expected failure of run 2
                print(f"run 2 failed as planned: {type(error).__module__}.{type(error).__name__}")

        asyncio.run(runs())
        print(f"fake model got {len(fake.requests)} requests")

    provider.force_flush()
    spans = exporter.get_finished_spans()
    about = {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "scenario": ("LlamaIndex FunctionAgent 'weather_agent' with one tool get_weather, "
                     "llama_index.llms.openai.OpenAI(model='gpt-4o-mini', max_retries=0) against a fake "
                     "OpenAI server (streaming). Run 1: LLM (tool call) -> get_weather -> LLM (answer). "
                     "Run 2: the first model call gets HTTP 500; the run fails."),
        "instrumentation": "openinference-instrumentation-llama-index (LlamaIndexInstrumentor)",
        "versions": harness.versions("llama-index-core", "llama-index-llms-openai", "llama-index-workflows",
                                     "llama-index-instrumentation", "openai",
                                     "openinference-instrumentation-llama-index", "openinference-instrumentation",
                                     "openinference-semantic-conventions", "opentelemetry-api",
                                     "opentelemetry-sdk"),
    }
    harness.write_fixture(NAME, spans, about)
    print(harness.tree(spans))


if __name__ == "__main__":
    main()
