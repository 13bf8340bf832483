# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Decode an OTLP/protobuf trace export request into a ``Batch`` in one C pass over its wire bytes.

The compiled twin of ``decode.decode_traces_python``: for every body it returns the same spans and
rejections, or raises the same ``DecodeError`` / ``LimitExceeded``. The Python path parses with upb
first, so this pass reproduces upb's acceptance rules (protobuf.dev/programming-guides/encoding/):
varints of at most 10 bytes (tags at most 5, below 2**32, field number not 0), lengths inside their
message, unknown fields of every wire type skipped (groups matched by field number), a field of a
known number but another wire type kept as unknown, proto3 ``string`` fields valid UTF-8 everywhere
(also in the attributes, events and links nobody keeps), at most 100 nested messages or groups below
the request (upb's default depth limit), the last occurrence of a scalar winning, a repeated singular
message merged (so its fields are read across all its occurrences in order) and a oneof taken by its
last member. Which field numbers hold strings and messages comes from the installed descriptors of
``trace_view.ExportTraceServiceRequestView`` (opentelemetry/proto/trace/v1/trace.proto and the
common and resource protos it imports), read once by ``configure``; a schema this pass cannot
follow (packed or proto2 fields) makes ``configure`` fail and decode.py keeps the Python path.

Kept values are read in a second, shallow walk of the few attributes and events kept, once the
whole message they sit in has been checked. Short ASCII strings come from a small cache of the ones
made last (``text``), since a request's names and values repeat.

Beside the pass, ``suspects`` is the compiled first look of the span bounds that the receiver
applies right after decoding (bounds.SpanBounds.check): it passes the spans whose amounts are plain
numbers within their bounds and hands the others back to be judged in Python.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memcmp, memcpy, memset
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_Next

from agentprom._slots cimport allocated, fill_slot, read_slot, slot_offsets

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)
    object PyBool_FromLong(long)
    object PyLong_FromLongLong(long long)
    object PyLong_FromUnsignedLongLong(unsigned long long)
    object PyFloat_FromDouble(double)
    int PyDict_SetItem(object, object, object) except -1
    int PyList_Append(object, object) except -1
    int PySet_Contains(object, object) except -1

cdef enum:
    MAXT = 32  # message types
    MAXF = 32  # field numbers below this may be strings or messages
    DEPTH = 100  # upb's default decode depth limit (kUpb_WireFormat_DefaultDepthLimit)
    K_STR = 1  # a UTF-8-checked string field; message fields are K_MSG + type id
    K_MSG = 2

# AnyValue's oneof members, by what decode.any_value reads of them (the field numbers of 1 to 7)
cdef enum:
    W_NONE = 0
    W_STR = 1
    W_BOOL = 2
    W_INT = 3
    W_DOUBLE = 4
    W_ARRAY = 5
    W_KVLIST = 6
    W_BYTES = 7
    W_OTHER = 8

ctypedef const uint8_t* cptr

cdef int KIND[MAXT][MAXF]
cdef int ONEOF_WT[MAXF]  # AnyValue: the wire type of each oneof member, -1 for other numbers
cdef int ONEOF_CODE[MAXF]
cdef int T_REQ, T_RS, T_RES, T_SS, T_SCOPE, T_SPAN, T_ENTRY, T_EVENT, T_LINK, T_STATUS, T_KV, T_AV, T_ARR
cdef bint CONFIGURED = False

cdef enum:
    E_CORRUPT = 0
    E_UTF8 = 1
    E_DEPTH = 2

# The pass's state beside its arguments: ``ERR``, why it stopped, as upb words it (one of
# _PARSE_ERRORS), read right after it; ``BODY_END``, the end of the body being read (upb checks a
# string's length against it, not against the message the string sits in, whose end it checks once
# past the string, so a string running past its message is refused for bad UTF-8 first if it has
# some). Thread-local: the pass calls Python mid-walk (``Span``, ``bounded_text``), where the
# interpreter may switch to another thread's pass (the loop thread decodes small bodies while the
# decode thread decodes large ones); a shared end would let one pass check lengths against
# another's body and read past its own.
cdef extern from *:
    """
    static __thread int agentprom_wire_err;
    static __thread const unsigned char *agentprom_wire_body_end;
    """
    int ERR "agentprom_wire_err"
    const uint8_t *BODY_END "agentprom_wire_body_end"


cdef inline cptr bad_utf8() noexcept nogil:
    global ERR
    ERR = E_UTF8
    return NULL


cdef inline cptr too_deep() noexcept nogil:
    global ERR
    ERR = E_DEPTH
    return NULL

# set by configure (decode.py's own types and helpers)
cdef object Batch = None
cdef object Span = None
#: where each of Span's fields sits in its instances (``configure_span``), in SPAN_FIELDS order
cdef Py_ssize_t SPAN_OFFSET[17]
#: the fields of model.Span, in the order the pass writes them
SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns", "status_code",
               "attributes", "resource", "exception_type", "trace_state", "scope_name", "events",
               "parent_remote", "first_token_ns", "evaluations")
cdef object DecodeError = None
cdef object too_many_spans = None
cdef object too_many_items = None
cdef object NO_LIMITS = None
cdef object bounded_text = None
cdef object EXCEPTION_EVENT_B, EXCEPTION_TYPE_B, FIRST_TOKEN_B, EVALUATION_B, OWN_B
cdef object EVALUATION_KEYS = None
cdef object STRING_ARRAY_KEYS = None
cdef object OWN_PREFIX = None
cdef Py_ssize_t MAX_ARRAY = 16
cdef str PARSE_ERROR = ""
cdef str COUNT_ERROR = ""


# -- the wire: varints, tags, unknown fields, UTF-8 -------------------------------------------------

cdef inline cptr rd_varint(cptr p, cptr end, uint64_t* out) noexcept nogil:
    """A varint of at most 10 bytes inside ``[p, end)``; its value modulo 2**64 (as upb keeps it)."""
    cdef uint64_t b, v
    cdef int i
    if p >= end:
        return NULL
    b = p[0]
    if b < 0x80:
        out[0] = b
        return p + 1
    v = b & 0x7F
    for i in range(1, 10):
        if p + i >= end:
            return NULL
        b = p[i]
        v |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            out[0] = v
            return p + i + 1
    return NULL


