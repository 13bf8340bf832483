"""Per-run fan-out: how many LLM calls, tool calls, tokens and dollars each agent invocation took.

A translator listener, like the session tracker: it reads the spans the trace context settles
(context/stage.py), in arrival order. A settled LLM or tool call knows the counted invocation it
belongs to (``Classified.invocation``, the nearest counted agent span above it: steps and wrappers
are transparent, a sub-agent is a run of its own), so its call is added to that run's tally. When
the run's own agent span is settled, the run is *closed*; it is observed ``grace`` seconds later
(``expire``, periodic), so that calls which arrive just after their run's span (exporters that send
parents first, a remote sub-agent's batch) are still in it:

* ``agent_invocation_cycles``: the run's reasoning cycles, i.e. its framework's loop-cycle spans
  (``LOOP_CYCLE_OPERATIONS``: Strands' ``execute_event_loop_cycle``) where there are any, else its own
  LLM calls (one model turn per cycle).
* ``scope="own"``: the run's own calls; ``scope="all"``: with those of every sub-agent run below it.
  A sub-agent's run closes before its caller's (it ends first), so its ``all`` tally is added to
  its caller's when it is observed.
* A run is observed once, with its agent span's sampling weight (a sampled trace stands for 1/p runs).
* A call settled after its run was observed is not added anywhere: counted in
  ``agentprom_fanout_missed_total{reason="late"}`` (a run's agent span is settled in the same batch
  as its calls, after them, since they wait for it: a tally still open at the end of a batch is for a
  run observed and forgotten long ago, and is dropped as late at once). At most ``max_runs`` runs wait to be observed
  and ``max_runs`` tallies are kept; past either, the oldest closed run is observed at once, or,
  when none is closed, the oldest tally is dropped and its calls counted (``reason="overflow"``). Runs observed lately are remembered (as many
  again) to tell a late call from a new run.

Concurrency: owned by the event loop; no method awaits. Time comes from the injected clock.
"""

from __future__ import annotations

from collections import OrderedDict

from agentprom.clock import Clock
from agentprom.conventions import profile as P
from agentprom.context.resolved import Resolved
from agentprom.metrics.handles import Handle, Handles, put_all
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Kind

LLM, TOOL, AGENT, OTHER = Kind.LLM, Kind.TOOL, Kind.AGENT, Kind.OTHER
OWN, ALL = "own", "all"
#: a tally: the run's own LLM calls, tool calls, tokens, cost; the same of its sub-agent runs (added
#: when each is observed: indexes + 4); the run's own loop-cycle spans
_EMPTY = (0, 0, 0, 0.0, 0, 0, 0, 0.0, 0)
_OPERATION = P.GENAI_OPERATION
#: what a run is observed in: each family and its scope label (None: the family has none)
_SERIES = (
    ("agent_invocation_llm_calls", OWN), ("agent_invocation_tool_calls", OWN), ("agent_invocation_tokens", OWN),
    ("agent_invocation_cost_usd", OWN), ("agent_invocation_llm_calls", ALL), ("agent_invocation_tool_calls", ALL),
    ("agent_invocation_tokens", ALL), ("agent_invocation_cost_usd", ALL), ("agent_invocation_cycles", None),
)


def _labels(agent: str) -> list[tuple[str, ...]]:
    """The label tuples of an agent's run series, in _SERIES order."""
    return [(agent,) if scope is None else (agent, scope) for _name, scope in _SERIES]


