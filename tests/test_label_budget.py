"""Per-label value budgets (issue 15): past its budget a new value of one label becomes ``__overflow__``
while the other labels keep theirs, so sums by the other labels stay exact under a flood of one label.

The unit tests drive a ``SeriesStore`` directly; the attack tests send spans through the real
translator and trace context. Seeded, no timed assertions: memory is measured with tracemalloc.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.app import store_limits
from agentprom.context.stage import TraceContext
from agentprom.metrics.label_budget import OVERFLOW_VALUE
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.model import STATUS_ERROR, Span
from agentprom.receiver.decode import Batch
from agentprom.translator import Translator

TOOL_CALLS = "agent_tool_calls_total"
TOOL_DURATION = "agent_tool_duration_seconds"
TOOL_ERRORS = "agent_tool_errors_total"
LABEL_OVERFLOW = "agentprom_label_overflow_total"
SERIES_OVERFLOW = "agentprom_series_overflow_total"
T0 = 1_700_000_000_000_000_000


def make_store(**limits) -> tuple[SeriesStore, ManualClock]:
    clock = ManualClock()
    return SeriesStore(StoreLimits(**limits), clock), clock


def replaced(store: SeriesStore, metric: str, label: str) -> float:
    return store.value(LABEL_OVERFLOW, (metric, label))


def by_label(store: SeriesStore, metric: str, label: str) -> dict[str, float]:
    """``sum by (label)`` over every series of a counter, the overflow series included."""
    family = store[metric]
    index = family.spec.labels.index(label)
    totals: dict[str, float] = {}
    for series in family.all_series():
        totals[series.labels[index]] = totals.get(series.labels[index], 0) + series.value
    return totals


# -- the budget on the store ---------------------------------------------------------------------

def test_past_the_budget_only_the_exploding_label_is_replaced():
    store, _ = make_store(max_label_values=3)
    calls = store[TOOL_CALLS]
    for i in range(10):
        calls.inc(("planner", f"t{i}", "ok"))
    calls.inc(("planner", "t1", "error"))  # an admitted value stays itself with another status
    keys = set(calls.series)
    assert keys == {("planner", "t0", "ok"), ("planner", "t1", "ok"), ("planner", "t2", "ok"),
                    ("planner", OVERFLOW_VALUE, "ok"), ("planner", "t1", "error")}
    assert calls.series[("planner", OVERFLOW_VALUE, "ok")].value == 7
    assert calls.overflow is None  # the whole-series fold was not needed
    assert by_label(store, TOOL_CALLS, "agent") == {"planner": 11}
    assert replaced(store, TOOL_CALLS, "tool") == 7
    assert replaced(store, TOOL_CALLS, "agent") == 0 and replaced(store, TOOL_CALLS, "status") == 0


def test_budgets_are_per_family_and_per_label():
    store, _ = make_store(max_label_values=2)
    for i in range(4):
        store[TOOL_CALLS].inc((f"a{i}", f"t{i}", "ok"))
    store[TOOL_DURATION].observe(("a3", "t3"), 0.5)  # another family: its own budgets
    assert set(store[TOOL_CALLS].series) == {("a0", "t0", "ok"), ("a1", "t1", "ok"),
                                             (OVERFLOW_VALUE, OVERFLOW_VALUE, "ok")}
    assert set(store[TOOL_DURATION].series) == {("a3", "t3")}
    assert replaced(store, TOOL_CALLS, "agent") == 2 and replaced(store, TOOL_CALLS, "tool") == 2


def test_a_label_may_have_its_own_budget():
    store, _ = make_store(max_label_values=2, label_values={"tool": 5, "agent": 0})
    calls = store[TOOL_CALLS]
    for i in range(8):
        calls.inc((f"agent{i}", f"t{i}", "ok"))
    tools = {key[1] for key in calls.series}
    agents = {key[0] for key in calls.series}
    assert tools == {f"t{i}" for i in range(5)} | {OVERFLOW_VALUE}
    assert agents == {f"agent{i}" for i in range(8)}  # 0: no budget for agent
    assert replaced(store, TOOL_CALLS, "tool") == 3 and replaced(store, TOOL_CALLS, "agent") == 0


def test_every_observation_of_a_replaced_value_is_counted():
    """The alias of a raw label set makes repeats cheap; the counter still counts each of them."""
    rng = random.Random(15)
    store, _ = make_store(max_label_values=4)
    calls = store[TOOL_CALLS]
    admitted: list[str] = []
    expected_replaced = 0
    sent: dict[str, int] = {}
    for _ in range(2000):
        agent = rng.choice(["a", "b", "c"])
        tool = f"t{rng.randrange(12)}"
        if tool not in admitted and len(admitted) < 4:
            admitted.append(tool)
        expected_replaced += tool not in admitted
        sent[agent] = sent.get(agent, 0) + 1
        calls.inc((agent, tool, "ok"))
    assert replaced(store, TOOL_CALLS, "tool") == expected_replaced > 0
    assert by_label(store, TOOL_CALLS, "agent") == sent
    assert by_label(store, TOOL_CALLS, "tool")[OVERFLOW_VALUE] == expected_replaced


def test_expiry_frees_the_budget():
    store, clock = make_store(max_label_values=2, series_ttl_seconds=10)
    calls = store[TOOL_CALLS]
    calls.inc(("a", "old1", "ok"))
    calls.inc(("a", "old2", "ok"))
    calls.inc(("a", "new", "ok"))
    assert ("a", OVERFLOW_VALUE, "ok") in calls.series
    clock.advance(6)
    store.tick()
    calls.inc(("a", "old2", "ok"))  # keeps old2 alive
    clock.advance(6)
    assert store.expire() == 2  # old1 and the __overflow__ series
    calls.inc(("a", "new", "ok"))  # old1's slot is free again
    assert set(calls.series) == {("a", "old2", "ok"), ("a", "new", "ok")}
    calls.inc(("a", "newer", "ok"))
    assert ("a", OVERFLOW_VALUE, "ok") in calls.series
    assert replaced(store, TOOL_CALLS, "tool") == 2


def test_the_series_limit_stays_the_last_fence():
    store, _ = make_store(max_label_values=3, max_series_per_metric=4)
    calls = store[TOOL_CALLS]
    for agent in ("a", "b"):
        for i in range(5):
            calls.inc((agent, f"t{i}", "ok"))
    # a: t0 t1 t2 __overflow__ (4 series: the limit); b's label sets fold into otel_metric_overflow
    assert set(calls.series) == {("a", "t0", "ok"), ("a", "t1", "ok"), ("a", "t2", "ok"),
                                 ("a", OVERFLOW_VALUE, "ok")}
    assert calls.overflow is not None and calls.overflow.value == 5
    assert store.value(SERIES_OVERFLOW, (TOOL_CALLS,)) == 5
    assert replaced(store, TOOL_CALLS, "tool") == 4  # a's t3, t4 and b's t3, t4


def test_overflow_value_passes_hygiene_and_allow_patterns():
    # a pattern __overflow__ does not match and a length limit shorter than it: it stays whole
    store, _ = make_store(max_label_values=2, max_label_value_length=5, label_allow={"tool": "[a-z]+"})
    calls = store[TOOL_CALLS]
    for tool in ("alpha", "betagamma", "Weird!", "delta", OVERFLOW_VALUE, "x" * 300, "\ud800bad", "alphabet"):
        calls.inc(("a", tool, "ok"))
    # values are budgeted after hygiene: alpha and "betag" (truncated) take the budget; every later
    # value (Weird! and the bad text become other, delta, xxxxx) is new and replaced; a literal
    # __overflow__ is the key of an existing series, found as such and not replaced (like a literal
    # "other"); alphabet truncates to alpha, which is admitted
    assert set(calls.series) == {("a", "alpha", "ok"), ("a", "betag", "ok"), ("a", OVERFLOW_VALUE, "ok")}
    assert calls.series[("a", OVERFLOW_VALUE, "ok")].value == 5
    assert calls.series[("a", "alpha", "ok")].value == 2
    # the self-metric's own label values are truncated too (metric="agent"): read the only series
    assert [s.value for s in store[LABEL_OVERFLOW].all_series()] == [4]


def test_a_literal_overflow_value_is_not_counted_as_replaced():
    store, _ = make_store(max_label_values=1)
    calls = store[TOOL_CALLS]
    for tool in ("t0", OVERFLOW_VALUE, OVERFLOW_VALUE, "t1"):
        calls.inc(("a", tool, "ok"))
    assert calls.series[("a", OVERFLOW_VALUE, "ok")].value == 3
    assert replaced(store, TOOL_CALLS, "tool") == 1


def test_bad_label_values_never_crash():
    store, _ = make_store(max_label_values=2)
    calls = store[TOOL_CALLS]
    for value in (None, 3, b"bytes", "\ud800", "", "x" * 10_000, float("nan")):
        calls.inc(("a", value, "ok"))  # type: ignore[arg-type]
    assert sum(series.value for series in calls.all_series()) == 7


def test_self_metrics_have_no_budget():
    store, _ = make_store(max_label_values=1)
    for i in range(5):
        store.count_overflow(f"m{i}")
    assert len(store[SERIES_OVERFLOW].series) == 5


def test_gauges_have_no_budget():
    """A gauge is set to each label set's value: merged into __overflow__ they would keep the last value, not
    their sum. Gauges stay under the series limit, whose overflow series is the sum of the folded ones."""
    store, _ = make_store(max_label_values=2, max_series_per_metric=3)
    active = store["agent_sessions_active"]
    for i in range(6):
        active.set((f"agent{i}",), i + 1)
    assert sum(series.value for series in active.all_series()) == 21
    assert OVERFLOW_VALUE not in {series.labels[0] for series in active.all_series()}
    assert replaced(store, "agent_sessions_active", "agent") == 0


def test_config_keys_and_validation(tmp_path):
    limits = store_limits(validate({}))
    assert limits.max_label_values == 1000 and limits.label_values == {}
    limits = store_limits(validate({"store": {"max_label_values": 0, "label_values": {"tool": 50}}}))
    assert limits.max_label_values == 0 and limits.label_values == {"tool": 50}
    path = tmp_path / "agentprom.yaml"
    path.write_text("store:\n  label_values: {tool: 5, metric: 3, nope: 2, model: -1}\n  max_label_values: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "'metric' is not a label of any span-derived metric" in text and "'nope'" in text
    assert "model: -1 is negative" in text and "store.max_label_values" in text


# -- attacks through the translator --------------------------------------------------------------

class Rig:
    """The real translator with a trace context, on a manual clock, with the default store limits. The
    context's own bound is lowered (each attack span is a trace of its own, held for its waiting time), so
    that what the attack leaves in memory is the store's; the context's bounds are test_context.py's."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        config = validate({"attribution": {"max_indexed_spans": 5000}})
        self.store = SeriesStore(store_limits(config), self.clock)
        self.context = TraceContext(config.attribution, self.store)
        self.translator = Translator(self.store, context=self.context)
        self.next_id = 1

    def tool_span(self, agent: str, tool: str, error: bool = False) -> Span:
        n = self.next_id
        self.next_id += 1
        return Span(n.to_bytes(16, "big"), n.to_bytes(8, "big"), b"", f"execute_tool {tool}", 1, T0, T0 + 10**6,
                    STATUS_ERROR if error else 0,
                    {"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": agent, "gen_ai.tool.name": tool},
                    {"service.name": "svc"}, exception_type="Boom" if error else None)

    def send(self, spans: list[Span]) -> None:
        self.translator.consume(Batch(spans=spans), "grpc")


