"""The series store's bounds: overflow, label hygiene, expiry, exemplars, and its self-metrics.

Every configuration rendered here is checked by the real ``promtool check metrics`` (text) and
by prometheus_client's strict OpenMetrics parser.
"""

from __future__ import annotations

import pytest

from agentprom.clock import ManualClock
from agentprom.metrics.series_store import OVERFLOW_LABEL, SeriesStore, StoreLimits
from tests.exposition import openmetrics_families, promtool_check, render, text_samples

TOOL_CALLS = "agent_tool_calls_total"
TOOL_DURATION = "agent_tool_duration_seconds"
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def make_store(**limits) -> tuple[SeriesStore, ManualClock]:
    clock = ManualClock()
    return SeriesStore(StoreLimits(**limits), clock), clock


def check_both_formats(promtool: str, store: SeriesStore) -> tuple[str, str]:
    text = render(store)
    promtool_check(promtool, text)
    om = render(store, openmetrics=True)
    openmetrics_families(om)  # raises on any violation of the OpenMetrics grammar
    return text, om


# -- overflow ------------------------------------------------------------------


def test_overflow_folds_new_label_sets_and_keeps_totals(promtool):
    store, _ = make_store(max_series_per_metric=3)
    calls = store[TOOL_CALLS]
    for i in range(10):
        calls.inc(("a", f"tool{i}", "ok"), 2)
    calls.inc(("a", "tool1", "ok"))  # an existing series still updates in place

    assert len(calls.series) == 3
    assert calls.overflow is not None and calls.overflow.value == 14
    assert sum(s.value for s in calls.all_series()) == 21  # nothing lost
    assert store.value("agentprom_series_overflow_total", (TOOL_CALLS,)) == 7

    text, om = check_both_formats(promtool, store)
    assert f'{TOOL_CALLS}{{agent="",tool="",status="",{OVERFLOW_LABEL}="true"}} 14\n' in text
    assert f'{TOOL_CALLS}{{agent="a",tool="tool1",status="ok"}} 3\n' in text
    assert 'agentprom_series_overflow_total{metric="agent_tool_calls_total"} 7\n' in text
    family = openmetrics_families(om)["agent_tool_calls"]
    overflow = [s for s in family.samples if s.labels.get(OVERFLOW_LABEL) == "true"]
    assert [s.value for s in overflow] == [14]


def test_overflow_histogram_and_unlimited(promtool):
    store, _ = make_store(max_series_per_metric=1)
    duration = store[TOOL_DURATION]
    duration.observe(("a", "x"), 0.05)
    duration.observe(("a", "y"), 0.5)
    duration.observe(("a", "z"), 5.0)
    assert duration.overflow.counts[-1] == 0 and sum(duration.overflow.counts) == 2
    text, _ = check_both_formats(promtool, store)
    assert f'{TOOL_DURATION}_count{{agent="",tool="",{OVERFLOW_LABEL}="true"}} 2\n' in text
    assert f'{TOOL_DURATION}_bucket{{agent="",tool="",{OVERFLOW_LABEL}="true",le="+Inf"}} 2\n' in text

    unlimited, _ = make_store(max_series_per_metric=0, max_label_values=0)
    for i in range(3000):
        unlimited[TOOL_CALLS].inc(("a", f"t{i}", "ok"))
    assert len(unlimited[TOOL_CALLS].series) == 3000 and unlimited[TOOL_CALLS].overflow is None


# -- label hygiene ---------------------------------------------------------------


def test_long_values_are_truncated(promtool):
    store, _ = make_store(max_label_value_length=10)
    calls = store[TOOL_CALLS]
    calls.inc(("agent", "x" * 50, "ok"))
    calls.inc(("agent", "x" * 60, "ok"))  # same 10-char prefix: the same series
    assert list(calls.series) == [("agent", "x" * 10, "ok")]
    assert store.value(TOOL_CALLS, ("agent", "x" * 10, "ok")) == 2
    text, _ = check_both_formats(promtool, store)
    assert f'tool="{"x" * 10}"' in text and "x" * 11 not in text


def test_invalid_utf8_is_replaced(promtool):
    store, _ = make_store()
    calls = store[TOOL_CALLS]
    # lone surrogates are what invalid UTF-8 escapes in JSON decode to; they cannot be encoded
    calls.inc(("agent", "bad\ud800name", "ok"))
    calls.inc(("agent", "naïve-ツール", "ok"))  # valid non-ASCII is kept as it is
    keys = set(calls.series)
    assert ("agent", "bad?name", "ok") in keys and ("agent", "naïve-ツール", "ok") in keys
    text, om = check_both_formats(promtool, store)
    text.encode("utf-8")  # the whole body is encodable
    assert 'tool="naïve-ツール"' in text


