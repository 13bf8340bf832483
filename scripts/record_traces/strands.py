"""Record Strands Agents' native OpenTelemetry GenAI spans (fixture ``strands``).

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-strands
    /tmp/venv-strands/bin/pip install 'strands-agents[openai]' opentelemetry-sdk \
        opentelemetry-exporter-otlp-proto-common
    # resolved: strands-agents 1.62.0, openai 2.54.0, opentelemetry-api/sdk 1.45.1,
    #           opentelemetry-exporter-otlp-proto-common 1.45.2
    cd <repo> && /tmp/venv-strands/bin/python scripts/record_traces/strands.py

Strands' tracer (``strands.telemetry.tracer.Tracer``) takes the *global* tracer provider
when an Agent is built; ``StrandsTelemetry(tracer_provider=...)`` only hands it an existing
provider, so the harness's in-memory provider is enough. Default semantic conventions (no
``OTEL_SEMCONV_STABILITY_OPT_IN``), i.e. what a user gets out of the box.

Scenario: one agent ``weather_agent`` (OpenAIModel, model ``gpt-4o-mini``) with one tool
``get_weather``. Run 1: the model asks for the tool, the tool runs, the model answers.
Run 2: the model answers HTTP 500 (the OpenAI client's retries are off: ``max_retries=0``).
Both runs share one TracerProvider; each run is its own trace.

With ``--latest-semconv`` it records fixture ``strands_latest_semconv`` instead, with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (Strands' opt-in to the newest
GenAI conventions); same scenario.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.pop("OTEL_SDK_DISABLED", None)
LATEST = "--latest-semconv" in sys.argv[1:]
if LATEST:
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
else:
    os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
# this file is named strands.py: keep its folder last on the path so ``import strands`` is the package
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(_HERE)] + [_HERE]

import harness  # noqa: E402
from harness import FakeOpenAI, Reply, Scripted  # noqa: E402

NAME = "strands_latest_semconv" if LATEST else "strands"
SERVICE = "strands-latest-demo" if LATEST else "strands-demo"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from strands import Agent, tool
    from strands.models.openai import OpenAIModel
    from strands.telemetry import StrandsTelemetry

    StrandsTelemetry(tracer_provider=provider)  # no exporter of its own: spans go to the harness's

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"Sunny, 21 C in {city}"

    policy = Scripted([
        Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
        Reply(text="It is sunny and 21 C in Paris."),
        Reply(error_status=500),
    ])
    errors: list[str] = []
    with FakeOpenAI(policy) as fake:
        def make_agent() -> Agent:
            model = OpenAIModel(client_args={"api_key": "sk-fake", "base_url": fake.base_url, "max_retries": 0},
                                model_id="gpt-4o-mini")
            return Agent(name="weather_agent", model=model, tools=[get_weather],
                         system_prompt="You answer weather questions.", callback_handler=None)

        make_agent()("What is the weather in Paris?")
        try:
            make_agent()("And in Rome?")
        except Exception as exc:  # the failing run
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        print("requests served:", len(fake.requests))

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    print("run 2 raised:", errors)
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "packages": harness.versions("strands-agents", "openai", "opentelemetry-sdk", "opentelemetry-api",
                                     "opentelemetry-exporter-otlp-proto-common"),
        "python": sys.version.split()[0],
        "semconv": ("OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental" if LATEST
                    else "default (OTEL_SEMCONV_STABILITY_OPT_IN unset)"),
        "scenario": "agent weather_agent (OpenAIModel gpt-4o-mini, tool get_weather). Run 1 (trace 1): model "
                    "calls get_weather, tool runs, model answers. Run 2 (trace 2): the model answers HTTP 500, "
                    "OpenAI client max_retries=0.",
        "run2_exception": errors,
    })


if __name__ == "__main__":
    main()
