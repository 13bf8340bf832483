# cython: language_level=3
"""Series handles in C: the compiled twin of ``handles.HandlePython``.

``add`` and ``put`` make the very updates ``Family.inc``/``observe`` make after their lookup, as
the Python handle does, writing the series' and exemplars' slots directly (where each sits is
read from their classes by ``configure``): a handle update is a C call instead of a Python frame
and a dozen attribute steps. tests/test_handles.py counts the same seeded calls through handles
and through the families' own lookups and compares every series, each test with this handle and
with the Python one, and the compiled counting loop against the Python loop.
"""

cimport cython
from bisect import bisect_left

from agentprom._slots cimport get_slot, put_slot, slot_offsets

#: the fields of metrics.series_store.Series written here, and of its Exemplar
SERIES_FIELDS = ("value", "counts", "sum", "updated", "text", "om", "exemplars")
EXEMPLAR_FIELDS = ("_trace_id", "_span_id", "value", "timestamp")
cdef enum:
    VALUE, COUNTS, SUM, UPDATED, TEXT, OM, EXEMPLARS, N_SERIES_FIELDS
cdef enum:
    TRACE_ID, SPAN_ID, EXEMPLAR_VALUE, TIMESTAMP, N_EXEMPLAR_FIELDS
cdef Py_ssize_t SERIES_OFFSET[N_SERIES_FIELDS]
cdef Py_ssize_t EXEMPLAR_OFFSET[N_EXEMPLAR_FIELDS]
cdef object Series = None
cdef object Exemplar = None
#: the fields of conventions.classify.Classified read when counting, and of model.Span
CLASSIFIED_FIELDS = ("kind", "agent", "ok", "error_type", "operation", "tool", "model", "provider", "tokens", "cost",
                     "weight", "counted", "caller", "streaming", "ttft", "tpot", "finish_reasons")
cdef enum:
    C_KIND, C_AGENT, C_OK, C_ERROR_TYPE, C_OPERATION, C_TOOL, C_MODEL, C_PROVIDER, C_TOKENS, C_COST, C_WEIGHT
    C_COUNTED, C_CALLER, C_STREAMING, C_TTFT, C_TPOT, C_FINISH_REASONS, N_CLASSIFIED_FIELDS
SPAN_FIELDS = ("start_ns", "end_ns", "trace_id", "span_id")
cdef enum:
    S_START, S_END, S_TRACE_ID, S_SPAN_ID, N_SPAN_FIELDS
cdef Py_ssize_t CLASSIFIED_OFFSET[N_CLASSIFIED_FIELDS]
cdef Py_ssize_t SPAN_OFFSET[N_SPAN_FIELDS]
cdef object Classified = None
cdef object Span = None
#: handles.HandlePython's methods: the way for what is not a plain Series (a first update, a label
#: set that maps elsewhere, a series of another class)
cdef object python_add = None
cdef object python_put = None


def configure(series, exemplar, python_handle, classified, span) -> None:
    """Take ``Series`` and ``Exemplar`` (metrics/series_store.py), the Python handle class,
    ``Classified`` and ``model.Span``: ``ValueError`` unless the fields read and written are
    writable object slots of each."""
    global Series, Exemplar, python_add, python_put, Classified, Span
    series_offsets = slot_offsets(series, SERIES_FIELDS)
    exemplar_offsets = slot_offsets(exemplar, EXEMPLAR_FIELDS)
    classified_offsets = slot_offsets(classified, CLASSIFIED_FIELDS)
    span_offsets = slot_offsets(span, SPAN_FIELDS)
    for i in range(N_CLASSIFIED_FIELDS):
        CLASSIFIED_OFFSET[i] = classified_offsets[i]
    for i in range(N_SPAN_FIELDS):
        SPAN_OFFSET[i] = span_offsets[i]
    Classified, Span = classified, span
    for i in range(N_SERIES_FIELDS):
        SERIES_OFFSET[i] = series_offsets[i]
    for i in range(N_EXEMPLAR_FIELDS):
        EXEMPLAR_OFFSET[i] = exemplar_offsets[i]
    Series, Exemplar = series, exemplar
    python_add, python_put = python_handle.add, python_handle.put


