"""A wire-compatible view of the OTLP trace request in which span attributes decode as a map.

OTLP's ``repeated KeyValue attributes`` (opentelemetry/proto/trace/v1/trace.proto)
has exactly the wire form of a protobuf ``map<string, AnyValue>``: a map entry is
a message with the key in field 1 and the value in field 2, which is what a
``KeyValue`` is. Parsed as a map, upb hands Python the attribute keys without
building a ``KeyValue`` wrapper per attribute, and set operations over the map
run in C, so the decoder touches only the attributes it keeps (the attribute walk is
the ingest hot path; bench/decode.py measures it).

The view is the published ``trace.proto`` descriptor copied into the package
``agentprom.otlp_view`` with that one field changed; every other field, type and
nested message (AnyValue, Resource, InstrumentationScope, events, links) is the
published one, so a body parses (or fails to parse, e.g. on invalid UTF-8) exactly
as ``ExportTraceServiceRequest`` does. Repeated keys keep the last value, as the
decoder always did.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from agentprom.receiver import proto_view

PACKAGE = "agentprom.otlp_view"
_REQUEST = "ExportTraceServiceRequest"


def _view_files() -> tuple[proto_view.FileProto, proto_view.FileProto]:
    trace = proto_view.copy_file(trace_pb2.DESCRIPTOR, "agentprom/otlp_view/trace.proto", PACKAGE)
    proto_view.attributes_as_map(trace, "Span")
    service = proto_view.request_file(trace_service_pb2.DESCRIPTOR, "agentprom/otlp_view/trace_service.proto",
                                      trace, _REQUEST)
    return trace, service


#: ``ExportTraceServiceRequest`` with ``Span.attributes`` as ``map<string, AnyValue>``
ExportTraceServiceRequestView = proto_view.request_class(PACKAGE, _REQUEST, _view_files)
