"""The agent call graph and per-run fan-out (issue 16, items 4 and 5), from hand-made trees through the
real translator, trace context and ``Runs`` listener on a manual clock. The recorded multi-agent tree is
checked in test_frameworks.py."""

from __future__ import annotations

import pytest

from agentprom.clock import ManualClock
from agentprom.config.loader import validate
from agentprom.context.resolved import Resolved
from agentprom.context.stage import TraceContext
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import STATUS_ERROR, Span
from agentprom.receiver.decode import Batch
from agentprom.runs import Runs
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class Rig:
    def __init__(self, **attribution) -> None:
        self.clock = ManualClock()
        config = validate({"attribution": attribution})
        self.store = SeriesStore(clock=self.clock)
        self.context = TraceContext(config.attribution, self.store)
        self.translator = Translator(self.store, context=self.context)
        self.runs = Runs(self.store, self.clock, config.attribution.run_grace_seconds,
                         config.attribution.max_open_runs)
        self.translator.listeners.append(self.runs.on_resolved)
        self.ids = 0

    def span(self, trace: int, parent: Span | None, name: str, attrs: dict, error: bool = False,
             start: int = 0, end: int = 10) -> Span:
        self.ids += 1
        return Span(trace.to_bytes(16, "big"), self.ids.to_bytes(8, "big"),
                    parent.span_id if parent else b"", name, 1, T0 + start * MS, T0 + end * MS,
                    STATUS_ERROR if error else 0, attrs, {"service.name": "svc"})

    def agent(self, trace: int, parent: Span | None, name: str, **kw) -> Span:
        return self.span(trace, parent, f"invoke_agent {name}",
                         {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}, **kw)

    def chat(self, trace: int, parent: Span, tokens: int = 10, cost: float = 0.25) -> Span:
        return self.span(trace, parent, "chat m", {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": tokens, "gen_ai.usage.output_tokens": tokens, "gen_ai.usage.cost": cost})

    def tool(self, trace: int, parent: Span, name: str) -> Span:
        return self.span(trace, parent, f"execute_tool {name}",
                         {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})

    def send(self, spans: list[Span]) -> None:
        self.translator.consume(Batch(spans=spans), "grpc")

    def histogram(self, name: str, agent: str, scope: str | None) -> tuple[float, float]:
        """(count, sum) of a fan-out histogram's series (``scope`` None: a family without that label)."""
        series = self.store[name].series.get((agent, scope) if scope is not None else (agent,))
        return (0, 0) if series is None else (sum(series.counts), series.sum)


def tree(rig: Rig, trace: int = 1) -> list[Span]:
    """orchestrator -> (research tool -> researcher -> fact_check tool -> fact_checker) and
    (write tool -> writer); children before parents, as spans end."""
    root = rig.agent(trace, None, "orchestrator", end=100)
    research = rig.tool(trace, root, "research")
    researcher = rig.agent(trace, research, "researcher", end=50)
    fact_check = rig.tool(trace, researcher, "fact_check")
    checker = rig.agent(trace, fact_check, "fact_checker", error=True, end=20)
    write = rig.tool(trace, root, "write")
    writer = rig.agent(trace, write, "writer", end=30)
    spans = [
        rig.chat(trace, checker, 1, 0.5), checker, fact_check,
        rig.tool(trace, researcher, "search_web"), rig.chat(trace, researcher), rig.chat(trace, researcher),
        researcher, research,
        rig.chat(trace, writer, 100, 1.0), writer, write,
        rig.chat(trace, root), rig.chat(trace, root), rig.chat(trace, root), root,
    ]
    return spans


def test_the_call_graph_has_an_edge_per_nested_invocation():
    rig = Rig()
    rig.send(tree(rig))
    calls = {key: s.value for key, s in rig.store["agent_subagent_calls_total"].series.items()}
    assert calls == {("orchestrator", "researcher", "ok"): 1, ("researcher", "fact_checker", "error"): 1,
                     ("orchestrator", "writer", "ok"): 1}
    durations = rig.store["agent_subagent_duration_seconds"].series
    assert set(durations) == {("orchestrator", "researcher"), ("researcher", "fact_checker"),
                              ("orchestrator", "writer")}
    assert durations[("orchestrator", "writer")].sum == pytest.approx(0.03)
    # a root invocation is no edge; every invocation is still one
    assert sum(s.value for s in rig.store["agent_invocations_total"].series.values()) == 4


def test_fan_out_per_run_own_and_with_sub_agents_after_the_grace():
    rig = Rig()
    rig.send(tree(rig))
    assert rig.histogram("agent_invocation_llm_calls", "orchestrator", "own") == (0, 0)  # not yet: the grace
    rig.clock.advance(10)
    rig.runs.expire()
    own = {agent: rig.histogram("agent_invocation_llm_calls", agent, "own")
           for agent in ("orchestrator", "researcher", "fact_checker", "writer")}
    assert own == {"orchestrator": (1, 3), "researcher": (1, 2), "fact_checker": (1, 1), "writer": (1, 1)}
    assert rig.histogram("agent_invocation_llm_calls", "orchestrator", "all") == (1, 7)
    assert rig.histogram("agent_invocation_llm_calls", "researcher", "all") == (1, 3)
    assert rig.histogram("agent_invocation_tool_calls", "orchestrator", "own") == (1, 2)  # research, write
    assert rig.histogram("agent_invocation_tool_calls", "orchestrator", "all") == (1, 4)  # + search_web, fact_check
    # tokens are input plus output: 3 x 20 own; + researcher 2 x 20 + checker 2 + writer 200
    assert rig.histogram("agent_invocation_tokens", "orchestrator", "own") == (1, 60)
    assert rig.histogram("agent_invocation_tokens", "orchestrator", "all") == (1, 302)
    assert rig.histogram("agent_invocation_cost_usd", "orchestrator", "all")[1] == pytest.approx(0.75 + 0.5 + 0.5 + 1.0)
    # no loop-cycle spans here: a run's cycles are its own LLM calls
    assert rig.histogram("agent_invocation_cycles", "orchestrator", None) == (1, 3)
    assert not rig.runs.tallies and not rig.runs.closed


def test_a_call_arriving_after_its_run_within_the_grace_is_counted_later_ones_are_late():
    rig = Rig()
    root = rig.agent(1, None, "planner", end=100)
    early = rig.chat(1, root)
    rig.send([root])  # parents first: the run closes before its calls arrive
    rig.send([early])
    rig.clock.advance(10)
    rig.runs.expire()
    assert rig.histogram("agent_invocation_llm_calls", "planner", "own") == (1, 1)
    rig.send([rig.chat(1, root)])  # after the run was observed
    rig.clock.advance(10)
    rig.runs.expire()
    assert rig.histogram("agent_invocation_llm_calls", "planner", "own") == (1, 1)
    assert rig.store.value("agentprom_fanout_missed_total", ("late",)) == 1
    assert not rig.runs.tallies


def test_steps_and_wrappers_belong_to_the_run_and_calls_outside_any_run_to_none():
    rig = Rig()
    root = rig.agent(1, None, "graph", end=100)
    step = rig.agent(1, root, "graph")  # a node of the same agent: a step, not a run
    rig.send([rig.chat(1, step), step, rig.chat(1, root), root])
    lone = rig.span(2, None, "chat m", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    rig.send([lone])
    rig.runs.drain()
    assert rig.histogram("agent_invocation_llm_calls", "graph", "own") == (1, 2)
    assert rig.store["agent_subagent_calls_total"].series == {}
    assert sum(sum(s.counts) for s in rig.store["agent_invocation_llm_calls"].series.values()) == 2  # own + all


def test_the_open_runs_are_bounded_and_what_is_dropped_is_counted():
    rig = Rig(max_open_runs=3)
    for trace in range(1, 6):  # five runs closed, none observed yet: the oldest are observed early
        root = rig.agent(trace, None, "a")
        rig.send([rig.chat(trace, root), root])
    assert len(rig.runs.tallies) <= 3 and len(rig.runs.closed) <= 3
    assert rig.histogram("agent_invocation_llm_calls", "a", "own")[0] >= 2
    for trace in range(6, 12):  # runs without calls: they wait to be observed, bounded alike
        rig.send([rig.agent(trace, None, "a")])
    assert len(rig.runs.closed) <= 3
    rig.runs.drain()
    assert rig.histogram("agent_invocation_llm_calls", "a", "own") == (11, 5)  # 11 runs, 5 LLM calls


def test_calls_of_runs_forgotten_long_ago_are_late_and_leave_no_tally():
    rig = Rig(max_open_runs=1)
    roots = [rig.agent(trace, None, "a") for trace in (1, 2, 3)]
    for root in roots:
        rig.send([root])
        rig.runs.drain()  # observed, then forgotten by the next (one run remembered)
    # calls of runs 1 and 2 arrive now: their runs are no longer remembered, but a run's agent span
    # comes with its calls, so a tally left open at the end of the batch is a late one
    rig.send([rig.chat(1, roots[0]), rig.chat(2, roots[1]), rig.tool(2, roots[1], "t")])
    assert not rig.runs.tallies
    assert rig.store.value("agentprom_fanout_missed_total", ("late",)) == 3
    rig.send([rig.chat(3, roots[2])])  # run 3 is still remembered: late as well
    assert rig.store.value("agentprom_fanout_missed_total", ("late",)) == 4
    assert rig.store.value("agentprom_fanout_missed_total", ("overflow",)) == 0


def test_sampling_weight_scales_the_runs_observed():
    rig = Rig()
    root = rig.agent(1, None, "a")
    root.trace_state = "ot=th:8"  # sampled with probability 1/2: stands for two runs
    rig.send([rig.chat(1, root), root])
    rig.runs.drain()
    assert rig.histogram("agent_invocation_llm_calls", "a", "own") == (2, 2)


def _observed(hold: bool, seed: int, monkeypatch) -> tuple[int, list]:
    """Random runs of many agents (sub-agents, sampled weights) observed through ``Runs`` with its held
    series (``hold``) or with every observation looked up by ``Family.observe``, across series expiry and a
    series limit that sends some agents' runs to the overflow series; the most agents whose series were
    held at once, and every series after."""
    import random

    from agentprom import runs as runs_module
    from agentprom.metrics.series_store import StoreLimits

    rng = random.Random(seed)
    clock = ManualClock()
    store = SeriesStore(StoreLimits(max_series_per_metric=12, series_ttl_seconds=30.0), clock=clock)
    runs = Runs(store, clock, 1.0, 50)
    most_held = 0
    if not hold:  # each observation Family.observe's way, instead of metrics/handles.py put_all's
        def put_all(row, values, weight):
            for handle, value in zip(row, values):
                handle.family.observe(handle.labels, value, None, weight)

        monkeypatch.setattr(runs_module, "put_all", put_all)
    for round_ in range(40):
        spans, classified = [], []
        for run in range(rng.randrange(1, 20)):
            trace = rng.randbytes(16)
            agent = f"agent-{rng.randrange(9)}"
            invocation = rng.randbytes(8)
            weight = rng.choice([1, 1, 1, 4, 0.5])
            for _ in range(rng.randrange(0, 6)):
                c = _classified("llm" if rng.random() < 0.6 else "tool", agent, invocation, weight,
                                tokens={"input": rng.randrange(100), "output": rng.randrange(50)},
                                cost=rng.choice([None, 0.01, 0.2]))
                spans.append(_settled(trace, rng.randbytes(8)))
                classified.append(c)
            spans.append(_settled(trace, invocation, end_ns=rng.randrange(10**12)))
            classified.append(_classified("agent", agent, None, weight))
        resolved = Resolved()
        resolved.settled_spans, resolved.settled = spans, classified
        runs.on_resolved(resolved)
        clock.advance(rng.choice([0.5, 2.0, 31.0]))
        store.tick()
        if rng.random() < 0.3:
            store.expire()
        runs.expire()
        most_held = max(most_held, len(runs._held.entries))
    runs.drain()
    monkeypatch.undo()
    return most_held, sorted((name, labels, list(series.counts), repr(series.sum), series.updated)
                  for name, family in store.families.items() if name.startswith("agent_invocation_")
                  for labels, series in [*family.series.items(), (("<overflow>",), family.overflow)]
                  if series is not None)


def _classified(kind: str, agent: str, invocation, weight, tokens=None, cost=None):
    from agentprom.conventions.classify import Classified
    from agentprom.model import Kind

    c = Classified(Kind(kind), agent, True, "")
    c.invocation, c.weight, c.cost = invocation, weight, cost
    if tokens:
        c.tokens.update(tokens)
    return c


def _settled(trace: bytes, span_id: bytes, end_ns: int = 0) -> Span:
    return Span(trace, span_id, b"", "s", 1, 0, end_ns, 0, {}, {})


@pytest.mark.parametrize("seed", range(4))
def test_runs_observed_through_held_series_leave_every_series_as_looked_up_ones(seed, monkeypatch):
    most_held, held = _observed(True, seed, monkeypatch)
    assert most_held > 1  # the held path was taken
    assert held == _observed(False, seed, monkeypatch)[1]
    assert any(labels == ("<overflow>",) and sum(counts) for _name, labels, counts, _sum, _at in held)
