# cython: language_level=3
"""Classify a batch's spans in C: the compiled twin of ``classify.classify_spans_python``.

For every span it returns a ``Classified`` equal, field by field, to what ``classify.classify``
makes of it (tests/test_classify_compiled.py compares the two on every recorded framework span and
on seeded random attribute sets). The rules are classify.py's, in the same order, over the same
tables (conventions/profile.py, handed over by ``configure``); the common reads (a kind, names
under a convention's keys, token counts that are plain non-negative ints, finish reasons, the
service name) are done here, and every unusual case calls classify.py's own helper for it (an
agent span's name from its span name, a guardrail, streaming times, a token count or cost to
parse, an error's type), so those rules live in one place. A ``Classified`` is made by writing its slots
directly, as the compiled decoder writes a span's (receiver/_wire.pyx): its constructor is Python
code, run once per span.
"""

from cpython.ref cimport PyObject

from agentprom._slots cimport allocated, fill_slot, put_slot, slot, slot_offsets

#: the fields of classify.Classified, in the order they are written
FIELDS = ("kind", "agent", "ok", "error_type", "named", "operation", "tool", "model", "provider", "tokens",
          "cost", "weight", "counted", "session", "phase", "own_phase", "joins", "invocation", "caller",
          "streaming", "ttft", "tpot", "finish_reasons", "guardrail", "outcome")
cdef enum:
    N_FIELDS = 25
    #: the first field written from ``_DEFAULTS`` (those before it are set per span)
    FIRST_DEFAULT = 11
    #: ``finish_reasons``: a default overwritten when the span reports any
    REASONS = 22

cdef Py_ssize_t OFFSET[N_FIELDS]
cdef object Classified = None
#: the span fields read, and where each sits in a ``model.Span`` (``configure``)
SPAN_FIELDS = ("attributes", "status_code", "resource", "scope_name", "name", "first_token_ns", "trace_state")
cdef enum:
    ATTRIBUTES, STATUS_CODE, RESOURCE, SCOPE_NAME, NAME, FIRST_TOKEN_NS, TRACE_STATE, N_SPAN_FIELDS
cdef Py_ssize_t SPAN_OFFSET[N_SPAN_FIELDS]
cdef object Span = None
#: each field's value in a new ``Classified`` (immutable: shared by every instance), from ``weight`` on
cdef tuple _DEFAULTS = ()

# the convention table (profile.py, through classify.py's globals)
cdef object AGENT, LLM, TOOL, OTHER, STATUS_ERROR, UNKNOWN, GUARDRAIL, SERVICE_NAME
cdef object TRACELOOP_SPAN_KIND, OPENINFERENCE_SPAN_KIND, GENAI_OPERATION, MCP_METHOD, MCP_TOOL_CALL
cdef object LLM_REQUEST_TYPE, ENTITY_NAME, AGENT_KEY, TOOL_KEY, MODEL_KEY, PROVIDER_KEY
cdef dict TRACELOOP_KINDS, OPENINFERENCE_KINDS, OPENINFERENCE_OPERATIONS, GENAI_OPERATION_ALIASES
cdef dict GENAI_OPERATIONS, LLM_REQUEST_TYPES, NOT_LLM_CALLS
cdef tuple AGENT_NAME_KEYS, TOOL_NAME_KEYS, MODEL_KEYS, PROVIDER_KEYS, TOKEN_KEYS, COST_KEYS, ENTITY_KEYS
cdef tuple GUARDRAIL_KEYS, STREAM_AND_TIME_KEYS, FINISH_REASON_KEYS
cdef object LLM_OPERATIONS
# classify.py's helpers, for the unusual cases
cdef object looks_like_llm, agent_span_name, service, error_type, tool_from_span_name, count, amount
cdef object guardrail, stream_and_time, classify_python


