"""Record a smolagents ToolCallingAgent traced by OpenInference's smolagents instrumentation.

Scenario (one trace per run, service.name ``smolagents-oi-demo``):

* run 1: ``ToolCallingAgent(name="weather_agent")`` with one tool ``get_weather`` and
  ``OpenAIServerModel("gpt-4o-mini")``; the fake model's replies are scripted: first a call
  to ``get_weather``, then a call to smolagents' ``final_answer`` tool (two model calls,
  two steps, no planning);
* run 2: same agent, the fake model answers HTTP 500 to the first call; the OpenAI client's
  retries are off (``max_retries=0``) and so are smolagents' own (``retry=False``); smolagents
  raises ``AgentGenerationError`` out of ``agent.run``.

Two fixtures, one per run's trace. openinference-instrumentation-smolagents 0.1.43 never ends
the agent span (``weather_agent.run``) of a run that raises: ``_RunWrapper.__call__`` records the
exception and sets ERROR status on it, then re-raises without ``span.end()`` (and without
detaching its context), so that span is never exported. Run 2's trace therefore arrives without
its root: its ``Step 1`` names a parent that never comes, and agentprom counts its spans only
when ``attribution.max_wait_seconds`` has passed (or at shutdown). The replay test expects
complete traces, so:

* ``smolagents_openinference``: run 1's trace (complete), with ``expected.json``;
* ``smolagents_openinference_failed_run``: run 2's trace (as exported: no agent span), with
  ``expected_after_wait.json`` (what the rules give once the wait is over) and no
  ``expected.json``, so the replay test, which requires nothing left waiting, skips it.

Packages (installed in a fresh virtualenv on 2026-12-03, Python 3.11; pip picked these versions)::

    python3 -m venv /tmp/venv-smolagents
    /tmp/venv-smolagents/bin/pip install smolagents==1.26.0 openai==3.60.0 \
        openinference-instrumentation-smolagents==0.1.43 opentelemetry-sdk==1.45.2 \
        opentelemetry-exporter-otlp-proto-common==1.45.2
    # pulled in: openinference-instrumentation 0.1.72, openinference-semantic-conventions 0.1.42

Run (from the repository root)::

    /tmp/venv-smolagents/bin/python scripts/record_traces/smolagents_openinference.py

OTEL_SEMCONV_STABILITY_OPT_IN is not set.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import FakeOpenAI, Reply, Scripted  # noqa: E402

NAME = "smolagents_openinference"
FAILED_RUN = NAME + "_failed_run"
SERVICE = "smolagents-oi-demo"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    SmolagentsInstrumentor().instrument(tracer_provider=provider)

    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: the city's name
        """
        return f"It is sunny in {city}."

    policy = Scripted([
        Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
        Reply(tool_calls=[("final_answer", '{"answer": "It is sunny in Paris."}')]),
        Reply(error_status=500),
    ])
    with FakeOpenAI(policy) as fake:
        model = OpenAIServerModel(model_id="gpt-4o-mini", api_base=fake.base_url, api_key="sk-fake",
                                  client_kwargs={"max_retries": 0}, retry=False)
        agent = ToolCallingAgent(tools=[get_weather], model=model, name="weather_agent",
                                 description="Answers weather questions.", max_steps=3, verbosity_level=0)
        print("run 1:", agent.run("What is the weather in Paris?"))
        try:
            agent.run("What is the weather in Oslo?")
        except Exception as error:  # the expected failure of run 2
            print(f"run 2 failed as planned: {type(error).__module__}.{type(error).__name__}")
        print(f"fake model got {len(fake.requests)} requests")

    provider.force_flush()
    spans = exporter.get_finished_spans()
    traces: dict[int, list] = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        traces.setdefault(span.context.trace_id, []).append(span)
    run1, run2 = traces.values()  # in the order the runs started
    about = {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "scenario": ("smolagents ToolCallingAgent 'weather_agent' with one tool get_weather, "
                     "OpenAIServerModel('gpt-4o-mini', client max_retries=0, retry=False) against a fake "
                     "OpenAI server with scripted replies. Run 1: LLM (calls get_weather) -> get_weather -> "
                     "LLM (calls final_answer) -> final_answer. Run 2: the first model call gets HTTP 500."),
        "instrumentation": "openinference-instrumentation-smolagents (SmolagentsInstrumentor)",
        "versions": harness.versions("smolagents", "openai", "openinference-instrumentation-smolagents",
                                     "openinference-instrumentation", "openinference-semantic-conventions",
                                     "opentelemetry-api", "opentelemetry-sdk"),
    }
    harness.write_fixture(NAME, run1, {**about, "fixture": "run 1's trace (complete)"})
    harness.write_fixture(FAILED_RUN, run2, {
        **about, "fixture": ("run 2's trace as exported: the agent span 'weather_agent.run' is missing (the "
                             "instrumentation never ends it when the run raises), so Step 1's parent never arrives")})
    print(harness.tree(spans))


if __name__ == "__main__":
    main()
