"""A scrape's snapshot (metrics/exposition.py ``Snapshot``): the instant it was taken, formatted later in steps.

The /metrics route reads the store in one go but formats the series that changed afterwards, a
step at a time, with ingestion running in between. What it serves must be exactly what formatting
at the instant would have given, and lines formatted from an old copy must never be cached.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from agentprom.clock import ManualClock
from agentprom.metrics.dynamic import DynamicFamilies, DynamicSpec
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import Exemplar, SeriesStore, StoreLimits
from agentprom.server import metrics_routes
from agentprom.server.metrics_routes import MetricsRoutes

TRACE, SPAN = bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), bytes.fromhex("b7ad6b7169203331")


def busy_store(seed: int = 7, tools: int = 300) -> SeriesStore:
    """Counters, histograms with exemplars, an overflowing label budget and run-time families."""
    rng = random.Random(seed)
    store = SeriesStore(StoreLimits(max_series_per_metric=tools // 2), ManualClock())
    for i in range(tools):
        agent, tool = f"agent{i % 7}", f"tool{i}"
        store["agent_tool_calls_total"].inc((agent, tool, "ok"), rng.randrange(1, 9), (TRACE, SPAN))
        store["agent_tool_duration_seconds"].observe((agent, tool), rng.random() * 3, (TRACE, SPAN), 1)
    families = DynamicFamilies(store, ttl=300, max_families=5, reserved=frozenset())
    jobs = families.get(DynamicSpec("jobs_total", "counter", "Jobs."))
    latency = families.get(DynamicSpec("latency_seconds", "histogram", "Latency.", unit="seconds"))
    for i in range(20):
        series = jobs.lookup({"queue": f"q{i}"})
        series.value = i
        series.exemplars = [Exemplar(TRACE, SPAN, 1, 1_700_000_000.0)]
        hist = latency.lookup({"queue": f"q{i}"})
        hist.bounds, hist.counts, hist.sum = (0.1, 1.0), [i, 1, 2], 3.5 + i
    return store


def samples(text: str) -> list[str]:
    """The lines without their exemplars: a histogram's exemplar may be replaced by a later span
    of the same bucket before the snapshot formats it (exposition.Snapshot.freeze)."""
    return [line.split(" # ")[0] for line in text.splitlines()]


def change_everything(store: SeriesStore, rng: random.Random) -> None:
    for family in (store["agent_tool_calls_total"], store["agent_tool_duration_seconds"]):
        for labels in list(family.series):
            if family is store["agent_tool_calls_total"]:
                family.inc(labels, rng.randrange(1, 5), (rng.randbytes(16), rng.randbytes(8)))
            else:
                family.observe(labels, rng.random() * 5, (rng.randbytes(16), rng.randbytes(8)), 1)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_snapshot_formatted_in_steps_is_the_exposition_of_its_instant(openmetrics):
    store, rng = busy_store(), random.Random(3)
    at_the_instant = "".join(Renderer(busy_store()).parts(openmetrics))  # the same store, formatted at once
    snapshot = Renderer(store).snapshot(openmetrics)
    waiting = len(snapshot.later)
    # nothing was cached: every histogram waits (and the overflow series), in OpenMetrics every counter
    # too (and the store's own counters of what overflowed)
    if openmetrics:
        assert waiting == 2 * (150 + 1 + 20) + 2
    else:
        assert waiting == 150 + 1 + 20
    steps = 0
    while not snapshot.format(97):
        steps += 1
        change_everything(store, rng)  # ingestion between steps: the copies keep the instant
    assert steps == -(-waiting // 97) - 1
    assert samples("".join(snapshot.parts)) == samples(at_the_instant)
    assert " # {" in "".join(snapshot.parts) if openmetrics else " # {" not in "".join(snapshot.parts)
    # every series changed after the snapshot: nothing it formatted may stand in the cache
    fresh = Renderer(store).render(openmetrics)
    assert fresh != at_the_instant
    assert "".join(Renderer(store).parts(openmetrics)) == fresh


@pytest.mark.parametrize("openmetrics", [False, True])
def test_lines_formatted_from_an_unchanged_copy_are_cached(openmetrics):
    store = busy_store()
    renderer = Renderer(store)
    first = renderer.snapshot(openmetrics)
    first.format()
    second = renderer.snapshot(openmetrics)
    assert second.later == [] and second.parts == first.parts  # all from the cache
    durations, calls = store["agent_tool_duration_seconds"], store["agent_tool_calls_total"]
    labels = next(iter(durations.series))
    durations.observe(labels, 0.5)
    first_call = next(iter(calls.series))
    calls.inc(first_call)  # in the text format a counter's line is formatted at the instant: nothing to copy
    third = renderer.snapshot(openmetrics)
    expected = {id(durations.series[labels])} | ({id(calls.series[first_call])} if openmetrics else set())
    assert {id(entry[2]) for entry in third.later} == expected
    assert third.parts != second.parts


def test_only_the_snapshot_that_marked_a_series_last_caches_it():
    """A: snapshot, the series changes, B: snapshot. A's lines are from before the change: when A
    finishes after B marked the series, it must not cache them (B's are the current ones)."""
    store = SeriesStore(clock=ManualClock())
    durations = store["agent_tool_duration_seconds"]
    durations.observe(("a", "t"), 0.5)
    renderer = Renderer(store)
    a = renderer.snapshot()
    durations.observe(("a", "t"), 0.5)
    b = renderer.snapshot()
    a.format()
    series = durations.series[("a", "t")]
    assert series.text is b  # still B's mark: A's stale lines were not cached
    b.format()
    assert 'agent_tool_duration_seconds_count{agent="a",tool="t"} 2\n' in series.text
    assert 'agent_tool_duration_seconds_count{agent="a",tool="t"} 1\n' in "".join(a.parts)
    assert renderer.render() == "".join(b.parts)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_metrics_route_lets_the_loop_run_while_it_formats(openmetrics, monkeypatch):
    """A scrape of a store whose every series changed yields to the loop between formatting steps
    (ingestion runs there) and still serves the instant it read."""
    monkeypatch.setattr(metrics_routes, "_SERIES_PER_STEP", 50)
    store, twin = busy_store(tools=400), busy_store(tools=400)
    twin.expire()
    twin.refresh_self_metrics()  # as the route does before it reads
    expected = "".join(Renderer(twin).parts(openmetrics))
    routes = MetricsRoutes(store, ready=lambda: (True, {}))
    rng = random.Random(5)

    async def scrape() -> tuple[bytes, int]:
        turns = 0
        done = asyncio.Event()

        async def ingest() -> None:  # what the receivers do between the scrape's steps
            nonlocal turns
            while not done.is_set():
                turns += 1
                change_everything(store, rng)
                await asyncio.sleep(0)

        task = asyncio.create_task(ingest())
        body, _ = await routes._make_body(openmetrics, gzip=False)
        done.set()
        await task
        return b"".join(body), turns

    body, turns = asyncio.run(scrape())
    assert turns >= 200 // 50  # a turn per formatting step (200 histogram series and the overflow one)
    assert samples(body.decode())[:len(samples(expected))] == samples(expected)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_family_that_gains_a_label_after_the_snapshot_keeps_the_instants_labels(openmetrics):
    """A run-time family re-sorts its label names when a point brings a new one (DynamicFamily.widen);
    a histogram copied before that must keep the label text of the instant."""
    store = SeriesStore(clock=ManualClock())
    families = DynamicFamilies(store, ttl=300, max_families=5, reserved=frozenset())
    latency = families.get(DynamicSpec("latency_seconds", "histogram", "Latency.", unit="seconds"))
    series = latency.lookup({"queue": "q1"})
    series.bounds, series.counts, series.sum = (0.1,), [1, 2], 3.0
    snapshot = Renderer(store).snapshot(openmetrics)
    other = latency.lookup({"aaa": "x", "queue": "q2"})  # now ("aaa", "queue"): q1's series is ("", "q1")
    other.bounds, other.counts, other.sum = (0.1,), [0, 1], 1.0
    snapshot.format()
    lines = [line for line in "".join(snapshot.parts).splitlines() if line.startswith("latency_seconds_count")]
    assert lines == ['latency_seconds_count{queue="q1"} 3']
    assert 'latency_seconds_count{queue="q1"} 3' in Renderer(store).render(openmetrics)


def test_a_snapshot_abandoned_half_way_leaves_no_mark():
    store = busy_store()
    snapshot = Renderer(store).snapshot(False)
    snapshot.format(10)
    waiting = [entry[2] for entry in snapshot.later[10:]]
    assert waiting and all(series.text is snapshot for series in waiting)
    snapshot.abandon()
    assert all(series.text is None for series in waiting)
    assert "".join(Renderer(store).parts(False)) == "".join(Renderer(busy_store()).parts(False))
