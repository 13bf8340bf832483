"""Place a batch's spans in their trace trees: index them, mark their ancestors, decide each span.

The per-span work of ``TraceContext.add`` (stage.py), the trace context's hot path
(bench/sessions_overhead.py, bench/ingest.py):

* ``index_batch`` puts every span of the batch in its trace's tree (``Tree.nodes``) and records
  marks for its ancestors (an LLM call below, a named agent below: tree.py), and the session a
  span names, before anything of the batch is decided, so the order of spans within a batch does
  not matter (parents first or children first).
* ``place_batch`` then goes over the batch newest first (spans are exported as they end, children
  before their parent: going backwards, a span's parent from the same batch is decided before the
  span), or oldest first when most spans came after their parent. A span whose parent is decided
  is decided at once from it and needs no ``Node``; the others go the general way (stage.py
  ``_place``: a node that waits for its parent).
* ``decide`` applies the attribution rules (stage.py's docstring) to one span, from what its
  parent passes down; the general way decides its nodes with it too.

When the optional extension context/_batch.pyx is built, the three are its compiled twins: the
same steps over the same structures, calling the Python code below and stage.py's for what is
rare (marks, a session key, a phase span, a span that must wait). tests/test_context_compiled.py
compares the two on seeded random trace trees.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agentprom.compiled import extension
from agentprom.context.resolved import Resolved
from agentprom.context.scope import session_of
from agentprom.context.tree import Node, Passes, Tree
from agentprom.conventions.classify import Classified, service_name
from agentprom.model import Kind, Span

if TYPE_CHECKING:
    from agentprom.context.stage import TraceContext

AGENT, LLM, TOOL, OTHER = Kind.AGENT, Kind.LLM, Kind.TOOL, Kind.OTHER
#: what a local root inherits (tree.Passes): no named agent, no agent span above, no phase
ROOT: Passes = (None, False, False, None, False, b"", None, None)


def index_batch_python(traces: OrderedDict[bytes, Tree], spans: Sequence[Span], classified: Sequence[Classified],
                       scope_keys: frozenset[str]) -> tuple[list[Tree], set[int], int]:
    """Index the batch's spans in their trees (made when new; a trace touched moves to the end of
    ``traces``), mark their ancestors, take the session each names (``scope_keys``: any of these on a
    span, it may name one). Return each span's tree, the indexes of spans whose id its tree held
    already (duplicates: not indexed), and how many spans came after their parent."""
    tree: Tree | None = None
    trees: list[Tree] = []
    in_tree = trees.append
    duplicates: set[int] = set()
    after_parent = 0  # spans whose parent was indexed before them
    for index, (span, c) in enumerate(zip(spans, classified)):
        trace_id = span.trace_id
        if tree is None or tree.trace_id != trace_id:  # spans of a trace mostly come together
            tree = traces.get(trace_id)
            if tree is None:
                tree = traces[trace_id] = Tree(trace_id)
            else:
                traces.move_to_end(trace_id)
        in_tree(tree)
        span_id, parent_id, kind = span.span_id, span.parent_span_id, c.kind
        nodes = tree.nodes
        if parent_id in nodes:
            after_parent += 1
        if span_id in nodes:
            duplicates.add(index)
        else:
            nodes[span_id] = span
        # marks for the ancestors, from this span or passed on from a descendant that came before
        # it (so the order within the batch does not matter: a mark waits at a missing id); a
        # parent already marked has its ancestors marked: nothing to do, the usual case
        if (kind is LLM or span_id in tree.llm_below) and parent_id not in tree.llm_below:
            tree.mark_llm(parent_id, span_id)
        if ((kind is AGENT and c.named) or span_id in tree.named_below) and parent_id not in tree.named_below:
            tree.mark_named(parent_id, span_id)
        # a session key is the trace's before anything of the batch is decided. The key view's
        # isdisjoint looks up the few scope keys; a set's would walk all of a span's attributes.
        if not span.attributes.keys().isdisjoint(scope_keys):
            key = session_of(span.attributes)
            if key is not None:
                c.session = tree.session = key
    return trees, duplicates, after_parent


def place_batch_python(context: TraceContext, spans: Sequence[Span], classified: Sequence[Classified],
                       trees: list[Tree], duplicates: set[int], newest_first: bool, base: int,
                       out: Resolved) -> tuple[list[Node], list[int]]:
    """Decide the batch's spans whose parent is decided (span ``i`` arrived ``base + i + 1``), in
    the order ``newest_first`` says; the others wait in nodes, those that need nothing from above
    counted at once (into ``out``). Return the nodes made (in the order placed) and the indexes of
    the spans decided at once (likewise)."""
    place, settle, node_of = context._place, context._settle, context._node
    counted_spans, counted = out.spans, out.classified
    waiters: list[Node] = []  # the batch's spans that went the general way
    fast: list[int] = []  # the batch's spans decided at once
    for index in range(len(trees) - 1, -1, -1) if newest_first else range(len(trees)):
        span, c, tree = spans[index], classified[index], trees[index]
        span_id, parent_id = span.span_id, span.parent_span_id
        if (parent_id and (span.parent_remote or parent_id == span_id)) or (duplicates and index in duplicates):
            node = node_of(span, c, tree, base + index + 1)
            place(node, out)
            waiters.append(node)
            continue
        above = tree.nodes.get(parent_id) if parent_id else ROOT
        if above.__class__ is not tuple:  # its parent is not decided: it waits (stage.py ``_place``, inline)
            node = node_of(span, c, tree, base + index + 1)
            kind = c.kind
            if kind is OTHER or (c.named and kind is not AGENT):
                if kind is LLM and span_id in tree.llm_below:
                    c.counted = False  # an outer call (as ``decide_python`` says)
                counted_spans.append(span)
                counted.append(c)
                node.emitted = True
            waiting = tree.waiting.get(parent_id)
            if waiting is None:
                tree.waiting[parent_id] = [node]
            else:
                waiting.append(node)
            waiters.append(node)
        elif span_id in tree.waiting:  # spans wait for it: they are decided with it
            settle(node_of(span, c, tree, base + index + 1), above, out)
        else:
            decide_python(context, span, c, tree, above)  # the tree holds the span (no duplicate): it takes the passes
            fast.append(index)
    return waiters, fast


def decide_python(context: TraceContext, span: Span, c: Classified, tree: Tree, above: Passes,
                  holder: object = None) -> Passes:
    """Decide a span (the rules in stage.py's docstring) from what its parent passes down, and
    return what it passes on. Its tree then keeps only that, with its parent id, as one tuple
    of plain values (``tree.Passes``), if it holds ``holder`` (the span's node) for the span id
    or no ``holder`` is given: the garbage collector does not traverse those tuples, and a busy
    sidecar keeps a hundred thousand."""
    ctx, agent_above, any_agent, phase, parent_is_agent, _parent, invocation, _agent = above
    session = c.session
    if session is None:
        session = c.session = tree.session
    if session is None:
        tree.unkeyed = True  # handed on to a trace-id session
    elif tree.unkeyed:
        c.joins, tree.unkeyed = True, False
    c.phase = phase
    kind, span_id = c.kind, span.span_id
    if kind is LLM and span_id in tree.llm_below:
        c.counted = False  # an outer call: the innermost LLM span is the request that was made
    if kind is not TOOL and not (kind is LLM and c.counted) \
            and not span.attributes.keys().isdisjoint(context._phase_keys):
        own_phase = context.phases.phase_of(span, parent_is_agent)
        if own_phase is not None:
            c.own_phase = own_phase
            phase = (span_id, *own_phase)
    c.invocation = invocation
    if kind is not AGENT:
        if ctx is not None and not c.named:
            c.agent = ctx
        passes = (ctx, agent_above, any_agent, phase, False, span.parent_span_id, invocation, c.agent)
    else:
        # without a name of its own, classification gave the span its service.name
        own = c.agent if c.named else None
        if own is None and not any_agent and span_id in tree.named_below:
            # a wrapper: not counted, and transparent to what is below it
            passes = (ctx, agent_above, True, phase, True, span.parent_span_id, invocation, c.agent)
            c.counted = False
        else:
            resolved = own or ctx or c.agent
            if agent_above:
                # a step of the same agent's run (its nearest agent-span ancestor resolves alike)
                above_agent = ctx or (c.agent if own is None else service_name(span))
                c.counted = resolved != above_agent
                if c.counted:  # a sub-agent: the call graph's edge from the agent above
                    c.caller = above_agent
            c.agent = resolved
            passes = (own or ctx, True, True, phase, True, span.parent_span_id,
                      span_id if c.counted else invocation, resolved)
    if holder is None or tree.nodes.get(span_id) is holder:  # a duplicate id keeps the first span's entry
        tree.nodes[span_id] = passes
    return passes


def _compiled() -> tuple[Callable[..., tuple[list[Tree], set[int], int]],
                         Callable[..., tuple[list[Node], list[int]]], Callable[..., Passes]] | None:
    """The compiled twins (context/_batch.pyx) when built and not switched off with
    ``AGENTPROM_PURE_PYTHON=1``, else None."""
    _batch = extension("agentprom.context._batch", lambda module: module.configure(
        Span, Classified, Tree, (AGENT, LLM, TOOL, OTHER), ROOT, session_of, service_name,
        (index_batch_python, place_batch_python, decide_python)))
    return (_batch.index_batch, _batch.place_batch, _batch.decide) if _batch is not None else None


_batch_compiled = _compiled()
#: whether the trace context's batch path is the compiled one (read once, at import)
COMPILED = _batch_compiled is not None
index_batch, place_batch, decide = _batch_compiled or (index_batch_python, place_batch_python, decide_python)