class Runs:
    """Tallies of open runs, keyed by (trace id, invocation span id)."""

    def __init__(self, store: SeriesStore, clock: Clock, grace_seconds: float, max_runs: int) -> None:
        self.clock = clock
        self.grace = grace_seconds
        self.max_runs = max_runs
        # OrderedDicts, not dicts: each is bounded by dropping its oldest entry, and a dict that is
        # emptied from the front walks over the holes left there to find its first entry again
        # (2 us a lookup at 10,000 entries, 20 us at 100,000), an OrderedDict follows its links.
        #: open runs, oldest first: key -> tally (a list, updated in place)
        self.tallies: OrderedDict[tuple[bytes, bytes], list] = OrderedDict()
        #: closed runs in closing order: key -> (due time, agent, caller's key or None, weight, span end)
        self.closed: OrderedDict[tuple[bytes, bytes], tuple[float, str, tuple | None, float, int]] = OrderedDict()
        #: runs observed lately, oldest first (bounded): a call of one of them is late, not a new run
        self.observed: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
        f = store.families
        #: the families observed once a run, in _SERIES order
        self._families = tuple(f[name] for name, _scope in _SERIES)
        #: agent -> the handles of the series a run of it is observed in (_SERIES order; metrics/handles.py)
        self._held = Handles(store)
        self._missed = f["agentprom_fanout_missed_total"]

    def on_resolved(self, resolved: Resolved) -> None:
        """Tally the settled calls and close the settled runs (the per-span path: lookups hoisted)."""
        cycles = P.LOOP_CYCLE_OPERATIONS
        tallies = self.tallies
        due = None  # when the runs closed now are observed: read once per call
        fresh: list[tuple[bytes, bytes]] = []  # tallies opened here for runs not closed yet
        for span, c in zip(resolved.settled_spans, resolved.settled):
            kind = c.kind
            invocation = c.invocation
            if kind is OTHER:
                if invocation is not None and span.attributes.get(_OPERATION) in cycles:
                    tally = self._tally((span.trace_id, invocation), 0)
                    if tally is not None:
                        tally[8] += 1
                continue
            if not c.counted:
                continue
            if kind is AGENT:
                if due is None:
                    due = self.clock.monotonic() + self.grace
                self._close(span, c, due)
                continue
            if invocation is None:
                continue  # not inside a counted run (a fallback, or no agent span above)
            key = (span.trace_id, invocation)
            tally = tallies.get(key)
            if tally is None:
                tally = self._tally(key)
                if tally is None:
                    continue
                if key not in self.closed:
                    fresh.append(key)
            if kind is LLM:
                tokens = c.tokens
                tally[0] += 1
                if tokens:
                    tally[2] += tokens.get("input", 0) + tokens.get("output", 0)
                if c.cost:
                    tally[3] += c.cost
            else:
                tally[1] += 1
        # A run's agent span is settled with its calls (they waited for it), after them: a tally opened
        # here whose run did not close by the end is for a run observed so long ago that it was
        # forgotten. Its calls are late.
        for key in fresh:
            if key not in self.closed:
                tally = tallies.pop(key, None)
                if tally is not None:
                    self._missed.inc(("late",), tally[0] + tally[1])
        if len(tallies) > self.max_runs or len(self.closed) > self.max_runs:
            self._bound()

    def _close(self, span, c, due: float) -> None:
        """A run's agent span is settled: observe the run at ``due`` (its tally is made when needed)."""
        key = (span.trace_id, span.span_id)
        closed = self.closed
        if key in closed or key in self.observed:
            return  # a duplicate span id: the run was closed already
        closed[key] = (due, c.agent, None if c.invocation is None else (span.trace_id, c.invocation), c.weight,
                       span.end_ns)

    def _tally(self, key: tuple[bytes, bytes], calls: int = 1) -> list | None:
        """The open tally of ``key`` (created when new); None when the run was observed already
        (then the ``calls`` that came for it are counted as late)."""
        tally = self.tallies.get(key)
        if tally is None:
            if key in self.observed:
                if calls:
                    self._missed.inc(("late",), calls)
                return None
            tally = self.tallies[key] = list(_EMPTY)
        return tally

    def expire(self) -> None:
        """Observe the runs closed at least ``grace`` seconds ago (periodic)."""
        now = self.clock.monotonic()
        due = []
        for key, closing in self.closed.items():
            if closing[0] > now:
                break
            due.append(key)
        self._observe_all(due)

    def drain(self) -> None:
        """Observe every closed run now (shutdown)."""
        self._observe_all(list(self.closed))

    def _observe_all(self, keys: list[tuple[bytes, bytes]]) -> None:
        """Observe runs in the order they ended, so that a sub-agent's run (it ends first) is added to
        its caller's before the caller is observed, whatever order their spans arrived in."""
        closed = self.closed
        keys.sort(key=lambda key: closed[key][4])
        for key in keys:
            self._observe(key)

    def _observe(self, key: tuple[bytes, bytes]) -> None:
        _due, agent, caller, weight, _end = self.closed.pop(key)
        tally = self.tallies.pop(key, None) or list(_EMPTY)
        llm, tools, tokens, cost, sub_llm, sub_tools, sub_tokens, sub_cost, cycles = tally
        llm_all, tools_all, tokens_all, cost_all = llm + sub_llm, tools + sub_tools, tokens + sub_tokens, cost + sub_cost
        # in _SERIES order; reasoning cycles: the framework's loop-cycle spans where it has them, else the
        # run's LLM calls
        values = (llm, tools, tokens, cost, llm_all, tools_all, tokens_all, cost_all, cycles or llm)
        held = self._held.current()
        row = held.get(agent)
        if row is None:  # the first run of this agent since the store last let a series go
            row = held[agent] = tuple(Handle(family, labels) for family, labels in zip(self._families, _labels(agent)))
        put_all(row, values, weight)
        if caller is not None:  # the sub-agent's whole run is part of its caller's
            above = self._tally(caller, llm_all + tools_all)
            if above is not None:
                above[4] += llm_all
                above[5] += tools_all
                above[6] += tokens_all
                above[7] += cost_all
        observed = self.observed
        observed[key] = None
        if len(observed) > self.max_runs:
            observed.popitem(last=False)

    def _bound(self) -> None:
        closed = self.closed
        while len(closed) > self.max_runs:
            self._observe(next(iter(closed)))  # the oldest closed run, early
        tallies = self.tallies
        while len(tallies) > self.max_runs:
            if self.closed:
                self._observe(next(iter(self.closed)))  # the oldest closed run, early
                continue
            key = next(iter(tallies))
            tally = tallies.pop(key)
            self._missed.inc(("overflow",), tally[0] + tally[1])
