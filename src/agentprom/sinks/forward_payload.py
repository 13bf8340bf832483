"""What the trace forwarder sends: the spans a request had accepted, as protobuf.

An export request is forwarded as received when every span in it was accepted
(protobuf requests concatenate into one valid message). Otherwise the request
is rebuilt with only the spans that pass ``model.span_rejection``, the rule
the decoders apply, so the upstream receives exactly what the client was told
was accepted (OTLP "Partial success"). OTLP/JSON requests are always rebuilt:
ids are hex there and base64 in protobuf's JSON mapping. A span the decoder
accepted but protobuf's JSON mapping cannot take (a malformed value the
decoder never reads) is not forwarded and is reported as ``unconvertible``.

Pure functions over bytes: the forwarder runs them in a worker thread.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from agentprom.model import span_rejection

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})
_PARSE_ERRORS = (ValueError, TypeError, json_format.ParseError, DecodeError, RecursionError)


@dataclass(frozen=True, slots=True)
class Piece:
    """One accepted request waiting to be forwarded."""

    body: bytes
    encoding: str  # "protobuf" or "json"
    #: spans the receiver accepted from it
    accepted: int
    #: every span in the body was accepted (a protobuf body is then forwarded unchanged)
    whole: bool


def _ids_to_base64(node: Any) -> None:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64. Malformed hex
    becomes an empty id, as in the decoder (for trace/span ids that makes the span invalid)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    node[key] = ""
            else:
                _ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_base64(item)


def _valid(span: Span) -> bool:
    return span_rejection(span.trace_id, span.span_id, span.start_time_unix_nano, span.end_time_unix_nano) is None


def _without_rejected(body: bytes) -> tuple[bytes, int]:
    request = ExportTraceServiceRequest.FromString(body)
    kept = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            keep = [span for span in scope_spans.spans if _valid(span)]
            if len(keep) != len(scope_spans.spans):
                del scope_spans.spans[:]
                scope_spans.spans.extend(keep)
            kept += len(keep)
    return request.SerializeToString(), kept


def _parse(document: Any, message: Any) -> Any:
    if not isinstance(document, dict):
        raise ValueError("not an object")
    return json_format.ParseDict(document, message, ignore_unknown_fields=True)


def _from_json(body: bytes) -> tuple[bytes, int]:
    """Span by span, so one span protobuf's JSON mapping refuses costs only itself."""
    document = json.loads(body)
    _ids_to_base64(document)
    request = ExportTraceServiceRequest()
    kept = 0
    for rs_doc in document.get("resourceSpans") or ():
        try:
            resource_spans = _parse({k: v for k, v in rs_doc.items() if k != "scopeSpans"}, ResourceSpans())
            scope_docs = rs_doc.get("scopeSpans") or ()
        except _PARSE_ERRORS:
            continue
        for ss_doc in scope_docs:
            try:
                scope_spans = _parse({k: v for k, v in ss_doc.items() if k != "spans"}, ScopeSpans())
                span_docs = ss_doc.get("spans") or ()
            except _PARSE_ERRORS:
                continue
            for span_doc in span_docs:
                try:
                    span = _parse(span_doc, Span())
                except _PARSE_ERRORS:
                    continue
                if _valid(span):
                    scope_spans.spans.append(span)
            if scope_spans.spans:
                resource_spans.scope_spans.append(scope_spans)
                kept += len(scope_spans.spans)
        if resource_spans.scope_spans:
            request.resource_spans.append(resource_spans)
    return request.SerializeToString(), kept


def accepted_payload(pieces: list[Piece]) -> tuple[bytes, int, int]:
    """(one protobuf request of the accepted spans, spans in it, accepted spans that could not be
    converted). Never raises on content: what cannot be converted is only counted."""
    parts = []
    kept = unconvertible = 0
    for piece in pieces:
        if piece.encoding != "json" and piece.whole:
            parts.append(piece.body)
            kept += piece.accepted
            continue
        try:
            body, n = _from_json(piece.body) if piece.encoding == "json" else _without_rejected(piece.body)
        except (*_PARSE_ERRORS, AttributeError):
            body, n = b"", 0
        # never count more than the receiver accepted (its rule is the one the client was told)
        n = min(n, piece.accepted)
        parts.append(body)
        kept += n
        unconvertible += piece.accepted - n
    return b"".join(parts), kept, unconvertible
