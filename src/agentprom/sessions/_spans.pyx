# cython: language_level=3
"""Fold settled spans into their sessions in C: the compiled twin of ``SpanSessions.on_spans``.

``on_spans`` takes what ``SpanSessions.on_spans`` (sessions/span_sessions.py) takes and does what it
does, step by step in the same order (tests/test_sessions_compiled.py compares the two on seeded random
trace forests, session by session and series by series): the per-span loop (which session a span
belongs to, the session's activity, agent and time span) runs here, reading spans, classifications
and sessions through their slot offsets (handed over by ``configure``) as the other compiled parts do;
so are the common part of ``_span_call`` (the call a tool or LLM span made, its ``Call`` written slot by
slot) and adding that call to its session (``add_call``, the twin of ``SessionBook._add_call`` and
``count_call``, used unless the book has a ``_add_call`` of its own; it calls the ``count_in_phase``,
``call_record`` and unknown model name handed to ``configure``, where Python reads book.py's globals). Everything else is the tracker's
own Python code, called from here: a new or joined session, a better-named agent, the span's own
attributes and events, phase spans, a call's phase and log record, the counters of a retry, a model
switch or a recovery, the end of a session and a contained failure. A batch with a span or
classification of another class goes the Python way.
"""

from cpython.ref cimport PyObject

from agentprom._keys cimport disjoint
from agentprom._slots cimport (all_of, allocated, fill_slot, put_slot, read_slot as get, slot_offsets,
                               store_offsets)

SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "attributes", "events")
cdef enum:
    S_TRACE_ID, S_SPAN_ID, S_PARENT_ID, S_START, S_END, S_ATTRIBUTES, S_EVENTS, N_SPAN
CLASSIFIED_FIELDS = ("session", "joins", "kind", "counted", "agent", "own_phase", "tool", "model", "provider", "ok",
                     "error_type", "tokens", "cost", "phase")
cdef enum:
    C_SESSION, C_JOINS, C_KIND, C_COUNTED, C_AGENT, C_OWN_PHASE, C_TOOL, C_MODEL, C_PROVIDER, C_OK, \
        C_ERROR_TYPE, C_TOKENS, C_COST, C_PHASE, N_CLASSIFIED
SESSION_FIELDS = ("last_activity", "agent_rank", "start", "last_seen", "status", "phase_by_span", "tool_calls",
                  "tool_errors", "tool_latency_ms", "calls", "calls_dropped", "llm_calls", "llm_errors", "input_tokens",
                  "output_tokens", "cached_tokens", "cost", "model", "provider", "retries", "escalations",
                  "last_model", "model_switches", "failing", "recoveries", "pending", "session_id")
cdef enum:
    X_LAST_ACTIVITY, X_AGENT_RANK, X_START, X_LAST_SEEN, X_STATUS, X_PHASE_BY_SPAN, X_TOOL_CALLS, X_TOOL_ERRORS, \
        X_TOOL_LATENCY, X_CALLS, X_CALLS_DROPPED, X_LLM_CALLS, X_LLM_ERRORS, X_INPUT, X_OUTPUT, X_CACHED, X_COST, \
        X_MODEL, X_PROVIDER, X_RETRIES, X_ESCALATIONS, X_LAST_MODEL, X_MODEL_SWITCHES, X_FAILING, X_RECOVERIES, \
        X_PENDING, X_SESSION_ID, N_SESSION
#: a Call's fields its constructor takes, in its order; the others (``CALL_DEFAULTS``) start as in any Call
CALL_GIVEN = ("kind", "name", "agent", "start", "duration_ms", "success", "error_class", "trace_id", "span_id")
cdef enum:
    K_KIND, K_NAME, K_AGENT, K_START, K_DURATION, K_SUCCESS, K_ERROR_CLASS, K_TRACE_ID, K_SPAN_ID, N_GIVEN
