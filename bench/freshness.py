"""Freshness: how long after an export returns is the span's count visible on /metrics.

A real sidecar process receives one small OTLP/gRPC export at a time while the
script polls /metrics until the new count appears; the time from the start of
the export call to the first scrape showing it is one sample. agentprom
counts a request before answering it, so this is the export latency plus one
scrape; a collector that batches before exporting metrics would add its flush
interval here.

    python3 bench/freshness.py [--quick] [--samples N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import GRPC_EXPORT, SidecarProcess, agent_spans, emit, request  # noqa: E402

COUNTER = re.compile(rb'^agent_tool_calls_total\{agent="agent-0-fresh",tool="calculator",status="ok"\} (\S+)$', re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--samples", type=int, default=None, help="exports to time (default 300)")
    args = parser.parse_args()
    samples = args.samples or (20 if args.quick else 300)

    import grpc

    # span 4 of the mix is one successful calculator tool call of agent-0
    body = request(agent_spans(5, "-fresh")[4:5]).SerializeToString()
    sidecar = SidecarProcess()
    channel = grpc.insecure_channel(sidecar.grpc)
    export = channel.unary_unary(GRPC_EXPORT)
    delays, polls = [], []
    try:
        export(body, timeout=10)  # warm the connection; count is now 1
        for expected in range(2, samples + 2):
            start = time.perf_counter()
            export(body, timeout=10)
            n = 0
            while True:
                n += 1
                match = COUNTER.search(sidecar.scrape())
                if match and float(match.group(1)) >= expected:
                    break
                if time.perf_counter() - start > 10:
                    raise TimeoutError(f"count {expected} not visible after 10 s")
            delays.append(time.perf_counter() - start)
            polls.append(n)
    finally:
        channel.close()
        sidecar.stop()
    ordered = sorted(delays)
    emit({
        "bench": "freshness",
        "samples": samples,
        "p50_ms": round(statistics.median(delays) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "scrapes_needed_max": max(polls),
    })


if __name__ == "__main__":
    main()
