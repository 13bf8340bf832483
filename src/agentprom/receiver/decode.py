"""Decode OTLP/protobuf trace requests into our own ``Span`` records.

This is the last place protobuf types are seen (opentelemetry/proto/trace/v1).
Only the attributes listed in ``conventions.profile.WANTED_KEYS`` (and our own
``agent.*`` keys) are decoded, and of span events only ``exception``, ``agent.*`` and
``gen_ai.evaluation.result`` (its ``EVALUATION_KEYS``); the rest are skipped without touching their
values, because the attribute walk is the ingest hot path (bench/decode.py measures it).
Requests are parsed as ``trace_view.ExportTraceServiceRequestView`` (the same
wire format, with span attributes as a map), so picking the kept keys is a set
operation in C rather than a Python loop over every attribute.

That is ``decode_traces_python``. When the optional extension receiver/_wire.pyx is built (the install
builds it where a C compiler is found), ``decode_traces`` is its compiled twin instead: one C pass over
the wire bytes, with the same results and errors for every body (tests/test_wire.py); ``COMPILED`` says
which is in use, and ``AGENTPROM_PURE_PYTHON=1`` in the environment at import keeps the Python one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError as _PbDecodeError

from agentprom.compiled import extension
from agentprom.conventions import profile as _profile
from agentprom.conventions.profile import (
    EVALUATION_EVENT,
    EVALUATION_KEYS,
    EXCEPTION_EVENT,
    EXCEPTION_TYPE,
    FIRST_TOKEN_EVENT,
    MAX_ARRAY_STRINGS,
    OWN_PREFIX,
    STRING_ARRAY_KEYS,
    WANTED_KEYS,
    WANTED_RESOURCE_KEYS,
)
from agentprom.model import SPAN_FLAGS_PARENT_REMOTE, Span, validate_span
from agentprom.receiver.span_count import count_spans
from agentprom.receiver.trace_view import ExportTraceServiceRequestView
from agentprom.text import DEFAULT_MAX_STRING_BYTES, bounded_text

#: attribute keys remembered per key filter (beyond the wanted ones); past it, new keys are
#: still filtered correctly, one by one
KNOWN_KEYS_LIMIT = 4096
_PARENT_REMOTE = SPAN_FLAGS_PARENT_REMOTE
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


class DecodeError(ValueError):
    """The request body is not a valid OTLP message; the whole request is refused."""


class LimitExceeded(DecodeError):
    """The request passes a per-request bound; ``reason`` is a key of ``ingest.FAILURES``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Work bounds of one request (config ``server.max_spans_per_request``, ``server.max_items_per_array``,
    ``server.max_string_bytes``)."""

    #: spans in one request; more refuse it whole, before anything is built (``too_many_spans``)
    max_spans: int = 2**62
    #: items of one JSON array (attributes, events, data points, ...) and events of one protobuf span
    max_items: int = 2**62
    #: every kept string is cut to this many bytes of UTF-8 (``server.max_string_bytes``; text.py)
    max_string_bytes: int = DEFAULT_MAX_STRING_BYTES


NO_LIMITS = DecodeLimits()


def too_many_spans(limit: int) -> LimitExceeded:
    return LimitExceeded("too_many_spans", f"request has more than {limit} spans (server.max_spans_per_request)")


def too_many_items(path: str, limit: int) -> LimitExceeded:
    return LimitExceeded("too_many_items", f"{path}: more than {limit} items (server.max_items_per_array)")


@dataclass(slots=True)
class Batch:
    """The outcome of decoding one export request."""

    spans: list[Span] = field(default_factory=list)
    #: rejection reason -> number of spans rejected for it
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    @property
    def received_count(self) -> int:
        return len(self.spans) + self.rejected_count

    def add(self, span: Span) -> None:
        reason = validate_span(span)
        if reason is None:
            self.spans.append(span)
        else:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def error_message(self) -> str:
        return "; ".join(f"{n} span(s) rejected: {reason}" for reason, n in sorted(self.rejected.items()))


def any_value(value: Any) -> Any:
    """Convert a scalar ``AnyValue``. Arrays, kvlists and empty values become None:
    no convention we read uses them, and not recursing keeps hostile nesting cheap."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


def string_array(value: Any, limit: int) -> Any:
    """The string items of an array ``AnyValue`` (at most ``MAX_ARRAY_STRINGS``, each bounded), for the
    few attributes that are arrays (``STRING_ARRAY_KEYS``); any other value as ``any_value`` reads it
    (the caller has taken non-empty strings and integers already)."""
    if value.WhichOneof("value") != "array_value":
        return any_value(value)
    items = value.array_value.values
    return tuple(bounded_text(item.string_value, limit) for item in items[:MAX_ARRAY_STRINGS]
                 if item.WhichOneof("value") == "string_value")


