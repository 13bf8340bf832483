"""Record OpenInference tracing the OpenAI client, streamed and not (fixture ``openinference_openai_streaming``).

The same scenario as ``openlit_openai_streaming.py``, traced by OpenInference's OpenAI
instrumentation instead of OpenLIT. No agent framework: one hand-written agent span made with the
plain OpenTelemetry SDK tracer, ``invoke_agent stream_agent`` with OpenInference's agent attributes
(openinference.span.kind=AGENT, agent.name=stream_agent: both recognised by agentprom, see
docs/conventions.md "Kinds" and "Own agent name"), wraps three ``openai`` chat-completions calls
to ``gpt-4o-mini`` on the fake server:

* (a) ``stream=True, stream_options={"include_usage": True}``, the stream read to the end,
  finish reason ``stop``;
* (b) not streamed, finish reason ``stop``;
* (c) streamed the same way as (a), but the fake server ends it with finish reason ``length``
  (the harness's ``FakeOpenAI`` answers ``stop`` or ``tool_calls``: ``harness.LengthFake`` subclasses
  it, see ``harness.LengthFake``).

OpenInference marks the first chunk of a streamed response with a span event
``First Token Stream Event`` (no attributes; its time minus the span's start is the time to first
token). ``harness.otlp_json`` keeps span events (the SDK's OTLP encoder writes them), so
``trace.json`` has them as recorded.

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-oi-stream
    /tmp/venv-oi-stream/bin/pip install openinference-instrumentation-openai openai opentelemetry-sdk \\
        opentelemetry-exporter-otlp-proto-common
    # resolved: openinference-instrumentation-openai 0.1.66, openinference-instrumentation 0.1.72,
    #           openinference-semantic-conventions 0.1.42, openai 3.60.0,
    #           opentelemetry-api/sdk 1.45.2, opentelemetry-exporter-otlp-proto-common 1.45.2,
    #           opentelemetry-instrumentation 0.66b2
    cd <repo> && /tmp/venv-oi-stream/bin/python scripts/record_traces/openinference_openai_streaming.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.pop("OTEL_SDK_DISABLED", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Reply, Scripted  # noqa: E402

NAME = "openinference_openai_streaming"
SERVICE = "openinference-stream-demo"
MODEL = "gpt-4o-mini"
AGENT = "stream_agent"


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)

    import openai

    policy = Scripted([Reply(text="Hello there, streamed."), Reply(text="Hello there, in one piece."),
                       harness.Truncated(text="Hello there, this answer is cut")])
    with harness.LengthFake(policy) as fake:
        client = openai.OpenAI(api_key="sk-fake", base_url=fake.base_url, max_retries=0)
        answers = harness.run_streaming_agent(
            client, {"openinference.span.kind": "AGENT", "agent.name": AGENT}, AGENT, MODEL)
        print("\n".join(answers))
        print("requests served:", [(r.get("stream", False), r.get("stream_options")) for r in fake.requests])

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    for span in spans:
        print(span.name, [(e.name, (e.timestamp - span.start_time) / 1e9) for e in span.events])
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "python": sys.version.split()[0],
        "instrumentation": "OpenAIInstrumentor().instrument(tracer_provider=<harness's in-memory provider>) "
                           "(openinference-instrumentation-openai); the agent span is written with the plain "
                           "OpenTelemetry SDK tracer, with openinference.span.kind=AGENT and agent.name",
        "scenario": "invoke_agent stream_agent wraps three openai chat.completions calls to gpt-4o-mini: "
                    "(a) stream=True with stream_options.include_usage, stream read to the end, finish stop; "
                    "(b) not streamed, finish stop; (c) streamed like (a), the fake server ends it with "
                    "finish_reason length. Usage 50/10 on every call.",
        "answers": answers,
        "versions": harness.versions("openinference-instrumentation-openai", "openinference-instrumentation",
                                     "openinference-semantic-conventions", "openai", "opentelemetry-api",
                                     "opentelemetry-sdk", "opentelemetry-instrumentation",
                                     "opentelemetry-exporter-otlp-proto-common"),
    })


if __name__ == "__main__":
    main()
