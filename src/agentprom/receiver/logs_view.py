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

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from agentprom.receiver import proto_view

PACKAGE = "agentprom.otlp_logs_view"
_REQUEST = "ExportLogsServiceRequest"


def _view_files() -> tuple[proto_view.FileProto, proto_view.FileProto]:
    logs = proto_view.copy_file(logs_pb2.DESCRIPTOR, "agentprom/otlp_logs_view/logs.proto", PACKAGE)
    proto_view.attributes_as_map(logs, "LogRecord")
    body = next(f for f in proto_view.message(logs, "LogRecord").field if f.name == "body")
    body.type = proto_view.Field.TYPE_BYTES  # the same wire form as the AnyValue message: never parsed
    body.ClearField("type_name")
    service = proto_view.request_file(logs_service_pb2.DESCRIPTOR, "agentprom/otlp_logs_view/logs_service.proto",
                                      logs, _REQUEST)
    return logs, service


#: ``ExportLogsServiceRequest`` with ``LogRecord.attributes`` as ``map<string, AnyValue>`` and ``body`` as bytes
ExportLogsServiceRequestView = proto_view.request_class(PACKAGE, _REQUEST, _view_files)
