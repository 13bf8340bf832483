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

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

PACKAGE = "agentprom.otlp_view"
_TRACE = "." + trace_pb2.DESCRIPTOR.package + "."
_VIEW = "." + PACKAGE + "."
_ANY_VALUE = ".opentelemetry.proto.common.v1.AnyValue"
_Field = descriptor_pb2.FieldDescriptorProto


def _view_files() -> tuple[descriptor_pb2.FileDescriptorProto, descriptor_pb2.FileDescriptorProto]:
    trace = descriptor_pb2.FileDescriptorProto()
    trace_pb2.DESCRIPTOR.CopyToProto(trace)
    trace.name = "agentprom/otlp_view/trace.proto"
    trace.package = PACKAGE
    trace.ClearField("options")
    for message in trace.message_type:
        for field in [*message.field, *(f for nested in message.nested_type for f in nested.field)]:
            if field.type_name.startswith(_TRACE):
                field.type_name = _VIEW + field.type_name[len(_TRACE):]
    span = next(m for m in trace.message_type if m.name == "Span")
    entry = span.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL, json_name="key")
    entry.field.add(name="value", number=2, type=_Field.TYPE_MESSAGE, label=_Field.LABEL_OPTIONAL,
                    type_name=_ANY_VALUE, json_name="value")
    attributes = next(f for f in span.field if f.name == "attributes")
    attributes.type_name = _VIEW + "Span.AttributesEntry"

    service = descriptor_pb2.FileDescriptorProto()
    trace_service_pb2.DESCRIPTOR.CopyToProto(service)
    service.name = "agentprom/otlp_view/trace_service.proto"
    service.package = PACKAGE
    service.ClearField("options")
    service.ClearField("service")
    service.dependency[:] = [trace.name]
    request = next(m for m in service.message_type if m.name == "ExportTraceServiceRequest")
    del service.message_type[:]
    service.message_type.add().CopyFrom(request)
    for field in service.message_type[0].field:
        field.type_name = _VIEW + field.type_name.rsplit(".", 1)[1]
    return trace, service


def _request_class() -> type:
    pool = descriptor_pool.Default()
    try:
        found = pool.FindMessageTypeByName(PACKAGE + ".ExportTraceServiceRequest")
    except KeyError:
        for file in _view_files():
            pool.Add(file)
        found = pool.FindMessageTypeByName(PACKAGE + ".ExportTraceServiceRequest")
    return message_factory.GetMessageClass(found)


#: ``ExportTraceServiceRequest`` with ``Span.attributes`` as ``map<string, AnyValue>``
ExportTraceServiceRequestView = _request_class()