#: set on an LLM call from its classification, and the call's phase span while it waits for it
CALL_SET = ("model", "provider", "input_tokens", "output_tokens", "cached_tokens", "cost", "phase_span")
cdef enum:
    K_MODEL, K_PROVIDER, K_INPUT, K_OUTPUT, K_CACHED, K_COST, K_PHASE_SPAN, N_SET
#: read and set by ``add_call`` (the call's own-convention attributes set the first two)
CALL_MORE = ("attempt", "escalated", "recovered")
cdef enum:
    K_ATTEMPT, K_ESCALATED, K_RECOVERED, N_MORE

cdef Py_ssize_t SPAN[N_SPAN]
cdef Py_ssize_t CLASSIFIED[N_CLASSIFIED]
cdef Py_ssize_t SESSION[N_SESSION]
cdef Py_ssize_t CALL_OFFSET[N_GIVEN]
cdef Py_ssize_t CALL_SET_OFFSET[N_SET]
cdef Py_ssize_t CALL_MORE_OFFSET[N_MORE]
#: the offsets of a Call's other fields, and the value each starts with (immutable: shared by every Call)
cdef list CALL_DEFAULT_OFFSETS = []
cdef tuple CALL_DEFAULTS = ()
cdef object Span = None, Classified = None, Session = None, Call = None
cdef object AGENT, LLM, TOOL, on_spans_python, NOTHING, ACTIVE, STATUS_ERROR, OWN_SPAN_KIND, KIND_SESSION
cdef object OWN_PHASE_ID, OWN_PHASE_NAME, REQUEST_MODEL, REQUEST_MODEL_KEYS, TOOL_CALL, LLM_CALL, first_str
cdef object add_call_python, count_in_phase, call_record, UNKNOWN


def configure(span, classified, session, call, kinds, python, nothing, active, status_error, profile, call_kinds,
              read_first_str, book_add_call, phase_count, record_of_call, unknown) -> None:
    """Take ``model.Span``, ``classify.Classified``, ``sessions.model.Session`` and ``Call``, the kinds
    (agent, LLM, tool), the Python twin, the empty set of found keys, the active status, the error status
    code, the conventions' profile (conventions/profile.py), the call kinds (tool, LLM),
    ``classify.first_str``, and for adding a call to its session ``SessionBook._add_call`` (its twin is
    used only for a book that has not changed it), ``book.count_in_phase``, ``records.call_record`` and
    the unknown model's name: ``ValueError`` unless the fields read and written are writable object
    slots of their classes (slots classes) and a new Call's other fields start with immutable values."""
    global Span, Classified, Session, Call, AGENT, LLM, TOOL, on_spans_python, NOTHING, ACTIVE, STATUS_ERROR
    global OWN_SPAN_KIND, KIND_SESSION, OWN_PHASE_ID, OWN_PHASE_NAME, REQUEST_MODEL, REQUEST_MODEL_KEYS
    global TOOL_CALL, LLM_CALL, first_str, CALL_DEFAULT_OFFSETS, CALL_DEFAULTS
    global add_call_python, count_in_phase, call_record, UNKNOWN
    offsets = (slot_offsets(span, SPAN_FIELDS), slot_offsets(classified, CLASSIFIED_FIELDS),
               slot_offsets(session, SESSION_FIELDS), slot_offsets(call, CALL_GIVEN), slot_offsets(call, CALL_SET),
               slot_offsets(call, CALL_MORE))
    if {name for klass in call.__mro__ for name in getattr(klass, "__slots__", ())} != set(call.__slots__):
        raise ValueError("Call has slots of a base class: a new one would not be filled whole")
    others = tuple(name for name in call.__slots__ if name not in CALL_GIVEN)
    prototypes = (call("kind", "name", "agent", 0.0, 0.0, True),
                  call("other", "other", "other", 1.0, 2.0, False, "error", b"t", b"s"))
    defaults = tuple(getattr(prototypes[0], name) for name in others)
    if defaults != tuple(getattr(prototypes[1], name) for name in others):
        raise ValueError("a field of a new Call starts with a value its arguments make: it is not a default")
    if not all(value is None or type(value) in (bool, int, str, bytes) for value in defaults):
        raise ValueError("a field of a new Call starts with a mutable value: it cannot be shared")
    default_offsets = slot_offsets(call, others)
    store_offsets(SPAN, N_SPAN, offsets[0])
    store_offsets(CLASSIFIED, N_CLASSIFIED, offsets[1])
    store_offsets(SESSION, N_SESSION, offsets[2])
    store_offsets(CALL_OFFSET, N_GIVEN, offsets[3])
    store_offsets(CALL_SET_OFFSET, N_SET, offsets[4])
    store_offsets(CALL_MORE_OFFSET, N_MORE, offsets[5])
    CALL_DEFAULT_OFFSETS, CALL_DEFAULTS = default_offsets, defaults
    Span, Classified, Session, Call = span, classified, session, call
    AGENT, LLM, TOOL = kinds
    on_spans_python, NOTHING, ACTIVE, STATUS_ERROR = python, nothing, active, status_error
    OWN_SPAN_KIND, KIND_SESSION = profile.OWN_SPAN_KIND, profile.OWN_SPAN_KIND_SESSION
    OWN_PHASE_ID, OWN_PHASE_NAME = profile.OWN_PHASE_ID, profile.OWN_PHASE_NAME
    REQUEST_MODEL_KEYS = tuple(profile.REQUEST_MODEL_KEYS)
    REQUEST_MODEL = REQUEST_MODEL_KEYS[0]
    TOOL_CALL, LLM_CALL = call_kinds
    first_str = read_first_str
    add_call_python, count_in_phase, call_record, UNKNOWN = book_add_call, phase_count, record_of_call, unknown


