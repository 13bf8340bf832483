"""Decode OTLP/protobuf logs requests: keep the evaluation results, count the rest out.

The last place protobuf log types are seen (opentelemetry/proto/logs/v1). A log
record is an evaluation result when its ``event_name`` (OTLP field 12) is
``gen_ai.evaluation.result``, or, for SDKs older than that field, when it has no
event name and its attribute ``event.name`` says so. Of such a record only the
``profile.EVALUATION_KEYS`` attributes, its trace and span id and its resource's
``service.name`` are kept (strings cut to ``server.max_string_bytes``); every
other record is counted as ``not_an_evaluation`` and dropped without its
attributes or body being decoded (``logs_view.py``).

Records are counted on the wire before parsing, against
``server.max_spans_per_request`` (``ExportLogsServiceRequest`` nests its records
at the same field numbers as spans: ``span_count.py``); a request with more is
refused whole (``too_many_log_records``). Ids of the wrong length are not an
error: the record is counted for its ``service.name``, as one without ids.
"""

from __future__ import annotations

from typing import Any

from agentprom.conventions.profile import EVALUATION_EVENT, EVALUATION_KEYS, EVENT_NAME_ATTRIBUTE, SERVICE_NAME
from agentprom.evaluations.model import NOT_AN_EVALUATION, EvaluationRecord, LogBatch
from agentprom.receiver.decode import NO_LIMITS, DecodeLimits, LimitExceeded, any_value, parse_counted
from agentprom.receiver.logs_view import ExportLogsServiceRequestView
from agentprom.text import bounded_text


def too_many_log_records(limit: int) -> LimitExceeded:
    return LimitExceeded("too_many_log_records",
                         f"request has more than {limit} log records (server.max_spans_per_request)")


def trace_context(trace_id: bytes, span_id: bytes) -> tuple[bytes, bytes]:
    """The record's ids when both are well formed (16 and 8 bytes, not all zero), else ``(b"", b"")``."""
    if len(trace_id) == 16 and len(span_id) == 8 and any(trace_id) and any(span_id):
        return trace_id, span_id
    return b"", b""


def service_of(resource_attributes: Any, limit: int) -> str:
    """A resource's ``service.name`` from its KeyValues ("" when absent or not a string)."""
    for kv in resource_attributes:
        if kv.key == SERVICE_NAME:
            value = any_value(kv.value)
            return bounded_text(value, limit) if value.__class__ is str else ""
    return ""


def decode_logs(data: bytes, limits: DecodeLimits = NO_LIMITS) -> LogBatch:
    """Parse an ``ExportLogsServiceRequest`` body; raise ``DecodeError`` if it is not one."""
    request = parse_counted(data, limits, ExportLogsServiceRequestView, too_many_log_records)
    return logs_from_request(request, limits.max_string_bytes)


def logs_from_request(request: Any, max_string_bytes: int) -> LogBatch:
    """The evaluation results of a parsed ``ExportLogsServiceRequestView``."""
    batch = LogBatch()
    records = batch.records
    limit = max_string_bytes or 2**62
    received = others = 0
    for resource_logs in request.resource_logs:
        service = None  # read once per resource, when it has an evaluation result
        for scope_logs in resource_logs.scope_logs:
            log_records = scope_logs.log_records
            received += len(log_records)
            for record in log_records:
                event = record.event_name
                attributes = record.attributes
                if event != EVALUATION_EVENT:
                    if event or EVENT_NAME_ATTRIBUTE not in attributes \
                            or any_value(attributes[EVENT_NAME_ATTRIBUTE]) != EVALUATION_EVENT:
                        others += 1
                        continue
                kept = {}
                for key in EVALUATION_KEYS.intersection(attributes):
                    value = any_value(attributes[key])
                    kept[key] = bounded_text(value, limit) if value.__class__ is str else value
                if service is None:
                    service = service_of(resource_logs.resource.attributes, limit)
                records.append(EvaluationRecord(kept, *trace_context(record.trace_id, record.span_id), service))
    batch.received = received
    if others:
        batch.drop(NOT_AN_EVALUATION, others)
    return batch
