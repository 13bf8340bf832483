"""The LangGraph run both LangGraph recorders trace: a prebuilt ReAct agent, one tool, two runs.

* run 1: the graph ``weather_agent`` (``create_react_agent`` with one tool ``get_weather``)
  answers "What is the weather in Paris?": LLM (asks for the tool) -> tool -> LLM (answers);
* run 2: same graph, the fake model answers HTTP 500 to the first call; ``max_retries=0``
  so langchain-openai raises at once and the graph fails.

Each recorder (``langgraph_openinference.py``, ``langgraph_openllmetry.py``) instruments
LangChain its own way first, then calls ``record``.
"""

from __future__ import annotations

from typing import Any

import harness
from harness import FakeOpenAI, Reply

SCENARIO = ("LangGraph create_react_agent graph 'weather_agent' with one tool get_weather, "
            "ChatOpenAI(model='gpt-4o-mini', max_retries=0) against a fake OpenAI server. "
            "Run 1: LLM (tool call) -> get_weather -> LLM (answer). "
            "Run 2: the first model call gets HTTP 500; the graph fails.")
#: packages every LangGraph recording names in recorded.json (each recorder adds its instrumentation's)
PACKAGES = ("langgraph", "langgraph-prebuilt", "langchain-core", "langchain-openai", "openai",
            "opentelemetry-api", "opentelemetry-sdk")


def policy(request: dict) -> Reply:
    """Run 2's question mentions 'Oslo': its first model call fails with HTTP 500."""
    messages = request.get("messages") or []
    if any("Oslo" in str(m.get("content")) for m in messages):
        return Reply(error_status=500)
    return harness.tool_then_answer(request, arguments='{"city": "Paris"}')


def record(name: str, service: str, provider: Any, exporter: Any, about: dict[str, Any]) -> None:
    """Run both runs with LangChain already instrumented, and write the fixture ``name``."""
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
    harness.write_fixture(name, spans, {"date": "2026-12-03", "service.name": service, **about})
    print(harness.tree(spans))