cdef inline object cf(object c, int field):
    """A classification's field (CLASSIFIED_FIELDS order): from its slot for a ``Classified``."""
    if type(c) is Classified:
        return get_slot(c, CLASSIFIED_OFFSET[field])
    return getattr(c, CLASSIFIED_FIELDS[field])


cdef inline object sf(object span, int field):
    """A span's field (SPAN_FIELDS order): from its slot for a ``model.Span``."""
    if type(span) is Span:
        return get_slot(span, SPAN_OFFSET[field])
    return getattr(span, SPAN_FIELDS[field])


@cython.final
cdef class Handle:
    """One label set of one family: ``add`` (counter) or ``put`` (histogram) without a lookup."""

    cdef public object family
    cdef public object labels
    #: the series stored under ``labels`` itself; None until the first update made it, or for good
    #: when the labels map elsewhere (each update then goes the family's way)
    cdef public object series
    cdef public object store
    cdef public bint exemplars

    def __init__(self, family, labels):
        self.family = family
        self.labels = labels
        self.series = family.series.get(labels)
        # (a dimensioned family, dimensions.py, has no store of its own and never a series here)
        self.store = getattr(family, "store", None)
        self.exemplars = getattr(family, "_exemplars", False)

    cpdef add(self, amount, exemplar=None):
        series = self.series
        if series is None or not isinstance(series, Series):
            python_add(self, amount, exemplar)
            return
        put_slot(series, SERIES_OFFSET[VALUE], get_slot(series, SERIES_OFFSET[VALUE]) + amount)
        store = self.store
        put_slot(series, SERIES_OFFSET[UPDATED], store.now)
        put_slot(series, SERIES_OFFSET[TEXT], None)
        put_slot(series, SERIES_OFFSET[OM], None)
        if exemplar is not None and self.exemplars:
            held = get_slot(series, SERIES_OFFSET[EXEMPLARS])
            if held is None or held[0] is None:
                put_slot(series, SERIES_OFFSET[EXEMPLARS], [Exemplar(exemplar[0], exemplar[1], amount, store.wall_now)])
            else:  # in place, as Family.inc does
                self._replace(held[0], exemplar, amount)

    cpdef put(self, value, exemplar=None, weight=1):
        series = self.series
        if series is None or not isinstance(series, Series):
            python_put(self, value, exemplar, weight)
            return
        family = self.family
        cdef Py_ssize_t index = bisect_left(family.buckets, value)
        counts = get_slot(series, SERIES_OFFSET[COUNTS])
        counts[index] += weight
        put_slot(series, SERIES_OFFSET[SUM], get_slot(series, SERIES_OFFSET[SUM]) + value * weight)
        store = self.store
        put_slot(series, SERIES_OFFSET[UPDATED], store.now)
        put_slot(series, SERIES_OFFSET[TEXT], None)
        put_slot(series, SERIES_OFFSET[OM], None)
        if exemplar is not None and self.exemplars:
            exemplars = get_slot(series, SERIES_OFFSET[EXEMPLARS])
            if exemplars is None:
                exemplars = [None] * (family.n_buckets + 1)
                put_slot(series, SERIES_OFFSET[EXEMPLARS], exemplars)
            held = exemplars[index]
            if held is None:
                exemplars[index] = Exemplar(exemplar[0], exemplar[1], value, store.wall_now)
            else:  # in place, as Family.observe does
                self._replace(held, exemplar, value)

    cdef void _replace(self, object held, object exemplar, object value) except *:
        """Make ``held`` (an Exemplar) the exemplar of the span ``exemplar`` names, as ``value``."""
        if type(held) is not Exemplar:  # not ours to write by slot: as the Python handle does
            held._trace_id, held._span_id = exemplar
            held.value, held.timestamp = value, self.store.wall_now
            return
        trace_id, span_id = exemplar
        put_slot(held, EXEMPLAR_OFFSET[TRACE_ID], trace_id)
        put_slot(held, EXEMPLAR_OFFSET[SPAN_ID], span_id)
        put_slot(held, EXEMPLAR_OFFSET[EXEMPLAR_VALUE], value)
        put_slot(held, EXEMPLAR_OFFSET[TIMESTAMP], self.store.wall_now)