cdef object new_call(object kind, object name, object agent, object start, object duration_ms, object success,
                     object error_class, object trace_id, object span_id):
    """``Call(kind, name, agent, start, duration_ms, success, error_class, trace_id, span_id)``, its slots
    written directly."""
    cdef Py_ssize_t i
    call = allocated(Call)
    cdef PyObject* obj = <PyObject*>call
    fill_slot(obj, CALL_OFFSET[K_KIND], kind)
    fill_slot(obj, CALL_OFFSET[K_NAME], name)
    fill_slot(obj, CALL_OFFSET[K_AGENT], agent)
    fill_slot(obj, CALL_OFFSET[K_START], start)
    fill_slot(obj, CALL_OFFSET[K_DURATION], duration_ms)
    fill_slot(obj, CALL_OFFSET[K_SUCCESS], success)
    fill_slot(obj, CALL_OFFSET[K_ERROR_CLASS], error_class)
    fill_slot(obj, CALL_OFFSET[K_TRACE_ID], trace_id)
    fill_slot(obj, CALL_OFFSET[K_SPAN_ID], span_id)
    for i in range(len(CALL_DEFAULTS)):
        fill_slot(obj, CALL_DEFAULT_OFFSETS[i], CALL_DEFAULTS[i])
    return call


cdef inline void put(object obj, Py_ssize_t offset, object value) noexcept:
    """Set a slot of ``obj`` (``put_slot`` for an object)."""
    put_slot(<PyObject*>obj, offset, value)


cdef inline add_to(object obj, Py_ssize_t offset, object amount):
    """``obj.<field> += amount`` for the slot at ``offset`` (a session's counter)."""
    put(obj, offset, get(obj, offset) + amount)


