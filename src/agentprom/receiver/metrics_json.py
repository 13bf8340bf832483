"""Decode OTLP/JSON metrics requests into our own metric records.

The OTLP JSON rules of ``otlp_json`` apply (lowerCamelCase keys, 64-bit
integers as decimal strings, hex ids, integer enums, unknown fields ignored),
and so does its error style: a structural error refuses the whole request with
a message naming the JSON path. Invalid points are rejected one by one by
``model.validate_point``, exactly as in the protobuf decoder.
"""

from __future__ import annotations

from typing import Any

from agentprom.metrics_in.model import (
    EXPONENTIAL_HISTOGRAM,
    FLAG_NO_RECORDED_VALUE,
    GAUGE,
    HISTOGRAM,
    SUM,
    SUMMARY,
    Exemplar,
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    NumberPoint,
    Point,
    Scope,
    SummaryPoint,
)
from agentprom.receiver.decode import NO_LIMITS, DecodeError, DecodeLimits
from agentprom.receiver.otlp_json import (
    _MAX_I64,
    _MIN_I64,
    _double,
    _hex_id,
    _int,
    _list,
    _obj,
    _str,
    any_value,
    load_document,
    with_limits,
)

#: JSON key of each data kind -> our kind
_KINDS = {
    "gauge": GAUGE,
    "sum": SUM,
    "histogram": HISTOGRAM,
    "exponentialHistogram": EXPONENTIAL_HISTOGRAM,
    "summary": SUMMARY,
}
_I32 = (-(2**31), 2**31 - 1)


def _value(value: Any, path: str) -> Any:
    """A scalar AnyValue, or a list of scalars for ``arrayValue``."""
    if isinstance(value, dict) and "arrayValue" in value:
        array = _obj(value["arrayValue"], path + ".arrayValue")
        items = _list(array.get("values"), path + ".arrayValue.values")
        return [any_value(item, f"{path}.arrayValue.values[{i}]") for i, item in enumerate(items)]
    return any_value(value, path)


def _attributes(items: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(items, path)):
        kv_path = f"{path}[{i}]"
        kv = _obj(kv, kv_path)
        value = _value(kv.get("value"), kv_path + ".value")
        if value is not None:
            out[_str(kv.get("key"), kv_path + ".key")] = value
    return out


def _number(p: dict[str, Any], path: str) -> float | int | None:
    if "asDouble" in p:
        return _double(p["asDouble"], path + ".asDouble")
    if "asInt" in p:
        return _int(p["asInt"], path + ".asInt", _MIN_I64, _MAX_I64)
    return None


def _optional_double(p: dict[str, Any], key: str, path: str) -> float | None:
    return _double(p[key], f"{path}.{key}") if p.get(key) is not None else None


def _exemplars(items: Any, path: str) -> list[Exemplar]:
    out = []
    for i, e in enumerate(_list(items, path)):
        epath = f"{path}[{i}]"
        e = _obj(e, epath)
        out.append(Exemplar(
            _number(e, epath) or 0,
            _int(e.get("timeUnixNano"), epath + ".timeUnixNano"),
            _hex_id(e.get("traceId"), epath + ".traceId").hex(),
            _hex_id(e.get("spanId"), epath + ".spanId").hex(),
        ))
    return out


def _counts(items: Any, path: str) -> tuple[int, ...]:
    return tuple(_int(c, f"{path}[{i}]") for i, c in enumerate(_list(items, path)))