def configure(classified, span, module) -> None:
    """Take ``classify.Classified``, ``model.Span`` and the tables and helpers of ``module``
    (classify.py): ``ValueError`` unless Classified is a slots dataclass of exactly ``FIELDS`` whose
    defaults from ``weight`` on are immutable, and the span fields read are slots of Span."""
    global Classified, _DEFAULTS, AGENT, LLM, TOOL, OTHER, STATUS_ERROR, UNKNOWN, GUARDRAIL, SERVICE_NAME, Span
    global TRACELOOP_SPAN_KIND, OPENINFERENCE_SPAN_KIND, GENAI_OPERATION, MCP_METHOD, MCP_TOOL_CALL
    global LLM_REQUEST_TYPE, ENTITY_NAME, AGENT_KEY, TOOL_KEY, MODEL_KEY, PROVIDER_KEY
    global TRACELOOP_KINDS, OPENINFERENCE_KINDS, OPENINFERENCE_OPERATIONS, GENAI_OPERATION_ALIASES
    global GENAI_OPERATIONS, LLM_REQUEST_TYPES, NOT_LLM_CALLS
    global AGENT_NAME_KEYS, TOOL_NAME_KEYS, MODEL_KEYS, PROVIDER_KEYS, TOKEN_KEYS, COST_KEYS, ENTITY_KEYS
    global GUARDRAIL_KEYS, STREAM_AND_TIME_KEYS, FINISH_REASON_KEYS, LLM_OPERATIONS
    global looks_like_llm, agent_span_name, service, error_type, tool_from_span_name, count, amount
    global guardrail, stream_and_time, classify_python
    import dataclasses
    if not dataclasses.is_dataclass(classified) or tuple(f.name for f in dataclasses.fields(classified)) != FIELDS:
        raise ValueError("Classified's fields are not the ones the compiled classification writes")
    if set(getattr(classified, "__slots__", ())) != set(FIELDS):
        raise ValueError("Classified is not a slots class")
    offsets = slot_offsets(classified, FIELDS)
    span_offsets = slot_offsets(span, SPAN_FIELDS)
    P = module.P
    prototype = classified(module._OTHER, "", True, "")
    defaults = tuple(getattr(prototype, name) for name in FIELDS[FIRST_DEFAULT:])
    if not all(value is None or type(value) in (bool, int, float, str, tuple) for value in defaults):
        raise ValueError("a default of Classified is mutable: it cannot be shared")
    for i in range(N_FIELDS):
        OFFSET[i] = offsets[i]
    for i in range(N_SPAN_FIELDS):
        SPAN_OFFSET[i] = span_offsets[i]
    Classified, _DEFAULTS, Span = classified, defaults, span

    AGENT, LLM, TOOL, OTHER = module._AGENT, module._LLM, module._TOOL, module._OTHER
    STATUS_ERROR, UNKNOWN, GUARDRAIL, SERVICE_NAME = module.STATUS_ERROR, module.UNKNOWN, P.GUARDRAIL_OPERATION, P.SERVICE_NAME
    TRACELOOP_SPAN_KIND, TRACELOOP_KINDS = P.TRACELOOP_SPAN_KIND, dict(P.TRACELOOP_KINDS)
    OPENINFERENCE_SPAN_KIND, OPENINFERENCE_KINDS = P.OPENINFERENCE_SPAN_KIND, dict(P.OPENINFERENCE_KINDS)
    OPENINFERENCE_OPERATIONS = dict(P.OPENINFERENCE_OPERATIONS)
    GENAI_OPERATION, GENAI_OPERATIONS = P.GENAI_OPERATION, dict(P.GENAI_OPERATIONS)
    GENAI_OPERATION_ALIASES = dict(P.GENAI_OPERATION_ALIASES)
    MCP_METHOD, MCP_TOOL_CALL = P.MCP_METHOD, P.MCP_TOOL_CALL
    LLM_REQUEST_TYPE, LLM_REQUEST_TYPES = P.LLM_REQUEST_TYPE, dict(P.LLM_REQUEST_TYPES)
    NOT_LLM_CALLS = dict(P.NOT_LLM_CALLS)
    AGENT_NAME_KEYS, TOOL_NAME_KEYS = tuple(P.AGENT_NAME_KEYS), tuple(P.TOOL_NAME_KEYS)
    MODEL_KEYS, PROVIDER_KEYS = tuple(P.MODEL_KEYS), tuple(P.PROVIDER_KEYS)
    AGENT_KEY, TOOL_KEY, MODEL_KEY, PROVIDER_KEY = AGENT_NAME_KEYS[0], TOOL_NAME_KEYS[0], MODEL_KEYS[0], PROVIDER_KEYS[0]
    ENTITY_NAME = P.ENTITY_NAME
    ENTITY_KEYS = (ENTITY_NAME,)
    TOKEN_KEYS = tuple((token_type, tuple(keys)) for token_type, keys in P.TOKEN_KEYS.items())
    COST_KEYS = tuple(P.COST_KEYS)
    LLM_OPERATIONS = frozenset(P.LLM_OPERATIONS)
    GUARDRAIL_KEYS = tuple(P.GUARDRAIL_KEYS)
    STREAM_AND_TIME_KEYS, FINISH_REASON_KEYS = tuple(module._STREAM_AND_TIME_KEYS), tuple(P.FINISH_REASON_KEYS)
    looks_like_llm, agent_span_name = module._looks_like_llm, module._agent_span_name
    service, error_type, tool_from_span_name = module._service, module.error_type, module.tool_from_span_name
    count, amount = module._count, module._amount
    guardrail, stream_and_time, classify_python = module._guardrail, module._stream_and_time, module.classify


