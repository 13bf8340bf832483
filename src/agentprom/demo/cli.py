"""The ``agentprom demo`` command: options, defaults, output and exit codes.

Exit codes: 0 every span was accepted by the sidecar, 1 some were not (or the
sidecar is unreachable, or the SDK is missing), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from agentprom.config.schema import ServerConfig
from agentprom.demo.plan import AGENTS

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: the sidecar's own default OTLP/gRPC address (config schema), as a URL
DEFAULT_ENDPOINT = "http://" + ServerConfig.model_fields["otlp_grpc"].default
DEFAULT_SERVICE_NAME = "agentprom-demo"
DEFAULT_SESSIONS = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="send realistic demo agent traffic to a running sidecar",
        description="Send a running sidecar the spans of a few simulated AI agents, through the "
        "OpenTelemetry SDK's OTLP exporters: sessions with phases, LLM calls with tokens and cost, "
        "tool calls that fail and are retried, context resets. The spans are current-dated, carry "
        f"service.name={DEFAULT_SERVICE_NAME} and every agent name starts with 'demo-', so demo series are "
        "easy to tell from (and to delete next to) real ones. Nothing calls a model: the sessions are "
        "planned by a seeded random generator, and the same --seed sends the same sessions.",
        epilog=f"Agents: {', '.join(AGENTS)}. Exit 0 when the sidecar accepted every span, 1 otherwise.",
    )
    demo.add_argument("--endpoint", metavar="URL", default=None,
                      help="the sidecar's OTLP endpoint: the gRPC address, or the HTTP base URL with "
                      "--protocol http/protobuf (default $OTEL_EXPORTER_OTLP_ENDPOINT, else "
                      f"{DEFAULT_ENDPOINT}, the sidecar's default gRPC address)")
    demo.add_argument("--protocol", choices=["grpc", "http/protobuf"], default=None,
                      help="OTLP transport (default $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
    demo.add_argument("--sessions", type=int, default=None, metavar="N",
                      help=f"stop after N sessions (default {DEFAULT_SESSIONS}; 0 = until --duration ends)")
    demo.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                      help="stop after this much wall-clock time (default 0: no time limit)")
    demo.add_argument("--rate", type=float, default=0.0, metavar="PER_MINUTE",
                      help="sessions per minute, paced in real time (default 0: as fast as possible)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--agents", default="", metavar="A,B",
                      help="comma-separated subset of the demo agents (default all)")
    demo.add_argument("--service-name", default=DEFAULT_SERVICE_NAME,
                      help=f"resource service.name of the demo spans (default {DEFAULT_SERVICE_NAME})")
    demo.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                      help="connect and export timeout (default 10)")
    demo.add_argument("--json", action="store_true",
                      help="print what was sent, by metric labels, as one JSON object (for tests and scripts)")


def main(args: argparse.Namespace) -> int:
    from agentprom.demo.send import DemoError, DemoRun, run_demo

    sessions = args.sessions
    if sessions is None:
        sessions = 0 if args.duration else DEFAULT_SESSIONS
    if sessions < 0 or args.duration < 0 or args.rate < 0 or not args.timeout > 0:
        print("agentprom demo: --sessions, --duration and --rate must not be negative, --timeout must be "
              "positive", file=sys.stderr)
        return EXIT_USAGE
    if sessions == 0 and not args.duration:
        print("agentprom demo: the run must be bounded: give --sessions N (N > 0) or --duration SECONDS",
              file=sys.stderr)
        return EXIT_USAGE
    protocol = args.protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol not in ("grpc", "http/protobuf"):
        print(f"agentprom demo: OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (grpc or "
              "http/protobuf)", file=sys.stderr)
        return EXIT_USAGE
    run = DemoRun(
        endpoint=args.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT,
        protocol=protocol, sessions=sessions, duration=args.duration, rate=args.rate, seed=args.seed,
        agents=[a for a in args.agents.split(",") if a] or list(AGENTS), service_name=args.service_name,
        timeout=args.timeout,
    )
    try:
        summary = run_demo(run)
    except DemoError as exc:
        print(f"agentprom demo: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    ok = summary["failed_spans"] == 0 and summary["exported_spans"] == summary["spans"]
    if args.json:
        json.dump(summary, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        agents = sorted({row["agent"] for row in summary["sessions"]})
        print(f"sent {summary['sessions_planned']} sessions ({summary['spans']} spans) of {', '.join(agents)} to "
              f"{run.endpoint} over {run.protocol} as service.name={run.service_name}; the sidecar accepted "
              f"{summary['exported_spans']} spans" + ("" if ok else f", refused or lost {summary['failed_spans']}"))
    return EXIT_OK if ok else EXIT_FAILURE
