# cython: language_level=3
"""Tally a batch's settled calls into their runs in C: the compiled twin of runs.py's ``tally_batch_python``.

``tally_batch`` takes and returns what ``tally_batch_python`` does and leaves the runs' tallies and
closed runs as it leaves them: the same steps in the same order (tests/test_runs_compiled.py compares
the two on seeded random trace forests). It reads a span's and a classification's fields through their
slot offsets (handed over by ``configure``), as the other compiled parts do, and calls ``Runs``' own
methods for what happens once a run (opening a tally, closing a run). A batch with a span or
classification of another class goes the Python way.
"""

from agentprom._slots cimport all_of, read_slot as get, slot_offsets, store_offsets

SPAN_FIELDS = ("trace_id", "attributes")
cdef enum:
    S_TRACE_ID, S_ATTRIBUTES, N_SPAN
CLASSIFIED_FIELDS = ("kind", "invocation", "counted", "tokens", "cost")
cdef enum:
    C_KIND, C_INVOCATION, C_COUNTED, C_TOKENS, C_COST, N_CLASSIFIED

cdef Py_ssize_t SPAN[N_SPAN]
cdef Py_ssize_t CLASSIFIED[N_CLASSIFIED]
cdef object Span = None, Classified = None
cdef object AGENT, LLM, OTHER, CYCLES, OPERATION, tally_python


def configure(span, classified, kinds, cycles, operation, python) -> None:
    """Take ``model.Span``, ``classify.Classified``, the kinds (agent, LLM, other), the loop-cycle
    operations, the operation attribute's key and the Python twin: ``ValueError`` unless the fields read
    are writable object slots of Span and Classified (slots classes)."""
    global Span, Classified, AGENT, LLM, OTHER, CYCLES, OPERATION, tally_python
    offsets = slot_offsets(span, SPAN_FIELDS), slot_offsets(classified, CLASSIFIED_FIELDS)
    store_offsets(SPAN, N_SPAN, offsets[0])
    store_offsets(CLASSIFIED, N_CLASSIFIED, offsets[1])
    Span, Classified = span, classified
    AGENT, LLM, OTHER = kinds
    CYCLES, OPERATION, tally_python = cycles, operation, python


def tally_batch(runs, spans, classified):
    """runs.py ``tally_batch_python``."""
    if len(spans) != len(classified) or not (all_of(spans, Span) and all_of(classified, Classified)):
        return tally_python(runs, spans, classified)
    tallies, closed, open_tally, close = runs.tallies, runs.closed, runs._tally, runs._close
    cdef object due = None  # when the runs closed now are observed: read once per call
    cdef list fresh = []  # tallies opened here for runs not closed yet
    cdef Py_ssize_t i
    cdef object span, c, kind, invocation, held, key, tokens, cost
    for i in range(len(spans)):
        span, c = spans[i], classified[i]
        kind = get(c, CLASSIFIED[C_KIND])
        invocation = get(c, CLASSIFIED[C_INVOCATION])
        if kind is OTHER:
            if invocation is not None and get(span, SPAN[S_ATTRIBUTES]).get(OPERATION) in CYCLES:
                held = open_tally((get(span, SPAN[S_TRACE_ID]), invocation), 0)
                if held is not None:
                    held[8] += 1
            continue
        if not get(c, CLASSIFIED[C_COUNTED]):
            continue
        if kind is AGENT:
            if due is None:
                due = runs.clock.monotonic() + runs.grace
            close(span, c, due)
            continue
        if invocation is None:
            continue  # not inside a counted run (a fallback, or no agent span above)
        key = (get(span, SPAN[S_TRACE_ID]), invocation)
        held = tallies.get(key)
        if held is None:
            held = open_tally(key)
            if held is None:
                continue
            if key not in closed:
                fresh.append(key)
        if kind is LLM:
            tokens = get(c, CLASSIFIED[C_TOKENS])
            held[0] += 1
            if tokens:
                held[2] += tokens.get("input", 0) + tokens.get("output", 0)
            cost = get(c, CLASSIFIED[C_COST])
            if cost:
                held[3] += cost
        else:
            held[1] += 1
    return fresh
