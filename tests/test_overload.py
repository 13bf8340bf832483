"""Overload: the bounded queue and the memory ceiling refuse with retry hints, the real SDK
retries, and nothing accepted is lost (spans sent = spans counted; refusals are retried)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentprom.receiver.ingest import Refusal
from agentprom.receiver.pipeline import resident_bytes
from tests.otel import tracer
from tests.test_receiver_errors import PROTOBUF, _grpc_export, good_protobuf, llm_calls

#: the receivers' contract holds with decode workers as in one process (receiver/decode_workers.py)
pytestmark = pytest.mark.parametrize("workers", [1, 2], indirect=True)

MIB = 1024 * 1024


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll a real server's state until ``predicate`` holds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_full_queue_refuses_retryably_and_drains_everything_accepted(make_sidecar):
    sidecar = make_sidecar({"queue": {"max_spans": 3, "retry_after_seconds": 2, "transport_share": 1}})
    body = good_protobuf()  # one span each

    def burst():  # runs on the loop in one go, so the consumer cannot drain in between
        outcomes = []
        for _ in range(5):
            try:
                sidecar.app.ingest.export(body, "protobuf", "http")
                outcomes.append("accepted")
            except Refusal as refusal:
                outcomes.append((refusal.reason, refusal.retry_after, refusal.mapping.http_status))
        return outcomes, sidecar.app.store.value("agentprom_queue_spans", ())

    outcomes, depth = sidecar.call(burst)
    assert outcomes == ["accepted"] * 3 + [("overloaded", 2, 503)] * 2
    assert depth == 3
    assert llm_calls(sidecar) == 3  # value() waits for the queue to drain
    assert sidecar.value("agentprom_queue_spans") == 0
    assert sidecar.value("agentprom_queue_limit_spans") == 3
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="overloaded") == 2
    assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200


def export_all(sidecar, body: bytes, transports) -> list:
    """Export ``body`` once per transport in one go on the loop, so the consumer cannot drain in
    between; each outcome is "accepted" or the ``Refusal``."""
    def burst():
        outcomes = []
        for transport in transports:
            try:
                sidecar.app.ingest.export(body, "protobuf", transport)
                outcomes.append("accepted")
            except Refusal as refusal:
                outcomes.append(refusal)
        return outcomes

    return sidecar.call(burst)


def test_a_transport_alone_has_the_whole_queue(make_sidecar):
    """The fair share applies only while another transport is active."""
    sidecar = make_sidecar({"queue": {"max_spans": 4, "transport_share": 0.5}})
    outcomes = export_all(sidecar, good_protobuf(), ["http"] * 5)
    assert [o if o == "accepted" else o.reason for o in outcomes] == ["accepted"] * 4 + ["overloaded"]
    assert llm_calls(sidecar) == 4


def test_a_request_larger_than_the_queue_is_accepted_when_the_queue_is_empty(make_sidecar):
    sidecar = make_sidecar({"queue": {"max_spans": 1}})
    request = ExportTraceServiceRequest.FromString(good_protobuf())
    spans = request.resource_spans[0].scope_spans[0].spans
    for _ in range(4):
        spans.add().CopyFrom(spans[0])
    assert sidecar.post("/v1/traces", request.SerializeToString(), PROTOBUF)[0] == 200
    assert llm_calls(sidecar) == 5


def test_stop_translates_everything_queued(make_sidecar):
    sidecar = make_sidecar()
    body = good_protobuf()

    async def burst_then_stop():
        for _ in range(200):
            sidecar.app.ingest.export(body, "protobuf", "grpc")
        queued = sidecar.app.pipeline.queued_spans
        await sidecar.app.stop()
        return queued

    assert sidecar.call(burst_then_stop()) == 200  # all still queued when stop began
    assert sidecar.app.store.value("agentprom_spans_received_total", ("grpc",)) == 200
    assert sidecar.app.store.value("agentprom_queue_spans", ()) == 0


class Ballast:
    """Real resident memory in this (the sidecar's) process, to cross the ceiling and back."""

    def __init__(self) -> None:
        self.blocks: list[bytearray] = []

    def grow(self, mib: int) -> None:
        self.blocks.append(bytearray(b"x") * (mib * MIB))  # written, so resident

    def release(self) -> None:
        self.blocks.clear()


@pytest.fixture
def ballast():
    held = Ballast()
    yield held
    held.release()


def ceiling_sidecar(make_sidecar):
    limit_mib = resident_bytes() // MIB + 200
    return make_sidecar({"queue": {"memory_limit_mib": limit_mib, "retry_after_seconds": 1}})


def test_memory_ceiling_refuses_over_both_transports_with_retry_hints(make_sidecar, ballast):
    sidecar = ceiling_sidecar(make_sidecar)
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    ballast.grow(400)

    status, headers, payload = sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)
    assert status == 503 and headers["Retry-After"] == "1"
    body = Status.FromString(payload)
    assert body.code == grpc.StatusCode.UNAVAILABLE.value[0] and "memory" in body.message
    info = RetryInfo()
    assert body.details[0].Unpack(info) and info.retry_delay.seconds == 1

    with pytest.raises(grpc.RpcError) as refused:
        _grpc_export(sidecar, good_protobuf())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(refused.value.trailing_metadata())
    details = Status.FromString(trailers["grpc-status-details-bin"])
    assert details.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert details.details[0].Unpack(info) and info.retry_delay.seconds == 1
    assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 1
    for transport in ("http", "grpc"):
        assert sidecar.value("agentprom_requests_refused_total", transport=transport, reason="memory_limit") == 1

    ballast.release()
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    assert llm_calls(sidecar) == 2  # refused requests were not counted


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_real_sdk_retries_refused_exports_until_counted(make_sidecar, ballast, protocol):
    sidecar = ceiling_sidecar(make_sidecar)
    ballast.grow(400)

    def release_after_first_refusal():
        wait_for(lambda: sidecar.value("agentprom_requests_refused_total", transport=protocol,
                                       reason="memory_limit") >= 1, what="a refusal")
        ballast.release()

    releaser = threading.Thread(target=release_after_first_refusal)
    releaser.start()
    endpoint = sidecar.grpc_address if protocol == "grpc" else sidecar.http_url
    sent = 30
    with tracer(endpoint, protocol) as t:
        for i in range(sent):
            with t.start_as_current_span(f"span {i}"):
                pass
    releaser.join(30)
    refused = sidecar.value("agentprom_requests_refused_total", transport=protocol, reason="memory_limit")
    assert refused >= 1
    assert sidecar.value("agentprom_spans_received_total", transport=protocol) == sent


