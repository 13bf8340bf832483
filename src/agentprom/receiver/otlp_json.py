"""Decode OTLP/JSON trace requests into our own ``Span`` records.

OTLP JSON is not plain protobuf JSON (OTLP specification, "JSON Protobuf
Encoding"): trace and span ids are lowercase hex, enums are integers, keys are
lowerCamelCase, 64-bit integers may arrive as decimal strings, and unknown
fields must be ignored. We walk the parsed document ourselves rather than use
``json_format`` (which expects base64 ids) and keep only what we need.

Structural errors (a span that is not an object, a time that is not a number)
refuse the whole request with a message naming the JSON path; bad ids are a
per-span rejection, as in the protobuf decoder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

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
from agentprom.model import SPAN_FLAGS_PARENT_REMOTE, Span
from agentprom.receiver.decode import NO_LIMITS, Batch, DecodeError, DecodeLimits, too_many_items, too_many_spans
from agentprom.text import DEFAULT_MAX_STRING_BYTES, bounded_text

_MAX_U64 = 2**64 - 1
_MAX_I64 = 2**63 - 1
_MIN_I64 = -(2**63)


def _obj(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"{path}: expected an object, got {type(value).__name__}")
    return value


#: items allowed in one array of the document being walked (set per decode by ``with_limits``)
_max_items: ContextVar[int] = ContextVar("max_items", default=NO_LIMITS.max_items)


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{path}: expected an array, got {type(value).__name__}")
    if len(value) > _max_items.get():
        raise too_many_items(path, _max_items.get())
    return value


def with_limits(limits: DecodeLimits, decode: Callable[..., Any], *args: Any) -> Any:
    """Run ``decode(*args)`` with ``limits.max_items`` bounding every array it reads."""
    token = _max_items.set(limits.max_items)
    try:
        return decode(*args)
    finally:
        _max_items.reset(token)


def _str(value: Any, path: str) -> str:
    """A JSON string as valid UTF-8 (lone surrogates replaced: ``text.bounded_text``)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{path}: expected a string, got {type(value).__name__}")
    return value if value.isascii() else bounded_text(value, 0)


def _int(value: Any, path: str, lo: int = 0, hi: int = _MAX_U64) -> int:
    """A protobuf JSON integer: a number or a decimal string."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise DecodeError(f"{path}: expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            raise DecodeError(f"{path}: expected an integer, got a string that is not one") from None
    else:
        raise DecodeError(f"{path}: expected an integer, got {type(value).__name__}")
    if not lo <= number <= hi:
        raise DecodeError(f"{path}: integer out of range [{lo}, {hi}]")
    return number


def _hex_id(value: Any, path: str) -> bytes:
    """A hex id; malformed hex yields an empty id, which validation rejects per span."""
    text = _str(value, path)
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _double(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise DecodeError(f"{path}: expected a number, got a boolean")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer literal beyond any double
            raise DecodeError(f"{path}: number out of range") from None
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise DecodeError(f"{path}: expected a number, got {type(value).__name__}")


def any_value(value: Any, path: str) -> Any:
    """Convert a scalar AnyValue; arrays, kvlists and empty values become None
    without being walked (hostile nesting costs nothing)."""
    value = _obj(value, path)
    if "stringValue" in value:
        return _str(value["stringValue"], path + ".stringValue")
    if "intValue" in value:
        return _int(value["intValue"], path + ".intValue", _MIN_I64, _MAX_I64)
    if "doubleValue" in value:
        return _double(value["doubleValue"], path + ".doubleValue")
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise DecodeError(f"{path}.boolValue: expected a boolean")
        return flag
    if "bytesValue" in value:
        return _str(value["bytesValue"], path + ".bytesValue")
    return None


def _attributes(items: Any, path: str, keep, max_bytes: int = DEFAULT_MAX_STRING_BYTES) -> dict[str, Any]:
    """The kept attributes; string values bounded to ``max_bytes`` (they may be stored)."""
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(items, path)):
        kv_path = f"{path}[{i}]"
        kv = _obj(kv, kv_path)
        key = _str(kv.get("key"), kv_path + ".key")
        if keep(key):
            if key in STRING_ARRAY_KEYS:
                out[key] = _string_array(kv.get("value"), kv_path + ".value", max_bytes)
                continue
            value = any_value(kv.get("value"), kv_path + ".value")
            out[key] = bounded_text(value, max_bytes) if value.__class__ is str else value
    return out


def _string_array(value: Any, path: str, max_bytes: int) -> Any:
    """An array attribute's string items (at most ``MAX_ARRAY_STRINGS``, each bounded), or the value
    as ``any_value`` reads it when it is not an array."""
    value = _obj(value, path)
    if "arrayValue" not in value:
        found = any_value(value, path)
        return bounded_text(found, max_bytes) if found.__class__ is str else found
    array = _obj(value["arrayValue"], path + ".arrayValue")
    out = []
    for i, item in enumerate(_list(array.get("values"), path + ".arrayValue.values")[:MAX_ARRAY_STRINGS]):
        item = _obj(item, f"{path}.arrayValue.values[{i}]")
        if "stringValue" in item:
            out.append(bounded_text(_str(item["stringValue"], f"{path}.arrayValue.values[{i}].stringValue"),
                                   max_bytes))
    return tuple(out)


def _span_key_filter(wanted: frozenset[str]):
    def keep(key: str) -> bool:
        return key in wanted or key.startswith(OWN_PREFIX)

    return keep


def _keep_all(key: str) -> bool:
    return True


def json_error(exc: Exception) -> str:
    """Why ``json.loads`` failed, by position and rule only: never a piece of the body."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg.split(':')[0]} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    return "a number has too many digits" if "digits" in str(exc) else "not JSON"