def _point(kind: str, p: dict[str, Any], path: str) -> Point | None:
    if _int(p.get("flags"), path + ".flags", 0, 2**32 - 1) & FLAG_NO_RECORDED_VALUE:
        return None
    attrs = _attributes(p.get("attributes"), path + ".attributes")
    start = _int(p.get("startTimeUnixNano"), path + ".startTimeUnixNano")
    time = _int(p.get("timeUnixNano"), path + ".timeUnixNano")
    if kind in (GAUGE, SUM):
        return NumberPoint(attrs, start, time, _number(p, path), _exemplars(p.get("exemplars"), path + ".exemplars"))
    count = _int(p.get("count"), path + ".count")
    if kind == HISTOGRAM:
        bounds = _list(p.get("explicitBounds"), path + ".explicitBounds")
        return HistogramPoint(
            attrs, start, time, count, _optional_double(p, "sum", path),
            tuple(_double(b, f"{path}.explicitBounds[{i}]") for i, b in enumerate(bounds)),
            _counts(p.get("bucketCounts"), path + ".bucketCounts"),
            _exemplars(p.get("exemplars"), path + ".exemplars"),
        )
    if kind == EXPONENTIAL_HISTOGRAM:
        positive = _obj(p.get("positive"), path + ".positive")
        negative = _obj(p.get("negative"), path + ".negative")
        return ExponentialHistogramPoint(
            attrs, start, time, count, _optional_double(p, "sum", path),
            _int(p.get("scale"), path + ".scale", *_I32),
            _int(p.get("zeroCount"), path + ".zeroCount"),
            _optional_double(p, "zeroThreshold", path) or 0.0,
            _int(positive.get("offset"), path + ".positive.offset", *_I32),
            _counts(positive.get("bucketCounts"), path + ".positive.bucketCounts"),
            _int(negative.get("offset"), path + ".negative.offset", *_I32),
            _counts(negative.get("bucketCounts"), path + ".negative.bucketCounts"),
            _exemplars(p.get("exemplars"), path + ".exemplars"),
        )
    quantiles = []
    for i, q in enumerate(_list(p.get("quantileValues"), path + ".quantileValues")):
        qpath = f"{path}.quantileValues[{i}]"
        q = _obj(q, qpath)
        quantiles.append((_optional_double(q, "quantile", qpath) or 0.0, _optional_double(q, "value", qpath) or 0.0))
    return SummaryPoint(attrs, start, time, count, _optional_double(p, "sum", path) or 0.0, tuple(quantiles))


def _metric(m: dict[str, Any], path: str, scope: Scope, resource: dict[str, Any], batch: MetricBatch) -> None:
    for key, kind in _KINDS.items():
        if key in m:
            break
    else:
        return  # no data (or a kind this version does not know): nothing to count
    data = _obj(m[key], f"{path}.{key}")
    temporality = _int(data.get("aggregationTemporality"), f"{path}.{key}.aggregationTemporality", *_I32)
    monotonic = data.get("isMonotonic", False)
    if not isinstance(monotonic, bool):
        raise DecodeError(f"{path}.{key}.isMonotonic: expected a boolean")
    points = []
    for i, p in enumerate(_list(data.get("dataPoints"), f"{path}.{key}.dataPoints")):
        ppath = f"{path}.{key}.dataPoints[{i}]"
        point = _point(kind, _obj(p, ppath), ppath)
        if point is not None:
            points.append(point)
    metric = Metric(
        _str(m.get("name"), path + ".name"), _str(m.get("description"), path + ".description"),
        _str(m.get("unit"), path + ".unit"), kind, temporality if kind != GAUGE and kind != SUMMARY else 0,
        monotonic and kind == SUM, [], scope, resource,
    )
    batch.add(metric, points)


def decode_metrics_json(data: bytes, limits: DecodeLimits = NO_LIMITS) -> MetricBatch:
    """Parse an OTLP/JSON ``ExportMetricsServiceRequest``; raise ``DecodeError`` if malformed.
    ``limits.max_items`` bounds every array."""
    return with_limits(limits, _decode_metrics, load_document(data))


def _decode_metrics(root: dict[str, Any]) -> MetricBatch:
    batch = MetricBatch()
    for r, resource_metrics in enumerate(_list(root.get("resourceMetrics"), "resourceMetrics")):
        rpath = f"resourceMetrics[{r}]"
        resource_metrics = _obj(resource_metrics, rpath)
        resource_obj = _obj(resource_metrics.get("resource"), rpath + ".resource")
        resource = _attributes(resource_obj.get("attributes"), rpath + ".resource.attributes")
        for s_i, scope_metrics in enumerate(_list(resource_metrics.get("scopeMetrics"), rpath + ".scopeMetrics")):
            spath = f"{rpath}.scopeMetrics[{s_i}]"
            scope_metrics = _obj(scope_metrics, spath)
            s = _obj(scope_metrics.get("scope"), spath + ".scope")
            scope = Scope(
                _str(s.get("name"), spath + ".scope.name"), _str(s.get("version"), spath + ".scope.version"),
                _str(scope_metrics.get("schemaUrl"), spath + ".schemaUrl"),
                _attributes(s.get("attributes"), spath + ".scope.attributes"),
            )
            for i, m in enumerate(_list(scope_metrics.get("metrics"), spath + ".metrics")):
                _metric(_obj(m, f"{spath}.metrics[{i}]"), f"{spath}.metrics[{i}]", scope, resource, batch)
    return batch
