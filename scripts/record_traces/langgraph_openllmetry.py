"""Record a LangGraph prebuilt ReAct agent traced by OpenLLMetry's LangChain instrumentation.

The instrumentation is ``opentelemetry-instrumentation-langchain`` (Traceloop's OpenLLMetry,
without traceloop-sdk), with its defaults (``LangchainInstrumentor()``: attributes on, trace
context propagation on). It wraps ``create_react_agent`` itself, so building the graph emits a
``create_agent`` span in a trace of its own; the fixture keeps it.

Scenario (one trace per run, plus the build-time trace; service.name ``langgraph-openllmetry-demo``):

* run 1: the graph ``weather_agent`` (``create_react_agent`` with one tool ``get_weather``)
  answers "What is the weather in Paris?": LLM (asks for the tool) -> tool -> LLM (answers);
* run 2: same graph, the fake model answers HTTP 500 to the first call; ``max_retries=0``
  so langchain-openai raises ``openai.InternalServerError`` at once and the graph fails.

Packages (installed in a fresh virtualenv on 2026-12-03; pip picked these versions)::

    python3 -m venv /tmp/venv-lg-ol
    /tmp/venv-lg-ol/bin/pip install langgraph==1.2.24 langchain-openai==1.8.1 \
        opentelemetry-instrumentation-langchain==0.62.4 opentelemetry-sdk==1.45.2 \
        opentelemetry-exporter-otlp-proto-common==1.45.2
    # pulled in: langchain-core 1.8.3, langgraph-prebuilt 1.1.3, openai 3.60.0,
    # opentelemetry-instrumentation 0.66b2, opentelemetry-semantic-conventions-ai 0.5.1

Run (from the repository root)::

    /tmp/venv-lg-ol/bin/python scripts/record_traces/langgraph_openllmetry.py

OTEL_SEMCONV_STABILITY_OPT_IN is not set.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI, Reply  # noqa: E402

NAME = "langgraph_openllmetry"
SERVICE = "langgraph-openllmetry-demo"


def policy(request: dict) -> Reply:
    """Run 2's question mentions 'Oslo': its first model call fails with HTTP 500."""
    messages = request.get("messages") or []
    if any("Oslo" in str(m.get("content")) for m in messages):
        return Reply(error_status=500)
    return harness.tool_then_answer(request, arguments='{"city": "Paris"}')


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    # before importing langgraph.prebuilt: the instrumentor wraps create_react_agent in its module
    LangchainInstrumentor().instrument(tracer_provider=provider)

    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return f"It is sunny in {city}."

    with FakeOpenAI(policy) as fake:
        model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-fake", base_url=fake.base_url, max_retries=0)
        graph = create_react_agent(model, [get_weather], name="weather_agent")
        graph.invoke({"messages": [("user", "What is the weather in Paris?")]})
        try:
            graph.invoke({"messages": [("user", "What is the weather in Oslo?")]})
        except Exception as error:  # the expected failure of run 2
            print(f"run 2 failed as planned: {type(error).__module__}.{type(error).__name__}")
        print(f"fake model got {len(fake.requests)} requests")

    provider.force_flush()
    spans = exporter.get_finished_spans()
    about = {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "scenario": ("LangGraph create_react_agent graph 'weather_agent' with one tool get_weather, "
                     "ChatOpenAI(model='gpt-4o-mini', max_retries=0) against a fake OpenAI server. "
                     "Run 1: LLM (tool call) -> get_weather -> LLM (answer). "
                     "Run 2: the first model call gets HTTP 500; the graph fails. "
                     "Building the graph emits a create_agent span in its own trace."),
        "instrumentation": "opentelemetry-instrumentation-langchain (OpenLLMetry LangchainInstrumentor, defaults)",
        "versions": harness.versions("langgraph", "langgraph-prebuilt", "langchain-core", "langchain-openai",
                                     "openai", "opentelemetry-instrumentation-langchain",
                                     "opentelemetry-instrumentation", "opentelemetry-semantic-conventions-ai",
                                     "opentelemetry-api", "opentelemetry-sdk"),
    }
    harness.write_fixture(NAME, spans, about)
    print(harness.tree(spans))


if __name__ == "__main__":
    main()