cdef add_call(object book, object s, object call, object phase, bint final, object max_calls,
              object max_pending, object sink):
    """``SessionBook._add_call`` (and the ``count_call`` it starts with) of a Call made here, step by step:
    the session's counters and stored calls, a change of model, a retry, a failure or a recovery of the
    same tool or model, then the call's phase and log record now (``final``, or an ended session) or
    the session's pending calls until its phase span comes. ``max_calls``, ``max_pending`` and
    ``sink`` are the book's, read once a batch."""
    cdef bint is_tool = get(call, CALL_OFFSET[K_KIND]) == TOOL_CALL
    cdef object success = get(call, CALL_OFFSET[K_SUCCESS]), failed, name, agent, component, key, calls, failing
    cdef object model
    failed = not success
    # count_call
    if is_tool:
        add_to(s, SESSION[X_TOOL_CALLS], 1)
        add_to(s, SESSION[X_TOOL_ERRORS], failed)
        add_to(s, SESSION[X_TOOL_LATENCY], get(call, CALL_OFFSET[K_DURATION]))
        if max_calls:
            calls = get(s, SESSION[X_CALLS])
            if len(calls) >= max_calls:
                calls.popleft()
                add_to(s, SESSION[X_CALLS_DROPPED], 1)
            calls.append(call)
    else:
        add_to(s, SESSION[X_LLM_CALLS], 1)
        add_to(s, SESSION[X_LLM_ERRORS], failed)
        add_to(s, SESSION[X_INPUT], get(call, CALL_SET_OFFSET[K_INPUT]) or 0)
        add_to(s, SESSION[X_OUTPUT], get(call, CALL_SET_OFFSET[K_OUTPUT]) or 0)
        add_to(s, SESSION[X_CACHED], get(call, CALL_SET_OFFSET[K_CACHED]) or 0)
        add_to(s, SESSION[X_COST], get(call, CALL_SET_OFFSET[K_COST]) or 0.0)
        model = get(call, CALL_SET_OFFSET[K_MODEL])
        if model and model != UNKNOWN and not get(s, SESSION[X_MODEL]):
            put(s, SESSION[X_MODEL], model)
            put(s, SESSION[X_PROVIDER], get(call, CALL_SET_OFFSET[K_PROVIDER]))
    add_to(s, SESSION[X_RETRIES], get(call, CALL_MORE_OFFSET[K_ATTEMPT]) > 1)
    add_to(s, SESSION[X_ESCALATIONS], get(call, CALL_MORE_OFFSET[K_ESCALATED]))
    # the rest of _add_call
    component = "tool" if is_tool else "llm"
    name, agent = get(call, CALL_OFFSET[K_NAME]), get(call, CALL_OFFSET[K_AGENT])
    if not is_tool and name:
        if get(s, SESSION[X_LAST_MODEL]) is not None and name != get(s, SESSION[X_LAST_MODEL]):
            add_to(s, SESSION[X_MODEL_SWITCHES], 1)
            book._m_model_switches.inc((agent,))
        put(s, SESSION[X_LAST_MODEL], name)
    if get(call, CALL_MORE_OFFSET[K_ATTEMPT]) > 1:
        book._m_retries.inc((agent, name if is_tool else "llm:" + name))
    if get(s, SESSION[X_STATUS]) == ACTIVE:
        failing = get(s, SESSION[X_FAILING])
        if not success:
            key = (component, name)
            if len(failing) < max_pending:
                failing.add(key)
            elif key not in failing:
                book._dropped(s, "failing_calls")
        elif failing and (component, name) in failing:
            failing.discard((component, name))
            put(call, CALL_MORE_OFFSET[K_RECOVERED], True)
            add_to(s, SESSION[X_RECOVERIES], 1)
            book._m_recoveries.inc((agent, component))
    if final or get(s, SESSION[X_STATUS]) != ACTIVE:
        if phase is not None:
            count_in_phase(phase, call)
        if sink is not None:
            sink(call_record(call, get(s, SESSION[X_SESSION_ID])))
        return
    if len(get(s, SESSION[X_PENDING])) >= max_pending:
        book._attribute(s, get(s, SESSION[X_PENDING]).pop(0), None)  # out of room: the oldest goes without a phase
        book._dropped(s, "pending_calls")
    get(s, SESSION[X_PENDING]).append(call)


