"""Record a hand-written agent instrumented with the OpenTelemetry API by the GenAI semantic conventions.

No agent framework: a ``planner`` agent and its sub-agent ``researcher``, each a plain function
that opens ``invoke_agent {name}``, ``chat {model}`` and ``execute_tool {tool}`` spans with
``opentelemetry-api`` (gen_ai.operation.name, gen_ai.agent.name, gen_ai.request.model,
gen_ai.provider.name=openai, gen_ai.usage.*, gen_ai.tool.name, error.type). Every model call is a
real ``openai`` client call to the fake server, and the real OpenLLMetry instrumentation
(``opentelemetry-instrumentation-openai``) traces that call too: its ``openai.chat`` span sits
inside our manual ``chat`` span, so one request gives two nested LLM spans (two
instrumentations), both with token usage.

Scenario (one trace per run; service.name ``otel-sdk-agent-demo``):

* run 1: invoke_agent planner -> chat (asks for get_weather) -> execute_tool get_weather ->
  invoke_agent researcher [chat (asks for search_web) -> execute_tool search_web -> chat
  (answers)] -> chat (answers); all ok (5 model requests, 10 LLM spans);
* run 2: invoke_agent planner -> chat (asks for get_weather) -> execute_tool get_weather raises
  ``TimeoutError``: the tool span and the planner span end with status ERROR, ``error.type``
  and an exception event; the researcher is never called.

Packages (installed in a fresh virtualenv on 2026-12-03; pip picked these versions)::

    python3 -m venv /tmp/venv-otel-agent
    /tmp/venv-otel-agent/bin/pip install openai==3.60.0 opentelemetry-api==1.45.2 \\
        opentelemetry-sdk==1.45.2 opentelemetry-instrumentation-openai==0.62.4 \\
        opentelemetry-exporter-otlp-proto-common==1.45.2
    # pulled in: opentelemetry-instrumentation 0.66b2, opentelemetry-semantic-conventions 0.66b2,
    # opentelemetry-semantic-conventions-ai 0.5.1

Run (from the repository root)::

    /tmp/venv-otel-agent/bin/python scripts/record_traces/otel_sdk_agent.py

OTEL_SEMCONV_STABILITY_OPT_IN is not set. The agent code uses only ``opentelemetry.trace``
(the API); the SDK is there only to collect the spans (``harness.in_memory_provider``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI  # noqa: E402

NAME = "otel_sdk_agent"
SERVICE = "otel-sdk-agent-demo"
MODEL = "gpt-4o-mini"


def tool_spec(name: str, description: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}


class Agent:
    """A tiny agent: its own tools, an OpenAI client, spans by the GenAI conventions (API only)."""

    def __init__(self, name: str, client: Any, tools: dict[str, Any]) -> None:
        from opentelemetry import trace

        self.name = name
        self.client = client
        self.tools = tools  # name -> (description, function)
        self.tracer = trace.get_tracer("otel_sdk_agent.recorder", "0.1.0")

    def chat(self, messages: list[dict[str, Any]]) -> Any:
        """``chat {model}``: our own LLM span around the (also instrumented) openai call."""
        from opentelemetry.trace import SpanKind

        with self.tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": MODEL,
        }) as span:
            response = self.client.chat.completions.create(
                model=MODEL, messages=messages,
                tools=[tool_spec(n, d) for n, (d, _) in self.tools.items()] or None)
            span.set_attribute("gen_ai.response.model", response.model)
            span.set_attribute("gen_ai.response.id", response.id)
            span.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
            span.set_attribute("gen_ai.response.finish_reasons", [c.finish_reason for c in response.choices])
            return response

    def execute_tool(self, name: str, call_id: str, arguments: str) -> str:
        """``execute_tool {tool}``; a raised exception marks the span failed with ``error.type``."""
        with self.tracer.start_as_current_span(f"execute_tool {name}", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function", "gen_ai.tool.call.id": call_id,
        }) as span:
            try:
                return self.tools[name][1](**json.loads(arguments or "{}"))
            except Exception as error:
                span.set_attribute("error.type", type(error).__qualname__)
                raise  # start_as_current_span records the exception event and sets status ERROR

    def invoke(self, task: str, then: Any = None) -> str:
        """``invoke_agent {name}``: chat, run the asked tools, optionally call ``then``, chat again."""
        with self.tracer.start_as_current_span(f"invoke_agent {self.name}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.name,
            "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
        }) as span:
            try:
                messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
                response = self.chat(messages)
                message = response.choices[0].message
                if message.tool_calls:
                    messages.append(message.model_dump(exclude_none=True))
                    for call in message.tool_calls:
                        result = self.execute_tool(call.function.name, call.id, call.function.arguments)
                        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
                    if then is not None:
                        messages.append({"role": "user", "content": then()})
                    return self.chat(messages).choices[0].message.content or ""
                return message.content or ""
            except Exception as error:
                span.set_attribute("error.type", type(error).__qualname__)
                raise


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)

    import openai

    state = {"weather_fails": False}

    def get_weather(query: str) -> str:
        if state["weather_fails"]:
            raise TimeoutError("the weather service did not answer in time")
        return f"It is sunny in {query}."

    def search_web(query: str) -> str:
        return f"Paris has an oceanic climate ({query})."

    def policy(request: dict[str, Any]) -> harness.Reply:
        return harness.tool_then_answer(request, arguments='{"query": "Paris"}')

    with FakeOpenAI(policy) as fake:
        client = openai.OpenAI(api_key="sk-fake", base_url=fake.base_url, max_retries=0)
        researcher = Agent("researcher", client, {"search_web": ("Search the web.", search_web)})
        planner = Agent("planner", client, {"get_weather": ("Get the current weather for a city.", get_weather)})

        planner.invoke("Plan a day in Paris.", then=lambda: researcher.invoke("What is the climate of Paris?"))
        state["weather_fails"] = True
        try:
            planner.invoke("Plan a day in Oslo.", then=lambda: researcher.invoke("What is the climate of Oslo?"))
        except TimeoutError as error:
            print(f"run 2 failed as planned: {type(error).__name__}: {error}")
        print(f"fake model got {len(fake.requests)} requests")

    provider.force_flush()
    spans = exporter.get_finished_spans()
    about = {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "scenario": ("Hand-written agent, OpenTelemetry API only, GenAI semantic conventions. "
                     "Run 1: invoke_agent planner -> chat -> execute_tool get_weather -> invoke_agent researcher "
                     "[chat -> execute_tool search_web -> chat] -> chat. Run 2: get_weather raises TimeoutError; "
                     "the tool and planner spans fail. Each manual 'chat gpt-4o-mini' span wraps the real openai "
                     "client call, traced again by opentelemetry-instrumentation-openai ('openai.chat')."),
        "instrumentation": "manual opentelemetry-api spans + opentelemetry-instrumentation-openai (OpenLLMetry)",
        "versions": harness.versions("openai", "opentelemetry-api", "opentelemetry-sdk",
                                     "opentelemetry-instrumentation-openai", "opentelemetry-instrumentation",
                                     "opentelemetry-semantic-conventions-ai"),
    }
    harness.write_fixture(NAME, spans, about)
    print(harness.tree(spans))


if __name__ == "__main__":
    main()
