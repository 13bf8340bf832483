"""Record a LangGraph prebuilt ReAct agent traced by OpenInference's LangChain instrumentation.

Scenario (one trace per run, service.name ``langgraph-oi-demo``):

* run 1: the graph ``weather_agent`` (``create_react_agent`` with one tool ``get_weather``)
  answers "What is the weather in Paris?": LLM (asks for the tool) -> tool -> LLM (answers);
* run 2: same graph, the fake model answers HTTP 500 to the first call; ``max_retries=0``
  so langchain-openai raises ``openai.InternalServerError`` at once and the graph fails.

Packages (installed in a fresh virtualenv on 2026-12-03; pip picked these versions)::

    python3 -m venv /tmp/venv-lg-oi
    /tmp/venv-lg-oi/bin/pip install langgraph==1.2.24 langchain-openai==1.8.1 \
        openinference-instrumentation-langchain==0.1.80 opentelemetry-sdk==1.45.2 \
        opentelemetry-exporter-otlp-proto-common==1.45.2
    # pulled in: langchain-core 1.8.3, langgraph-prebuilt 1.1.3, openai 3.60.0,
    # openinference-instrumentation 0.1.72, openinference-semantic-conventions 0.1.42

Run (from the repository root)::

    /tmp/venv-lg-oi/bin/python scripts/record_traces/langgraph_openinference.py

OTEL_SEMCONV_STABILITY_OPT_IN is not set.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import langgraph_react  # noqa: E402

NAME = "langgraph_openinference"
SERVICE = "langgraph-oi-demo"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
    langgraph_react.record(NAME, SERVICE, provider, exporter, {
        "scenario": langgraph_react.SCENARIO + "",
        "instrumentation": "openinference-instrumentation-langchain (LangChainInstrumentor)",
        "versions": harness.versions(*langgraph_react.PACKAGES,
                                     "openinference-instrumentation-langchain",
                                     "openinference-instrumentation", "openinference-semantic-conventions"),
    })


if __name__ == "__main__":
    main()
