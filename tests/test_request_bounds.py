"""Work per request is bounded (hardening round two): byte limits per encoding and for the event API,
a span cap checked before spans are built, an item cap per array, decoded size reserved against the
memory budget, large decodes off the event loop, and small error answers."""

from __future__ import annotations

import json
import resource
import threading
import time
import urllib.request

import grpc
import pytest
from google.rpc.status_pb2 import Status

from tests.test_receiver_errors import JSON, PROTOBUF, good_protobuf

#: the receivers' contract holds with decode workers as in one process (receiver/decode_workers.py)
pytestmark = pytest.mark.parametrize("workers", [1, 2], indirect=True)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def json_spans(n: int, attributes: int = 1) -> bytes:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat m",
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}] * attributes}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span] * n}]}]}).encode()


def empty_spans_protobuf(n: int) -> bytes:
    """ResourceSpans{ScopeSpans{n empty spans}} built on the wire."""
    scope = b"\x12\x00" * n
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def refused(sidecar, reason: str, transport: str = "http") -> float:
    return sidecar.value("agentprom_requests_refused_total", transport=transport, reason=reason)


def test_json_bodies_and_the_event_api_have_smaller_byte_limits(make_sidecar):
    sidecar = make_sidecar({"server": {"max_json_request_bytes": 64 * 1024},
                            "sessions": {"max_request_bytes": 4096}})
    big_json = json_spans(1000)
    assert 64 * 1024 < len(big_json) < 1024 * 1024
    status, headers, payload = sidecar.post("/v1/traces", big_json, JSON)
    assert status == 413 and headers["Content-Type"].startswith("application/json")
    assert "server.max_json_request_bytes" in json.loads(payload)["message"]
    assert refused(sidecar, "too_large") == 1
    assert sidecar.post("/v1/traces", json_spans(100), JSON)[0] == 200       # under the JSON limit
    big_pb = good_protobuf() * 500                                           # protobuf keeps the larger limit
    assert len(big_pb) > 64 * 1024 and sidecar.post("/v1/traces", big_pb, PROTOBUF)[0] == 200
    events = [{"event_type": "session_started", "session_id": f"s{i}"} for i in range(200)]
    status, _h, payload = sidecar.post("/runtime/event", json.dumps(events).encode(), JSON)
    assert status == 413 and "sessions.max_request_bytes" in json.loads(payload)["error"]
    assert sidecar.post("/runtime/event", json.dumps(events[:5]).encode(), JSON)[0] == 200


def test_span_cap_refuses_before_any_span_is_built(make_sidecar):
    sidecar = make_sidecar({"server": {"max_spans_per_request": 1000}})
    assert sidecar.post("/v1/traces", json_spans(1000), JSON)[0] == 200
    status, _h, payload = sidecar.post("/v1/traces", json_spans(1001), JSON)
    assert status == 413 and "server.max_spans_per_request" in json.loads(payload)["message"]
    # 2 M empty spans in 4 MB: parsing them would take about 350 MB and seconds; counted on the wire instead
    body = empty_spans_protobuf(2_000_000)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    status, _h, payload = sidecar.post("/v1/traces", body, PROTOBUF)
    assert status == 413 and Status.FromString(payload).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(EXPORT)(body, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - started < 15  # a bound against parsing the spans (seconds), not a speed test
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100 * 1024  # KiB: under 100 MB
    assert refused(sidecar, "too_many_spans") == 2 and refused(sidecar, "too_many_spans", "grpc") == 1
    assert sidecar.post("/v1/traces", empty_spans_protobuf(1000), PROTOBUF)[0] == 200


def test_item_cap_per_array_names_the_path(make_sidecar):
    sidecar = make_sidecar({"server": {"max_items_per_array": 10}})
    assert sidecar.post("/v1/traces", json_spans(1, attributes=10), JSON)[0] == 200
    status, _h, payload = sidecar.post("/v1/traces", json_spans(1, attributes=11), JSON)
    assert status == 400
    assert json.loads(payload)["message"] == \
        "resourceSpans[0].scopeSpans[0].spans[0].attributes: more than 10 items (server.max_items_per_array)"
    from tests.test_decode import pb_request
    request = pb_request()
    for _ in range(10):
        request.resource_spans[0].scope_spans[0].spans[0].events.add(name="e")
    status, _h, payload = sidecar.post("/v1/traces", request.SerializeToString(), PROTOBUF)
    assert status == 400 and "events" in Status.FromString(payload).message
    metric = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {
        "dataPoints": [{"asInt": "1"}] * 11}}]}]}]}
    status, _h, payload = sidecar.post("/v1/metrics", json.dumps(metric).encode(), JSON)
    assert status == 400 and "dataPoints: more than 10 items" in json.loads(payload)["message"]
    assert refused(sidecar, "too_many_items") == 3


def test_decoded_size_is_reserved_against_the_memory_budget(make_sidecar):
    sidecar = make_sidecar({"queue": {"memory_limit_mib": 300}})
    pipeline = sidecar.app.pipeline
    pipeline._rss = lambda: 100 * 1024 * 1024  # noqa: SLF001 - a steady resident size
    body = good_protobuf() * 5000  # about 1 MB: reserves about 8 MB while it decodes
    assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200
    assert sidecar.call(lambda: pipeline.reserved_bytes) == 0  # released after counting
    # another large request is decoding: its reservation leaves no room for this one
    assert sidecar.call(lambda: pipeline.admit("http", 195 * 1024 * 1024)) is None
    status, headers, _p = sidecar.post("/v1/traces", body, PROTOBUF)
    assert status == 503 and headers["Retry-After"] == "1"
    assert refused(sidecar, "memory_limit") == 1
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200  # small ones still fit
    sidecar.call(lambda: pipeline.release(195 * 1024 * 1024))
    assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200


def test_the_loop_stays_responsive_during_a_large_decode(make_sidecar, workers):
    """A large body is decoded on a worker thread (or with decode workers, in a worker process:
    never in this process), and the loop answers health checks meanwhile. (Not a timing
    assertion: where the decode ran, and that the loop answered while it did.)"""
    sidecar = make_sidecar()
    body = json_spans(9_500, attributes=4)  # just under the default JSON limit: about 0.8 s of decoding
    assert len(body) > 3.9 * 1024 * 1024
    ingest = sidecar.app.ingest
    decoded_on: list[str] = []
    decode = ingest.decode

    def watched(data: bytes, encoding: str):
        decoded_on.append(threading.current_thread().name)
        return decode(data, encoding)

    ingest.decode = watched
    answer: list[int] = []
    poster = threading.Thread(target=lambda: answer.append(sidecar.post("/v1/traces", body, JSON)[0]))
    poster.start()
    polls = 0
    while poster.is_alive():
        with urllib.request.urlopen(sidecar.metrics_url + "/-/healthy", timeout=10) as response:
            assert response.status == 200
        polls += 1
    poster.join()
    assert answer == [200]
    if workers > 1:
        assert decoded_on == [] and ingest.workers.pids(), decoded_on
    else:
        assert decoded_on and "sidecar-loop" not in decoded_on, decoded_on
    assert polls >= 2, polls  # decoding on the loop: the first poll waits for the whole decode


def test_event_api_errors_are_capped(sidecar):
    event = {"event_type": "session_started", "session_id": "s", **{f"junk{i}": i for i in range(5000)}}
    status, _h, payload = sidecar.post("/runtime/event", json.dumps(event).encode(), JSON)
    answer = json.loads(payload)
    assert status == 400 and len(answer["errors"]) == 20 and answer["errors_omitted"] == 4980
    assert len(payload) < 4096