def test_label_values_are_escaped(promtool):
    store, _ = make_store()
    store[TOOL_CALLS].inc(("a", 'quote" back\\slash\nnewline', "ok"))
    text, om = check_both_formats(promtool, store)
    assert 'tool="quote\\" back\\\\slash\\nnewline"' in text
    sample = openmetrics_families(om)["agent_tool_calls"].samples[0]
    assert sample.labels["tool"] == 'quote" back\\slash\nnewline'


def test_allow_list_maps_other_values_to_other(promtool):
    store, _ = make_store(label_allow={"tool": r"[a-z_]{1,20}"})
    calls = store[TOOL_CALLS]
    calls.inc(("agent", "web_search", "ok"))
    calls.inc(("agent", "DROP TABLE users;", "ok"))
    calls.inc(("agent", "rm -rf /", "ok"))
    calls.inc(("agent", "web_search_and_then_more_text", "ok"))  # fullmatch, not search
    assert store.value(TOOL_CALLS, ("agent", "web_search", "ok")) == 1
    assert store.value(TOOL_CALLS, ("agent", "other", "ok")) == 3
    assert len(calls.series) == 2
    # labels without a pattern are untouched
    assert all(key[0] == "agent" for key in calls.series)
    check_both_formats(promtool, store)


def test_hygiene_applies_before_the_limit():
    """Values that normalize to an existing series never count against the limit."""
    store, _ = make_store(max_series_per_metric=2, label_allow={"tool": "ok_tool"})
    calls = store[TOOL_CALLS]
    for i in range(100):
        calls.inc(("agent", f"user-input-{i}", "ok"))
    assert calls.overflow is None
    assert store.value(TOOL_CALLS, ("agent", "other", "ok")) == 100


def test_wrong_label_count_is_a_clear_error():
    store, _ = make_store()
    with pytest.raises(ValueError, match="agent_tool_calls_total: expected labels"):
        store[TOOL_CALLS].inc(("only-one",))


# -- expiry ------------------------------------------------------------------------


def test_series_expire_after_ttl_on_the_injected_clock(promtool):
    store, clock = make_store(series_ttl_seconds=60)
    calls = store[TOOL_CALLS]
    calls.inc(("a", "old", "ok"))
    clock.advance(40)
    store.tick()
    calls.inc(("a", "fresh", "ok"))
    clock.advance(30)  # "old" is 70 s old, "fresh" 30 s
    assert store.expire() == 1
    assert set(calls.series) == {("a", "fresh", "ok")}
    assert store.value("agentprom_series_expired_total", (TOOL_CALLS,)) == 1

    store.refresh_self_metrics()
    assert store.value("agentprom_active_series", (TOOL_CALLS,)) == 1
    text, _ = check_both_formats(promtool, store)
    assert 'tool="old"' not in text and 'tool="fresh"' in text
    assert 'agentprom_series_expired_total{metric="agent_tool_calls_total"} 1\n' in text
    assert 'agentprom_active_series{metric="agent_tool_calls_total"} 1\n' in text

    # an expired series comes back from zero when it is seen again
    calls.inc(("a", "old", "ok"))
    assert store.value(TOOL_CALLS, ("a", "old", "ok")) == 1


def test_updates_keep_a_series_alive_and_self_metrics_never_expire():
    store, clock = make_store(series_ttl_seconds=60)
    calls = store[TOOL_CALLS]
    for _ in range(5):
        calls.inc(("a", "busy", "ok"))
        clock.advance(50)
        store.tick()
        assert store.expire() == 0
    store["agentprom_build_info"].set(("1.0",), 1)
    clock.advance(10_000)
    assert store.expire() == 1  # only "busy"
    assert store.value("agentprom_build_info", ("1.0",)) == 1


def test_expiry_frees_room_under_the_limit_and_drops_overflow():
    store, clock = make_store(series_ttl_seconds=10, max_series_per_metric=1)
    calls = store[TOOL_CALLS]
    calls.inc(("a", "first", "ok"))
    calls.inc(("a", "second", "ok"))  # folded
    assert calls.overflow is not None
    clock.advance(11)
    assert store.expire() == 2  # the series and the overflow series
    assert calls.overflow is None
    calls.inc(("a", "second", "ok"))
    assert store.value(TOOL_CALLS, ("a", "second", "ok")) == 1


def test_ttl_zero_never_expires():
    store, clock = make_store(series_ttl_seconds=0)
    store[TOOL_CALLS].inc(("a", "t", "ok"))
    clock.advance(10**9)
    assert store.expire() == 0
    assert store.value(TOOL_CALLS, ("a", "t", "ok")) == 1


