"""Counters read from /metrics never go backwards across scrapes taken while spans are being ingested.

A sender exports agent runs (LLM calls, tool calls, errors) over OTLP/gRPC with the real SDK exporter
while a scraper reads /metrics over and over, in the text format and in OpenMetrics in turn; each
scrape is parsed with prometheus_client's parsers, and every counter sample (``_total``, and the
``_count``, ``_sum`` and ``_bucket`` of histograms) must be at least what the scrape before showed.

A large scrape lets ingestion run while its body is encoded, yet shows the one instant it read.
"""

from __future__ import annotations

import asyncio
import random
import threading
import urllib.request

import pytest

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.otel import tracer

MONOTONIC_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")


def scrape(url: str, openmetrics: bool) -> dict[tuple, float]:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers=headers), timeout=10) as response:
        text = response.read().decode()
    parse = parse_openmetrics if openmetrics else parse_text
    samples = {}
    for family in parse(text):
        if family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created") or not name.endswith(MONOTONIC_SUFFIXES):
                continue
            if openmetrics and family.type == "counter" and not name.endswith("_total"):
                name += "_total"  # the text parser names counters with _total, as exposed
            samples[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_counters_never_decrease_across_scrapes_during_ingestion(sidecar):
    rng = random.Random(14)
    stop = threading.Event()
    sent = [0]

    def send() -> None:
        with tracer(sidecar.grpc_address, service="consistency") as t:
            while not stop.is_set() and sent[0] < 3000:
                agent = f"agent{rng.randrange(5)}"
                with t.start_as_current_span(f"invoke_agent {agent}", attributes={
                        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}):
                    with t.start_as_current_span("chat", attributes={
                            "gen_ai.operation.name": "chat", "gen_ai.request.model": f"m{rng.randrange(3)}",
                            "gen_ai.usage.input_tokens": rng.randrange(1, 500),
                            "gen_ai.usage.output_tokens": rng.randrange(1, 100)}):
                        pass
                    with t.start_as_current_span("execute_tool", attributes={
                            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"t{rng.randrange(8)}",
                            **({"error.type": "Timeout"} if rng.random() < 0.2 else {})}):
                        pass
                sent[0] += 3

    sender = threading.Thread(target=send, name="sender")
    sender.start()
    seen: dict[tuple, float] = {}
    scrapes = went_back = 0
    calls_seen = []
    try:
        while sender.is_alive() or scrapes < 10:
            samples = scrape(sidecar.metrics_url, openmetrics=scrapes % 2 == 1)
            scrapes += 1
            calls_seen.append(sum(v for (name, _labels), v in samples.items() if name == "agent_llm_calls_total"))
            for key, value in samples.items():
                before = seen.get(key)
                if before is not None and value < before:
                    went_back += 1
                    raise AssertionError(f"{key} went from {before} to {value} at scrape {scrapes}")
                seen[key] = value
    finally:
        stop.set()
        sender.join(60)
    assert went_back == 0 and scrapes >= 10
    # the scrapes overlapped ingestion: they saw the LLM call counters at several values on the way
    assert len(set(calls_seen)) >= 3, calls_seen


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_large_scrape_lets_ingestion_run_and_shows_the_instant_it_read(make_sidecar, openmetrics):
    sidecar = make_sidecar({"store": {"max_series_per_metric": 0, "max_label_values": 0}})
    store = sidecar.app.store
    calls = store["agent_tool_calls_total"]

    def fill():  # a body of several MB: many chunks to encode
        durations = store["agent_llm_duration_seconds"]
        for i in range(3500):
            durations.observe((f"agent-{i}", "provider", f"a-model-with-a-rather-long-name-{i}", "chat"), 0.5)
        calls.inc(("a", "t", "ok"))

    sidecar.call(fill)
    routes = sidecar.app.metrics_routes
    snapshot = routes.snapshot
    ran_while_encoding = []

    def snapshot_then_ingest(openmetrics):
        taken = snapshot(openmetrics)
        body_task = asyncio.current_task()

        def ingest():  # an update at the loop's next turn, as an Export's would be
            ran_while_encoding.append(not body_task.done())
            calls.inc(("a", "t", "ok"))

        asyncio.get_running_loop().call_soon(ingest)
        return taken

    routes.snapshot = snapshot_then_ingest
    body = sidecar.scrape(openmetrics)
    routes.snapshot = snapshot
    assert ran_while_encoding == [True]  # the scrape yielded to the loop before its body was done
    line = 'agent_tool_calls_total{agent="a",tool="t",status="ok"} '
    assert line + "1\n" in body  # the update came after the snapshot: not in this scrape
    assert line + "2\n" in sidecar.scrape(openmetrics)
