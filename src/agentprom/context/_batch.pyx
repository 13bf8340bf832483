# cython: language_level=3
"""Place a batch's spans in their trace trees in C: the compiled twins of batch.py's loops and ``decide``.

``index_batch``, ``place_batch`` and ``decide`` take and return what batch.py's ``index_batch_python``,
``place_batch_python`` and ``decide_python`` do and leave every structure they touch (the trees, the
classifications, the resolved output) as those leave it: the same steps in the same order
(tests/test_context_compiled.py runs seeded random trace trees through both). They read a span's,
a classification's and a tree's fields through their slot offsets (handed over by ``configure``),
as the compiled decoder and classification do, and call Python code for what is rare or holds
rules of its own: marking ancestors (tree.py), reading a session key or a phase span (scope.py), a
service name (classify.py) and every span that must wait (stage.py ``_node``, ``_place``,
``_settle``). A batch with a span or classification of another class goes the Python way.
"""

from cpython.ref cimport PyObject
from agentprom._keys cimport disjoint
from agentprom._slots cimport all_of, put_slot, read_slot as get, slot_offsets, store_offsets

SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "parent_remote", "attributes")
cdef enum:
    S_TRACE_ID, S_SPAN_ID, S_PARENT_ID, S_PARENT_REMOTE, S_ATTRIBUTES, N_SPAN
CLASSIFIED_FIELDS = ("kind", "named", "session", "counted", "joins", "phase", "own_phase", "invocation", "agent",
                     "caller")
cdef enum:
    C_KIND, C_NAMED, C_SESSION, C_COUNTED, C_JOINS, C_PHASE, C_OWN_PHASE, C_INVOCATION, C_AGENT, C_CALLER, \
        N_CLASSIFIED
TREE_FIELDS = ("trace_id", "nodes", "waiting", "llm_below", "named_below", "session", "unkeyed")
cdef enum:
    T_TRACE_ID, T_NODES, T_WAITING, T_LLM_BELOW, T_NAMED_BELOW, T_SESSION, T_UNKEYED, N_TREE

cdef Py_ssize_t SPAN[N_SPAN]
cdef Py_ssize_t CLASSIFIED[N_CLASSIFIED]
cdef Py_ssize_t TREE[N_TREE]
cdef object Span = None, Classified = None, Tree = None
cdef object AGENT, LLM, TOOL, OTHER, ROOT, session_of, service_name, index_python, place_python, decide_python


def configure(span, classified, tree, kinds, root, read_session, read_service, python) -> None:
    """Take batch.py's classes, the kinds (agent, LLM, tool, other), what a local root inherits, scope.py's
    ``session_of``, classify.py's ``service_name`` and the three Python twins: ``ValueError`` unless the
    fields read and written are writable object slots of Span, Classified and Tree (slots classes)."""
    global Span, Classified, Tree, AGENT, LLM, TOOL, OTHER, ROOT, session_of, service_name
    global index_python, place_python, decide_python
    offsets = (slot_offsets(span, SPAN_FIELDS), slot_offsets(classified, CLASSIFIED_FIELDS),
               slot_offsets(tree, TREE_FIELDS))
    if type(root) is not tuple or len(root) != 8:
        raise ValueError("what a local root inherits is not an 8-tuple of passes")
    store_offsets(SPAN, N_SPAN, offsets[0])
    store_offsets(CLASSIFIED, N_CLASSIFIED, offsets[1])
    store_offsets(TREE, N_TREE, offsets[2])
    Span, Classified, Tree = span, classified, tree
    AGENT, LLM, TOOL, OTHER = kinds
    ROOT, session_of, service_name = root, read_session, read_service
    index_python, place_python, decide_python = python


cdef bint ours(spans, classified, list trees=None) except -1:
    """Every span a ``Span`` and every classification a ``Classified`` (and every tree a ``Tree``),
    as many of each: what the slot reads below may be done on."""
    cdef Py_ssize_t n = len(spans)
    if len(classified) != n or (trees is not None and len(trees) != n):
        return False
    return all_of(spans, Span) and all_of(classified, Classified) and (trees is None or all_of(trees, Tree))


