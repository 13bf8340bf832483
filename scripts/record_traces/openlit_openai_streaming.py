"""Record OpenLIT tracing the OpenAI client, streamed and not (fixture ``openlit_openai_streaming``).

No agent framework: one hand-written agent span made with the plain OpenTelemetry SDK tracer,
``invoke_agent stream_agent`` (gen_ai.operation.name=invoke_agent, gen_ai.agent.name=stream_agent),
wraps three ``openai`` chat-completions calls to ``gpt-4o-mini`` on the fake server, each traced
by OpenLIT's OpenAI instrumentation:

* (a) ``stream=True, stream_options={"include_usage": True}``, the stream read to the end,
  finish reason ``stop``;
* (b) not streamed, finish reason ``stop``;
* (c) streamed the same way as (a), but the fake server ends it with finish reason ``length``
  (the harness's ``FakeOpenAI`` answers ``stop`` or ``tool_calls``: ``harness.LengthFake`` subclasses
  it, see ``harness.LengthFake``).

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-openlit
    /tmp/venv-openlit/bin/pip install openlit openai opentelemetry-sdk \\
        opentelemetry-exporter-otlp-proto-common
    # resolved: openlit 1.45.0, openai 2.54.0 (openlit's pin keeps it below 3),
    #           opentelemetry-api/sdk 1.45.1, opentelemetry-exporter-otlp-proto-common 1.45.1,
    #           opentelemetry-instrumentation 0.66b1 (+ openlit's httpx/requests/urllib/... instrumentors)
    cd <repo> && /tmp/venv-openlit/bin/python scripts/record_traces/openlit_openai_streaming.py

How OpenLIT is kept off the network and onto the harness's provider:

* ``harness.in_memory_provider`` sets the global SDK ``TracerProvider`` first; ``openlit.init``
  (``otel/tracing.py``) sees an SDK provider already set and reuses it as is, adding no span
  processor or exporter (no ``OTLPSpanExporter``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` is removed from
  the environment, and no ``otlp_endpoint`` is given);
* ``disable_metrics=True``: no meter provider, no OTLP metric exporter;
* ``disable_events=True`` and ``OTEL_LOGS_EXPORTER=none``: OpenLIT still creates a
  ``LoggerProvider`` but with no exporter (without the variable it would add a console exporter);
* ``pricing_json`` names a local file: by default ``openlit.init`` downloads its price list from
  raw.githubusercontent.com. The file prices gpt-4o-mini at OpenAI's list price (USD 0.15 / 0.60
  per million input / output tokens), so the spans carry a real ``gen_ai.usage.cost``;
* the HTTP-client instrumentors OpenLIT enables by default (httpx, requests, urllib, urllib3,
  aiohttp-client) are disabled, so the tree has only the GenAI spans (with them, openai's httpx
  request adds a ``POST`` span of kind other below each LLM span).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

for variable in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
    os.environ.pop(variable, None)
os.environ["OTEL_LOGS_EXPORTER"] = "none"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Reply, Scripted  # noqa: E402

NAME = "openlit_openai_streaming"
SERVICE = "openlit-stream-demo"
MODEL = "gpt-4o-mini"
AGENT = "stream_agent"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    import openlit

    pricing = Path(tempfile.mkdtemp(prefix="openlit-pricing-")) / "pricing.json"
    pricing.write_text(json.dumps({"chat": {MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006}}}))
    openlit.init(service_name=SERVICE, environment="recording", disable_metrics=True, disable_events=True,
                 pricing_json=str(pricing),
                 disabled_instrumentors=["httpx", "requests", "urllib", "urllib3", "aiohttp-client"])

    from opentelemetry import trace

    assert trace.get_tracer_provider() is provider, "openlit replaced the harness's tracer provider"
    processors = provider._active_span_processor._span_processors  # noqa: SLF001 (check only)
    assert len(processors) == 1, f"openlit added span processors: {processors}"

    import openai

    policy = Scripted([Reply(text="Hello there, streamed."), Reply(text="Hello there, in one piece."),
                       harness.Truncated(text="Hello there, this answer is cut")])
    with harness.LengthFake(policy) as fake:
        client = openai.OpenAI(api_key="sk-fake", base_url=fake.base_url, max_retries=0)
        answers = harness.run_streaming_agent(
            client, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT}, AGENT, MODEL)
        print("\n".join(answers))
        print("requests served:", [(r.get("stream", False), r.get("stream_options")) for r in fake.requests])

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "python": sys.version.split()[0],
        "instrumentation": "openlit.init(disable_metrics=True, disable_events=True, pricing_json=<local file>, "
                           "disabled_instrumentors=[httpx, requests, urllib, urllib3, aiohttp-client]) on the "
                           "harness's global TracerProvider (reused by OpenLIT, no exporter added); the agent "
                           "span is written with the plain OpenTelemetry SDK tracer",
        "scenario": "invoke_agent stream_agent wraps three openai chat.completions calls to gpt-4o-mini: "
                    "(a) stream=True with stream_options.include_usage, stream read to the end, finish stop; "
                    "(b) not streamed, finish stop; (c) streamed like (a), the fake server ends it with "
                    "finish_reason length. Usage 50/10 on every call.",
        "pricing": "gpt-4o-mini promptPrice 0.00015, completionPrice 0.0006 (USD per 1K tokens, OpenLIT's format)",
        "answers": answers,
        "versions": harness.versions("openlit", "openai", "opentelemetry-api", "opentelemetry-sdk",
                                     "opentelemetry-instrumentation", "opentelemetry-exporter-otlp-proto-common"),
    })


if __name__ == "__main__":
    main()
