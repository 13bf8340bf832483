#!/usr/bin/env python3
"""A toy agent for `agentprom bench` command scenarios: a few tool and LLM calls traced with the OpenTelemetry SDK.

It stands in for your real agent. It does what `agentprom bench run` expects of
an agent command:

* it exports its spans with the standard OTLP/HTTP exporter, configured by the
  environment the harness sets (``OTEL_EXPORTER_OTLP_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``, ``OTEL_RESOURCE_ATTRIBUTES``);
* it puts the session id the harness passes in ``AGENTPROM_SESSION_ID`` on
  every span as ``agent.session.id``, and ends its session with an
  ``agent.span.kind=session`` span;
* it exits 0 when its task succeeded, non-zero otherwise.

The "task" is to checksum a few generated documents: each step reads a
document (tool ``read_document``, which fails with ``--fail-rate`` and is then
retried once, ``agent.retry.attempt=2``) and asks a pretend model to summarise
it (``chat``, with token counts). ``--hang-after N`` sends N steps' spans and
then hangs forever (to show the harness's timeout); ``--exit-code`` forces the
exit status.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import uuid

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="documents to process (default 3)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="chance that a read fails (default 0)")
    parser.add_argument("--seed", default=None,
                        help="random seed, any text (default: the run index agentprom bench gives, else 0: "
                        "a benchmark is repeatable)")
    parser.add_argument("--step-ms", type=float, default=5.0, help="wall-clock time per call (default 5)")
    parser.add_argument("--hang-after", type=int, default=None, metavar="N",
                        help="after N steps, send the spans so far and hang forever")
    parser.add_argument("--exit-code", type=int, default=None, help="exit with this status regardless")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else os.environ.get("AGENTPROM_RUN_INDEX", "0")
    rng = random.Random(f"toy-agent-{seed}")
    session_id = os.environ.get("AGENTPROM_SESSION_ID") or f"toy-{uuid.uuid4().hex[:12]}"
    provider = TracerProvider(resource=Resource.create({"service.name": "toy-agent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("toy-agent")
    common = {"agent.session.id": session_id, "gen_ai.agent.name": "toy-agent"}

    failed = False
    with tracer.start_as_current_span("invoke_agent toy-agent", attributes={
        **common, "gen_ai.operation.name": "invoke_agent", "agent.span.kind": "session",
    }) as session:
        with tracer.start_as_current_span("phase checksum", attributes={
            **common, "agent.phase.name": "checksum", "agent.phase.id": "checksum",
        }) as phase:
            for step in range(args.steps):
                if args.hang_after is not None and step == args.hang_after:
                    provider.force_flush()
                    while True:  # a hung agent: only the harness's timeout ends this
                        time.sleep(3600)
                document = f"document {step} " * rng.randint(50, 500)
                ok = False
                for attempt in (1, 2):
                    with tracer.start_as_current_span("execute_tool read_document", attributes={
                        **common, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_document",
                        "agent.retry.attempt": attempt,
                    }) as read:
                        time.sleep(args.step_ms / 1000.0)
                        if rng.random() < args.fail_rate:
                            read.set_attribute("error.type", "IOError")
                            read.set_status(Status(StatusCode.ERROR, "read failed"))
                            continue
                        ok = True
                        break
                if not ok:
                    failed = True
                    phase.set_status(Status(StatusCode.ERROR, "a document could not be read"))
                    break
                words = len(document.split())
                with tracer.start_as_current_span("chat toy-model", attributes={
                    **common, "gen_ai.operation.name": "chat", "gen_ai.request.model": "toy-model",
                    "gen_ai.provider.name": "local", "gen_ai.usage.input_tokens": words,
                    "gen_ai.usage.output_tokens": 16,
                }):
                    time.sleep(args.step_ms / 1000.0)
                    hashlib.sha256(document.encode()).hexdigest()
        if failed:
            session.set_attribute("agent.session.status", "failed")
            session.set_status(Status(StatusCode.ERROR, "task failed"))
    provider.shutdown()  # sends what is left before the process exits
    if args.exit_code is not None:
        return args.exit_code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