# -- the translator's counting step through handles (Translator.record's compiled twin) -----------

@cython.final
cdef class ToolSeries:
    cdef readonly Handle calls, duration

    def __init__(self, Recorder r, agent, tool, status):
        self.calls = Handle(r.tool_calls, (agent, tool, status))
        self.duration = Handle(r.tool_duration, (agent, tool))


@cython.final
cdef class AgentSeries:
    cdef readonly Handle calls, duration, subagent_calls, subagent_duration

    def __init__(self, Recorder r, agent, status, caller):
        self.calls = Handle(r.invocations, (agent, status))
        self.duration = Handle(r.invocation_duration, (agent,))
        if caller is not None:
            self.subagent_calls = Handle(r.subagent_calls, (caller, agent, status))
            self.subagent_duration = Handle(r.subagent_duration, (caller, agent))


@cython.final
cdef class LlmSeries:
    cdef readonly tuple labels
    cdef readonly Handle calls, duration, cost
    #: token type / finish reason -> its handle, made when first seen
    cdef readonly dict tokens, finish

    def __init__(self, Recorder r, agent, provider, model, operation, status):
        self.labels = (agent, provider, model)
        self.calls = Handle(r.llm_calls, (agent, provider, model, operation, status))
        self.duration = Handle(r.llm_duration, (agent, provider, model, operation))
        self.cost = Handle(r.cost, self.labels)
        self.tokens = {}
        self.finish = {}

    cdef void first(self, dict held, object family, object value, object amount, Py_ssize_t max_held) except *:
        """``translator._LlmSeries.first``: count into this label set's series of ``value`` and hold
        its handle if the family stores it under those labels, while few are held."""
        cdef Handle handle = Handle(family, (*self.labels, value))
        handle.add(amount)
        if handle.series is not None and len(held) < max_held:
            held[value] = handle


