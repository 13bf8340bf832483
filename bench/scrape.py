"""Scrape cost: /metrics latency (p50/p99) and size at 1k, 10k and 50k active series.

A real sidecar (``App`` on its own event loop thread) holds the series; before
every scrape 5% of them are updated, as between two real scrapes, so the
renderer's per-series cache is exercised honestly. Both formats are measured
over HTTP. The same store is then rendered in-process by our renderer and by
prometheus_client's ``generate_latest`` over ``StoreCollector`` (the reference),
and their ratio is reported, as is our render time when every series changed
(no cached line usable); the garbage collector is tuned as ``agentprom serve`` tunes
it (``cli.tune_gc``). A scrape after every series changed is also timed over
HTTP with a probe task on the sidecar's loop that records the longest stretch the
loop was held without a turn (what an Export would have waited:
``all_changed_longest_hold_ms``).

The store runs without per-label value budgets (``max_label_values: 0``): with the
default budget of 1,000 values a label, the distinct tool names would fold into
``__overflow__`` and the store would stop growing near 3,000 series. ``fill``
fails rather than loop if the store stops growing anyway.

prometheus_client's reference render is slow (seconds per call at 50k series)
and is timed once per format at sizes above 20k (three times below);
``--no-reference`` leaves it out.

    python3 bench/scrape.py [--quick] [--sizes 1000,10000,50000] [--no-reference]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from workload import emit, http_get  # noqa: E402

from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client import generate_latest as client_text  # noqa: E402
from prometheus_client.openmetrics.exposition import generate_latest as client_openmetrics  # noqa: E402

from agentprom.app import App  # noqa: E402
from agentprom.cli import tune_gc  # noqa: E402
from agentprom.config.loader import validate  # noqa: E402
from agentprom.metrics.collector import StoreCollector  # noqa: E402
from agentprom.metrics.exposition import Renderer  # noqa: E402

TRACE = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


class LoopThread:
    def __init__(self, app: App) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = app
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(app.start())

    def call(self, work):
        if not asyncio.iscoroutine(work):
            fn = work

            async def wrapper():
                return fn()

            work = wrapper()
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(600)

    def stop(self) -> None:
        self.call(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def fill(store, size: int, rng: random.Random) -> list:
    """Add catalog-shaped series until ``size`` exist; return update functions for churn."""
    f = store.families
    updates = []
    i = 0
    active = sum(len(family) for family in f.values())
    while active < size:
        agent, tool, model = f"agent-{i % 25}", f"tool-{i}", f"model-{i % 40}"
        f["agent_tool_calls_total"].inc((agent, tool, "ok"), 1, TRACE)
        f["agent_tool_duration_seconds"].observe((agent, tool), rng.random(), TRACE)
        f["agent_tokens_total"].inc((agent, "openai", f"{model}-{i}", "input"), 1000)
        updates.append((agent, tool))
        i += 1
        before, active = active, sum(len(family) for family in f.values())
        if active == before:  # a limit folds new label sets: waiting for more would never end
            raise RuntimeError(f"the store stopped growing at {active} series (a series or label limit)")
    return updates


def churn(store, keys: list, share: float, rng: random.Random) -> None:
    calls = store.families["agent_tool_calls_total"]
    duration = store.families["agent_tool_duration_seconds"]
    for agent, tool in rng.sample(keys, max(1, int(len(keys) * share))):
        calls.inc((agent, tool, "ok"), 1, TRACE)
        duration.observe((agent, tool), rng.random() * 10, TRACE)


def invalidate(store) -> None:
    """Drop every cached line, as an update of every series does: the cost of a scrape after all
    series changed (label text stays: labels never change)."""
    for family in store.families.values():
        for series in family.all_series():
            series.text = series.om = None


async def longest_hold(stop: threading.Event) -> float:
    """The longest gap between two turns of this loop until ``stop`` is set, in seconds."""
    longest, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest


def scrape_all_changed(runner: LoopThread, store, url: str, headers: dict) -> tuple[float, float]:
    """(seconds of a scrape after every series changed, the longest hold of the loop during it)."""
    runner.call(lambda: invalidate(store))
    stop = threading.Event()
    probe = asyncio.run_coroutine_threadsafe(longest_hold(stop), runner.loop)
    time.sleep(0.05)
    start = time.perf_counter()
    http_get(url, headers)
    elapsed = time.perf_counter() - start
    stop.set()
    return elapsed, probe.result(60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--sizes", default=None, help="comma-separated active-series counts")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip prometheus_client's render (the slow reference)")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000,50000")).split(",")]
    # the garbage collector as `agentprom serve` sets it: with CPython's defaults, a scrape's copies of
    # 50,000 changed series set off full collections of 70-100 ms that the sidecar would not have
    tune_gc()
    rng = random.Random(1)
    results = []
    for size in sizes:
        config = validate({
            "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0",
                       "metrics_gzip_level": 0},
            "store": {"max_series_per_metric": 0, "max_label_values": 0},
        })
        app = App(config)
        runner = LoopThread(app)
        try:
            store = app.store
            keys = runner.call(lambda: fill(store, size, rng))
            active = runner.call(lambda: sum(len(family) for family in store.families.values()))
            url = f"http://{app.addresses['metrics']}/metrics"
            reps = 3 if args.quick else max(20, min(40, 400_000 // size))
            row = {"active_series": active}
            for fmt, headers in (("text", {}), ("openmetrics", {"Accept": "application/openmetrics-text"})):
                http_get(url, headers)  # first render fills the caches
                latencies = []
                for _ in range(reps):
                    runner.call(lambda: churn(store, keys, 0.05, rng))
                    start = time.perf_counter()
                    body = http_get(url, headers)
                    latencies.append(time.perf_counter() - start)
                elapsed, hold = scrape_all_changed(runner, store, url, headers)
                row[fmt] = {
                    "p50_ms": round(statistics.median(latencies) * 1000, 1),
                    "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                    "bytes": len(body),
                    "all_changed_scrape_ms": round(elapsed * 1000, 1),
                    "all_changed_longest_hold_ms": round(hold * 1000, 1),
                }
            # in-process: ours against the prometheus_client reference on the same store
            registry = CollectorRegistry(auto_describe=True)
            registry.register(StoreCollector(store))
            renderer = Renderer(store)
            ref_reps = 1 if (args.quick or size > 20_000) else 3

            def timed(fn, n: int) -> float:
                best = float("inf")
                for _ in range(n):
                    runner.call(lambda: churn(store, keys, 0.05, rng))
                    start = time.perf_counter()
                    runner.call(fn)
                    best = min(best, time.perf_counter() - start)
                return best

            for fmt, ours, theirs in (
                ("text", lambda: renderer.render(False), lambda: client_text(registry)),
                ("openmetrics", lambda: renderer.render(True), lambda: client_openmetrics(registry)),
            ):
                ours_s = timed(ours, ref_reps + 2)
                runner.call(lambda: invalidate(store))
                start = time.perf_counter()
                runner.call(ours)
                row[fmt]["render_all_changed_ms"] = round((time.perf_counter() - start) * 1000, 1)
                row[fmt]["render_ms"] = round(ours_s * 1000, 1)
                if args.reference:
                    theirs_s = timed(theirs, ref_reps)
                    row[fmt]["prometheus_client_ms"] = round(theirs_s * 1000, 1)
                    row[fmt]["speedup_vs_prometheus_client"] = round(theirs_s / ours_s, 1)
            results.append(row)
        finally:
            runner.stop()
    emit({"bench": "scrape", "churn_between_scrapes": 0.05, "gzip": False, "results": results})


if __name__ == "__main__":
    main()