cdef span_call(object book, object s, object span, object c, object found, object start, object end, bint twin,
               object max_calls, object max_pending, object sink):
    """``SpanSessions._span_call``: the call a tool or LLM span made, added to its session (by
    ``add_call`` when ``twin``: the book's ``_add_call`` is SessionBook's)."""
    cdef object attrs = get(span, SPAN[S_ATTRIBUTES]), name, call, tokens, phase_key, phase, phase_span
    cdef bint is_tool = get(c, CLASSIFIED[C_KIND]) is TOOL, final
    # An LLM call is identified by the model it asked for (span_sessions.py says why)
    if is_tool:
        name = get(c, CLASSIFIED[C_TOOL])
    else:
        name = attrs.get(REQUEST_MODEL)
        if type(name) is not str or not name:
            name = first_str(attrs, REQUEST_MODEL_KEYS) or get(c, CLASSIFIED[C_MODEL])
    call = new_call(TOOL_CALL if is_tool else LLM_CALL, name, get(c, CLASSIFIED[C_AGENT]), start,
                    (end - start) * 1000.0, get(c, CLASSIFIED[C_OK]), get(c, CLASSIFIED[C_ERROR_TYPE]) or None,
                    get(span, SPAN[S_TRACE_ID]), get(span, SPAN[S_SPAN_ID]))
    if found:
        book._call_attributes(call, attrs, found)
    if not is_tool:
        tokens = get(c, CLASSIFIED[C_TOKENS])
        put(call, CALL_SET_OFFSET[K_MODEL], get(c, CLASSIFIED[C_MODEL]))
        put(call, CALL_SET_OFFSET[K_PROVIDER], get(c, CLASSIFIED[C_PROVIDER]))
        put(call, CALL_SET_OFFSET[K_INPUT], tokens.get("input"))
        put(call, CALL_SET_OFFSET[K_OUTPUT], tokens.get("output"))
        put(call, CALL_SET_OFFSET[K_CACHED], tokens.get("cache_read"))
        put(call, CALL_SET_OFFSET[K_COST], get(c, CLASSIFIED[C_COST]))
    phase_key = (attrs.get(OWN_PHASE_ID) or attrs.get(OWN_PHASE_NAME)) if found else None
    if phase_key:
        phase, final = book._phase_ref(s, str(phase_key), str(attrs.get(OWN_PHASE_NAME) or phase_key)), True
    elif get(c, CLASSIFIED[C_PHASE]) is not None and get(s, SESSION[X_STATUS]) == ACTIVE:
        # the phase span above usually comes just after (it ends after its children): wait for it
        phase_span = get(c, CLASSIFIED[C_PHASE])[0]
        put(call, CALL_SET_OFFSET[K_PHASE_SPAN], phase_span)
        phase = get(s, SESSION[X_PHASE_BY_SPAN]).get(phase_span)
        final = phase is not None
    else:
        phase, final = None, True
    if twin:
        add_call(book, s, call, phase, final, max_calls, max_pending, sink)
    else:
        book._add_call(s, call, phase, final)


