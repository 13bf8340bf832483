"""Count evaluation results (``agent_evaluation_score``, ``agent_evaluations_total``) for the evaluated span's agent.

Two sources, one set of rules (model.py):

* **Span events** (``Span.evaluations``): a translator listener, like the session
  tracker, reads the spans the trace context settles (context/stage.py), so
  each result is counted for the agent its span resolved to
  (``Classified.agent``), with the span's sampling weight and, as exemplar, the span.
  Invalid results are counted in ``agentprom_evaluation_events_dropped_total{reason}``.
* **Log records** (``LogBatch``, from ``LogsIngest``): the conventions parent the
  record to the evaluated span (its trace and span id). A span the trace context
  has decided gives the agent it was counted for at once (``TraceContext.agent_at``),
  as a span event of it would be counted. A span not decided yet (log and span exporters send
  on schedules of their own, so the record often arrives first; or the span waits
  for its ancestors) is waited for: the result is counted when the span is
  settled, for the agent it resolved to. It waits at most ``max_wait_seconds``;
  past that, beyond ``max_waiting`` results waiting (the oldest go first), or at
  shutdown, it is counted for its resource's ``service.name`` and counted in
  ``agentprom_evaluation_fallbacks_total{reason}`` (``timeout``, ``overflow``,
  ``shutdown``). A record without well-formed ids is counted for its
  ``service.name`` at once; without one, ``unknown``. Log records are not sampled with their trace: each counts once.
  Invalid results are rejected through partial success; every record not counted
  is in ``agentprom_log_records_dropped_total{reason}``.

``gen_ai.response.id`` is not used to find a span (that would need an index of
every LLM call's response id). A result sent both ways is counted twice.

Concurrency: owned by the event loop; no method awaits. Time comes from the injected clock.
"""

from __future__ import annotations

from collections import OrderedDict
from operator import attrgetter

from agentprom.clock import Clock
from agentprom.context.resolved import Resolved
from agentprom.context.stage import TraceContext
from agentprom.conventions.classify import UNKNOWN, Classified
from agentprom.conventions.profile import SERVICE_NAME
from agentprom.evaluations.model import EVALUATION_ERROR, LogBatch, result
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.receiver.pipeline import AttributeDeny

#: a result waiting for its span: its trace id, (name, score, label), the service to fall back to, the exemplar
_Waiting = tuple[bytes, tuple[str, float | None, str], str, tuple[bytes, bytes] | None]
_evaluations = attrgetter("evaluations")


