"""What the trace-context stage remembers of each trace: its nodes, who waits for whom, marks from below.

A tree holds each span by its id: the span itself while its batch is placed,
a ``Node`` (the span and its classification) while it waits, and once it is
*decided* only what its descendants inherit from it (``Passes``). A child is
decided from its parent's entry alone, so resolution never walks a long chain:
a span waits (``Tree.waiting``) until its parent is decided, and a decision
cascades down to the spans that waited for it.

Marks travel the other way. Children usually arrive before their parents (a
span is exported when it ends), so "has an LLM-call descendant" (an outer LLM
call) and "has an agent descendant with a name" (a wrapper) are recorded, when
the descendant arrives, as marks on its ancestors' span ids, known or not yet
arrived (``Tree.mark``).
"""

from __future__ import annotations

from typing import Any

from agentprom.model import Span

#: the marks of a tree before anything is marked (shared, never written)
_NONE: frozenset = frozenset()

#: how far ``mark`` and the stage's walks go up a chain (a bound against hostile depths and cycles)
MAX_WALK = 256


class Node:
    """A span that could not be decided when its batch was placed: it waits for its parent."""

    __slots__ = ("span_id", "parent_id", "tree", "span", "c", "decided", "emitted", "passes", "deadline", "seq")

    def __init__(self, span: Any, c: Any, tree: Tree, seq: int) -> None:
        self.span_id = span.span_id
        self.parent_id = span.parent_span_id
        self.tree = tree
        #: the span and its classification until they are decided and handed on (then None)
        self.span = span
        self.c = c
        #: arrival order: spans decided together are handed on in the order they arrived
        self.seq = seq
        self.decided = False
        #: handed on to be counted (a span that needs nothing from above is, before it is decided)
        self.emitted = False
        # passes is set when the node is decided, deadline when it waits


#: what a decided node passes to its children, and all its tree keeps of it: (ctx: the nearest
#: named agent at or above it, agent_above: it is or is below an agent span that is not a wrapper,
#: any_agent: it is or is below any agent span, phase: the phase span at or above it as (span id,
#: phase id, name) or None, is_agent: it is an agent span, its parent span id: index ``PARENT``,
#: invocation: the span id of the counted agent invocation at or above it, or None; the agent the
#: span itself was counted for: index ``AGENT_OF``). Plain values, so the garbage collector need not
#: traverse them.
Passes = tuple
PARENT = 5
AGENT_OF = 7


class Tree:
    """One trace: its spans by id (the ``Span`` while its batch is placed, a ``Node`` while it
    waits, then its ``Passes``), the nodes waiting for each parent id, and marks from below."""

    __slots__ = ("trace_id", "nodes", "waiting", "llm_below", "named_below", "session", "unkeyed")

    def __init__(self, trace_id: bytes) -> None:
        self.trace_id = trace_id
        self.nodes: dict[bytes, Span | Node | tuple] = {}
        #: parent span id -> undecided nodes waiting for it to be decided
        self.waiting: dict[bytes, list[Node]] = {}
        #: span ids with an LLM-call span below them (made when first needed: most traces are small).
        #: Dicts with None values rather than sets: a dict of bytes is left alone by the garbage
        #: collector, a set never is, and a busy sidecar remembers ten thousand trees.
        self.llm_below: dict[bytes, None] | frozenset = _NONE
        #: span ids with an agent span that has its own name below them (likewise)
        self.named_below: dict[bytes, None] | frozenset = _NONE
        #: the session the latest keyed span of the trace named (context/scope.py)
        self.session: str | None = None
        #: spans of this trace were handed on with no session (a trace-id session) since the last key
        self.unkeyed = False

    def mark_llm(self, span_id: bytes, origin: bytes) -> None:
        if span_id:
            if self.llm_below is _NONE:
                self.llm_below = {}
            self._mark(self.llm_below, span_id, origin)

    def mark_named(self, span_id: bytes, origin: bytes) -> None:
        if span_id:
            if self.named_below is _NONE:
                self.named_below = {}
            self._mark(self.named_below, span_id, origin)

    def _mark(self, marks: dict[bytes, None], span_id: bytes, origin: bytes) -> None:
        """Record in ``marks`` that ``span_id`` and its known ancestors have a descendant, ``origin``
        (stops at the first id already marked: its ancestors are marked too; and at ``origin``
        itself, should a parent cycle lead back to it)."""
        nodes = self.nodes
        for _ in range(MAX_WALK):
            if not span_id or span_id in marks or span_id == origin:
                return
            marks[span_id] = None
            node = nodes.get(span_id)
            if node is None:
                return
            held = node.__class__
            span_id = node[PARENT] if held is tuple else node.parent_id if held is Node else node.parent_span_id

    def undecided(self) -> Node | None:
        """Any node of this trace still waiting (the first of the first parent waited for)."""
        for nodes in self.waiting.values():
            if nodes:
                return nodes[0]
        return None
