"""Series handles (metrics/handles.py): counting through held series changes nothing but the cost.

Each test counts the same calls twice, once through the translator (which holds the series of
each call's label values) and once through the families' own ``inc``/``observe`` (which look every
label tuple up), and compares every series, self-metrics included. Seeded.
"""

from __future__ import annotations

import random

import pytest

from agentprom.clock import ManualClock
from agentprom.config.schema import DimensionConfig
from agentprom.conventions.classify import Classified
from agentprom.dimensions import with_dimensions
from agentprom.metrics.catalog import CATALOG
from agentprom.metrics.handles import Handle, Handles, put_all
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.model import Kind
from agentprom.translator import MAX_HELD_VALUES, Translator


def typed(value):
    """A value with its type (``1 == 1.0``: the type tells them apart), lists item by item."""
    return [typed(v) for v in value] if isinstance(value, list) else (value, type(value).__name__)


def state(store: SeriesStore) -> dict:
    """Every series of every family: value, bucket counts, sum (each with its type), exemplars (ids,
    value, time), when it was updated and its cached lines."""
    out = {}
    for name, family in store.families.items():
        for series in family.all_series():
            exemplars = None if series.exemplars is None else [
                None if e is None else (e.trace_id, e.span_id, typed(e.value), e.timestamp) for e in series.exemplars]
            out[name, series.labels] = (typed(series.value), typed(series.counts), typed(series.sum), exemplars,
                                        series.updated, series.text, series.om)
    return out


def mark_rendered(store: SeriesStore) -> None:
    """As a scrape leaves them: every series' formatted lines cached (an update must clear them)."""
    for family in store.families.values():
        for series in family.all_series():
            series.text = series.om = "cached"


def plain_record(t: Translator, c: Classified, duration: float, exemplar, w: float) -> None:
    """What ``Translator.record`` did before handles: every update through the family's lookup."""
    status = "ok" if c.ok else "error"
    agent = c.agent
    if c.kind is Kind.TOOL:
        t._tool_calls.inc((agent, c.tool, status), w, exemplar)
        t._tool_duration.observe((agent, c.tool), duration, exemplar, w)
        if not c.ok:
            t._tool_errors.inc((agent, c.tool, c.error_type), w)
            t._errors.inc((agent, "tool", c.error_type), w)
    elif c.kind is Kind.LLM:
        labels = (agent, c.provider, c.model)
        t._llm_calls.inc((*labels, c.operation, status), w, exemplar)
        t._llm_duration.observe((*labels, c.operation), duration, exemplar, w)
        for token_type, count in c.tokens.items():
            if count:
                t._tokens.inc((*labels, token_type), count * w)
        if c.cost is None and any(c.tokens.values()):  # no price table here: unpriced
            t._unpriced.inc((c.provider, c.model), w)
        if c.cost:
            t._cost.inc(labels, c.cost * w)
        for reason in c.finish_reasons:
            t._finish_reasons.inc((*labels, reason), w)
        if not c.ok:
            t._errors.inc((agent, "llm", c.error_type), w)
    else:
        t._invocations.inc((agent, status), w, exemplar)
        t._invocation_duration.observe((agent,), duration, exemplar, w)
        if c.caller is not None:
            t._subagent_calls.inc((c.caller, agent, status), w, exemplar)
            t._subagent_duration.observe((c.caller, agent), duration, exemplar, w)
        if not c.ok:
            t._errors.inc((agent, "agent", c.error_type), w)


def calls(rng: random.Random, n: int, tools: int = 6) -> list[tuple[Classified, float, tuple, float]]:
    """``n`` seeded calls of every kind, with errors, weights, callers, token types and reasons."""
    out = []
    for i in range(n):
        ok = rng.random() > 0.2
        kind = rng.choice([Kind.TOOL, Kind.LLM, Kind.LLM, Kind.AGENT])
        c = Classified(kind, rng.choice(["planner", "coder", "x" * 200]), ok, "" if ok else "Timeout")
        if kind is Kind.TOOL:
            c.tool = f"tool-{rng.randrange(tools)}"
        elif kind is Kind.LLM:
            c.provider, c.model, c.operation = "openai", rng.choice(["gpt-4o", "gpt-4o-mini"]), "chat"
            c.tokens = {t: rng.randrange(0, 500) for t in rng.sample(["input", "output", "cache_read"], 2)}
            c.cost = rng.choice([None, 0.25, 0.0])
            c.finish_reasons = tuple(rng.sample(["stop", "length"], rng.randrange(3)))
        else:
            c.caller = rng.choice([None, "planner"])
        ids = (rng.randbytes(16), rng.randbytes(8))
        out.append((c, rng.random() * 3, ids, rng.choice([1, 1, 2.5])))
    return out


def twins(dimensions: tuple = (), **limits) -> tuple[tuple[SeriesStore, Translator], tuple[SeriesStore, Translator],
                                                      ManualClock]:
    clock = ManualClock()
    made = []
    for _ in range(2):
        store = SeriesStore(StoreLimits(**limits), clock, with_dimensions(CATALOG, dimensions) if dimensions else None)
        made.append((store, Translator(store, dimensions=dimensions)))
    return made[0], made[1], clock


def count_both(held, plain, batch, tenants: tuple[str, ...] = ()) -> None:
    for i, (c, duration, ids, w) in enumerate(batch):
        if tenants:  # the span's dimension value, as the translator reads it before counting
            held[1]._dimensions.current = plain[1]._dimensions.current = (tenants[i % len(tenants)],)
        held[1].record(c, duration, ids, w)
        plain_record(plain[1], c, duration, ids, w)