@cython.final
cdef class Recorder:
    """``Translator.record`` for one translator, counting through compiled handles."""

    cdef object translator, handles, store
    cdef object tool_calls, tool_duration, tool_errors, errors, invocations, invocation_duration
    cdef object subagent_calls, subagent_duration, llm_calls, llm_duration, tokens, cost, unpriced
    cdef object streaming, ttft, tpot, finish_reasons, TOOL, LLM, AGENT, OTHER
    cdef Py_ssize_t max_held

    def __init__(self, translator, kinds, Py_ssize_t max_held):
        """``kinds``: the Kind members (TOOL, LLM, AGENT, OTHER); ``max_held``: ``translator.MAX_HELD_VALUES``."""
        t = self.translator = translator
        self.handles = t._handles
        self.store = t.store
        self.tool_calls, self.tool_duration, self.tool_errors = t._tool_calls, t._tool_duration, t._tool_errors
        self.errors, self.invocations, self.invocation_duration = t._errors, t._invocations, t._invocation_duration
        self.subagent_calls, self.subagent_duration = t._subagent_calls, t._subagent_duration
        self.llm_calls, self.llm_duration, self.tokens, self.cost = t._llm_calls, t._llm_duration, t._tokens, t._cost
        self.unpriced, self.streaming, self.ttft, self.tpot = t._unpriced, t._streaming, t._ttft, t._tpot
        self.finish_reasons = t._finish_reasons
        self.TOOL, self.LLM, self.AGENT, self.OTHER = kinds
        self.max_held = max_held

    def count(self, spans, classified, bint exemplars, dimensions):
        """``Translator._count_resolved``'s counting loop: each call among ``spans`` (with their
        classifications), its duration, exemplar ids and weight, its dimension values first."""
        for span, c in zip(spans, classified):
            if cf(c, C_KIND) is self.OTHER:
                continue
            if dimensions is not None:
                dimensions.current = dimensions.read(span.attributes, span.resource)
            # raw ids: the exemplar turns them into hex only if a scrape shows it
            self._record(c, (sf(span, S_END) - sf(span, S_START)) / 1e9,
                         (sf(span, S_TRACE_ID), sf(span, S_SPAN_ID)) if exemplars else None, cf(c, C_WEIGHT))

    def record(self, c, duration, exemplar=None, w=1):
        """Count one agent, LLM or tool call, standing for ``w`` calls: ``Translator.record``."""
        self._record(c, duration, exemplar, w)

    cdef void _record(self, object c, object duration, object exemplar, object w) except *:
        cdef dict held
        cdef ToolSeries tool_series
        cdef AgentSeries agent_series
        cdef LlmSeries llm
        cdef Handle handle
        cdef bint used
        if not cf(c, C_COUNTED):
            return
        kind = cf(c, C_KIND)
        ok = cf(c, C_OK)
        status = "ok" if ok else "error"
        agent = cf(c, C_AGENT)
        # Handles.current(), inline: emptied first if the store let a series go or it is full
        handles = self.handles
        held = handles.entries
        if handles.removals != self.store.removals or len(held) >= handles.max_entries:
            held.clear()
            handles.removals = self.store.removals
        if kind is self.TOOL:
            tool = cf(c, C_TOOL)
            key = ("tool", agent, tool, status)
            found = held.get(key)
            if found is None:
                found = held.setdefault(key, ToolSeries(self, agent, tool, status))
            tool_series = <ToolSeries?>found
            tool_series.calls.add(w, exemplar)
            tool_series.duration.put(duration, exemplar, w)
            if not ok:
                self.tool_errors.inc((agent, tool, cf(c, C_ERROR_TYPE)), w)
                self.errors.inc((agent, "tool", cf(c, C_ERROR_TYPE)), w)
        elif kind is self.LLM:
            provider, model, operation = cf(c, C_PROVIDER), cf(c, C_MODEL), cf(c, C_OPERATION)
            key = ("llm", agent, provider, model, operation, status)
            found = held.get(key)
            if found is None:
                found = held.setdefault(key, LlmSeries(self, agent, provider, model, operation, status))
            llm = <LlmSeries?>found
            llm.calls.add(w, exemplar)
            llm.duration.put(duration, exemplar, w)
            used = False
            tokens = cf(c, C_TOKENS)
            for token_type, count in tokens.items():
                if count:
                    used = True
                    held_token = llm.tokens.get(token_type)
                    if held_token is not None:
                        (<Handle?>held_token).add(count * w)
                    else:
                        llm.first(llm.tokens, self.tokens, token_type, count * w, self.max_held)
            cost = cf(c, C_COST)
            if cost is None and used:  # the span's own cost wins; else the table's (pricing.py)
                pricing = self.translator.pricing
                if pricing is not None:
                    # kept on the classification: the session tracker (a listener) reads it after
                    cost = pricing.cost(provider, model, tokens)
                    c.cost = cost
                if cost is None:
                    self.unpriced.inc((provider, model), w)
            if cost:
                llm.cost.add(cost * w)
            if cf(c, C_STREAMING):
                labels = (agent, provider, model)
                self.streaming.inc(labels, w)
                ttft = cf(c, C_TTFT)
                if ttft is not None:
                    self.ttft.observe(labels, ttft, exemplar, w)
                tpot = cf(c, C_TPOT)
                if tpot is not None:
                    self.tpot.observe(labels, tpot, None, w)
            for reason in cf(c, C_FINISH_REASONS):
                held_reason = llm.finish.get(reason)
                if held_reason is not None:
                    (<Handle?>held_reason).add(w)
                else:
                    llm.first(llm.finish, self.finish_reasons, reason, w, self.max_held)
            if not ok:
                self.errors.inc((agent, "llm", cf(c, C_ERROR_TYPE)), w)
        elif kind is self.AGENT:
            caller = cf(c, C_CALLER)
            key = ("agent", agent, status, caller)
            found = held.get(key)
            if found is None:
                found = held.setdefault(key, AgentSeries(self, agent, status, caller))
            agent_series = <AgentSeries?>found
            agent_series.calls.add(w, exemplar)
            agent_series.duration.put(duration, exemplar, w)
            if caller is not None:  # nested under another agent's run: an edge of the call graph
                agent_series.subagent_calls.add(w, exemplar)
                agent_series.subagent_duration.put(duration, exemplar, w)
            if not ok:
                self.errors.inc((agent, "agent", cf(c, C_ERROR_TYPE)), w)