def attack(rig: Rig, agents: list[str], names: int, seed: int,
           admitted: set[str] | None = None) -> tuple[dict[str, int], int, float]:
    """``names`` distinct tool names spread over ``agents``, with a few real tools called in between.
    Returns the spans sent per agent, the tool values replaced (by a model of the budget: the first
    ``max_label_values`` distinct names are admitted, ``admitted`` those the store has seen before), and
    the tracemalloc peak growth in bytes."""
    rng = random.Random(seed)
    budget = rig.store.limits.max_label_values
    real = ["web_search", "calculator", "read_file"]
    sent = {agent: 0 for agent in agents}
    admitted = set(admitted or ())
    expected = 0
    batch: list[Span] = []
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    halfway = 0
    for i in range(names):
        agent = agents[i % len(agents)]
        tools = [f"attack-{i}-{rng.randrange(10**6)}"]
        if rng.random() < 0.1:
            tools.append(rng.choice(real))
        for tool in tools:
            if tool not in admitted and len(admitted) < budget:
                admitted.add(tool)
            expected += tool not in admitted
            batch.append(rig.tool_span(agent, tool))
            sent[agent] += 1
        if len(batch) >= 500:
            rig.send(batch)
            batch = []
        if i == names // 2:
            halfway = tracemalloc.get_traced_memory()[0]
    rig.send(batch)
    rig.translator.drain()
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # flat: the second half of the attack added (almost) nothing that stays
    assert now - halfway < 4 * 2**20, (halfway, now)
    return sent, expected, peak - base