class Evaluations:
    """The evaluation counters, and the log results waiting for their span (bounded, oldest first)."""

    def __init__(self, store: SeriesStore, clock: Clock, context: TraceContext | None, max_abs_score: float,
                 max_wait_seconds: float, max_waiting: int, deny: AttributeDeny | None = None) -> None:
        self.store = store
        self.clock = clock
        self.context = context
        self.max_abs_score = max_abs_score
        self.max_wait = max_wait_seconds
        self.max_waiting = max_waiting
        self.deny = deny if deny else None
        #: span id -> (deadline, results waiting for a span of that id), first arrival first
        self.waiting: OrderedDict[bytes, tuple[float, list[_Waiting]]] = OrderedDict()
        #: results in ``waiting``
        self.waiting_count = 0
        f = store.families
        self._scores = f["agent_evaluation_score"]
        self._results = f["agent_evaluations_total"]
        self._received = f["agentprom_log_records_received_total"]
        self._dropped = f["agentprom_log_records_dropped_total"]
        self._events_dropped = f["agentprom_evaluation_events_dropped_total"]
        self._fallbacks = f["agentprom_evaluation_fallbacks_total"]
        self._exemplars = store.limits.exemplars

    # -- log records (LogsIngest) -------------------------------------------------------------

    def consume(self, batch: LogBatch, transport: str) -> None:
        """Count a decoded logs export; invalid results are added to ``batch.rejected``."""
        self.store.tick()
        if batch.received:
            self._received.inc((transport,), batch.received)
        deny, context, max_abs_score = self.deny, self.context, self.max_abs_score
        for record in batch.records:
            service = record.service
            if deny is not None:
                deny.scrub(record.attributes)
                if deny.denied(SERVICE_NAME):
                    service = ""
            outcome = result(record.attributes, max_abs_score)
            if outcome.__class__ is str:
                if outcome == EVALUATION_ERROR:
                    batch.drop(outcome)
                else:
                    batch.reject(outcome)
                continue
            agent = None
            span_id = record.span_id
            if span_id:
                exemplar = (record.trace_id, span_id) if self._exemplars else None
                if context is not None:
                    decided, agent = context.agent_at(record.trace_id, span_id)
                    if not decided:
                        self._wait(span_id, (record.trace_id, outcome, service, exemplar))
                        continue
            else:
                exemplar = None
            self._count(outcome, agent or service or UNKNOWN, exemplar)
        for counts in (batch.dropped, batch.rejected):
            for reason, count in counts.items():
                self._dropped.inc((reason,), count)
        self._bound()

    def _wait(self, key: bytes, waiting: _Waiting) -> None:
        entry = self.waiting.get(key)
        if entry is None:
            self.waiting[key] = (self.clock.monotonic() + self.max_wait, [waiting])
        else:
            entry[1].append(waiting)
        self.waiting_count += 1

    # -- settled spans (a translator listener) --------------------------------------------------

    def on_resolved(self, resolved: Resolved) -> None:
        """Count the evaluation events of the settled spans, and the log results that waited for them."""
        waiting, spans = self.waiting, resolved.settled_spans
        if not waiting and not any(map(_evaluations, spans)):  # the usual batch: one pass in C
            return
        for span, c in zip(spans, resolved.settled):
            if span.evaluations:
                self._span_events(span, c)
            if waiting and span.span_id in waiting:
                self._settled(span, c)

    def _settled(self, span: Span, c: Classified) -> None:
        """Count the log results that waited for ``span`` (same span id and trace id) for its agent."""
        _deadline, held = self.waiting[span.span_id]
        trace_id = span.trace_id
        mine = [item for item in held if item[0] == trace_id]
        if len(mine) == len(held):
            del self.waiting[span.span_id]
        else:  # another trace's span of the same id (rare): its results wait on
            held[:] = [item for item in held if item[0] != trace_id]
        self.waiting_count -= len(mine)
        for _trace_id, outcome, _service, exemplar in mine:
            self._count(outcome, c.agent, exemplar)

    def _span_events(self, span: Span, c: Classified) -> None:
        exemplar = (span.trace_id, span.span_id) if self._exemplars else None
        for attrs in span.evaluations:
            outcome = result(attrs, self.max_abs_score)
            if outcome.__class__ is str:
                self._events_dropped.inc((outcome,))
            else:
                self._count(outcome, c.agent, exemplar, c.weight)

    def _count(self, outcome: tuple[str, float | None, str], agent: str,
               exemplar: tuple[bytes, bytes] | None = None, weight: float = 1) -> None:
        name, score, label = outcome
        self._results.inc((agent, name, label), weight, exemplar)
        if score is not None:
            self._scores.observe((agent, name), score, exemplar, weight)

    # -- waiting results: bounds and time ---------------------------------------------------------

    def expire(self) -> None:
        """Count the results that waited ``max_wait_seconds`` for their span, for their service (periodic)."""
        waiting = self.waiting
        if not waiting:
            return
        self.store.tick()
        now = self.clock.monotonic()
        while waiting and next(iter(waiting.values()))[0] <= now:
            self._fall_back("timeout")

    def drain(self) -> None:
        """Count every result still waiting (shutdown)."""
        if self.waiting:
            self.store.tick()
        while self.waiting:
            self._fall_back("shutdown")

    def _bound(self) -> None:
        while self.waiting_count > self.max_waiting:
            self._fall_back("overflow")

    def _fall_back(self, reason: str) -> None:
        """Count the oldest waiting span's results for their service."""
        _key, (_deadline, results) = self.waiting.popitem(last=False)
        self.waiting_count -= len(results)
        for _trace_id, outcome, service, exemplar in results:
            self._count(outcome, service or UNKNOWN, exemplar)
        self._fallbacks.inc((reason,), len(results))
