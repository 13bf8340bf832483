"""Export latency while /metrics is scraped: do scrapes of 50,000 series stall ingestion? Prints JSON.

A real sidecar (``agentprom serve``, a process of its own: a sidecar in this process would share its
interpreter lock with the sender and the scraper) holds about ``--series`` active series, filled
with tool calls of distinct tool names. A sender exports small OTLP/HTTP requests (``--spans`` spans
each) back to back and times each Export (whose spans change a few hundred series); a scraper fetches /metrics every second,
text and OpenMetrics in turn. Runs with and without the scraper alternate, so both see the same
machine; reported: Export p50/p99/max of each, scrape p50, and the ratio of the p99s (issue 14's target:
Export p99 under 50 ms while 50,000 series are scraped every second).

    python3 bench/scrape_under_load.py [--quick] [--series 50000] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from scrape import percentile  # noqa: E402
from workload import SidecarProcess, agent_spans, emit, http_get, request, with_trace_ids  # noqa: E402


def export_latencies(url: str, body: bytes, seconds: float, stop: threading.Event) -> list[float]:
    latencies = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not stop.is_set():
        n += 1
        data = with_trace_ids(body, n.to_bytes(8, "big"))
        started = time.perf_counter()
        request_ = urllib.request.Request(url, data=data, headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request_, timeout=30) as response:
            response.read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.005)
    return latencies


def scraper(url: str, stop: threading.Event, out: list[float]) -> None:
    openmetrics = False
    while not stop.is_set():
        headers = {"Accept": "application/openmetrics-text"} if openmetrics else {}
        started = time.perf_counter()
        http_get(url, headers)
        out.append(time.perf_counter() - started)
        openmetrics = not openmetrics
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))


def fill(sidecar: SidecarProcess, series: int) -> int:
    """At least ``series`` active series: tool calls with distinct tool names (a 512-span request has
    128 tool spans, so about 260 new series: calls, duration and some errors per tool). Requests are
    sent in batches until the count read from /metrics gets there; returns that count."""
    url = f"http://{sidecar.http}/v1/traces"
    metrics = f"http://{sidecar.metrics}/metrics"
    sent, active = 0, count_series(metrics)
    while active < series:
        for _ in range((series - active) // 260 + 1):
            spans = agent_spans(512, tool_of=lambda i, n=sent: f"tool-{n}-{i}")
            post(url, with_trace_ids(request(spans).SerializeToString(), (10**6 + sent).to_bytes(8, "big")))
            sent += 1
        before, active = active, count_series(metrics)
        if active == before:  # a limit folds new label sets: sending more would never end
            raise RuntimeError(f"the sidecar stopped growing at {active} series")
    return active


def count_series(metrics: str) -> int:
    """Lines of the agent_ metrics in a scrape, a histogram counted once (its ``_count`` line)."""
    return sum(1 for line in http_get(metrics).decode().splitlines()
               if line.startswith("agent_") and "_bucket{" not in line and "_sum{" not in line)


def post(url: str, data: bytes) -> None:
    request_ = urllib.request.Request(url, data=data, headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request_, timeout=60) as response:
        response.read()


def run(series: int, seconds: float, spans: int, scrape: bool) -> dict:
    config = ("server: {metrics_gzip_level: 0}\n"
              "store: {max_series_per_metric: 0, max_label_values: 0, series_ttl_seconds: 0}\n"
              "attribution: {max_wait_seconds: 1}\n")
    sidecar = SidecarProcess(config)
    try:
        active = fill(sidecar, series)  # its last scrape filled the text caches
        metrics = f"http://{sidecar.metrics}/metrics"
        http_get(metrics, {"Accept": "application/openmetrics-text"})  # and this one the OpenMetrics ones
        body = request(agent_spans(spans)).SerializeToString()
        stop = threading.Event()
        scrapes: list[float] = []
        thread = threading.Thread(target=scraper, args=(metrics, stop, scrapes), daemon=True)
        if scrape:
            thread.start()
        # each export brings new traces (its tools are among the filled ones' names: the same series move)
        exports = export_latencies(f"http://{sidecar.http}/v1/traces", body, seconds, stop)
        stop.set()
        if scrape:
            thread.join(60)
    finally:
        sidecar.stop()
    return {
        "exports": len(exports),
        "export_p50_ms": round(statistics.median(exports) * 1000, 1),
        "export_p99_ms": round(percentile(exports, 0.99) * 1000, 1),
        # p99 can miss a stall that hits 1 % of Exports or fewer; the slowest shows it
        "export_max_ms": round(max(exports) * 1000, 1),
        "scrapes": len(scrapes),
        "scrape_p50_ms": round(statistics.median(scrapes) * 1000, 1) if scrapes else None,
        "agent_series": active,  # lines of the agent_ metrics, a histogram counted once
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two settings")
    parser.add_argument("--spans", type=int, default=16, help="spans per Export request")
    args = parser.parse_args()
    if args.quick:
        args.series, args.seconds, args.rounds = 2000, 3.0, 1
    results: dict[str, list[dict]] = {"quiet": [], "scraped": []}
    for _ in range(args.rounds):
        results["quiet"].append(run(args.series, args.seconds, args.spans, False))
        results["scraped"].append(run(args.series, args.seconds, args.spans, True))

    def best(name: str, key: str) -> float:
        return min(r[key] for r in results[name])

    emit({
        "bench": "scrape_under_load", "series": args.series, "seconds": args.seconds, "rounds": args.rounds,
        "spans_per_export": args.spans, "runs": results,
        "export_p99_ms": {name: best(name, "export_p99_ms") for name in results},
        "scrape_p50_ms": best("scraped", "scrape_p50_ms"),
        "p99_ratio_scraped_to_quiet": round(best("scraped", "export_p99_ms") / best("quiet", "export_p99_ms"), 2),
    })


if __name__ == "__main__":
    main()