def held_series(translator: Translator) -> int:
    """Handles holding their series (not going the family's way each time)."""
    found = 0
    for entry in translator._handles.entries.values():
        for name in entry.__slots__:
            value = getattr(entry, name, None)
            found += isinstance(value, Handle) and value.series is not None
    return found


def test_held_series_get_exactly_the_updates_lookups_give():
    held, plain, clock = twins()
    batch = calls(random.Random(1), 3000)
    count_both(held, plain, batch[:1500])
    clock.advance(1)
    for store, _t in (held, plain):
        store.tick()
        mark_rendered(store)
    count_both(held, plain, batch[1500:])
    assert state(held[0]) == state(plain[0])
    assert held_series(held[1]) > 20  # the handles were used, not bypassed


@pytest.mark.parametrize("exemplars", [True, False])
def test_with_dimensions_and_without_exemplars_alike(exemplars):
    tenant = DimensionConfig(label="tenant", attributes=("app.tenant",), default="none",
                             metrics=("agent_tokens_total", "agent_tool_calls_total", "agent_llm_duration_seconds"))
    held, plain, _ = twins((tenant,), exemplars=exemplars)
    count_both(held, plain, calls(random.Random(4), 2000), tenants=("a", "b", "none"))
    got = state(held[0])
    assert got == state(plain[0])
    assert {key[1][-1] for key in got if key[0] == "agent_tokens_total"} == {"a", "b", "none"}


def test_label_sets_mapped_elsewhere_still_count_their_self_metrics_per_observation():
    """Truncated values, a label budget and the series limit: the held path must go through the
    family each time, so the overflow self-metrics count every observation."""
    held, plain, _ = twins(max_label_values=3, max_series_per_metric=12, max_label_value_length=16)
    count_both(held, plain, calls(random.Random(2), 3000, tools=40))
    got, want = state(held[0]), state(plain[0])
    assert got == want
    overflow = {key: value for key, value in want.items()
                if key[0] in ("agentprom_label_overflow_total", "agentprom_series_overflow_total")}
    assert overflow and all(value[0][0] > 10 for value in overflow.values())


def test_a_series_that_expired_is_made_again_not_updated_in_the_dark():
    held, plain, clock = twins(series_ttl_seconds=10)
    batch = calls(random.Random(3), 400)
    count_both(held, plain, batch[:200])
    clock.advance(60)
    for store, _t in (held, plain):
        store.tick()
        assert store.expire() > 0
    count_both(held, plain, batch[200:])
    assert state(held[0]) == state(plain[0])
    # without the removal check the held series would be the expired ones: counted, never exported
    assert held[0].value("agent_tool_calls_total", next(
        key for key in held[0]["agent_tool_calls_total"].series)) > 0


def test_the_cache_is_bounded():
    store = SeriesStore(StoreLimits(), ManualClock())
    handles = Handles(store, max_entries=5)
    for i in range(12):
        entries = handles.current()
        entries[(i,)] = Handle(store["agent_tool_calls_total"], ("a", f"t{i}", "ok"))
        assert len(entries) <= 5


@pytest.mark.parametrize("series_limit, kept", [(2000, MAX_HELD_VALUES), (5, 5)])
def test_finish_reasons_a_span_names_cannot_grow_a_handle_without_bound(series_limit, kept):
    """At most MAX_HELD_VALUES held per label set, and none for reasons past the series limit."""
    held, plain, _ = twins(max_series_per_metric=series_limit)
    batch = []
    for i in range(500):
        c = Classified(Kind.LLM, "planner", True, "")
        c.provider, c.model, c.operation = "openai", "gpt-4o", "chat"
        c.finish_reasons = (f"reason-{i}",)
        batch.append((c, 0.5, None, 1))
    count_both(held, plain, batch)
    assert state(held[0]) == state(plain[0])
    (llm,) = [h for key, h in held[1]._handles.entries.items() if key[0] == "llm"]
    assert len(llm.finish) == kept


def test_put_all_leaves_every_series_as_observe_does():
    """``put_all`` (a run's fan-out observations, runs.py) against ``Family.observe``: label sets held and
    not, an overflow series past the series limit, expiry in between, cached lines, sampled weights."""
    rng = random.Random(7)
    clocks = [ManualClock(), ManualClock()]
    stores = [SeriesStore(StoreLimits(max_series_per_metric=10, series_ttl_seconds=30.0), clock) for clock in clocks]
    names = ("agent_invocation_llm_calls", "agent_invocation_tokens", "agent_invocation_cost_usd",
             "agent_invocation_cycles")
    held = Handles(stores[0])
    taken = 0
    for _ in range(400):
        agent = f"agent-{rng.randrange(14)}"
        labels = ((agent, "own"), (agent, "all"), (agent, "own"), (agent,))
        values = tuple(rng.choice((0, 1, 3, 250, 0.02, 7.5, 10**6)) for _ in names)
        weight = rng.choice((1, 1, 2.5, 0.25))
        if rng.random() < 0.2:
            for store in stores:
                mark_rendered(store)
        entries = held.current()
        row = entries.get(agent)
        if row is None:
            row = entries[agent] = tuple(Handle(stores[0][name], label) for name, label in zip(names, labels))
        taken += sum(handle.series is not None for handle in row)
        put_all(row, values, weight)
        for name, label, value in zip(names, labels, values):
            stores[1][name].observe(label, value, None, weight)
        if rng.random() < 0.05:
            seconds = rng.choice((1.0, 40.0))
            for clock, store in zip(clocks, stores):
                clock.advance(seconds)
                store.tick()
                store.expire()
    assert state(stores[0]) == state(stores[1])
    assert taken > 400 and stores[0]["agent_invocation_llm_calls"].overflow is not None  # both paths taken