cdef inline void put(PyObject* obj, int field, object value) noexcept:
    """Write a new Classified's field ``field`` (FIELDS order) into its empty slot."""
    fill_slot(obj, OFFSET[field], value)


cdef object made(object kind, object agent, bint ok, object error, bint named, object operation, object tool,
                 object model, object provider, object tokens, object cost, tuple reasons):
    """A new Classified holding these values and the defaults for the rest."""
    cdef int i
    out = allocated(Classified)
    cdef PyObject* obj = <PyObject*>out
    put(obj, 0, kind)
    put(obj, 1, agent)
    put(obj, 2, True if ok else False)
    put(obj, 3, error)
    put(obj, 4, True if named else False)
    put(obj, 5, operation)
    put(obj, 6, tool)
    put(obj, 7, model)
    put(obj, 8, provider)
    put(obj, 9, tokens)
    put(obj, 10, cost)
    for i in range(FIRST_DEFAULT, N_FIELDS):
        put(obj, i, _DEFAULTS[i - FIRST_DEFAULT])
    if reasons:
        put_slot(obj, OFFSET[REASONS], reasons)
    return out


cdef inline bint has_any(dict attrs, tuple keys):
    """Whether ``attrs`` holds any of ``keys`` (``not attrs.keys().isdisjoint(keys)``)."""
    for key in keys:
        if key in attrs:
            return True
    return False


cdef object first_of(dict attrs, tuple keys):
    """``classify._first_str``: the value under the first of ``keys`` that is set and not empty, as
    a string."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


cdef inline object field(object span, int which):
    """A ``model.Span``'s field (SPAN_FIELDS order), read from its slot; ``AttributeError`` if unset."""
    cdef PyObject* value = slot(<PyObject*>span, SPAN_OFFSET[which])[0]
    if value == NULL:
        raise AttributeError(SPAN_FIELDS[which])
    return <object>value


cdef object service_of(object span):
    """``classify._service``: the resource's ``service.name``, else ``unknown``."""
    resource = field(span, RESOURCE)
    name = resource.get(SERVICE_NAME) if type(resource) is dict else service(span)
    if name is None or name == "":
        return UNKNOWN
    return name if type(name) is str else str(name)


cdef tuple finish_reasons(dict attrs):
    """``classify._stream_and_finish``'s finish reasons: the distinct non-empty strings under the
    first key that has any."""
    cdef list reasons = []
    for key in FINISH_REASON_KEYS:
        value = attrs.get(key)
        if value is None:
            continue
        if type(value) is str:
            if value:
                reasons.append(value)
        elif type(value) is tuple:
            for reason in <tuple>value:
                if reason and type(reason) is str and reason not in reasons:
                    reasons.append(reason)
        if reasons:
            break
    return tuple(reasons)


