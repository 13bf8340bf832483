"""Resolve each span's agent, invocation role, session and phase from its trace tree, bounded and on time.

The stage between classification and counting (docs/conventions.md, "Attribution
from the trace tree"). Spans of one trace reach us together, so where a span
carries no agent name its ancestors can give one. The rules:

* Resolved agent of an agent span: its own name; else that of its nearest
  named agent-span ancestor; else its resource's ``service.name``.
* A **wrapper** (an agent span with no name, no agent-span ancestor and a named
  agent span below it, e.g. the OpenAI Agents SDK's ``Agent workflow``) is not
  counted and is transparent to the rules below.
* A **step** (an agent span whose nearest non-wrapper agent-span ancestor
  resolves to the same agent: graph nodes inside one run) is not counted. A
  sub-agent (a different agent) is its own invocation.
* LLM-call and tool spans: their own name, else their nearest agent-span
  ancestor's resolved agent, else ``service.name``.
* An LLM-call span with an LLM-call span below it is an outer call (a framework
  span around a provider client's span for one request) and is not counted.

Sessions and phases (scope.py): a span's session is the one it names, else the
one the latest keyed span of its trace named; a call's phase is the nearest
phase span above it. Both are settled when the span is decided (batch.py ``decide``).

Waiting: a span is emitted (handed on to be counted) as soon as what it needs
is known. A span that names its own agent, and any span of kind other, needs
nothing from above and is emitted at once; the others wait until their parent
is decided, which happens when the chain above them reaches a local root (no
parent, or a parent in another process by the OTLP span flags) or an ancestor
already decided. Past ``attribution.max_wait_seconds``, or beyond
``max_pending_spans`` waiting or ``max_indexed_spans`` remembered, the oldest
waiting chain is decided as if its missing ancestors did not exist, and every
span so emitted is counted in ``agentprom_attribution_fallbacks_total{reason}``
(``timeout``, ``overflow``, ``shutdown``, ``session_end`` when the runtime API ends the
session a waiting span belongs to; ``cycle`` for a span that is its own
ancestor; ``duplicate_span_id`` for a span id seen twice in a trace, which is
resolved but not indexed). ``drain`` (SIGTERM) emits everything still waiting.

A span is *settled* (handed on with its session and phase, to the session
tracker) when it is decided: then its ancestors up to a local root are known.
Spans decided together are settled in the order they arrived (children first,
as spans end), which is what the session tracker expects: a tool call that
failed and then succeeded is a recovery only in that order. A span emitted
before it is decided waits in the pending set like the others (it holds its
span until settled), but a fallback counts only the spans it emits.

Concurrency: owned by the event loop like the series store; no method awaits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from operator import attrgetter

from agentprom.config.schema import DEFAULT_PHASE_SPANS, AttributionConfig
from agentprom.context.batch import ROOT, decide, index_batch, place_batch
from agentprom.context.resolved import Resolved, hand_on
from agentprom.context.scope import PhaseRules, session_keys
from agentprom.context.tree import AGENT_OF, MAX_WALK, Node, Passes, Tree
from agentprom.conventions.classify import Classified
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Kind, Span

AGENT, LLM, TOOL, OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
_decided = attrgetter("decided")


class TraceContext:
    def __init__(self, config: AttributionConfig, store: SeriesStore, phases: PhaseRules | None = None) -> None:
        #: which spans are phase spans (the sessions config's ``phase_spans``)
        self.phases = phases or PhaseRules(DEFAULT_PHASE_SPANS)
        #: any of these on a span: it may name a session or be a phase span (one check per span)
        self._scope_keys = session_keys | self.phases.keys
        self._phase_keys = self.phases.keys
        self.max_wait = config.max_wait_seconds
        self.max_pending = config.max_pending_spans
        self.max_indexed = config.max_indexed_spans
        self._clock = store.clock
        #: trace id -> its tree, least recently touched first
        self.traces: OrderedDict[bytes, Tree] = OrderedDict()
        #: undecided nodes, oldest first (an ordered set: an OrderedDict finds its oldest entry in
        #: constant time however many were removed before it)
        self.pending: OrderedDict[Node, None] = OrderedDict()
        #: nodes held by all trees
        self.indexed = 0
        #: spans seen so far (each node's arrival number)
        self._seq = 0
        self._m_pending = store.families["agentprom_attribution_pending_spans"]
        self._m_fallbacks = store.families["agentprom_attribution_fallbacks_total"]
        self._m_pending.set((), 0)

    # -- the stage's entry points ----------------------------------------------------------------

    def add(self, spans: Sequence[Span], classified: Sequence[Classified]) -> Resolved:
        """Take a batch's spans with their classifications; return those resolved now (some of
        this batch, perhaps spans of earlier batches that waited for these).

        The whole batch is indexed and marked before anything is decided, so within a batch the
        order of spans does not matter (parents first or children first); then the spans whose
        parent is decided are decided at once, and the rest go the general way (``_place``): a span
        whose parent is not decided (not arrived, or waiting itself) waits for it in a node; only
        those join the pending set. The two per-span loops are batch.py's (compiled where built)."""
        out = Resolved()
        base = self._seq
        trees, duplicates, after_parent = index_batch(self.traces, spans, classified, self._scope_keys)
        self._seq = base + len(trees)
        self.indexed += len(trees) - len(duplicates)
        if duplicates:
            self._m_fallbacks.inc(("duplicate_span_id",), len(duplicates))
        # newest first, unless most spans came after their parent (an exporter that sends parents
        # first): then oldest first, for the same reason
        newest_first = after_parent * 2 <= len(trees)
        waiters, fast = place_batch(self, spans, classified, trees, duplicates, newest_first, base, out)
        if waiters and not all(map(_decided, waiters)):
            if newest_first:
                waiters.reverse()  # in arrival order: cycles are broken, and waits expire, oldest first
            self._break_cycles(waiters, out)
            deadline = self._clock.monotonic() + self.max_wait
            pending = self.pending
            for node in waiters:
                if not node.decided:
                    node.deadline = deadline
                    pending[node] = None
        self._bound(out)
        if newest_first:
            fast.reverse()
        hand_on(out, spans, classified, fast, base)
        return out

    def expire(self) -> Resolved:
        """Resolve the chains that waited longer than ``max_wait_seconds`` (periodic)."""
        out = Resolved()
        now = self._clock.monotonic()
        pending = self.pending
        while pending:
            node = next(iter(pending))
            if node.deadline > now:
                break
            self._force(node, "timeout", out)
        self._m_pending.set((), len(pending))
        hand_on(out)
        return out

    def settle_session(self, session_id: str) -> Resolved:
        """Resolve now the spans still waiting that belong to ``session_id``, whose end the runtime
        API signals: what the session did must be in it when it ends (a hung run's root span never
        comes). Looks through the pending set: one end per session, at most ``max_pending_spans``."""
        out = Resolved()
        pending = self.pending
        mine = [node for node in pending if (node.c.session or node.tree.session) == session_id]
        for node in mine:
            if node in pending:  # not settled already with an earlier one's chain
                self._force(node, "session_end", out)
        self._m_pending.set((), len(pending))
        hand_on(out)
        return out

    def drain(self) -> Resolved:
        """Resolve everything still waiting (shutdown): nothing accepted is lost."""
        out = Resolved()
        while self.pending:
            self._force(next(iter(self.pending)), "shutdown", out)
        self._m_pending.set((), 0)
        hand_on(out)
        return out

    def agent_at(self, trace_id: bytes, span_id: bytes) -> tuple[bool, str | None]:
        """What is known of a span, for a log record parented to it (evaluations/): ``(True, the agent
        the span was counted for)`` once it is decided, as a span event of it would be counted;
        ``(False, None)`` while it has not arrived, waits for its ancestors, or after its trace was
        forgotten. Read-only: moves nothing."""
        tree = self.traces.get(trace_id)
        entry = tree.nodes.get(span_id) if tree is not None else None
        return (True, entry[AGENT_OF]) if entry.__class__ is tuple else (False, None)

    # -- placing a span ----------------------------------------------------------------------------

    def _place(self, node: Node, out: Resolved) -> None:
        c = node.c
        kind = c.kind
        if kind is OTHER or (c.named and kind is not AGENT):
            self._emit(node, out)  # counted at once: it needs nothing from above to be counted
        parent_id = node.parent_id
        if not parent_id or node.span.parent_remote:
            self._settle(node, ROOT, out)
            return
        if parent_id == node.span_id:
            self._settle(node, ROOT, out, "cycle")
            return
        above = node.tree.nodes.get(parent_id)
        if above.__class__ is tuple:  # decided
            self._settle(node, above, out)
            return
        node.tree.waiting.setdefault(parent_id, []).append(node)

    def _break_cycles(self, placed: list[Node], out: Resolved) -> None:
        """Settle the parent cycles among the batch's undecided spans (else they would wait for each
        other until the timeout). Each walk stops at a node already walked: linear in the batch."""
        walked: set[Node] = set()
        for node in placed:
            path: set[Node] = set()
            current: Node | None = node
            while current.__class__ is Node and not current.decided and current not in walked:
                if current in path:  # back on the path: a cycle; it becomes a root, its marks are void
                    tree = current.tree
                    self._unwait(current)
                    for marks in (tree.llm_below, tree.named_below):
                        if current.span_id in marks:
                            del marks[current.span_id]
                    self._settle(current, ROOT, out, "cycle")
                    break
                path.add(current)
                current = current.tree.nodes.get(current.parent_id)
            walked |= path

    def _unwait(self, node: Node) -> None:
        waiting = node.tree.waiting
        siblings = waiting.get(node.parent_id)
        if siblings is not None:
            try:
                siblings.remove(node)
            except ValueError:
                pass
            if not siblings:
                del waiting[node.parent_id]
        self.pending.pop(node, None)

    # -- deciding ----------------------------------------------------------------------------------

    def _settle(self, node: Node, above: Passes, out: Resolved, reason: str | None = None) -> None:
        """Decide ``node`` from what its parent passes (``above``) and, down the waiting lists,
        everything that waited for it; they join ``out.decided``. ``reason`` names a fallback (the
        spans it emits, counted before their ancestors were known, are counted)."""
        pending, decide = self.pending, self._decide_node
        decide(node, above)
        pending.pop(node, None)
        order = out.decided
        first = len(order)
        order.append(node)
        waiting_for = node.tree.waiting
        parents = [node] if node.span_id in waiting_for else []
        while parents:  # each waiting node is decided from the node it waited for, decided just before
            parent = parents.pop()
            waiting = waiting_for.pop(parent.span_id, None)
            if not waiting:
                continue
            passes = parent.passes
            for child in waiting:
                pending.pop(child, None)
                decide(child, passes)
                order.append(child)
                if child.span_id in waiting_for:
                    parents.append(child)
        if reason is not None:
            forced = sum(not current.emitted for current in order[first:])
            if forced:
                self._m_fallbacks.inc((reason,), forced)

    @staticmethod
    def _node(span: Span, c: Classified, tree: Tree, seq: int) -> Node:
        """A node for a span that cannot be decided at once; the tree holds it in the span's place."""
        node = Node(span, c, tree, seq)
        if tree.nodes.get(span.span_id) is span:
            tree.nodes[span.span_id] = node
        return node

    def _decide_node(self, node: Node, above: Passes) -> None:
        node.decided = True
        node.passes = decide(self, node.span, node.c, node.tree, above, node)

    @staticmethod
    def _emit(node: Node, out: Resolved) -> None:
        """Hand ``node`` on to be counted."""
        c = node.c
        if c.kind is LLM and node.span_id in node.tree.llm_below:
            c.counted = False  # an outer call: the innermost LLM span is the request that was made
        out.spans.append(node.span)
        out.classified.append(c)
        node.emitted = True

    # -- fallbacks and bounds ---------------------------------------------------------------------

    def _force(self, node: Node, reason: str, out: Resolved) -> None:
        """Decide the chain ``node`` waits in as if its missing ancestors did not exist."""
        nodes, top = node.tree.nodes, node
        for _ in range(MAX_WALK):
            above = nodes.get(top.parent_id)
            if above.__class__ is not Node or above.decided or above is node:
                break
            top = above
        above = nodes.get(top.parent_id)
        self._unwait(top)
        self._settle(top, above if above.__class__ is tuple else ROOT, out, reason)
        if node in self.pending:  # not below ``top`` after all (a corrupt chain): on its own
            self._unwait(node)
            self._settle(node, ROOT, out, reason)

    def _bound(self, out: Resolved) -> None:
        pending = self.pending
        while len(pending) > self.max_pending:
            self._force(next(iter(pending)), "overflow", out)
        traces = self.traces
        while self.indexed > self.max_indexed and traces:
            _trace_id, tree = traces.popitem(last=False)  # the least recently touched trace goes
            node = tree.undecided()
            while node is not None:
                self._force(node, "overflow", out)
                node = tree.undecided()
            self.indexed -= len(tree.nodes)
        self._m_pending.set((), len(pending))
