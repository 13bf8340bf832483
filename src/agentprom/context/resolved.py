"""What the trace-context stage hands on: spans to count now and spans settled, in arrival order.

A ``Resolved`` is what one call of the stage (a batch, a timeout sweep, a
session's end, the shutdown drain) returns to the translator. The stage
collects the nodes it decided in ``Resolved.decided`` and the batch's spans it
decided at once by index; ``hand_on`` merges the two in the order the spans
arrived (children first, as spans end: the session tracker expects that order)
and fills the two streams listeners read.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from agentprom.context.tree import Node
from agentprom.conventions.classify import Classified
from agentprom.model import Span

_arrival = attrgetter("seq")


class Resolved:
    """What the stage hands on at once: spans to count now (``spans``/``classified``, two parallel
    lists: no pair is built per span) and spans settled now (``settled_spans``/``settled``: decided,
    with their session and phase, in arrival order). Most spans are both at once; a span that
    needs nothing from above is counted first and settled when its ancestors are known."""

    __slots__ = ("spans", "classified", "settled_spans", "settled", "decided")

    def __init__(self, spans: Sequence[Span] | None = None, classified: Sequence[Classified] | None = None) -> None:
        self.spans: Sequence[Span] = [] if spans is None else spans
        self.classified: Sequence[Classified] = [] if classified is None else classified
        self.settled_spans: Sequence[Span] = []
        self.settled: Sequence[Classified] = []
        #: the stage's own: nodes decided while it makes this, not yet handed on (``hand_on``)
        self.decided: list[Node] = []

    def __bool__(self) -> bool:
        return bool(self.spans) or bool(self.settled_spans)


def _hand_on_node(node: Node, out: Resolved) -> None:
    """Hand a decided node on (``hand_on``), then forget its span."""
    span, c = node.span, node.c
    if not node.emitted:
        out.spans.append(span)
        out.classified.append(c)
    out.settled_spans.append(span)
    out.settled.append(c)
    node.span = node.c = None


def hand_on(out: Resolved, spans: Sequence[Span] = (), classified: Sequence[Classified] = (),
            fast: Sequence[int] = (), base: int = 0) -> None:
    """Hand on what this call decided, in the order it arrived (children first, as spans end:
    sessions see that order): the nodes in ``out.decided`` and the batch's spans decided at
    once (``fast``: indexes into the batch, in order; span ``i`` arrived ``base + i + 1``).
    Each is counted, unless it was already, and settled.

    Nodes of earlier batches (those that waited for this one) arrived before any span of the
    batch, so they go first; only the batch's own nodes (rare: spans that came before their
    parent) need merging. The usual rest is a run of the batch, copied in one go."""
    nodes = out.decided
    if len(nodes) > 1:
        nodes.sort(key=_arrival)  # runs already in order (or reversed) cost one pass
    earlier = 0
    for node in nodes:
        if node.seq > base:
            break
        _hand_on_node(node, out)
        earlier += 1
    if earlier == len(nodes):
        nodes.clear()
        batch_spans = spans if len(fast) == len(spans) else [spans[index] for index in fast]
        batch_classified = classified if len(fast) == len(spans) else [classified[index] for index in fast]
        if not out.spans and not out.settled_spans:
            # nothing was counted or settled before: one pair of lists serves both streams
            out.spans = out.settled_spans = batch_spans
            out.classified = out.settled = batch_classified
        else:
            out.spans.extend(batch_spans)
            out.classified.extend(batch_classified)
            out.settled_spans.extend(batch_spans)
            out.settled.extend(batch_classified)
        return
    counted_spans, counted, settled_spans, settled = out.spans, out.classified, out.settled_spans, out.settled
    taken, waited = earlier, len(nodes)
    for index in fast:
        while taken < waited and nodes[taken].seq <= base + index:  # a node that arrived before it
            _hand_on_node(nodes[taken], out)
            taken += 1
        span, c = spans[index], classified[index]
        counted_spans.append(span)
        counted.append(c)
        settled_spans.append(span)
        settled.append(c)
    for node in nodes[taken:]:
        _hand_on_node(node, out)
    nodes.clear()