cdef inline cptr rd_tag(cptr p, cptr end, uint32_t* out) noexcept nogil:
    cdef uint64_t v
    cdef cptr q
    if p < end and p[0] < 0x80:
        if p[0] < 8:  # field number 0
            return NULL
        out[0] = p[0]
        return p + 1
    q = rd_varint(p, end, &v)
    if q == NULL or q - p > 5 or v > 0xFFFFFFFFULL or (v >> 3) == 0:
        return NULL
    out[0] = <uint32_t>v
    return q


cdef inline cptr rd_len(cptr p, cptr end, Py_ssize_t* n) noexcept nogil:
    """The payload start of a length-delimited field (``n`` its length), NULL if it does not fit or its
    length takes more than 5 bytes."""
    cdef uint64_t v
    cdef cptr q
    if p < end and p[0] < 0x80:
        v = p[0]
        q = p + 1
    else:
        q = rd_varint(p, end, &v)
        if q == NULL or q - p > 5:  # upb reads a length in at most 5 bytes
            return NULL
    if v > <uint64_t>(end - q):
        return NULL
    n[0] = <Py_ssize_t>v
    return q


cdef inline uint64_t le64(cptr p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


cdef inline uint32_t le32(cptr p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline cptr skip_field(cptr p, cptr end, uint32_t tag, int depth) noexcept nogil:
    """Past the value of a field kept as unknown (``depth``: what is left for the message it sits in)."""
    cdef uint32_t wt = tag & 7
    cdef uint64_t v
    cdef Py_ssize_t n
    if wt == 0:
        return rd_varint(p, end, &v)
    if wt == 2:
        p = rd_len(p, end, &n)
        return NULL if p == NULL else p + n
    if wt == 1:
        return p + 8 if end - p >= 8 else NULL
    if wt == 5:
        return p + 4 if end - p >= 4 else NULL
    if wt == 3:
        return skip_group(p, end, tag >> 3, depth - 1)
    return NULL  # an end-group tag outside its group, or wire types 6 and 7


cdef cptr skip_group(cptr p, cptr end, uint32_t number, int depth) noexcept nogil:
    cdef uint32_t tag
    if depth < 0:
        return NULL
    while p < end:
        p = rd_tag(p, end, &tag)
        if p == NULL:
            return NULL
        if tag & 7 == 4:
            return p if tag >> 3 == number else NULL
        p = skip_field(p, end, tag, depth)
        if p == NULL:
            return NULL
    return NULL  # no end-group tag


cdef bint utf8_ok(cptr s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as upb checks it."""
    cdef Py_ssize_t i = 0, k, more
    cdef uint8_t c, d, low, high
    cdef uint64_t word
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            # ASCII eight bytes at a time (most strings are ASCII: messages, ids, names)
            while i + 8 <= n:
                memcpy(&word, s + i, 8)
                if word & 0x8080808080808080ULL:
                    break
                i += 8
            continue
        # a lead byte: how many continuation bytes follow, and the range of the first (narrower after
        # E0, ED, F0 and F4: no overlong forms, surrogates or code points past U+10FFFF; the
        # well-formed sequences of the Unicode standard, table 3-7); the rest are 80..BF
        if c < 0xC2 or c > 0xF4:
            return False
        if c < 0xE0:
            more, low, high = 1, 0x80, 0xBF
        elif c < 0xF0:
            more = 2
            low = 0xA0 if c == 0xE0 else 0x80
            high = 0x9F if c == 0xED else 0xBF
        else:
            more = 3
            low = 0x90 if c == 0xF0 else 0x80
            high = 0x8F if c == 0xF4 else 0xBF
        if i + more >= n:
            return False
        d = s[i + 1]
        if d < low or d > high:
            return False
        for k in range(2, more + 1):
            if (s[i + k] & 0xC0) != 0x80:
                return False
        i += more + 1
    return True


cdef inline cptr check_field(int t, uint32_t tag, cptr p, cptr end, int depth) noexcept nogil:
    """Past one field of a message of type ``t`` (at ``depth``), checked as upb parses it."""
    cdef int kind
    cdef Py_ssize_t n
    cdef uint32_t number = tag >> 3
    if tag & 7 == 2 and number < MAXF:
        kind = KIND[t][number]
        if kind == K_STR:
            return check_string(p, end)
        if kind:
            p = rd_len(p, end, &n)
            if p == NULL:
                return NULL
            if depth < 1:
                return too_deep()
            elif check_message(kind - K_MSG, p, p + n, depth - 1) == NULL:
                return NULL
            return p + n
    return skip_field(p, end, tag, depth)


cdef inline cptr check_string(cptr p, cptr end) noexcept nogil:
    """Past a string field's value (``p`` at its length): in the body, valid UTF-8, then inside ``end``."""
    cdef Py_ssize_t n
    p = rd_len(p, BODY_END, &n)
    if p == NULL:
        return NULL
    if not utf8_ok(p, n):
        return bad_utf8()
    if n > end - p:
        return NULL
    return p + n


cdef cptr check_message(int t, cptr p, cptr end, int depth) noexcept nogil:
    """``end`` if ``[p, end)`` parses as a message of type ``t`` at ``depth``, else NULL."""
    cdef uint32_t tag
    while p < end:
        p = rd_tag(p, end, &tag)
        if p == NULL:
            return NULL
        p = check_field(t, tag, p, end, depth)
        if p == NULL:
            return NULL
    return p


cdef inline cptr sub(cptr p, cptr end, int t, int depth, cptr* body) noexcept nogil:
    """A length-delimited field holding a message of type ``t``: checked whole; ``body`` its start."""
    cdef Py_ssize_t n
    p = rd_len(p, end, &n)
    if p == NULL:
        return NULL
    if depth < 1:
        return too_deep()
    if check_message(t, p, p + n, depth - 1) == NULL:
        return NULL
    body[0] = p
    return p + n


# -- the span count before parsing (span_count.py, the same walk and the same errors) ---------------

cdef int count_varint(cptr data, Py_ssize_t size, Py_ssize_t* pos, uint64_t* out, bint* big) noexcept nogil:
    """span_count._varint: 0, or 1 (truncated) or 2 (too long); reads may pass the message's end."""
    cdef Py_ssize_t i = pos[0]
    cdef uint64_t b, v
    cdef int shift = 7
    big[0] = False
    if i >= size:
        return 1
    b = data[i]
    v = b & 0x7F
    if b < 0x80:
        out[0] = v
        pos[0] = i + 1
        return 0
    while True:
        i += 1
        if i >= size:
            return 1
        b = data[i] & 0x7F
        if shift < 64:
            v |= b << shift
            if shift > 57 and (b >> (64 - shift)) != 0:
                big[0] = True
        elif b:
            big[0] = True
        if data[i] < 0x80:
            out[0] = v
            pos[0] = i + 1
            return 0
        shift += 7
        if shift > 63:
            return 2


cdef int count_level(cptr data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int level,
                     int64_t cap, int64_t* count) noexcept nogil:
    """span_count.count_spans below one message: 0, 1 truncated, 2 varint too long, 3 length past the
    message, 4 unsupported wire type, 5 past the cap (stop)."""
    cdef uint64_t tag, length
    cdef bint big, tag_big
    cdef int r
    cdef uint64_t wt
    cdef uint64_t wanted = 10 if level == 0 else 18
    while pos < end:
        r = count_varint(data, size, &pos, &tag, &tag_big)
        if r:
            return r
        wt = tag & 7
        if wt == 2:
            r = count_varint(data, size, &pos, &length, &big)
            if r:
                return r
            if big or pos > end or length > <uint64_t>(end - pos):
                return 3
            if tag == wanted and not tag_big:
                if level == 2:
                    count[0] += 1
                    if count[0] > cap:
                        return 5
                else:
                    r = count_level(data, size, pos, pos + <Py_ssize_t>length, level + 1, cap, count)
                    if r:
                        return r
            pos += <Py_ssize_t>length
        elif wt == 0:
            r = count_varint(data, size, &pos, &length, &big)
            if r:
                return r
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        else:
            return 4
    return 0


#: upb's words for a body it refuses (upb/wire/decode.h's status strings, as python/message.c reports them)
_PARSE_ERRORS = {E_CORRUPT: ": Wire format was corrupt", E_UTF8: ": String field had bad UTF-8",
                 E_DEPTH: ": Exceeded upb_DecodeOptions_MaxDepth"}

_COUNT_MESSAGES = {1: "truncated", 2: "a varint is too long", 3: "a length runs past its message",
                   4: "unsupported wire type"}


# -- attribute keys --------------------------------------------------------------------------------

cdef struct KeySlot:
    uint64_t hash
    Py_ssize_t size
    char* data
    PyObject* key  # the key as str when kept, else NULL
    int used


cdef inline uint64_t fnv(cptr p, Py_ssize_t n) noexcept nogil:
    """A hash of the key's bytes for the cache (FNV-1a's constants, eight bytes a step; equal
    hashes are compared byte by byte)."""
    cdef uint64_t h = 1469598103934665603ULL ^ <uint64_t>n
    cdef uint64_t word
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        h = (h ^ word) * 1099511628211ULL
        h ^= h >> 29
        i += 8
    while i < n:
        h = (h ^ p[i]) * 1099511628211ULL
        i += 1
    return h


cdef inline void put(PyObject* span, int field, object value) noexcept:
    """Write a new span's field ``field`` (SPAN_FIELDS order) directly into its slot."""
    fill_slot(span, SPAN_OFFSET[field], value)


def configure_span(span) -> None:
    """Take model.Span for the pass, which fills a span's slots directly instead of calling the
    class (its generated ``__init__`` cost a sixth of the pass): ``ValueError`` unless it is a
    slots dataclass of exactly SPAN_FIELDS (writable object slots, no ``__dict__``) whose
    ``__init__`` only stores them (a span built both ways holds the very same objects)."""
    cdef PyObject* obj
    cdef Py_ssize_t previous[17]
    import dataclasses
    if not dataclasses.is_dataclass(span) or tuple(f.name for f in dataclasses.fields(span)) != SPAN_FIELDS:
        raise ValueError("model.Span's fields are not the ones the compiled pass writes")
    if getattr(span, "__slots__", None) != SPAN_FIELDS:
        raise ValueError("model.Span is not a slots class")
    offsets = slot_offsets(span, SPAN_FIELDS)
    memcpy(previous, SPAN_OFFSET, sizeof(previous))  # put back unless the last check passes
    for i in range(17):
        SPAN_OFFSET[i] = offsets[i]
    try:
        values = [object() for _ in SPAN_FIELDS]
        built = allocated(span)
        obj = <PyObject*>built
        for i in range(17):
            put(obj, i, values[i])
        made = span(*values)  # may raise: the class's own code
        if any(getattr(built, name) is not getattr(made, name) for name in SPAN_FIELDS):
            raise ValueError("model.Span's __init__ does more than store its fields")
    except BaseException:
        memcpy(SPAN_OFFSET, previous, sizeof(previous))
        raise


cdef class KeyCache:
    """Span attribute keys seen, by their UTF-8 bytes: kept (``wanted`` or ``agent.*``) or not.

    decode.KeyFilter's job without building a str per attribute; remembers at most ``limit`` keys
    beyond the wanted ones, past which keys are classified one by one (the answer is the same)."""
    cdef KeySlot* slots
    cdef Py_ssize_t mask, used, limit
    cdef object wanted

    def __cinit__(self, wanted, Py_ssize_t limit):
        cdef Py_ssize_t size = 16
        self.wanted = wanted
        self.limit = len(wanted) + limit
        while size < 2 * self.limit + 2:
            size *= 2
        self.slots = <KeySlot*>malloc(size * sizeof(KeySlot))
        if self.slots == NULL:
            raise MemoryError()
        memset(self.slots, 0, size * sizeof(KeySlot))
        self.mask = size - 1
        self.used = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.mask + 1):
                if self.slots[i].used:
                    free(self.slots[i].data)
                    Py_XDECREF(self.slots[i].key)
            free(self.slots)

    cdef object kept(self, cptr p, Py_ssize_t n):
        """The key as str if it is kept, else None."""
        cdef uint64_t h = fnv(p, n)
        cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>self.mask)
        cdef KeySlot* slot
        while True:
            slot = &self.slots[i]
            if not slot.used:
                break
            if slot.hash == h and slot.size == n and memcmp(slot.data, p, n) == 0:
                if slot.key == NULL:
                    return None
                return <object>slot.key
            i = (i + 1) & self.mask
        key = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
        keep = key in self.wanted or key.startswith(OWN_PREFIX)
        if self.used < self.limit:
            slot.data = <char*>malloc(n + 1)
            if slot.data == NULL:
                raise MemoryError()
            memcpy(slot.data, p, n)
            slot.hash = h
            slot.size = n
            slot.used = 1
            if keep:
                Py_INCREF(key)
                slot.key = <PyObject*>key
            self.used += 1
        return key if keep else None


_caches = {}


cdef KeyCache key_cache(wanted, Py_ssize_t limit):
    found = _caches.get(wanted)
    if found is None:
        if len(_caches) >= 16:
            _caches.clear()
        found = _caches[wanted] = KeyCache(wanted, limit)
    return <KeyCache>found


# -- reading kept values ---------------------------------------------------------------------------

cdef struct Value:
    int which
    cptr s
    Py_ssize_t n
    uint64_t u
    Py_ssize_t items  # array items seen (merged occurrences of array_value)


cdef inline cptr value_field(Value* v, uint32_t tag, cptr p, cptr end) noexcept nogil:
    """Apply one field of an (already checked) AnyValue to ``v``; past it."""
    cdef uint32_t number = tag >> 3
    cdef Py_ssize_t n
    cdef int code
    if number < MAXF and ONEOF_WT[number] == <int>(tag & 7):
        code = ONEOF_CODE[number]
        if tag & 7 == 2:
            p = rd_len(p, end, &n)
            if code == W_ARRAY:
                if v.which != W_ARRAY:
                    v.items = 0
            else:
                v.s = p
                v.n = n
            v.which = code
            return p + n
        if tag & 7 == 0:
            p = rd_varint(p, end, &v.u)
        elif tag & 7 == 1:
            v.u = le64(p)
            p += 8
        else:
            v.u = le32(p)
            p += 4
        v.which = code
        return p
    return skip_field(p, end, tag, DEPTH)


cdef inline void read_value(Value* v, cptr p, cptr end) noexcept nogil:
    cdef uint32_t tag
    while p < end:
        p = rd_tag(p, end, &tag)
        p = value_field(v, tag, p, end)


# Recent short ASCII strings, by a hash of their bytes: the values of a request repeat (operation,
# provider and model names, agent and tool names, span names), and handing out the str made for the
# last one spares making (and freeing) another, whose hash every later dict lookup would compute anew.
# One str a slot, replaced on a collision: at most TEXT_SLOTS strings of TEXT_MAX bytes are held
# (about half a MiB), and a miss costs one hash more than no cache. Read and written under the GIL.
cdef enum:
    TEXT_SLOTS = 4096
    TEXT_MAX = 64
cdef PyObject* _texts[TEXT_SLOTS]


cdef inline object text(cptr p, Py_ssize_t n):
    """The UTF-8 at ``[p, p + n)`` as str (``UnicodeDecodeError`` when it is not UTF-8)."""
    cdef PyObject* held
    cdef Py_ssize_t slot
    if n > TEXT_MAX:
        return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    slot = <Py_ssize_t>(fnv(p, n) & (TEXT_SLOTS - 1))
    held = _texts[slot]
    # only ASCII strings are held: their one-byte data is their UTF-8, and a length of n their size
    if held != NULL and PyUnicode_GET_LENGTH(<object>held) == n \
            and memcmp(PyUnicode_DATA(<object>held), p, n) == 0:
        return <object>held
    s = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    if PyUnicode_IS_ASCII(s):
        Py_INCREF(s)
        _texts[slot] = <PyObject*>s
        Py_XDECREF(held)
    return s


cdef class _Run:
    """One request's decoding: the output so far and the request's bounds."""
    cdef list spans
    cdef dict rejected
    cdef KeyCache keys
    cdef object resource_keys
    cdef object limit  # max_string_bytes or 2**62, as bounded_text gets it
    cdef Py_ssize_t short  # limit // 4: a str of at most this many characters needs no cut
    cdef int64_t max_events
    cdef bint too_many
    cdef dict resource
    cdef object scope_name
    # the span being read
    cdef object exception_type
    cdef list own_events
    cdef list evaluations
    cdef uint64_t first_token

    cdef inline object bounded(self, s):
        if PyUnicode_GET_LENGTH(s) <= self.short:
            return s
        return bounded_text(s, self.limit)

    cdef object any_value(self, Value* v):
        """decode.any_value of a read AnyValue."""
        cdef int64_t i
        cdef double d
        if v.which == W_STR:
            return text(v.s, v.n)
        if v.which == W_INT:
            return PyLong_FromLongLong(<int64_t>v.u)
        if v.which == W_DOUBLE:
            memcpy(&d, &v.u, 8)
            return PyFloat_FromDouble(d)
        if v.which == W_BOOL:
            return PyBool_FromLong(v.u != 0)
        if v.which == W_BYTES:
            return PyBytes_FromStringAndSize(<const char*>v.s, v.n).hex()
        return None

    cdef object kv_value(self, cptr p, cptr end, int field, list items):
        """The AnyValue of a KeyValue (or map entry) at ``[p, end)``, read over every occurrence of
        its field 2 (they merge); with ``items``, the string items of its first MAX_ARRAY array items."""
        cdef Value v
        cdef Value item
        cdef uint32_t tag, tag2, tag3
        cdef Py_ssize_t n, m
        cdef cptr q
        cdef cptr qend
        cdef cptr r
        v.which = W_NONE
        v.items = 0
        while p < end:
            p = rd_tag(p, end, &tag)
            if tag != (2 << 3 | 2):
                p = skip_field(p, end, tag, DEPTH)
                continue
            p = rd_len(p, end, &n)
            q = p
            qend = p + n
            p = qend
            while q < qend:
                q = rd_tag(q, qend, &tag2)
                if items is None or tag2 != (W_ARRAY << 3 | 2) or ONEOF_CODE[W_ARRAY] != W_ARRAY:
                    q = value_field(&v, tag2, q, qend)
                    continue
                if v.which != W_ARRAY:
                    v.which = W_ARRAY
                    v.items = 0
                    del items[:]
                q = rd_len(q, qend, &m)
                r = q
                q += m
                while r < q:  # the ArrayValue: its items (field 1)
                    r = rd_tag(r, q, &tag3)
                    if tag3 != (1 << 3 | 2):
                        r = skip_field(r, q, tag3, DEPTH)
                        continue
                    r = rd_len(r, q, &m)
                    if v.items < MAX_ARRAY:
                        item.which = W_NONE
                        read_value(&item, r, r + m)
                        if item.which == W_STR:
                            items.append(self.bounded(text(item.s, item.n)))
                    v.items += 1
                    r += m
        if field == 1:  # a span attribute: decode.traces_from_request's order of reads
            if v.which == W_STR and v.n:
                return self.bounded(text(v.s, v.n))
            if v.which == W_INT:
                return PyLong_FromLongLong(<int64_t>v.u)
            if items is not None:
                if v.which != W_ARRAY:
                    return self.any_value(&v)
                return tuple(items)
        return self.any_value(&v)

    cdef bint kv_key(self, cptr p, cptr end, cptr* key, Py_ssize_t* size) noexcept:
        """The last field 1 (the key) of a checked KeyValue ("" when it has none); whether it has fields
        besides its key and value (upb leaves such a map entry out of the map)."""
        cdef uint32_t tag
        cdef Py_ssize_t n
        cdef bint other = False
        key[0] = p
        size[0] = 0
        while p < end:
            p = rd_tag(p, end, &tag)
            if tag == (1 << 3 | 2):
                p = rd_len(p, end, &n)
                key[0] = p
                size[0] = n
                p += n
            else:
                other = other or tag != (2 << 3 | 2)
                p = skip_field(p, end, tag, DEPTH)
        return other

    cdef dict kv_dict(self, cptr p, cptr end, int field, object only):
        """The KeyValues of field ``field`` of a checked message as a dict of any_value (bounded
        strings), keys restricted to ``only`` unless it is None."""
        cdef dict out = {}
        cdef uint32_t tag
        cdef Py_ssize_t n, kn
        cdef cptr k
        cdef uint32_t wanted = <uint32_t>(field << 3 | 2)
        while p < end:
            p = rd_tag(p, end, &tag)
            if tag != wanted:
                p = skip_field(p, end, tag, DEPTH)
                continue
            p = rd_len(p, end, &n)
            self.kv_key(p, p + n, &k, &kn)
            key = text(k, kn)
            if only is None or key in only:
                value = self.kv_value(p, p + n, 0, None)
                if type(value) is str:
                    value = self.bounded(value)
                out[key] = value
            p += n
        return out

    cdef int event(self, cptr p, cptr end) except -1:
        """One checked span event: what traces_from_request reads of it."""
        cdef uint32_t tag
        cdef Py_ssize_t n, kn
        cdef cptr name = p
        cdef Py_ssize_t name_n = 0
        cdef uint64_t time = 0
        cdef cptr k
        cdef cptr q = p
        while q < end:
            q = rd_tag(q, end, &tag)
            if tag == (2 << 3 | 2):
                q = rd_len(q, end, &n)
                name = q
                name_n = n
                q += n
            elif tag == (1 << 3 | 1):
                time = le64(q)
                q += 8
            else:
                q = skip_field(q, end, tag, DEPTH)
        if self.matches(name, name_n, EXCEPTION_EVENT_B):
            if self.exception_type is None:
                q = p
                while q < end:
                    q = rd_tag(q, end, &tag)
                    if tag != (3 << 3 | 2):
                        q = skip_field(q, end, tag, DEPTH)
                        continue
                    q = rd_len(q, end, &n)
                    self.kv_key(q, q + n, &k, &kn)
                    if self.matches(k, kn, EXCEPTION_TYPE_B):
                        value = self.kv_value(q, q + n, 0, None)
                        self.exception_type = self.bounded(str(value or "")) or None
                        break
                    q += n
        elif self.matches(name, name_n, FIRST_TOKEN_B):
            if not self.first_token:
                self.first_token = time
        elif name_n >= len(OWN_B) and memcmp(name, PyBytes_AS_STRING(OWN_B), len(OWN_B)) == 0:
            if self.own_events is None:
                self.own_events = []
            self.own_events.append((text(name, name_n), PyLong_FromUnsignedLongLong(time),
                                    self.kv_dict(p, end, 3, None)))
        elif self.matches(name, name_n, EVALUATION_B):
            if self.evaluations is None:
                self.evaluations = []
            self.evaluations.append(self.kv_dict(p, end, 3, EVALUATION_KEYS))
        return 0

    cdef inline bint matches(self, cptr p, Py_ssize_t n, bytes expected):
        return n == PyBytes_GET_SIZE(expected) and memcmp(p, PyBytes_AS_STRING(expected), n) == 0

    cdef cptr span(self, cptr p, cptr end, int depth) except? NULL:
        cdef uint32_t tag
        cdef Py_ssize_t n
        cdef cptr body
        cdef cptr trace_id = p
        cdef cptr span_id = p
        cdef cptr parent = p
        cdef cptr state = p
        cdef cptr name = p
        cdef Py_ssize_t trace_n = 0, span_n = 0, parent_n = 0, state_n = 0, name_n = 0
        cdef int32_t kind = 0
        cdef int32_t status = 0
        cdef uint64_t start = 0, stop = 0, v
        cdef uint32_t flags = 0
        cdef int64_t events = 0
        cdef int i
        cdef bint zero
        cdef cptr k
        cdef Py_ssize_t kn
        cdef dict attrs = {}
        cdef KeyCache keys = self.keys
        self.exception_type = None
        self.own_events = None
        self.evaluations = None
        self.first_token = 0
        while p < end:
            p = rd_tag(p, end, &tag)
            if p == NULL:
                return NULL
            if tag == (9 << 3 | 2):  # attributes (a map: the last value of a key wins)
                p = sub(p, end, T_ENTRY, depth, &body)
                if p == NULL:
                    return NULL
                if not self.too_many and not self.kv_key(body, p, &k, &kn):
                    key = keys.kept(k, kn)
                    if key is not None:
                        attrs[key] = self.kv_value(body, p, 1, [] if key in STRING_ARRAY_KEYS else None)
                continue
            if tag == (11 << 3 | 2):
                p = sub(p, end, T_EVENT, depth, &body)
                if p == NULL:
                    return NULL
                events += 1
                if events > self.max_events:
                    self.too_many = True
                if not self.too_many:
                    self.event(body, p)
                continue
            if tag == (1 << 3 | 2) or tag == (2 << 3 | 2) or tag == (4 << 3 | 2):
                body = rd_len(p, end, &n)
                if body == NULL:
                    return NULL
                p = body + n
                if tag == (1 << 3 | 2):
                    trace_id, trace_n = body, n
                elif tag == (2 << 3 | 2):
                    span_id, span_n = body, n
                else:
                    parent, parent_n = body, n
                continue
            if tag == (5 << 3 | 2) or tag == (3 << 3 | 2):
                body = rd_len(p, BODY_END, &n)
                p = check_string(p, end)
                if p == NULL:
                    return NULL
                if tag == (5 << 3 | 2):
                    name, name_n = body, n
                else:
                    state, state_n = body, n
                continue
            if tag == (7 << 3 | 1) or tag == (8 << 3 | 1):
                if end - p < 8:
                    return NULL
                if tag == (7 << 3 | 1):
                    start = le64(p)
                else:
                    stop = le64(p)
                p += 8
                continue
            if tag == (6 << 3 | 0):
                p = rd_varint(p, end, &v)
                if p == NULL:
                    return NULL
                kind = <int32_t>(<uint32_t>v)
                continue
            if tag == (16 << 3 | 5):
                if end - p < 4:
                    return NULL
                flags = le32(p)
                p += 4
                continue
            if tag == (15 << 3 | 2):
                p = sub(p, end, T_STATUS, depth, &body)
                if p == NULL:
                    return NULL
                while body < p:  # merged: the last code of any occurrence
                    body = rd_tag(body, p, &tag)
                    if tag == (3 << 3 | 0):
                        body = rd_varint(body, p, &v)
                        status = <int32_t>(<uint32_t>v)
                    else:
                        body = skip_field(body, p, tag, DEPTH)
                continue
            p = check_field(T_SPAN, tag, p, end, depth)
            if p == NULL:
                return NULL
        if self.too_many:
            return p
        # validate_span's rules
        reason = None
        if trace_n != 16:
            reason = "invalid_trace_id"
        else:
            zero = True
            for i in range(16):
                if trace_id[i]:
                    zero = False
                    break
            if zero:
                reason = "invalid_trace_id"
        if reason is None:
            if span_n != 8:
                reason = "invalid_span_id"
            else:
                zero = True
                for i in range(8):
                    if span_id[i]:
                        zero = False
                        break
                if zero:
                    reason = "invalid_span_id"
        if reason is None and stop < start:
            reason = "end_before_start"
        if reason is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            return p
        # every value made before the span is allocated: no collection sees it half filled
        v0 = PyBytes_FromStringAndSize(<const char*>trace_id, 16)
        v1 = PyBytes_FromStringAndSize(<const char*>span_id, 8)
        v2 = PyBytes_FromStringAndSize(<const char*>parent, parent_n)
        v3 = self.bounded(text(name, name_n))
        cdef object v4 = kind  # objects now, not at the slot writes
        v5 = PyLong_FromUnsignedLongLong(start)
        v6 = PyLong_FromUnsignedLongLong(stop)
        cdef object v7 = status
        v11 = text(state, state_n)
        v13 = self.own_events or ()
        v14 = flags & 0x300 == 0x300
        v15 = PyLong_FromUnsignedLongLong(self.first_token)
        v16 = self.evaluations or ()
        span_obj = allocated(Span)
        cdef PyObject* obj = <PyObject*>span_obj
        put(obj, 0, v0)
        put(obj, 1, v1)
        put(obj, 2, v2)
        put(obj, 3, v3)
        put(obj, 4, v4)
        put(obj, 5, v5)
        put(obj, 6, v6)
        put(obj, 7, v7)
        put(obj, 8, attrs)
        put(obj, 9, self.resource)
        put(obj, 10, self.exception_type)
        put(obj, 11, v11)
        put(obj, 12, self.scope_name)
        put(obj, 13, v13)
        put(obj, 14, v14)
        put(obj, 15, v15)
        put(obj, 16, v16)
        PyList_Append(self.spans, span_obj)
        return p

    cdef cptr scope_spans(self, cptr p, cptr end, int depth) except? NULL:
        cdef uint32_t tag
        cdef Py_ssize_t n
        cdef cptr body
        cdef cptr q
        cdef Py_ssize_t first = len(self.spans)
        cdef bint late = False  # the scope's name came after a span was built
        self.scope_name = ""
        while p < end:
            p = rd_tag(p, end, &tag)
            if p == NULL:
                return NULL
            if tag == (2 << 3 | 2):
                p = rd_len(p, end, &n)
                if p == NULL:
                    return NULL
                if depth < 1:
                    return too_deep()
                if self.span(p, p + n, depth - 1) == NULL:
                    return NULL
                p += n
            elif tag == (1 << 3 | 2):
                p = sub(p, end, T_SCOPE, depth, &body)
                if p == NULL:
                    return NULL
                while body < p:  # merged: the last name of any occurrence
                    body = rd_tag(body, p, &tag)
                    if tag == (1 << 3 | 2):
                        body = rd_len(body, p, &n)
                        self.scope_name = self.bounded(text(body, n))
                        late = late or len(self.spans) > first
                        body += n
                    else:
                        body = skip_field(body, p, tag, DEPTH)
            else:
                p = check_field(T_SS, tag, p, end, depth)
                if p == NULL:
                    return NULL
        if late:
            for span in self.spans[first:]:
                span.scope_name = self.scope_name
        return p

    cdef cptr resource_spans(self, cptr p, cptr end, int depth) except? NULL:
        cdef uint32_t tag
        cdef Py_ssize_t n, kn
        cdef cptr body
        cdef cptr k
        cdef dict resource = {}
        self.resource = resource
        while p < end:
            p = rd_tag(p, end, &tag)
            if p == NULL:
                return NULL
            if tag == (2 << 3 | 2):
                p = rd_len(p, end, &n)
                if p == NULL:
                    return NULL
                if depth < 1:
                    return too_deep()
                if self.scope_spans(p, p + n, depth - 1) == NULL:
                    return NULL
                p += n
                self.resource = resource
            elif tag == (1 << 3 | 2):
                p = sub(p, end, T_RES, depth, &body)
                if p == NULL:
                    return NULL
                while body < p:  # merged: the attributes of every occurrence, in order
                    body = rd_tag(body, p, &tag)
                    if tag == (1 << 3 | 2):
                        body = rd_len(body, p, &n)
                        self.kv_key(body, body + n, &k, &kn)
                        key = text(k, kn)
                        if key in self.resource_keys:
                            value = self.kv_value(body, body + n, 0, None)
                            resource[key] = value
                        body += n
                    else:
                        body = skip_field(body, p, tag, DEPTH)
            else:
                p = check_field(T_RS, tag, p, end, depth)
                if p == NULL:
                    return NULL
        for key, value in resource.items():  # decode._bounded_values
            if type(value) is str:
                resource[key] = self.bounded(value)
        return p

    cdef bint request(self, cptr p, cptr end) except -1:
        cdef uint32_t tag
        cdef Py_ssize_t n
        while p < end:
            p = rd_tag(p, end, &tag)
            if p == NULL:
                return False
            if tag == (1 << 3 | 2):
                p = rd_len(p, end, &n)
                if p == NULL or self.resource_spans(p, p + n, DEPTH - 1) == NULL:
                    return False
                p += n
            else:
                p = check_field(T_REQ, tag, p, end, DEPTH)
                if p == NULL:
                    return False
        return True


cdef int64_t clamp(value):
    """A bound as a C integer that compares with any count the same way: in [-1, 2**62]."""
    return -1 if value < 0 else min(value, 2**62)


def count_spans(data: bytes, cap) -> int:
    """span_count.count_spans in C (for the tests): the count, or ``cap + 1`` past it; ``ValueError``
    with the same message as span_count.Malformed."""
    cdef int64_t count = 0
    cdef int r = count_level(<cptr>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0, PyBytes_GET_SIZE(data), 0,
                             clamp(cap), &count)
    if r and r != 5:
        raise ValueError(_COUNT_MESSAGES[r])
    return count


def decode_traces(data, wanted, limits, resource_keys):
    """decode.decode_traces_python's result for ``data``, computed in one pass over its bytes."""
    cdef int64_t count = 0
    cdef int r
    cdef cptr p
    cdef Py_ssize_t size
    cdef _Run run
    if not CONFIGURED:
        raise RuntimeError("agentprom.receiver._wire is not configured")
    if type(data) is not bytes:
        data = bytes(data)
    p = <cptr>PyBytes_AS_STRING(data)
    size = PyBytes_GET_SIZE(data)
    if limits is not NO_LIMITS:
        r = count_level(p, size, 0, size, 0, clamp(limits.max_spans), &count)
        if r and r != 5:
            raise DecodeError(COUNT_ERROR + _COUNT_MESSAGES[r])
        if count > limits.max_spans:
            raise too_many_spans(limits.max_spans)
    run = _Run.__new__(_Run)
    run.spans = []
    run.rejected = {}
    run.keys = key_cache(wanted, KEY_LIMIT)
    run.resource_keys = resource_keys
    run.limit = limits.max_string_bytes or 2**62
    run.short = <Py_ssize_t>max(-1, min(run.limit // 4, 2**62))
    run.max_events = clamp(limits.max_items)
    run.too_many = False
    run.scope_name = ""
    global ERR, BODY_END
    ERR = E_CORRUPT
    BODY_END = p + size
    if not run.request(p, p + size):
        raise DecodeError(PARSE_ERROR + _PARSE_ERRORS[ERR])
    if run.too_many:
        raise too_many_items("a span's events", limits.max_items)
    return Batch(run.spans, run.rejected)


cdef Py_ssize_t KEY_LIMIT = 4096

_WIRE_TYPES = {}


def _wire_type(field) -> int:
    """The wire type of a non-repeated field of this descriptor type (protobuf.dev encoding)."""
    from google.protobuf.descriptor import FieldDescriptor as F
    if field.type in (F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64, F.TYPE_SINT32, F.TYPE_SINT64,
                      F.TYPE_BOOL, F.TYPE_ENUM):
        return 0
    if field.type in (F.TYPE_FIXED64, F.TYPE_SFIXED64, F.TYPE_DOUBLE):
        return 1
    if field.type in (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_MESSAGE):
        return 2
    if field.type in (F.TYPE_FIXED32, F.TYPE_SFIXED32, F.TYPE_FLOAT):
        return 5
    raise ValueError(f"{field.full_name}: unsupported field type {field.type}")


#: (message, field number) -> (what the builder reads there, its descriptor type name)
_READ = {
    "ExportTraceServiceRequest": {1: "resource_spans"},
    "ResourceSpans": {1: "resource", 2: "scope_spans"},
    "Resource": {1: "attributes"},
    "ScopeSpans": {1: "scope", 2: "spans"},
    "InstrumentationScope": {1: "name"},
    "Span": {1: "trace_id", 2: "span_id", 3: "trace_state", 4: "parent_span_id", 5: "name", 6: "kind",
             7: "start_time_unix_nano", 8: "end_time_unix_nano", 9: "attributes", 11: "events", 15: "status",
             16: "flags"},
    "AttributesEntry": {1: "key", 2: "value"},
    "KeyValue": {1: "key", 2: "value"},
    "Event": {1: "time_unix_nano", 2: "name", 3: "attributes"},
    "Status": {3: "code"},
    "ArrayValue": {1: "values"},
    "AnyValue": {1: "string_value", 2: "bool_value", 3: "int_value", 4: "double_value", 5: "array_value",
                 6: "kvlist_value", 7: "bytes_value"},
}


def schema(descriptor) -> dict:
    """The message types below ``descriptor`` as {name: {number: (field name, kind, wire type)}}, kind
    "string" (checked UTF-8), "message:<name>" or "scalar"; ``ValueError`` for what this pass cannot
    follow (proto2 files, groups, repeated scalars, which upb would also read packed)."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.descriptor import FieldDescriptor as F
    out = {}
    todo = [descriptor]
    while todo:
        message = todo.pop()
        if message.full_name in out:
            continue
        syntax = descriptor_pb2.FileDescriptorProto.FromString(message.file.serialized_pb).syntax
        if syntax != "proto3":
            raise ValueError(f"{message.full_name}: {syntax} files are not supported")
        fields = out[message.full_name] = {}
        for field in message.fields:
            repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == F.LABEL_REPEATED
            if field.type == F.TYPE_GROUP or (repeated and field.type not in (F.TYPE_MESSAGE, F.TYPE_STRING,
                                                                               F.TYPE_BYTES)):
                raise ValueError(f"{field.full_name}: unsupported field")
            if field.type == F.TYPE_MESSAGE:
                kind = "message:" + field.message_type.full_name
                todo.append(field.message_type)
            elif field.type == F.TYPE_STRING:
                kind = "string"
            else:
                kind = "scalar"
            fields[field.number] = (field.name, kind, _wire_type(field),
                                    field.containing_oneof.name if field.containing_oneof else None)
    return out


# SPAN_FIELDS' indexes of the two fields ``suspects`` reads
cdef Py_ssize_t F_ATTRIBUTES = SPAN_FIELDS.index("attributes")
cdef Py_ssize_t F_TRACE_STATE = SPAN_FIELDS.index("trace_state")


def suspects(list spans, frozenset amount_keys, dict bound_of, bint weigh_attribute):
    """The spans that bounds.SpanBounds.check must judge one by one, in order; it passes the others.

    A span passes unjudged when every attribute it has under ``amount_keys`` holds an ``int`` or a
    ``float`` (those very classes) that is ``<=`` its bound in ``bound_of`` (NaN is not), and its
    sampling weight cannot be above 1: it has no trace state and weights are not read from an
    attribute (``weigh_attribute`` false). Spans of another class than model.Span (a subclass could
    read differently) and attributes that are not a dict are judged too."""
    cdef list out = []
    cdef Py_ssize_t pos
    cdef PyObject* key
    cdef PyObject* value
    cdef Py_ssize_t attributes_at = SPAN_OFFSET[F_ATTRIBUTES], trace_state_at = SPAN_OFFSET[F_TRACE_STATE]
    if not CONFIGURED:
        raise RuntimeError("agentprom.receiver._wire is not configured")
    for span in spans:
        if type(span) is not Span or weigh_attribute or read_slot(span, trace_state_at):
            out.append(span)
            continue
        attributes = read_slot(span, attributes_at)
        if type(attributes) is not dict:
            out.append(span)
            continue
        pos = 0
        while PyDict_Next(attributes, &pos, &key, &value):
            if not PySet_Contains(amount_keys, <object>key):
                continue
            amount = <object>value
            if (type(amount) is int or type(amount) is float) and amount <= bound_of[<object>key]:
                continue
            out.append(span)
            break
    return out


def configure(descriptor, *, batch, span, decode_error, spans_refusal, items_refusal, no_limits, bounded,
              key_limit, profile) -> None:
    """Read the schema from ``descriptor`` (ExportTraceServiceRequestView's) and take decode.py's
    types; ``ValueError`` if the schema is not the one this pass reads."""
    global CONFIGURED, Batch, Span, DecodeError, too_many_spans, too_many_items, NO_LIMITS, bounded_text
    global T_REQ, T_RS, T_RES, T_SS, T_SCOPE, T_SPAN, T_ENTRY, T_EVENT, T_LINK, T_STATUS, T_KV, T_AV, T_ARR
    global EXCEPTION_EVENT_B, EXCEPTION_TYPE_B, FIRST_TOKEN_B, EVALUATION_B, OWN_B, EVALUATION_KEYS
    global STRING_ARRAY_KEYS, OWN_PREFIX, MAX_ARRAY, PARSE_ERROR, COUNT_ERROR, KEY_LIMIT
    cdef int t, f
    CONFIGURED = False
    types = schema(descriptor)
    names = sorted(types, key=lambda name: (name != descriptor.full_name, name))
    if len(names) > MAXT:
        raise ValueError("too many message types")
    ids = {name: i for i, name in enumerate(names)}
    short = {}
    for name in names:
        short.setdefault(name.rsplit(".", 1)[1], name)
    for t in range(MAXT):
        for f in range(MAXF):
            KIND[t][f] = 0
    for name, fields in types.items():
        for number, (_field, kind, _wt, _oneof) in fields.items():
            if kind == "scalar":
                continue
            if number >= MAXF:
                raise ValueError(f"{name}: field {number} is past the table")
            KIND[ids[name]][number] = K_STR if kind == "string" else K_MSG + ids[kind.split(":", 1)[1]]
    for message, read in _READ.items():
        if message not in short:
            raise ValueError(f"{message}: not in the schema")
        fields = types[short[message]]
        for number, field_name in read.items():
            if number not in fields or fields[number][0] != field_name:
                raise ValueError(f"{message}.{field_name}: not field {number}")
    any_value = types[short["AnyValue"]]
    for f in range(MAXF):
        ONEOF_WT[f] = -1
        ONEOF_CODE[f] = W_NONE
    codes = {1: W_STR, 2: W_BOOL, 3: W_INT, 4: W_DOUBLE, 5: W_ARRAY, 6: W_KVLIST, 7: W_BYTES}
    for number, (_field, _kind, wt, oneof) in any_value.items():
        if oneof != "value" or number >= MAXF:
            raise ValueError(f"AnyValue.{_field}: not a member of its oneof")
        ONEOF_WT[number] = wt
        ONEOF_CODE[number] = codes.get(number, W_OTHER)
    T_REQ = ids[descriptor.full_name]
    T_RS, T_RES, T_SS = ids[short["ResourceSpans"]], ids[short["Resource"]], ids[short["ScopeSpans"]]
    T_SCOPE, T_SPAN, T_ENTRY = ids[short["InstrumentationScope"]], ids[short["Span"]], ids[short["AttributesEntry"]]
    T_EVENT, T_STATUS, T_KV = ids[short["Event"]], ids[short["Status"]], ids[short["KeyValue"]]
    T_AV, T_ARR = ids[short["AnyValue"]], ids[short["ArrayValue"]]
    configure_span(span)
    Batch, Span, DecodeError = batch, span, decode_error
    too_many_spans, too_many_items, NO_LIMITS, bounded_text = spans_refusal, items_refusal, no_limits, bounded
    KEY_LIMIT = key_limit
    EXCEPTION_EVENT_B = profile.EXCEPTION_EVENT.encode()
    EXCEPTION_TYPE_B = profile.EXCEPTION_TYPE.encode()
    FIRST_TOKEN_B = profile.FIRST_TOKEN_EVENT.encode()
    EVALUATION_B = profile.EVALUATION_EVENT.encode()
    OWN_PREFIX = profile.OWN_PREFIX
    OWN_B = OWN_PREFIX.encode()
    EVALUATION_KEYS = profile.EVALUATION_KEYS
    STRING_ARRAY_KEYS = profile.STRING_ARRAY_KEYS
    MAX_ARRAY = profile.MAX_ARRAY_STRINGS
    name = descriptor.name
    COUNT_ERROR = f"cannot parse {name}: "
    PARSE_ERROR = f"cannot parse {name}: Error parsing message with type '{descriptor.full_name}'"
    _caches.clear()
    CONFIGURED = True
