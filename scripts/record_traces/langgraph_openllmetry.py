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
import langgraph_react  # noqa: E402

NAME = "langgraph_openllmetry"
SERVICE = "langgraph-openllmetry-demo"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    # before importing langgraph.prebuilt: the instrumentor wraps create_react_agent in its module
    LangchainInstrumentor().instrument(tracer_provider=provider)
    langgraph_react.record(NAME, SERVICE, provider, exporter, {
        "scenario": langgraph_react.SCENARIO + " Building the graph emits a create_agent span in its own trace.",
        "instrumentation": "opentelemetry-instrumentation-langchain (OpenLLMetry LangchainInstrumentor, defaults)",
        "versions": harness.versions(*langgraph_react.PACKAGES,
                                     "opentelemetry-instrumentation-langchain",
                                     "opentelemetry-instrumentation", "opentelemetry-semantic-conventions-ai"),
    })


if __name__ == "__main__":
    main()