def check_attack(rig: Rig, sent: dict[str, int], expected: int, peak: float) -> None:
    store = rig.store
    budget = store.limits.max_label_values
    calls = store[TOOL_CALLS]
    assert by_label(store, TOOL_CALLS, "agent") == sent  # sum by (agent): exact for each agent
    assert calls.overflow is None  # nothing lost its agent to the whole-series fold
    assert len(calls.series) <= (budget + 1) * len(sent)
    assert by_label(store, TOOL_CALLS, "tool")[OVERFLOW_VALUE] == expected
    assert replaced(store, TOOL_CALLS, "tool") == expected
    assert replaced(store, TOOL_DURATION, "tool") == expected  # every span is a call and a duration
    assert replaced(store, TOOL_CALLS, "agent") == 0
    durations = store[TOOL_DURATION]
    agent_index = durations.spec.labels.index("agent")
    for agent, count in sent.items():
        assert sum(sum(s.counts) for s in durations.all_series() if s.labels[agent_index] == agent) == count
    assert peak < 48 * 2**20, peak  # generous: the store, the trace context and the aliases, all bounded


def test_attack_of_100000_tool_names_from_one_agent():
    rig = Rig()
    sent, expected, peak = attack(rig, ["victim"], 100_000, seed=1)
    assert sum(sent.values()) > 100_000 and expected > 99_000 - 1000
    check_attack(rig, sent, expected, peak)


def test_attack_of_100000_tool_names_from_two_agents_keeps_each_total():
    rig = Rig()
    rig.send([rig.tool_span("bystander", "web_search") for _ in range(7)] + [rig.tool_span("bystander", "x", True)])
    sent, expected, peak = attack(rig, ["victim", "accomplice"], 100_000, seed=2, admitted={"web_search", "x"})
    sent["bystander"] = 8
    check_attack(rig, sent, expected, peak)
    errors = by_label(rig.store, TOOL_ERRORS, "agent")
    assert errors == {"bystander": 1}
