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
    Each is counted, unless it was already, and settled."""
    nodes = out.decided
    counted_spans, counted = out.spans, out.classified
    if not nodes and not counted_spans:
        # the usual batch: nothing was counted before it was decided, so what is counted is what
        # is settled, in the same order: one pair of lists serves both; when the whole batch was
        # decided at once, the batch's own lists do
        if len(fast) == len(spans):
            out.spans = out.settled_spans = spans
            out.classified = out.settled = classified
        else:
            out.spans = out.settled_spans = [spans[index] for index in fast]
            out.classified = out.settled = [classified[index] for index in fast]
        return
    if len(nodes) > 1:
        nodes.sort(key=_arrival)  # runs already in order (or reversed) cost one pass
    settled_spans, settled = out.settled_spans, out.settled
    taken, waited = 0, len(nodes)
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