def test_concurrent_sdk_exporters_against_a_tiny_queue_lose_nothing(make_sidecar):
    sidecar = make_sidecar({"queue": {"max_spans": 100, "retry_after_seconds": 1}})
    senders, per_sender = 8, 1000
    ready = threading.Barrier(senders + 1)

    def send(n: int) -> None:
        with tracer(sidecar.grpc_address, "grpc", service=f"agent-{n}") as t:
            ready.wait()
            for i in range(per_sender):
                with t.start_as_current_span(f"step {i}", attributes={"gen_ai.operation.name": "invoke_agent"}):
                    pass

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    ready.wait()
    # Stall the loop now and then, as slow scrapes would, so exports pile up and meet a full queue.
    while any(thread.is_alive() for thread in threads):
        done = threading.Event()
        sidecar.loop.call_soon_threadsafe(lambda: (time.sleep(0.05), done.set()))
        done.wait(10)
        time.sleep(0.01)
    for thread in threads:
        thread.join(60)
    counted = sidecar.value("agentprom_spans_received_total", transport="grpc")
    refused = sidecar.value("agentprom_requests_refused_total", transport="grpc", reason="overloaded")
    assert counted == senders * per_sender, f"lost {senders * per_sender - counted} spans ({refused} refusals)"
    for n in range(senders):
        assert sidecar.value("agent_invocations_total", agent=f"agent-{n}", status="ok") == per_sender


def test_one_transport_cannot_take_the_whole_queue(make_sidecar):
    """Fairness: HTTP may hold only its share of the queue, so gRPC exports still find room."""
    sidecar = make_sidecar({"queue": {"max_spans": 4, "transport_share": 0.5, "retry_after_seconds": 2}})
    body = good_protobuf()  # one span each
    assert sidecar.call(lambda: sidecar.app.pipeline.admit("grpc")) is None  # gRPC is active: HTTP has to share
    transports = ("http", "http", "http", "grpc", "grpc", "grpc")
    outcomes = [
        (transport, "accepted") if o == "accepted" else
        (transport, o.reason, o.retry_after, o.mapping.http_status, o.mapping.grpc_code)
        for transport, o in zip(transports, export_all(sidecar, body, transports))
    ]
    refused = ("fair_share", 2, 503, grpc.StatusCode.UNAVAILABLE)
    assert outcomes == [("http", "accepted"), ("http", "accepted"), ("http", *refused),
                        ("grpc", "accepted"), ("grpc", "accepted"),
                        ("grpc", "overloaded", 2, 503, grpc.StatusCode.UNAVAILABLE)]
    assert llm_calls(sidecar) == 4
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="fair_share") == 1
    # once translated, the queue takes HTTP again
    assert sidecar.post("/v1/traces", body, PROTOBUF)[0] == 200