class KeyFilter:
    """Which keys of a span's attribute map to keep: the ``wanted`` ones and ``agent.*``.

    Keys are remembered once classified (up to ``KNOWN_KEYS_LIMIT``), so for a span
    whose keys are all familiar the answer is two set operations in C.
    """

    def __init__(self, wanted: frozenset[str], limit: int = KNOWN_KEYS_LIMIT) -> None:
        self.keep: set[str] = set(wanted)  # grows by the agent.* keys seen
        self.known: set[str] = set(wanted)
        self.limit = len(wanted) + limit

    def __call__(self, attributes: Any) -> set[str]:
        names = set(attributes)
        if names <= self.known:
            return names & self.keep
        kept = names & self.keep
        known = self.known
        for key in names - known:
            own = key.startswith(OWN_PREFIX)
            if own:
                kept.add(key)
            if len(known) < self.limit:
                known.add(key)
                if own:
                    self.keep.add(key)
        return kept


_filters: dict[frozenset[str], KeyFilter] = {}


def key_filter(wanted: frozenset[str]) -> KeyFilter:
    """The shared filter for a set of wanted keys (a few per process: one per configuration)."""
    found = _filters.get(wanted)
    if found is None:
        if len(_filters) >= 16:
            _filters.clear()
        found = _filters[wanted] = KeyFilter(wanted)
    return found


def decode_traces_python(data: bytes, wanted: frozenset[str] = WANTED_KEYS, limits: DecodeLimits = NO_LIMITS,
                         resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS) -> Batch:
    """Parse an ``ExportTraceServiceRequest`` body; raise ``DecodeError`` if it is not one (the pure-Python
    path: upb parses, Python walks; ``decode_traces`` is the compiled twin when it is built).
    ``wanted`` is the set of span attribute keys to keep (besides ``agent.*``), ``resource_keys``
    the resource attribute keys; kept strings are cut to ``limits.max_string_bytes`` (protobuf has
    already checked that they are valid UTF-8)."""
    request = parse_counted(data, limits, ExportTraceServiceRequestView, too_many_spans)
    return traces_from_request(request, wanted, limits.max_items, limits.max_string_bytes, resource_keys)


def parse_counted(data: bytes, limits: DecodeLimits, view: Any, refusal: Callable[[int], LimitExceeded]) -> Any:
    """``data`` parsed as the request message ``view``, after counting its items (spans, log records)
    on the wire, since parsing allocates per item (span_count.py): past ``limits.max_spans``,
    ``refusal(limit)`` is raised unparsed; a body that is not such a request raises ``DecodeError``."""
    too_many = False
    try:
        too_many = limits is not NO_LIMITS and count_spans(data, limits.max_spans) > limits.max_spans
        if not too_many:
            request = view.FromString(data)
    except (_PbDecodeError, RuntimeError, ValueError) as exc:  # ValueError includes span_count.Malformed
        raise DecodeError(f"cannot parse {view.DESCRIPTOR.name}: {exc}") from None
    if too_many:
        raise refusal(limits.max_spans)
    return request


def _bounded_values(values: dict[str, Any], limit: int) -> dict[str, Any]:
    for key, value in values.items():
        if value.__class__ is str and len(value) > limit // 4:
            values[key] = bounded_text(value, limit)
    return values