def index_batch(traces, spans, classified, scope_keys):
    """batch.py ``index_batch_python``. The trees in ``traces`` are the stage's own ``Tree``s: anything else
    there is refused (``TypeError``), never read by offset."""
    if not ours(spans, classified):
        return index_python(traces, spans, classified, scope_keys)
    cdef Py_ssize_t n = len(spans), index, after_parent = 0
    cdef list trees = []
    cdef set duplicates = set()
    cdef dict nodes
    cdef object tree = None, span, c, trace_id, span_id, parent_id, kind, attrs, key
    for index in range(n):
        span = spans[index]
        c = classified[index]
        trace_id = get(span, SPAN[S_TRACE_ID])
        if tree is None or get(tree, TREE[T_TRACE_ID]) != trace_id:  # spans of a trace mostly come together
            tree = traces.get(trace_id)
            if tree is not None and type(tree) is not Tree:
                raise TypeError(f"the trace context holds a {type(tree).__name__} for a trace")
            if tree is None:
                tree = Tree(trace_id)
                traces[trace_id] = tree
            else:
                traces.move_to_end(trace_id)
        trees.append(tree)
        span_id, parent_id, kind = get(span, SPAN[S_SPAN_ID]), get(span, SPAN[S_PARENT_ID]), get(c, CLASSIFIED[C_KIND])
        nodes = get(tree, TREE[T_NODES])
        if parent_id in nodes:
            after_parent += 1
        if span_id in nodes:
            duplicates.add(index)
        else:
            nodes[span_id] = span
        if (kind is LLM or span_id in get(tree, TREE[T_LLM_BELOW])) and parent_id not in get(tree, TREE[T_LLM_BELOW]):
            tree.mark_llm(parent_id, span_id)
        if ((kind is AGENT and get(c, CLASSIFIED[C_NAMED])) or span_id in get(tree, TREE[T_NAMED_BELOW])) \
                and parent_id not in get(tree, TREE[T_NAMED_BELOW]):
            tree.mark_named(parent_id, span_id)
        attrs = get(span, SPAN[S_ATTRIBUTES])
        if not disjoint(attrs, scope_keys):
            key = session_of(attrs)
            if key is not None:
                put_slot(<PyObject*>c, CLASSIFIED[C_SESSION], key)
                put_slot(<PyObject*>tree, TREE[T_SESSION], key)
    return trees, duplicates, after_parent


def place_batch(context, spans, classified, trees, duplicates, bint newest_first, Py_ssize_t base, out):
    """batch.py ``place_batch_python`` (the trees are the stage's own, from ``index_batch``)."""
    if type(trees) is not list or type(duplicates) is not set or not ours(spans, classified, trees):
        return place_python(context, spans, classified, trees, duplicates, newest_first, base, out)
    place, settle, node_of = context._place, context._settle, context._node
    phase_keys, phase_of = context._phase_keys, context.phases.phase_of
    counted_spans, counted = out.spans, out.classified
    cdef list waiters = [], fast = []
    cdef Py_ssize_t n = len(trees), i, index
    cdef object span, c, tree, span_id, parent_id, above, node, kind, waiting_for, waiting
    for i in range(n):
        index = n - 1 - i if newest_first else i
        span, c, tree = spans[index], classified[index], trees[index]
        span_id, parent_id = get(span, SPAN[S_SPAN_ID]), get(span, SPAN[S_PARENT_ID])
        if (parent_id and (get(span, SPAN[S_PARENT_REMOTE]) or parent_id == span_id)) \
                or (duplicates and index in duplicates):
            node = node_of(span, c, tree, base + index + 1)
            place(node, out)
            waiters.append(node)
            continue
        above = get(tree, TREE[T_NODES]).get(parent_id) if parent_id else ROOT
        if type(above) is not tuple:  # its parent is not decided: it waits (stage.py ``_place``, inline)
            node = node_of(span, c, tree, base + index + 1)
            kind = get(c, CLASSIFIED[C_KIND])
            if kind is OTHER or (get(c, CLASSIFIED[C_NAMED]) and kind is not AGENT):
                if kind is LLM and span_id in get(tree, TREE[T_LLM_BELOW]):
                    put_slot(<PyObject*>c, CLASSIFIED[C_COUNTED], False)  # an outer call
                counted_spans.append(span)
                counted.append(c)
                node.emitted = True
            waiting_for = get(tree, TREE[T_WAITING])
            waiting = waiting_for.get(parent_id)
            if waiting is None:
                waiting_for[parent_id] = [node]
            else:
                waiting.append(node)
            waiters.append(node)
        elif span_id in get(tree, TREE[T_WAITING]):  # spans wait for it: they are decided with it
            settle(node_of(span, c, tree, base + index + 1), above, out)
        else:
            decided(span, c, tree, above, None, phase_keys, phase_of)  # the tree holds the span: it takes the passes
            fast.append(index)
    return waiters, fast