def test_expired_aliases_do_not_resurrect_stale_series():
    """A raw label tuple that normalized to a series must not keep pointing at it after expiry."""
    store, clock = make_store(series_ttl_seconds=10, max_label_value_length=4)
    calls = store[TOOL_CALLS]
    calls.inc(("a", "longname", "ok"))
    clock.advance(11)
    store.expire()
    calls.inc(("a", "longname", "ok"))
    assert store.value(TOOL_CALLS, ("a", "long", "ok")) == 1
    assert len(calls.series) == 1


# -- exemplars -------------------------------------------------------------------------


def test_exemplars_only_in_openmetrics(promtool):
    store, clock = make_store()
    store[TOOL_CALLS].inc(("a", "search", "ok"), 1, (TRACE, SPAN))
    store[TOOL_DURATION].observe(("a", "search"), 0.03, (TRACE, SPAN))
    text, om = check_both_formats(promtool, store)
    assert TRACE not in text and "trace_id" not in text

    families = openmetrics_families(om)
    counter = families["agent_tool_calls"].samples
    total = [s for s in counter if s.name == "agent_tool_calls_total"][0]
    assert total.exemplar is not None
    assert total.exemplar.labels == {"trace_id": TRACE, "span_id": SPAN}
    assert total.exemplar.value == 1
    stamp = total.exemplar.timestamp
    assert stamp.sec + stamp.nsec / 1e9 == pytest.approx(clock.now())

    buckets = [s for s in families[TOOL_DURATION].samples if s.name.endswith("_bucket")]
    with_exemplar = [s for s in buckets if s.exemplar is not None]
    assert [s.labels["le"] for s in with_exemplar] == ["0.04"]  # the bucket the value fell in
    assert with_exemplar[0].exemplar.value == 0.03


def test_exemplar_is_the_latest_per_series_and_bucket():
    store, clock = make_store()
    duration = store[TOOL_DURATION]
    duration.observe(("a", "t"), 0.03, ("1" * 32, "1" * 16))
    clock.advance(1)
    duration.observe(("a", "t"), 0.035, ("2" * 32, "2" * 16))  # same bucket: replaces
    duration.observe(("a", "t"), 50.0, ("3" * 32, "3" * 16))  # another bucket
    om = openmetrics_families(render(store, openmetrics=True))
    exemplars = {
        s.labels["le"]: s.exemplar.labels["trace_id"]
        for s in om[TOOL_DURATION].samples
        if s.name.endswith("_bucket") and s.exemplar is not None
    }
    assert exemplars == {"0.04": "2" * 32, "81.92": "3" * 32}


def test_exemplars_can_be_switched_off(promtool):
    store, _ = make_store(exemplars=False)
    store[TOOL_CALLS].inc(("a", "search", "ok"), 1, (TRACE, SPAN))
    store[TOOL_DURATION].observe(("a", "search"), 0.03, (TRACE, SPAN))
    _, om = check_both_formats(promtool, store)
    assert TRACE not in om


# -- caching ---------------------------------------------------------------------------


def test_cached_text_is_refreshed_on_update():
    store, _ = make_store()
    calls = store[TOOL_CALLS]
    calls.inc(("a", "t", "ok"))
    from agentprom.metrics.exposition import Renderer

    renderer = Renderer(store)
    first = renderer.render()
    assert renderer.render() == first
    calls.inc(("a", "t", "ok"))
    assert 'agent_tool_calls_total{agent="a",tool="t",status="ok"} 2\n' in renderer.render()
    assert ("agent_tool_calls_total", (("agent", "a"), ("status", "ok"), ("tool", "t")), 2.0) in text_samples(
        renderer.render()
    )


def test_utf8_is_repaired_even_without_length_limit_or_patterns(promtool):
    store, _ = make_store(max_label_value_length=0)
    store[TOOL_CALLS].inc(("agent", "bad\udcffname", "ok"))
    store[TOOL_CALLS].inc(("agent", 42, "ok"))  # a non-string value becomes its text
    text, _ = check_both_formats(promtool, store)
    assert 'tool="bad?name"' in text and 'tool="42"' in text


def test_removed_series_is_not_reached_through_an_alias():
    store, _ = make_store(max_label_value_length=4)
    calls = store[TOOL_CALLS]
    calls.inc(("a", "longname", "ok"))
    calls.remove(("a", "long", "ok"))
    calls.inc(("a", "long", "ok"))  # a new series under the same key
    calls.inc(("a", "longname", "ok"))  # must update the new series, not the removed one
    assert store.value(TOOL_CALLS, ("a", "long", "ok")) == 2