def traces_from_request(request: Any, wanted: frozenset[str] = WANTED_KEYS, max_events: int = 2**62,
                        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
                        resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS) -> Batch:
    """Our spans from a parsed ``ExportTraceServiceRequestView``."""
    # The hot path of ingestion (bench/decode.py measures it): locals instead of globals,
    # the common string value read without WhichOneof, validation and the Span built inline.
    batch = Batch()
    spans_out = batch.spans
    rejected = batch.rejected
    own = OWN_PREFIX
    span_type = Span
    kept_keys = key_filter(wanted)
    limit = max_string_bytes or 2**62
    # a string of at most limit/4 characters fits in limit bytes whatever its characters
    short = limit // 4
    for resource_spans in request.resource_spans:
        resource = _bounded_values({
            kv.key: any_value(kv.value)
            for kv in resource_spans.resource.attributes
            if kv.key in resource_keys
        }, limit)
        for scope_spans in resource_spans.scope_spans:
            scope_name = bounded_text(scope_spans.scope.name, limit)
            for s in scope_spans.spans:
                attrs: dict[str, Any] = {}
                attributes = s.attributes
                for key in kept_keys(attributes):
                    value = attributes[key]
                    text = value.string_value
                    if text:
                        attrs[key] = text if len(text) <= short else bounded_text(text, limit)
                    elif value.WhichOneof("value") == "int_value":  # token counts: the next most common
                        attrs[key] = value.int_value
                    elif key in STRING_ARRAY_KEYS:
                        attrs[key] = string_array(value, limit)
                    else:
                        attrs[key] = any_value(value)
                exception_type = None
                own_events = None
                first_token = 0
                evaluations = None
                events = s.events
                if events and len(events) > max_events:
                    raise too_many_items("a span's events", max_events)
                for event in events if events else ():
                    name = event.name
                    if name == EXCEPTION_EVENT and exception_type is None:
                        for kv in event.attributes:
                            if kv.key == EXCEPTION_TYPE:
                                exception_type = bounded_text(str(any_value(kv.value) or ""), limit) or None
                                break
                    elif name == FIRST_TOKEN_EVENT:
                        if not first_token:
                            first_token = event.time_unix_nano
                    elif name.startswith(own):
                        # agentprom's own span events (checkpoints, context resets, ...)
                        if own_events is None:
                            own_events = []
                        own_events.append((name, event.time_unix_nano, _bounded_values(
                            {kv.key: any_value(kv.value) for kv in event.attributes}, limit)))
                    elif name == EVALUATION_EVENT:  # an evaluation of this span (evaluations/)
                        if evaluations is None:
                            evaluations = []
                        evaluations.append(_bounded_values({kv.key: any_value(kv.value) for kv in event.attributes
                                                            if kv.key in EVALUATION_KEYS}, limit))
                trace_id = s.trace_id
                span_id = s.span_id
                start = s.start_time_unix_nano
                end = s.end_time_unix_nano
                # validate_span's rules, inlined (all-zero ids compared whole, not byte by byte)
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
                    reason = "invalid_trace_id"
                elif len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
                    reason = "invalid_span_id"
                elif end < start:
                    reason = "end_before_start"
                else:
                    name = s.name
                    if len(name) > short:
                        name = bounded_text(name, limit)
                    spans_out.append(span_type(
                        trace_id, span_id, s.parent_span_id, name, s.kind, start, end, s.status.code,
                        attrs, resource, exception_type, s.trace_state, scope_name, own_events or (),
                        s.flags & _PARENT_REMOTE == _PARENT_REMOTE, first_token, evaluations or (),
                    ))
                    continue
                rejected[reason] = rejected.get(reason, 0) + 1
    return batch


def _extension() -> Any:
    """The compiled decoder's module (receiver/_wire.pyx), configured, when it is built and not switched
    off with ``AGENTPROM_PURE_PYTHON=1``; else None (also for a schema the compiled pass does not follow)."""
    return extension("agentprom.receiver._wire", lambda module: module.configure(
        ExportTraceServiceRequestView.DESCRIPTOR, batch=Batch, span=Span, decode_error=DecodeError,
        spans_refusal=too_many_spans, items_refusal=too_many_items, no_limits=NO_LIMITS, bounded=bounded_text,
        key_limit=KNOWN_KEYS_LIMIT, profile=_profile))


def _compiled(wire: Any) -> Callable[..., Batch]:
    """``decode_traces`` through the compiled pass of ``wire``."""
    compiled = wire.decode_traces

    def decode_traces(data: bytes, wanted: frozenset[str] = WANTED_KEYS, limits: DecodeLimits = NO_LIMITS,
                      resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS) -> Batch:
        """``decode_traces_python``'s result, from one C pass over the bytes (receiver/_wire.pyx)."""
        return compiled(data, wanted, limits, resource_keys)

    return decode_traces


_wire = _extension()
_decode_compiled = _compiled(_wire) if _wire is not None else None
#: the compiled first look of bounds.SpanBounds.check (receiver/_wire.pyx ``suspects``) when the
#: compiled decoder is in use, else None (the check judges every span)
bounds_suspects: Callable[..., list[Span]] | None = _wire.suspects if _wire is not None else None
#: whether ``decode_traces`` is the compiled decoder (read once, at import; ``AGENTPROM_PURE_PYTHON=1`` turns it off)
COMPILED = _decode_compiled is not None
#: the trace decoder in use: the compiled one when built, else ``decode_traces_python``
decode_traces = _decode_compiled or decode_traces_python