cdef object classify(object span):
    """``classify.classify(span)``, step for step, for a ``model.Span``."""
    attributes = field(span, ATTRIBUTES)
    if type(attributes) is not dict:  # not from a decoder: the Python path reads any mapping
        return classify_python(span)
    cdef dict attrs = <dict>attributes
    ok = field(span, STATUS_CODE) != STATUS_ERROR
    if not attrs:  # no convention attribute at all
        return made(OTHER, service_of(span), ok, "" if ok else error_type(span), False, "", "", "", "", {}, None, ())

    # span_kind: traceloop.span.kind, then openinference.span.kind, then gen_ai.operation.name, MCP,
    # llm.request.type
    kind = None
    operation = ""
    value = attrs.get(TRACELOOP_SPAN_KIND)
    if value is not None:
        kind = TRACELOOP_KINDS.get(value)
    if kind is None:
        value = attrs.get(OPENINFERENCE_SPAN_KIND)
        if value is not None:
            kind = OPENINFERENCE_KINDS.get(value)
            if kind is not None:
                operation = OPENINFERENCE_OPERATIONS.get(value, "")
    if kind is None:
        value = attrs.get(GENAI_OPERATION)
        if isinstance(value, str) and value:
            value = GENAI_OPERATION_ALIASES.get(value, value)
            kind = GENAI_OPERATIONS.get(value)
            if kind is not None:
                operation = value if kind is LLM or value == GUARDRAIL else ""
            elif looks_like_llm(attrs):
                kind, operation = LLM, "other"
    if kind is None:
        if attrs.get(MCP_METHOD) == MCP_TOOL_CALL:
            kind = TOOL
        else:
            value = attrs.get(LLM_REQUEST_TYPE)
            if value is not None:
                kind, operation = LLM, LLM_REQUEST_TYPES.get(value, "other")
            else:
                kind = OTHER
    if kind is LLM:
        scope = field(span, SCOPE_NAME)
        if scope in NOT_LLM_CALLS and field(span, NAME).endswith(NOT_LLM_CALLS[scope]):
            kind, operation = OTHER, ""

    agent = attrs.get(AGENT_KEY)
    cdef bint named = True
    if type(agent) is not str or not agent:
        agent = first_of(attrs, AGENT_NAME_KEYS)
        if agent is None and kind is AGENT:
            agent = agent_span_name(span, attrs)
        if agent is None:
            agent = service_of(span)
            named = False
    error = "" if ok else error_type(span)

    if kind is OTHER:
        out = made(kind, agent, ok, error, named, "", "", "", "", {}, None, ())
        if operation == GUARDRAIL or has_any(attrs, GUARDRAIL_KEYS):
            guardrail(span, attrs, out)
        return out
    if kind is TOOL:
        tool = attrs.get(TOOL_KEY)
        if type(tool) is not str or not tool:
            tool = first_of(attrs, TOOL_NAME_KEYS) or first_of(attrs, ENTITY_KEYS)
        return made(kind, agent, ok, error, named, "", tool or tool_from_span_name(field(span, NAME)), "", "", {},
                    None, ())
    if kind is not LLM:  # an agent invocation
        return made(kind, agent, ok, error, named, "", "", "", "", {}, None, ())

    model = attrs.get(MODEL_KEY)
    if type(model) is not str or not model:
        model = first_of(attrs, MODEL_KEYS) or UNKNOWN
    provider = attrs.get(PROVIDER_KEY)
    if type(provider) is not str or not provider:
        provider = first_of(attrs, PROVIDER_KEYS) or UNKNOWN
    cdef dict tokens = {}
    for token_type, keys in TOKEN_KEYS:
        for key in <tuple>keys:
            if key in attrs:
                n = attrs[key]
                if type(n) is not int or n < 0:  # the usual non-negative int needs no checks
                    n = count(n)
                if n is not None:
                    tokens[token_type] = n
                break
    cost = None
    for key in COST_KEYS:
        if key in attrs:
            cost = amount(attrs[key])
            break
    out = made(kind, agent, ok, error, named, operation if operation in LLM_OPERATIONS else "other", "", model,
               provider, tokens, cost, finish_reasons(attrs))
    if has_any(attrs, STREAM_AND_TIME_KEYS) or field(span, FIRST_TOKEN_NS):
        stream_and_time(span, attrs, out)
    return out


def classify_spans(spans, weigh=None, bint weigh_all=False) -> list:
    """Each span's ``Classified``, in order; with ``weigh``, a span with a ``tracestate`` (or every
    span, with ``weigh_all``) gets ``weigh(span)`` as its weight."""
    cdef list out = []
    for span in spans:
        if type(span) is not Span:  # a span of another class: the Python path reads its attributes
            c = classify_python(span)
            if weigh is not None and (weigh_all or span.trace_state):
                c.weight = weigh(span)
        else:
            c = classify(span)
            if weigh is not None and (weigh_all or field(span, TRACE_STATE)):
                c.weight = weigh(span)
        out.append(c)
    return out