def test_self_metrics_are_never_folded(promtool):
    """With a limit below the number of metrics, the overflow counter must still name each one."""
    store, _ = make_store(max_series_per_metric=1)
    names = [spec.name for spec in store.families.values() if spec.spec.type == "counter" and spec.spec.labels]
    for name in names:
        family = store[name]
        for i in range(3):
            family.inc(tuple(f"v{i}" for _ in family.spec.labels))
    overflow = store["agentprom_series_overflow_total"]
    folded = {key[0] for key in overflow.series}
    assert {n for n in names if store[n].spec.group != "self"} <= folded
    assert overflow.overflow is None
    check_both_formats(promtool, store)


# -- gauges past the series limit fold by sum ----------------------------------

IN_FLIGHT = "agent_tool_calls_in_flight"


def _gauge_total(store: SeriesStore, name: str) -> float:
    return sum(series.value for series in store[name].all_series())


def test_gauge_overflow_is_the_sum_of_the_folded_label_sets(promtool):
    """50 agents with one call in flight each, 2 series allowed: the overflow series holds 48, not 1."""
    store, _ = make_store(max_series_per_metric=2)
    in_flight = store[IN_FLIGHT]
    for i in range(50):
        in_flight.set((f"agent{i}",), 1)
    assert in_flight.overflow.value == 48
    assert _gauge_total(store, IN_FLIGHT) == 50
    in_flight.set(("agent10",), 5)  # a folded label set changes: the overflow moves by the delta
    in_flight.set(("agent11",), 0)
    in_flight.set(("agent11",), 0)  # setting the same value twice changes nothing
    in_flight.inc(("agent12",), 2)
    in_flight.inc(("agent13",), -1)
    assert in_flight.overflow.value == 48 + 4 - 1 + 2 - 1
    assert _gauge_total(store, IN_FLIGHT) == 50 + 4 - 1 + 2 - 1
    for i in range(50):
        in_flight.set((f"agent{i}",), 0)
    assert in_flight.overflow.value == 0 and _gauge_total(store, IN_FLIGHT) == 0
    assert store.value("agentprom_series_overflow_dropped_total", (IN_FLIGHT,)) == 0
    check_both_formats(promtool, store)


def test_gauge_fold_memory_is_bounded_and_what_it_cannot_hold_is_counted():
    """The store remembers max_folded_label_sets folded label sets per gauge (zero values are forgotten: they
    add nothing); updates of further label sets are dropped and counted, so the overflow never drifts."""
    store, _ = make_store(max_series_per_metric=3, max_folded_label_sets=3)
    active = store["agent_sessions_active"]
    for i in range(3 + 3 + 4):  # 3 own series, 3 remembered, 4 beyond
        active.set((f"agent{i}",), 2)
    assert active.overflow.value == 6
    assert store.value("agentprom_series_overflow_dropped_total", ("agent_sessions_active",)) == 4
    active.set(("agent3",), 0)  # forgotten: frees a place
    active.set(("agent9",), 7)
    assert active.overflow.value == 4 + 7
    active.set(("agent9",), 1)
    assert active.overflow.value == 4 + 1
    assert len(active._folded) <= 3


def test_folded_gauges_expire_and_move_out_when_room_frees():
    store, clock = make_store(max_series_per_metric=1, series_ttl_seconds=10)
    in_flight = store[IN_FLIGHT]
    in_flight.set(("own",), 1)
    in_flight.set(("stale",), 3)
    clock.advance(6)
    store.tick()
    in_flight.set(("kept",), 2)
    clock.advance(6)
    assert store.expire() == 1  # "own"; the overflow series stays, without "stale"
    assert in_flight.overflow.value == 2
    in_flight.set(("kept",), 4)  # room again: "kept" gets its own series and leaves the overflow
    assert store.value(IN_FLIGHT, ("kept",)) == 4
    assert in_flight.overflow.value == 0
    assert _gauge_total(store, IN_FLIGHT) == 4


def test_sessions_and_tool_calls_in_flight_past_the_limit_add_up():
    """The red-team scenario through the session tracker: 50 agents, one session and one tool call each."""
    from agentprom.config.loader import validate
    from agentprom.sessions.events import RuntimeEvent
    from agentprom.sessions.tracker import SessionTracker

    store, clock = make_store(max_series_per_metric=10)
    tracker = SessionTracker(store, validate({}).sessions, clock, sink=lambda r: None)
    for i in range(50):
        tracker.apply(RuntimeEvent(event_type="tool_started", session_id=f"s{i}", agent=f"agent{i}",
                                   tool_name="search", call_id="c"))
    assert _gauge_total(store, IN_FLIGHT) == 50 and store[IN_FLIGHT].overflow.value == 40
    assert _gauge_total(store, "agent_sessions_active") == 50
    for i in range(0, 50, 2):
        tracker.apply(RuntimeEvent(event_type="tool_completed", session_id=f"s{i}", agent=f"agent{i}",
                                   tool_name="search", call_id="c"))
    assert _gauge_total(store, IN_FLIGHT) == 25
