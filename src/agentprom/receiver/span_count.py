"""Count the spans of a serialized ``ExportTraceServiceRequest`` without parsing it, up to a cap.

Parsing builds a message per span (about 180 bytes each in upb even for an
empty span, so a 64 MiB body of empty spans would take gigabytes), so the
span cap is checked on the wire first: only the three levels above the spans
are walked (request -> ResourceSpans(1) -> ScopeSpans(2) -> spans(2)), each
span is skipped by its length, and the walk stops once the cap is passed, so
refusing costs at most ``cap`` steps. Protobuf encoding: protobuf.dev
"Encoding" (varints, wire types 0, 1, 2, 5). A body the walk cannot follow
(truncated, or with groups, which OTLP never uses) is malformed: no span may
hide behind a field the count skipped.
"""

from __future__ import annotations

_RESOURCE_SPANS = (1 << 3) | 2  # ExportTraceServiceRequest.resource_spans, length-delimited
_SCOPE_SPANS = (2 << 3) | 2  # ResourceSpans.scope_spans
_SPANS = (2 << 3) | 2  # ScopeSpans.spans


class Malformed(ValueError):
    """The body is not a well-formed protobuf message at the levels walked."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise Malformed("a varint is too long")


def _fields(data: bytes, pos: int, end: int):
    """(tag, start, end) of each field in ``data[pos:end]``; the payload bounds only for wire type 2."""
    while pos < end:
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire == 2:
            length, pos = _varint(data, pos)
            start, pos = pos, pos + length
            if pos > end:
                raise Malformed("a length runs past its message")
            yield tag, start, pos
            continue
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) never occur in OTLP
            raise Malformed("unsupported wire type")
        yield tag, pos, pos


def count_spans(data: bytes, cap: int) -> int:
    """Spans in the request, or ``cap + 1`` as soon as there are more than ``cap``;
    ``Malformed`` if the walk cannot follow the body."""
    count = 0
    try:
        for tag, start, end in _fields(data, 0, len(data)):
            if tag != _RESOURCE_SPANS:
                continue
            for tag2, start2, end2 in _fields(data, start, end):
                if tag2 != _SCOPE_SPANS:
                    continue
                for tag3, _s, _e in _fields(data, start2, end2):
                    if tag3 == _SPANS:
                        count += 1
                        if count > cap:
                            return count
    except IndexError:
        raise Malformed("truncated") from None
    return count