def decide(context, span, c, tree, above, holder=None):
    """batch.py ``decide_python``."""
    if type(span) is not Span or type(c) is not Classified or type(tree) is not Tree or type(above) is not tuple:
        return decide_python(context, span, c, tree, above, holder)
    return decided(span, c, tree, above, holder, context._phase_keys, context.phases.phase_of)


cdef tuple decided(object span, object c, object tree, tuple above, object holder, object phase_keys,
                   object phase_of):
    """``decide_python``'s steps, in its order."""
    cdef object ctx, agent_above, any_agent, phase, parent_is_agent, invocation, session, kind, span_id
    cdef object own_phase, own, resolved, above_agent, counted
    cdef tuple passes
    cdef dict nodes
    ctx, agent_above, any_agent, phase, parent_is_agent, _parent, invocation, _agent = above
    session = get(c, CLASSIFIED[C_SESSION])
    if session is None:
        session = get(tree, TREE[T_SESSION])
        put_slot(<PyObject*>c, CLASSIFIED[C_SESSION], session)
    if session is None:
        put_slot(<PyObject*>tree, TREE[T_UNKEYED], True)  # handed on to a trace-id session
    elif get(tree, TREE[T_UNKEYED]):
        put_slot(<PyObject*>c, CLASSIFIED[C_JOINS], True)
        put_slot(<PyObject*>tree, TREE[T_UNKEYED], False)
    put_slot(<PyObject*>c, CLASSIFIED[C_PHASE], phase)
    kind, span_id = get(c, CLASSIFIED[C_KIND]), get(span, SPAN[S_SPAN_ID])
    if kind is LLM and span_id in get(tree, TREE[T_LLM_BELOW]):
        put_slot(<PyObject*>c, CLASSIFIED[C_COUNTED], False)  # an outer call
    if kind is not TOOL and not (kind is LLM and get(c, CLASSIFIED[C_COUNTED])) \
            and not disjoint(get(span, SPAN[S_ATTRIBUTES]), phase_keys):
        own_phase = phase_of(span, parent_is_agent)
        if own_phase is not None:
            put_slot(<PyObject*>c, CLASSIFIED[C_OWN_PHASE], own_phase)
            phase = (span_id, *own_phase)
    put_slot(<PyObject*>c, CLASSIFIED[C_INVOCATION], invocation)
    if kind is not AGENT:
        if ctx is not None and not get(c, CLASSIFIED[C_NAMED]):
            put_slot(<PyObject*>c, CLASSIFIED[C_AGENT], ctx)
        passes = (ctx, agent_above, any_agent, phase, False, get(span, SPAN[S_PARENT_ID]), invocation,
                  get(c, CLASSIFIED[C_AGENT]))
    else:
        # without a name of its own, classification gave the span its service.name
        own = get(c, CLASSIFIED[C_AGENT]) if get(c, CLASSIFIED[C_NAMED]) else None
        if own is None and not any_agent and span_id in get(tree, TREE[T_NAMED_BELOW]):
            # a wrapper: not counted, and transparent to what is below it
            passes = (ctx, agent_above, True, phase, True, get(span, SPAN[S_PARENT_ID]), invocation,
                      get(c, CLASSIFIED[C_AGENT]))
            put_slot(<PyObject*>c, CLASSIFIED[C_COUNTED], False)
        else:
            resolved = own or ctx or get(c, CLASSIFIED[C_AGENT])
            if agent_above:
                # a step of the same agent's run (its nearest agent-span ancestor resolves alike)
                above_agent = ctx or (get(c, CLASSIFIED[C_AGENT]) if own is None else service_name(span))
                counted = resolved != above_agent
                put_slot(<PyObject*>c, CLASSIFIED[C_COUNTED], counted)
                if counted:  # a sub-agent: the call graph's edge from the agent above
                    put_slot(<PyObject*>c, CLASSIFIED[C_CALLER], above_agent)
            put_slot(<PyObject*>c, CLASSIFIED[C_AGENT], resolved)
            passes = (own or ctx, True, True, phase, True, get(span, SPAN[S_PARENT_ID]),
                      span_id if get(c, CLASSIFIED[C_COUNTED]) else invocation, resolved)
    nodes = get(tree, TREE[T_NODES])
    if holder is None or nodes.get(span_id) is holder:  # a duplicate id keeps the first span's entry
        nodes[span_id] = passes
    return passes