def load_document(data: bytes) -> dict[str, Any]:
    """The request body as a JSON object; ``DecodeError`` if it is not one."""
    try:
        document = json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers past Python's digit limit
        raise DecodeError(f"invalid JSON: {json_error(exc)}") from None
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None
    return _obj(document, "$")


def decode_traces_json(data: bytes, wanted: frozenset[str] = WANTED_KEYS, limits: DecodeLimits = NO_LIMITS,
                       resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS) -> Batch:
    """Parse an OTLP/JSON ``ExportTraceServiceRequest``; raise ``DecodeError`` if malformed.
    ``wanted`` is the set of span attribute keys to keep (besides ``agent.*``), ``resource_keys``
    the resource attribute keys; ``limits``
    bound the spans of the request, the items of each array (spans arrays excepted) and the
    length of every kept string."""
    return with_limits(limits, _decode_traces, load_document(data), wanted, limits.max_spans,
                       limits.max_string_bytes, resource_keys)


def _decode_traces(root: dict[str, Any], wanted: frozenset[str], max_spans: int, max_string_bytes: int,
                   resource_keys: frozenset[str] = WANTED_RESOURCE_KEYS) -> Batch:
    spans_seen = 0
    batch = Batch()
    keep_span_key = _span_key_filter(wanted)
    limit = max_string_bytes
    for r, resource_spans in enumerate(_list(root.get("resourceSpans"), "resourceSpans")):
        rpath = f"resourceSpans[{r}]"
        resource_spans = _obj(resource_spans, rpath)
        resource_obj = _obj(resource_spans.get("resource"), rpath + ".resource")
        resource = _attributes(resource_obj.get("attributes"), rpath + ".resource.attributes", resource_keys.__contains__,
                               limit)
        for s_i, scope_spans in enumerate(_list(resource_spans.get("scopeSpans"), rpath + ".scopeSpans")):
            spath = f"{rpath}.scopeSpans[{s_i}]"
            scope_spans = _obj(scope_spans, spath)
            scope = _obj(scope_spans.get("scope"), spath + ".scope")
            scope_name = bounded_text(_str(scope.get("name"), spath + ".scope.name"), limit)
            spans = scope_spans.get("spans")
            if isinstance(spans, list):  # the request's span count is bounded, not each array's
                spans_seen += len(spans)
                if spans_seen > max_spans:
                    raise too_many_spans(max_spans)
            else:
                spans = _list(spans, spath + ".spans")  # null, or a DecodeError
            for i, span in enumerate(spans):
                batch.add(_span(_obj(span, f"{spath}.spans[{i}]"), f"{spath}.spans[{i}]", resource, scope_name,
                                keep_span_key, limit))
    return batch


def _span(s: dict[str, Any], path: str, resource: dict[str, Any], scope_name: str, keep_span_key,
          limit: int) -> Span:
    exception_type = None
    first_token = 0
    own_events: list[tuple[str, int, dict[str, Any]]] = []
    evaluations: list[dict[str, Any]] = []
    for e, event in enumerate(_list(s.get("events"), path + ".events")):
        epath = f"{path}.events[{e}]"
        event = _obj(event, epath)
        name = bounded_text(_str(event.get("name"), epath + ".name"), limit)
        if name == EXCEPTION_EVENT and exception_type is None:
            attrs = _attributes(event.get("attributes"), epath + ".attributes", lambda k: k == EXCEPTION_TYPE, limit)
            exception_type = str(attrs.get(EXCEPTION_TYPE) or "") or None
        elif name == FIRST_TOKEN_EVENT:
            if not first_token:
                first_token = _int(event.get("timeUnixNano"), epath + ".timeUnixNano")
        elif name.startswith(OWN_PREFIX):
            own_events.append(
                (
                    name,
                    _int(event.get("timeUnixNano"), epath + ".timeUnixNano"),
                    _attributes(event.get("attributes"), epath + ".attributes", _keep_all, limit),
                )
            )
        elif name == EVALUATION_EVENT:  # an evaluation of this span (evaluations/)
            evaluations.append(_attributes(event.get("attributes"), epath + ".attributes",
                                           EVALUATION_KEYS.__contains__, limit))
    status = _obj(s.get("status"), path + ".status")
    return Span(
        trace_id=_hex_id(s.get("traceId"), path + ".traceId"),
        span_id=_hex_id(s.get("spanId"), path + ".spanId"),
        parent_span_id=_hex_id(s.get("parentSpanId"), path + ".parentSpanId"),
        name=bounded_text(_str(s.get("name"), path + ".name"), limit),
        kind=_int(s.get("kind"), path + ".kind", 0, 2**31 - 1),
        start_ns=_int(s.get("startTimeUnixNano"), path + ".startTimeUnixNano"),
        end_ns=_int(s.get("endTimeUnixNano"), path + ".endTimeUnixNano"),
        status_code=_int(status.get("code"), path + ".status.code", 0, 2**31 - 1),
        attributes=_attributes(s.get("attributes"), path + ".attributes", keep_span_key, limit),
        resource=resource,
        exception_type=exception_type,
        trace_state=_str(s.get("traceState"), path + ".traceState"),
        scope_name=scope_name,
        events=own_events or (),
        parent_remote=_int(s.get("flags"), path + ".flags", 0, 2**32 - 1) & SPAN_FLAGS_PARENT_REMOTE
        == SPAN_FLAGS_PARENT_REMOTE,
        first_token_ns=first_token,
        evaluations=evaluations or (),
    )
