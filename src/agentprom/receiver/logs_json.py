"""Decode OTLP/JSON logs requests: keep the evaluation results, count the rest out.

The rules of ``logs_decode.py`` over the OTLP JSON encoding (``otlp_json.py``:
hex ids, lowerCamelCase keys, 64-bit integers as strings, unknown fields
ignored). A record is an evaluation result by its ``eventName``, else by its
``event.name`` attribute. Of every record only ``eventName`` and, when that is
empty, the attributes' keys (and the value of ``event.name``) are read; bodies
are never walked. Structural errors on the path read (a record that is not an
object, an attribute without a string key) refuse the whole request with a
message naming the JSON path; ``logRecords`` arrays together hold at most
``server.max_spans_per_request`` records, every other array at most
``server.max_items_per_array`` items.
"""

from __future__ import annotations

from typing import Any

from agentprom.conventions.profile import EVALUATION_EVENT, EVALUATION_KEYS, EVENT_NAME_ATTRIBUTE, SERVICE_NAME
from agentprom.evaluations.model import NOT_AN_EVALUATION, EvaluationRecord, LogBatch
from agentprom.receiver.decode import NO_LIMITS, DecodeLimits
from agentprom.receiver.logs_decode import too_many_log_records, trace_context
from agentprom.receiver.otlp_json import _attributes, _hex_id, _list, _obj, _str, load_document, with_limits

_READ = EVALUATION_KEYS | {EVENT_NAME_ATTRIBUTE}


def decode_logs_json(data: bytes, limits: DecodeLimits = NO_LIMITS) -> LogBatch:
    """Parse an OTLP/JSON ``ExportLogsServiceRequest``; raise ``DecodeError`` if malformed."""
    return with_limits(limits, _decode_logs, load_document(data), limits.max_spans, limits.max_string_bytes)


def _decode_logs(root: dict[str, Any], max_records: int, limit: int) -> LogBatch:
    batch = LogBatch()
    records = batch.records
    others = 0
    for r, resource_logs in enumerate(_list(root.get("resourceLogs"), "resourceLogs")):
        rpath = f"resourceLogs[{r}]"
        resource_logs = _obj(resource_logs, rpath)
        service = None
        for s_i, scope_logs in enumerate(_list(resource_logs.get("scopeLogs"), rpath + ".scopeLogs")):
            spath = f"{rpath}.scopeLogs[{s_i}]"
            scope_logs = _obj(scope_logs, spath)
            log_records = scope_logs.get("logRecords")
            if isinstance(log_records, list):  # the request's record count is bounded, not each array's
                batch.received += len(log_records)
                if batch.received > max_records:
                    raise too_many_log_records(max_records)
            else:
                log_records = _list(log_records, spath + ".logRecords")  # null, or a DecodeError
            for i, record in enumerate(log_records):
                lpath = f"{spath}.logRecords[{i}]"
                record = _obj(record, lpath)
                event = _str(record.get("eventName"), lpath + ".eventName")
                if event and event != EVALUATION_EVENT:
                    others += 1
                    continue
                attrs = _attributes(record.get("attributes"), lpath + ".attributes", _READ.__contains__, limit)
                if not event and attrs.pop(EVENT_NAME_ATTRIBUTE, None) != EVALUATION_EVENT:
                    others += 1
                    continue
                attrs.pop(EVENT_NAME_ATTRIBUTE, None)
                if service is None:
                    service = _service(resource_logs, rpath, limit)
                ids = trace_context(_hex_id(record.get("traceId"), lpath + ".traceId"),
                                    _hex_id(record.get("spanId"), lpath + ".spanId"))
                records.append(EvaluationRecord(attrs, *ids, service))
    if others:
        batch.drop(NOT_AN_EVALUATION, others)
    return batch


def _service(resource_logs: dict[str, Any], rpath: str, limit: int) -> str:
    resource = _obj(resource_logs.get("resource"), rpath + ".resource")
    attrs = _attributes(resource.get("attributes"), rpath + ".resource.attributes", SERVICE_NAME.__eq__, limit)
    value = attrs.get(SERVICE_NAME)  # cut to ``limit`` already
    return value if value.__class__ is str else ""
