"""A wire-compatible view of the OTLP logs request: record attributes as a map, bodies left unparsed.

The technique of ``trace_view.py`` applied to ``logs.proto``: a record's
``repeated KeyValue attributes`` has the wire form of a ``map<string, AnyValue>``,
so upb hands Python the keys and ``"event.name" in record.attributes`` runs in C;
most records of a logs export are not evaluation results, and are dropped after
that look. The one other change: ``LogRecord.body`` (an ``AnyValue``) is declared
``bytes``, which has the same wire form (length-delimited), so a body is kept as
the bytes it arrived as and never parsed: the agent's log bodies (prompts,
completions, stack traces, nested kvlists) cost no objects and no recursion.
Every other field, type and nested message is the published one, so a request
parses (or fails to) as ``ExportLogsServiceRequest`` does, bodies aside.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

PACKAGE = "agentprom.otlp_logs_view"
_LOGS = "." + logs_pb2.DESCRIPTOR.package + "."
_VIEW = "." + PACKAGE + "."
_ANY_VALUE = ".opentelemetry.proto.common.v1.AnyValue"
_Field = descriptor_pb2.FieldDescriptorProto


def _view_files() -> tuple[descriptor_pb2.FileDescriptorProto, descriptor_pb2.FileDescriptorProto]:
    logs = descriptor_pb2.FileDescriptorProto()
    logs_pb2.DESCRIPTOR.CopyToProto(logs)
    logs.name = "agentprom/otlp_logs_view/logs.proto"
    logs.package = PACKAGE
    logs.ClearField("options")
    for message in logs.message_type:
        for field in message.field:
            if field.type_name.startswith(_LOGS):
                field.type_name = _VIEW + field.type_name[len(_LOGS):]
    record = next(m for m in logs.message_type if m.name == "LogRecord")
    entry = record.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL, json_name="key")
    entry.field.add(name="value", number=2, type=_Field.TYPE_MESSAGE, label=_Field.LABEL_OPTIONAL,
                    type_name=_ANY_VALUE, json_name="value")
    attributes = next(f for f in record.field if f.name == "attributes")
    attributes.type_name = _VIEW + "LogRecord.AttributesEntry"
    body = next(f for f in record.field if f.name == "body")
    body.type = _Field.TYPE_BYTES
    body.ClearField("type_name")

    service = descriptor_pb2.FileDescriptorProto()
    logs_service_pb2.DESCRIPTOR.CopyToProto(service)
    service.name = "agentprom/otlp_logs_view/logs_service.proto"
    service.package = PACKAGE
    service.ClearField("options")
    service.ClearField("service")
    service.dependency[:] = [logs.name]
    request = next(m for m in service.message_type if m.name == "ExportLogsServiceRequest")
    del service.message_type[:]
    service.message_type.add().CopyFrom(request)
    for field in service.message_type[0].field:
        field.type_name = _VIEW + field.type_name.rsplit(".", 1)[1]
    return logs, service


def _request_class() -> type:
    pool = descriptor_pool.Default()
    try:
        found = pool.FindMessageTypeByName(PACKAGE + ".ExportLogsServiceRequest")
    except KeyError:
        for file in _view_files():
            pool.Add(file)
        found = pool.FindMessageTypeByName(PACKAGE + ".ExportLogsServiceRequest")
    return message_factory.GetMessageClass(found)


#: ``ExportLogsServiceRequest`` with ``LogRecord.attributes`` as ``map<string, AnyValue>`` and ``body`` as bytes
ExportLogsServiceRequestView = _request_class()