def on_spans(book, spans, classified):
    """``SpanSessions.on_spans``."""
    if len(spans) != len(classified) or not (all_of(spans, Span) and all_of(classified, Classified)):
        return on_spans_python(book, spans, classified)
    watched, open_sessions, ended = book._watched, book.open, book.ended
    agent_key_0, agent_key_1 = book._agent_key_0, book._agent_key_1
    now = book.store.now
    sink = book.sink
    # the twin of _add_call stands in for the book's own only if neither the book's class nor the book
    # itself has changed it
    cdef bint twin = (getattr(type(book), "_add_call", None) is add_call_python
                      and "_add_call" not in getattr(book, "__dict__", ()))
    cdef object max_calls = book._max_calls if twin else None
    cdef object max_pending = book._max_pending if twin else None
    cdef object trace_id = None, trace_session = None  # the last trace-id session's id
    cdef object span, c, attrs, found, session_id, kind, s, rank, start, end, own_phase, held_trace
    cdef bint keyed
    cdef Py_ssize_t i
    for i in range(len(spans)):
        span, c = spans[i], classified[i]
        try:
            attrs = get(span, SPAN[S_ATTRIBUTES])
            found = NOTHING if disjoint(attrs, watched) else attrs.keys() & watched
            session_id = get(c, CLASSIFIED[C_SESSION])
            keyed = session_id is not None
            if not keyed:
                held_trace = get(span, SPAN[S_TRACE_ID])
                if held_trace != trace_id:
                    trace_id = held_trace
                    trace_session = held_trace.hex()
                session_id = trace_session
                if (session_id not in open_sessions and session_id not in ended
                        and not book._meaningful(span, c)):
                    continue
            elif get(c, CLASSIFIED[C_JOINS]):
                book._join(get(span, SPAN[S_TRACE_ID]).hex(), session_id, c)
            kind = get(c, CLASSIFIED[C_KIND])
            s = open_sessions.get(session_id)
            if s is not None:  # the common case: an open session goes on
                if type(s) is not Session:
                    raise TypeError(f"an open session is a {type(s).__name__}")
                put(s, SESSION[X_LAST_ACTIVITY], now)
                open_sessions.move_to_end(session_id)
                if get(s, SESSION[X_AGENT_RANK]) < 2:  # only a better-named agent can change it
                    rank = 2 if (kind is AGENT and get(c, CLASSIFIED[C_COUNTED])) or agent_key_0 in attrs \
                        or agent_key_1 in attrs else 1
                    if rank > get(s, SESSION[X_AGENT_RANK]):
                        book._set_agent(s, get(c, CLASSIFIED[C_AGENT]), rank)
            else:
                rank = 2 if (kind is AGENT and get(c, CLASSIFIED[C_COUNTED])) or agent_key_0 in attrs \
                    or agent_key_1 in attrs else 1
                s = book._session(session_id, get(c, CLASSIFIED[C_AGENT]), rank)
                if type(s) is not Session:
                    raise TypeError(f"a session is a {type(s).__name__}")
            start, end = get(span, SPAN[S_START]) / 1e9, get(span, SPAN[S_END]) / 1e9
            if get(s, SESSION[X_START]) is None or start < get(s, SESSION[X_START]):
                put(s, SESSION[X_START], start)
            if get(s, SESSION[X_LAST_SEEN]) is None or end > get(s, SESSION[X_LAST_SEEN]):
                put(s, SESSION[X_LAST_SEEN], end)
            if found:
                book._own_attributes(s, attrs, found, get(c, CLASSIFIED[C_AGENT]))
            if get(span, SPAN[S_EVENTS]):
                book._own_events(s, span, get(c, CLASSIFIED[C_AGENT]))

            # an outer LLM call (the trace context found the request's own span below it) is no call
            if kind is TOOL or (kind is LLM and get(c, CLASSIFIED[C_COUNTED])):
                span_call(book, s, span, c, found, start, end, twin, max_calls, max_pending, sink)
            elif kind is AGENT and get(c, CLASSIFIED[C_COUNTED]) and sink is not None:
                book._invocation(s, span, c, start, end)
            else:
                own_phase = get(c, CLASSIFIED[C_OWN_PHASE])
                if own_phase is not None:
                    phase_id, name = own_phase
                    book._phase_span(s, phase_id, name, get(span, SPAN[S_SPAN_ID]), start, end,
                                     span.status_code == STATUS_ERROR)

            if get(s, SESSION[X_STATUS]) != ACTIVE:
                continue
            if OWN_SPAN_KIND in found and attrs[OWN_SPAN_KIND] == KIND_SESSION:
                put(s, SESSION[X_START], start)  # the session span is the session's own time span
                book._end(s, book._end_status(s, span), end)
            elif not keyed and not get(span, SPAN[S_PARENT_ID]):
                book._end(s, book._end_status(s, span), end)
        except Exception:
            book._failed(f"session tracking of span {span.span_id.hex()}")
