"""Record CrewAI through OpenInference (fixture ``crewai_openinference``).

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-crewai
    /tmp/venv-crewai/bin/pip install crewai openinference-instrumentation-crewai \
        openinference-instrumentation-openai opentelemetry-sdk opentelemetry-exporter-otlp-proto-common
    # resolved: crewai 1.15.30, openai 2.54.0, openinference-instrumentation-crewai 1.1.21,
    #           openinference-instrumentation-openai 0.1.66, openinference-instrumentation 0.1.72,
    #           openinference-semantic-conventions 0.1.42, opentelemetry-api/sdk 1.45.2,
    #           opentelemetry-exporter-otlp-proto-common 1.45.2 (litellm is NOT installed)
    cd <repo> && /tmp/venv-crewai/bin/python scripts/record_traces/crewai_openinference.py

How it is meant to be used: ``CrewAIInstrumentor().instrument()`` in its default wrapper mode
(its README: "the recommended path for standard Python CrewAI applications") traces crew,
task/agent execution and tools, but not the model calls; those come from the instrumentor of
the LLM client. CrewAI 1.x calls OpenAI models through its native provider
(``crewai.llms.providers.openai``, the ``openai`` SDK), not LiteLLM, so the LLM spans here come
from ``openinference-instrumentation-openai``; ``-litellm`` would record nothing.

CrewAI's own telemetry and tracing are off: ``CREWAI_DISABLE_TELEMETRY=true``,
``CREWAI_DISABLE_TRACKING=true``, ``CREWAI_TRACING_ENABLED=false`` (``OTEL_SDK_DISABLED``
stays unset, or no span would be recorded).

Scenario: one crew, one agent (role "Weather researcher", model gpt-4o-mini via
``LLM(base_url=<fake>, api_key="sk-fake", max_retries=0)``), one task using one tool
``get_weather``. Run 1 (trace 1): the model calls get_weather, the tool runs, the model answers.
Run 2 (trace 2): a new crew of the same shape; the model answers HTTP 500.

With ``--event-listener`` it records fixture ``crewai_openinference_events`` instead: the
instrumentor's event-listener mode (``instrument(use_event_listener=True)``, which by default
also makes LLM spans from CrewAI's LLMCall* events), still with the openai instrumentor, i.e. a
user who turns on both; same scenario.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.pop("OTEL_SDK_DISABLED", None)
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_DISABLE_TRACKING"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="crewai-rec-"))
os.environ["OPENAI_API_KEY"] = "sk-fake"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI, Reply  # noqa: E402

EVENT_LISTENER = "--event-listener" in sys.argv[1:]
NAME = "crewai_openinference_events" if EVENT_LISTENER else "crewai_openinference"
SERVICE = "crewai-oi-events-demo" if EVENT_LISTENER else "crewai-oi-demo"


class Policy:
    """Call get_weather once (when offered and not yet answered), then answer; or fail with 500."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self, request: dict[str, Any]) -> Reply:
        if self.fail:
            return Reply(error_status=500)
        messages = request.get("messages") or []
        offered = [t["function"]["name"] for t in request.get("tools") or []]
        if "get_weather" in offered and not any(m.get("role") == "tool" for m in messages):
            return Reply(tool_calls=[("get_weather", json.dumps({"city": "Paris"}))])
        return Reply(text="It is sunny and 21 C in Paris.")


def crew(base_url: str) -> Any:
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    @tool("get_weather")
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"Sunny, 21 C in {city}"

    llm = LLM(model="gpt-4o-mini", base_url=base_url, api_key="sk-fake", max_retries=0)
    researcher = Agent(role="Weather researcher", goal="Report the weather", backstory="You check forecasts.",
                       llm=llm, tools=[get_weather], allow_delegation=False, max_retry_limit=0, verbose=False)
    task = Task(description="What is the weather in Paris? Use get_weather.", expected_output="One sentence.",
                agent=researcher)
    return Crew(agents=[researcher], tasks=[task], verbose=False)


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    CrewAIInstrumentor().instrument(tracer_provider=provider, use_event_listener=EVENT_LISTENER)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    policy = Policy()
    errors: list[str] = []
    with FakeOpenAI(policy) as fake:
        print("run 1:", crew(fake.base_url).kickoff())
        policy.fail = True
        try:
            crew(fake.base_url).kickoff()
        except Exception as exc:
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        print("requests served:", len(fake.requests), [bool(r.get("stream")) for r in fake.requests])

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    print("run 2 raised:", errors)
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "packages": harness.versions("crewai", "openai", "openinference-instrumentation-crewai",
                                     "openinference-instrumentation-openai", "openinference-instrumentation",
                                     "openinference-semantic-conventions", "opentelemetry-sdk",
                                     "opentelemetry-api", "opentelemetry-exporter-otlp-proto-common", "litellm"),
        "python": sys.version.split()[0],
        "instrumentation": ("CrewAIInstrumentor(use_event_listener=True) (event-listener mode, LLM spans from "
                            "CrewAI events on)" if EVENT_LISTENER else "CrewAIInstrumentor (default wrapper mode)")
                           + " + OpenAIInstrumentor for the model calls (CrewAI 1.x native OpenAI provider; "
                             "LiteLLM not used)",
        "scenario": "one crew, agent role 'Weather researcher' (gpt-4o-mini), one task, tool get_weather. "
                    "Run 1 (trace 1): model calls get_weather, tool runs, model answers. Run 2 (trace 2): "
                    "new crew of the same shape, the model answers HTTP 500 (max_retries=0, max_retry_limit=0).",
        "run2_exception": errors,
    })


if __name__ == "__main__":
    main()
