"""Benchmark OTLP metrics in: decode + translate throughput and /metrics render time. Prints JSON.

    python3 bench/metrics_in.py [--quick] [--series 2000] [--rounds 5]

A request holds ``--series`` label sets of a GenAI-style histogram (16 buckets), a counter and a
gauge, cumulative, as an SDK would export them; each round re-sends it with later timestamps.
Compared in the same run: the bare protobuf parse (the floor any Python receiver pays).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402

from agentprom.app import reserved_names  # noqa: E402
from agentprom.metrics.catalog import CATALOG  # noqa: E402
from agentprom.clock import ManualClock  # noqa: E402
from agentprom.metrics.exposition import Renderer  # noqa: E402
from agentprom.metrics.series_store import SeriesStore, StoreLimits  # noqa: E402
from agentprom.metrics_in.translator import MetricsInSettings, MetricsTranslator  # noqa: E402
from agentprom.receiver.metrics_decode import decode_metrics  # noqa: E402

BOUNDS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]


def build_request(series: int, round_: int) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    kv = rm.resource.attributes.add(key="service.name")
    kv.value.string_value = "bench-agent"
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = "openlit", "1.0"
    t = 1_700_000_000_000_000_000 + round_ * 10**10
    hist = sm.metrics.add(name="gen_ai.client.operation.duration", unit="s")
    hist.histogram.aggregation_temporality = 2
    counter = sm.metrics.add(name="gen_ai.requests", unit="1")
    counter.sum.aggregation_temporality, counter.sum.is_monotonic = 2, True
    gauge = sm.metrics.add(name="queue.depth")
    for i in range(series):
        attrs = {"gen_ai.system": "openai", "gen_ai.request.model": f"model-{i % 50}", "agent": f"a{i}"}
        for points, kind in ((hist.histogram.data_points, "h"), (counter.sum.data_points, "c"),
                             (gauge.gauge.data_points, "g")):
            p = points.add(start_time_unix_nano=1_700_000_000_000_000_000, time_unix_nano=t)
            for key, value in attrs.items():
                a = p.attributes.add(key=key)
                a.value.string_value = value
            if kind == "h":
                p.explicit_bounds.extend(BOUNDS)
                p.bucket_counts.extend([round_ + 1] * (len(BOUNDS) + 1))
                p.count, p.sum = (round_ + 1) * (len(BOUNDS) + 1), 1.5 * (round_ + 1)
            elif kind == "c":
                p.as_int = round_ + 1
            else:
                p.as_double = float(i)
    return request.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.series, args.rounds = 50, 1
    bodies = [build_request(args.series, r) for r in range(args.rounds)]
    points = 3 * args.series * args.rounds

    started = time.process_time()
    for body in bodies:
        ExportMetricsServiceRequest.FromString(body)
    parse_s = time.process_time() - started

    store = SeriesStore(StoreLimits(max_series_per_metric=0), ManualClock())
    translator = MetricsTranslator(store, MetricsInSettings(), reserved_names(CATALOG))
    started = time.process_time()
    for body in bodies:
        translator.consume(decode_metrics(body), "grpc")
    ingest_s = time.process_time() - started

    renderer = Renderer(store)
    renderer.render()  # the first scrape formats every series
    translator.consume(decode_metrics(build_request(args.series, args.rounds)), "grpc")  # all series updated
    started = time.perf_counter()
    text = renderer.render()
    render_updated_s = time.perf_counter() - started
    started = time.perf_counter()
    renderer.render()
    render_cached_s = time.perf_counter() - started

    print(json.dumps({
        "bench": "metrics_in",
        "series_per_metric": args.series,
        "points": points,
        "parse_only_points_per_cpu_s": round(points / parse_s),
        "decode_translate_points_per_cpu_s": round(points / ingest_s),
        "ingest_vs_parse_ratio": round(ingest_s / parse_s, 1),
        "exposed_series": sum(len(f) for f in translator.families.families.values()),
        "exposition_bytes": len(text),
        "render_after_update_ms": round(render_updated_s * 1000, 1),
        "render_cached_ms": round(render_cached_s * 1000, 1),
    }))


if __name__ == "__main__":
    main()
