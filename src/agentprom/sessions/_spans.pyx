# cython: language_level=3
"""Fold settled spans into their sessions in C: the compiled twin of ``SpanSessions.on_spans``.

``on_spans`` takes what ``SpanSessions.on_spans`` (sessions/span_sessions.py) takes and does what it
does, step by step in the same order (tests/test_sessions_compiled.py compares the two on seeded random
trace forests, session by session and series by series): the per-span loop (which session a span
belongs to, the session's activity, agent and time span) runs here, reading spans, classifications
and sessions through their slot offsets (handed over by ``configure``) as the other compiled parts do;
everything else is the tracker's own Python code, called from here: a call's bookkeeping
(``_span_call``), a new or joined session, a better-named agent, the span's own attributes and events,
phase spans, the end of a session and a contained failure. A batch with a span or classification of
another class goes the Python way.
"""

from cpython.ref cimport PyObject

from agentprom._keys cimport disjoint
from agentprom._slots cimport all_of, put_slot, read_slot as get, slot_offsets

SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "attributes", "events")
cdef enum:
    S_TRACE_ID, S_SPAN_ID, S_PARENT_ID, S_START, S_END, S_ATTRIBUTES, S_EVENTS, N_SPAN
CLASSIFIED_FIELDS = ("session", "joins", "kind", "counted", "agent", "own_phase")
cdef enum:
    C_SESSION, C_JOINS, C_KIND, C_COUNTED, C_AGENT, C_OWN_PHASE, N_CLASSIFIED
SESSION_FIELDS = ("last_activity", "agent_rank", "start", "last_seen", "status")
cdef enum:
    X_LAST_ACTIVITY, X_AGENT_RANK, X_START, X_LAST_SEEN, X_STATUS, N_SESSION

cdef Py_ssize_t SPAN[N_SPAN]
cdef Py_ssize_t CLASSIFIED[N_CLASSIFIED]
cdef Py_ssize_t SESSION[N_SESSION]
cdef object Span = None, Classified = None, Session = None
cdef object AGENT, LLM, TOOL, on_spans_python, NOTHING, ACTIVE, STATUS_ERROR, OWN_SPAN_KIND, KIND_SESSION


def configure(span, classified, session, kinds, python, nothing, active, status_error, own_span_kind,
              kind_session) -> None:
    """Take ``model.Span``, ``classify.Classified``, ``sessions.model.Session``, the kinds (agent, LLM,
    tool), the Python twin, the empty set of found keys, the active status, the error status code and
    the own-convention span kind key and its session value: ``ValueError`` unless the fields read and
    written are writable object slots of their classes (slots classes)."""
    global Span, Classified, Session, AGENT, LLM, TOOL, on_spans_python, NOTHING, ACTIVE, STATUS_ERROR
    global OWN_SPAN_KIND, KIND_SESSION
    offsets = (slot_offsets(span, SPAN_FIELDS), slot_offsets(classified, CLASSIFIED_FIELDS),
               slot_offsets(session, SESSION_FIELDS))
    for i in range(N_SPAN):
        SPAN[i] = offsets[0][i]
    for i in range(N_CLASSIFIED):
        CLASSIFIED[i] = offsets[1][i]
    for i in range(N_SESSION):
        SESSION[i] = offsets[2][i]
    Span, Classified, Session = span, classified, session
    AGENT, LLM, TOOL = kinds
    on_spans_python, NOTHING, ACTIVE, STATUS_ERROR = python, nothing, active, status_error
    OWN_SPAN_KIND, KIND_SESSION = own_span_kind, kind_session


def on_spans(book, spans, classified):
    """``SpanSessions.on_spans``."""
    if len(spans) != len(classified) or not (all_of(spans, Span) and all_of(classified, Classified)):
        return on_spans_python(book, spans, classified)
    watched, open_sessions, ended = book._watched, book.open, book.ended
    agent_key_0, agent_key_1 = book._agent_key_0, book._agent_key_1
    now = book.store.now
    sink = book.sink
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
                put_slot(<PyObject*>s, SESSION[X_LAST_ACTIVITY], now)
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
                put_slot(<PyObject*>s, SESSION[X_START], start)
            if get(s, SESSION[X_LAST_SEEN]) is None or end > get(s, SESSION[X_LAST_SEEN]):
                put_slot(<PyObject*>s, SESSION[X_LAST_SEEN], end)
            if found:
                book._own_attributes(s, attrs, found, get(c, CLASSIFIED[C_AGENT]))
            if get(span, SPAN[S_EVENTS]):
                book._own_events(s, span, get(c, CLASSIFIED[C_AGENT]))

            # an outer LLM call (the trace context found the request's own span below it) is no call
            if kind is TOOL or (kind is LLM and get(c, CLASSIFIED[C_COUNTED])):
                book._span_call(s, span, c, found, start, end)
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
                put_slot(<PyObject*>s, SESSION[X_START], start)  # the session span is the session's own time span
                book._end(s, book._end_status(s, span), end)
            elif not keyed and not get(span, SPAN[S_PARENT_ID]):
                book._end(s, book._end_status(s, span), end)
        except Exception:
            book._failed(f"session tracking of span {span.span_id.hex()}")
