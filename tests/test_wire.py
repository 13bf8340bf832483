"""The compiled trace decoder (receiver/_wire.pyx) answers every body exactly as the Python path does."""

from __future__ import annotations

import base64
import json
import os
import random
import struct
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentprom.conventions.profile import WANTED_KEYS, WANTED_RESOURCE_KEYS
from agentprom.receiver import decode
from agentprom.receiver.decode import NO_LIMITS, DecodeError, DecodeLimits, LimitExceeded
from agentprom.receiver.span_count import Malformed, count_spans
from agentprom.receiver.trace_view import ExportTraceServiceRequestView
from bench.workload import request_bytes
from tests.test_decode import pb_request
from tests.test_decode_workers import with_events_and_rejections
from tests.test_fuzz import export_requests

try:
    from agentprom.receiver import _wire
except ImportError:
    _wire = None

needs_compiled = pytest.mark.skipif(
    not decode.COMPILED, reason="the compiled decoder is not in use: agentprom.receiver._wire is not built "
    "(pip install -e . with a C compiler) or AGENTPROM_PURE_PYTHON=1")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN = Path(__file__).parent / "golden"
LIMITS = [NO_LIMITS, DecodeLimits(), DecodeLimits(3, 2, 7), DecodeLimits(1, 0, 1), DecodeLimits(0, 1, 0),
          DecodeLimits(100, 100, 4), DecodeLimits(2, 5, 300)]


def test_the_compiled_decoder_is_built_when_required():
    """CI sets AGENTPROM_REQUIRE_COMPILED=1 (scripts/test.sh), so losing the extension fails the suite
    instead of silently testing the Python path twice."""
    if os.environ.get("AGENTPROM_REQUIRE_COMPILED") != "1":
        pytest.skip("AGENTPROM_REQUIRE_COMPILED is not set")
    assert _wire is not None, "agentprom.receiver._wire is not built (pip install -e '.[test]' needs a C compiler)"
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") in ("", "0"):
        assert decode.COMPILED and decode.decode_traces is not decode.decode_traces_python


def _dict(d) -> str:
    return repr(list(d.items()))


def _span(span) -> tuple:
    return (span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind, span.start_ns, span.end_ns,
            span.status_code, repr(sorted(span.attributes.items())), _dict(span.resource), span.exception_type,
            span.trace_state, span.scope_name, type(span.events).__name__,
            [(n, t, _dict(a)) for n, t, a in span.events], span.parent_remote, span.first_token_ns,
            type(span.evaluations).__name__, [_dict(e) for e in span.evaluations])


def outcome(fn, body: bytes, limits=NO_LIMITS, wanted=WANTED_KEYS, resource_keys=WANTED_RESOURCE_KEYS):
    """Everything a caller can see of one decode: the spans field by field (NaN-safe), the rejections, or the
    exception's type, reason and message; and which spans share a resource dict."""
    try:
        batch = fn(body, wanted, limits, resource_keys)
    except LimitExceeded as exc:
        return ("limit", exc.reason, str(exc))
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))
    shared = [next(i for i, other in enumerate(batch.spans) if other.resource is span.resource) for span in batch.spans]
    return ("ok", [_span(s) for s in batch.spans], list(batch.rejected.items()), shared)


def assert_same(body: bytes, limits=NO_LIMITS, **keys) -> tuple:
    compiled = outcome(_wire_decode, body, limits, **keys)
    python = outcome(decode.decode_traces_python, body, limits, **keys)
    assert compiled == python, body.hex()
    return compiled


def _wire_decode(body, wanted, limits, resource_keys):
    return _wire.decode_traces(body, wanted, limits, resource_keys)


# -- protobuf writing helpers ---------------------------------------------------------------------

def vi(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return vi(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + vi(len(payload)) + payload


def fixed64(field: int, value: int) -> bytes:
    return tag(field, 1) + struct.pack("<Q", value)


def span_bytes(*fields: bytes, ids: bool = True) -> bytes:
    head = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + fixed64(7, 5) + fixed64(8, 9) if ids else b""
    return head + b"".join(fields)


def request(*spans: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    return ld(1, resource + ld(2, scope + b"".join(ld(2, s) for s in spans)))


def kv(key: bytes, value: bytes) -> bytes:
    return ld(1, key) + ld(2, value)


def attr(key: bytes, value: bytes) -> bytes:
    return ld(9, kv(key, value))


def nested_arrays(n: int, inner: bytes = ld(1, b"x")) -> bytes:
    value = inner
    for _ in range(n):
        value = ld(5, ld(1, value))
    return value


def groups(n: int, number: int = 30) -> bytes:
    return tag(number, 3) * n + tag(number, 4) * n


def edge_cases() -> list[bytes]:
    """Bodies at the edges of upb's rules (the cases the Python path's parser decides)."""
    s = span_bytes
    model = b"gen_ai.request.model"
    reasons = b"gen_ai.response.finish_reasons"
    cases = [
        b"", b"\x00", b"\x0a", b"\x0a\x05", b"\x0a\xff\xff\xff", b"\x08\x01", tag(7, 4), tag(7, 3), groups(1, 7),
        tag(7, 3) + tag(8, 4), tag(7, 6) + b"\x00", tag(7, 7) + b"\x00", tag(0, 0) + b"\x01", tag(0, 2) + b"\x00",
        b"\x88\x80\x80\x80\x80\x00\x01", b"\xf8\xff\xff\xff\x1f\x01", b"\xf8\xff\xff\xff\x0f\x01",
        tag(7, 0) + b"\xff" * 9 + b"\x7f", tag(7, 0) + b"\xff" * 10 + b"\x01", tag(7, 1) + b"\x01\x02",
        tag(7, 5) + b"\x01", tag(7, 2) + vi(2**40), tag(7, 2) + vi(2**31 - 1), tag(7, 2) + b"\x80" * 9 + b"\x01",
        request(s()), request(s(), s(ids=False)), request(s(tag(6, 0) + vi(2**32 + 5))), request(s(tag(6, 0) + vi(-1))),
        request(s(tag(6, 0) + b"\xff" * 9 + b"\x7f")), request(s(tag(6, 0) + vi(2**31))),
        request(s(tag(7, 0) + vi(5))), request(s(tag(5, 0) + vi(5))), request(s(tag(9, 0) + vi(5))),
        request(s(tag(15, 0) + vi(1))), request(s(tag(16, 0) + vi(0x300))), request(s(tag(16, 5) + b"\x00\x03\x00\x00")),
        request(s(tag(16, 5) + b"\x00\x01\x00\x00")), request(s(ld(15, tag(3, 0) + vi(2)) + ld(15, ld(2, b"m")))),
        request(s(ld(15, tag(3, 0) + vi(2)) + ld(15, tag(3, 0) + vi(-7)))),
        request(s(ld(15, tag(3, 0) + vi(2)) + ld(15, ld(2, b"\xff")))),
        ld(1, ld(2, ld(2, s() + tag(16, 5) + b"\x01\x02") + b"\x03\x04")),
        ld(1, ld(2, ld(2, s() + tag(6, 0) + b"\x81") + b"\x01")), ld(1, ld(2, ld(2, s() + b"\x81") + b"\x01")),
        request(s(ld(5, b"a\x00b"))), request(s(ld(5, b"\xed\xa0\x80"))), request(s(ld(5, b"\xc0\x80"))),
        request(s(ld(5, b"\xf4\x90\x80\x80"))), request(s(ld(5, b"\xf0\x9f\x98\x80" * 100))),
        request(s(ld(5, "é".encode() * 200))), request(s(ld(5, b"x" * 1000))), request(s(ld(3, b"\xff"))),
        request(s(attr(b"zzz", ld(1, b"\xff")))), request(s(ld(30, b"\xff"))), request(s(attr(b"\xff", b""))),
        request(s(attr(b"k", ld(6, ld(1, ld(1, b"\xff")))))), request(s(ld(13, ld(3, b"\xff")))),
        request(s(ld(13, ld(4, kv(b"a", ld(1, b"\xfe")))))), request(s(ld(11, ld(3, kv(b"a", ld(1, b"\xfe")))))),
        ld(1, ld(3, b"\xff")), ld(1, ld(2, ld(3, b"\xff"))), ld(1, ld(1, ld(3, ld(1, b"\xff")))),
        ld(1, ld(1, ld(3, ld(3, b"ok") + ld(3, b"\xff")))), ld(1, ld(2, ld(1, ld(2, b"\xff")))),
        request(s(tag(30, 3) + tag(1, 0) + b"\x01" + tag(30, 4))), request(s(tag(30, 4))),
        request(s(tag(9, 3) + tag(9, 4))), request(s(attr(model, tag(5, 3) + tag(5, 4)))),
        request(s(attr(model, ld(5, ld(1, ld(1, b"a"))) + ld(1, b"s") + ld(5, ld(1, ld(1, b"b")))))),
        request(s(attr(reasons, ld(5, ld(1, ld(1, b"a"))) + ld(1, b"s") + ld(5, ld(1, ld(1, b"b")))))),
        request(s(attr(reasons, ld(5, ld(1, ld(1, b"a"))) + ld(5, ld(1, ld(1, b"b")))))),
        request(s(ld(9, ld(1, reasons) + ld(2, ld(5, ld(1, ld(1, b"a")))) + ld(2, ld(5, ld(1, ld(1, b"b"))))))),
        request(s(attr(reasons, ld(5, b"".join(ld(1, ld(1, b"r%d" % i) if i % 3 else tag(3, 0) + vi(i))
                                               for i in range(40)))))),
        request(s(attr(reasons, ld(5, ld(1, ld(1, b"a") + tag(3, 0) + b"\x01") + ld(1, tag(3, 0) + b"\x01" + ld(1, b"")))))),
        request(s(attr(reasons, ld(1, b"")), attr(reasons, tag(3, 0) + b"\x00"))),
        request(s(attr(reasons, tag(4, 1) + b"\x00" * 8))), request(s(attr(reasons, ld(7, b"\x01\xff")))),
        request(s(attr(reasons, ld(6, b"")))), request(s(attr(reasons, tag(8, 0) + b"\x05"))),
        request(s(attr(model, tag(8, 0) + b"\x05"))), request(s(attr(model, ld(1, b"a") + tag(8, 0) + b"\x05"))),
        request(s(attr(model, ld(5, ld(1, ld(1, b"a")))) + attr(model, ld(3, b"") + tag(3, 0) + vi(7)))),
        request(s(ld(9, ld(1, b"a") + ld(1, model) + ld(2, ld(1, b"x"))))), request(s(ld(9, b""))),
        request(s(attr(model, tag(2, 0) + vi(2**40)))), request(s(attr(model, tag(2, 0) + b"\x80" * 9 + b"\x02"))),
        request(s(attr(model, tag(3, 0) + b"\x80" * 9 + b"\x7e"))), request(s(attr(model, tag(3, 0) + vi(-5)))),
        request(s(attr(model, ld(1, b"") + tag(3, 0) + vi(3) + ld(1, b"")))), request(s(attr(model, ld(1, b"")))),
        request(s(attr(model, tag(4, 5) + b"\x00\x00\x80\x3f"))), request(s(attr(model, tag(4, 1) + b"\xff" * 8))),
        request(s(attr(model, tag(1, 0) + b"\x01"))), request(s(attr(model, ld(7, b"")))), request(s(attr(model, b""))),
        request(s(attr(b"agent.x", ld(1, b"v")), attr(b"agent.\xc3\xa9", tag(2, 0) + b"\x01"), attr(b"agent", b""))),
        request(s(), resource=ld(1, ld(1, kv(b"service.name", ld(1, b"a")))) + ld(1, ld(1, kv(b"service.name", ld(1, b"b"))))),
        request(s(), resource=ld(1, ld(1, kv(b"service.name", ld(1, b"a")) + ld(2, b"x")))),  # key after value
        request(s(), resource=ld(1, ld(1, kv(b"service.name", tag(3, 0) + vi(4)) + ld(2, ld(1, b"z"))))),
        request(s(), resource=ld(1, ld(1, kv(b"service.name", ld(1, b"x" * 2000))))),
        request(s(), s(), scope=ld(1, ld(1, b"n1") + ld(2, b"v"))), ld(1, ld(2, ld(2, s()) + ld(1, ld(1, b"late")))),
        ld(1, ld(2, ld(1, ld(1, b"a")) + ld(2, s()) + ld(1, ld(2, b"v2")) + ld(2, s()) + ld(1, ld(1, b"b")))),
        ld(1, ld(2, ld(2, s()) + ld(1, ld(1, b"\xff")))), ld(1, ld(2, ld(1, ld(1, "é".encode() * 300)) + ld(2, s()))),
        ld(1, ld(2, ld(2, s())) + ld(1, ld(1, kv(b"service.name", ld(1, b"late"))))),
        request(s(ld(11, ld(2, b"a") + ld(2, b"exception") + fixed64(1, 1) + fixed64(1, 2) + ld(3, kv(b"exception.type", ld(1, b"E")))))),
        request(s(ld(11, ld(3, kv(b"exception.type", tag(3, 0) + vi(0))) + ld(2, b"exception")),
                  ld(11, ld(2, b"exception") + ld(3, kv(b"exception.type", tag(4, 1) + struct.pack("<d", 0.5)))))),
        request(s(ld(11, ld(2, b"exception") + ld(3, kv(b"x", b"")) + ld(3, kv(b"exception.type", tag(2, 0) + b"\x01"))
                     + ld(3, kv(b"exception.type", ld(1, b"second")))))),
        request(s(ld(11, ld(2, b"exception") + ld(3, kv(b"exception.type", ld(7, b"\xab\xcd")))))),
        request(s(ld(11, ld(2, b"exception") + ld(3, kv(b"exception.type", ld(1, b"T" * 999)))))),
        request(s(ld(11, ld(2, b"exception") + ld(3, kv(b"exception.type", tag(4, 1) + struct.pack("<d", float("nan"))))))),
        request(s(ld(11, ld(2, b"First Token Stream Event")), ld(11, ld(2, b"First Token Stream Event") + fixed64(1, 7)),
                  ld(11, ld(2, b"First Token Stream Event") + fixed64(1, 8)))),
        request(s(ld(11, ld(2, b"agent.checkpoint") + fixed64(1, 3) + ld(3, kv(b"a", ld(1, b"x" * 500)))
                     + ld(3, kv(b"b", ld(5, b""))) + ld(3, kv(b"a", tag(3, 0) + vi(1)))))),
        request(s(ld(11, ld(2, b"agent.") + ld(3, b"")), ld(11, ld(2, b"agent")))),
        request(s(ld(11, ld(2, b"gen_ai.evaluation.result") + ld(3, kv(b"gen_ai.evaluation.name", ld(1, b"rel")))
                     + ld(3, kv(b"other", ld(1, b"x"))) + ld(3, kv(b"gen_ai.evaluation.score.value", tag(4, 1) + struct.pack("<d", 0.25)))),
                  ld(11, ld(2, b"gen_ai.evaluation.result")))),
        request(s(ld(11, b"") * 3)), request(s(ld(11, b"") * 3), s(ld(11, b""))),
        request(s(ld(11, b"") * 3, ids=False)),
        request(s(ld(13, ld(1, b"\x01" * 16) + tag(6, 5) + b"\x01\x00\x00\x00" + ld(4, kv(b"k", ld(1, b"v")))))),
        request(s(ld(1, b"\x00" * 16))), request(s(ld(2, b"\x00" * 8))), request(s(ld(2, b"\x01" * 7))),
        request(s(fixed64(7, 10))), request(s(ld(4, b"\x05" * 8) + ld(3, b"rojo=1"))),
        request(s(ld(1, b"\x00" * 16) + ld(1, b"\x03" * 16))),
        # a map entry with fields besides its key and value is left out of the map (upb)
        request(s(ld(9, ld(1, model) + ld(2, ld(1, b"v")) + tag(3, 0) + b"\x01"))),
        request(s(ld(9, tag(1, 0) + b"\x01" + ld(1, model) + ld(2, ld(1, b"v"))))),
        request(s(ld(9, ld(1, model) + ld(2, ld(1, b"v") + tag(9, 0) + b"\x01")))),
        request(s(ld(9, ld(1, model) + ld(2, ld(1, b"v"))) + ld(9, ld(1, model) + ld(2, ld(1, b"w")) + tag(5, 3) + tag(5, 4)))),
        # a string running past its message: its UTF-8 is checked before its message's end
        request(s(ld(9, ld(1, b"k" * 4)[:-2] + b"\xff" * 2 + b"a" * 20))),
        request(s(ld(9, ld(1, b"k" * 4)[:-2] + b"kk" + b"a" * 20))),
        ld(1, ld(3, b"")[:-1] + b"\x05") + b"\xff" * 5, ld(1, ld(3, b"")[:-1] + b"\x05") + b"a" * 5,
        ld(1, ld(2, ld(2, ld(5, b"")[:-1] + b"\x09")) + b"\xff" * 9),
    ]
    # lengths take at most 5 bytes (varints 10)
    for size in range(1, 11):
        zero = b"\x80" * (size - 1) + b"\x00"
        cases += [tag(7, 2) + zero, tag(1, 2) + zero, ld(1, tag(3, 2) + zero), tag(7, 0) + zero,
                  request(s(tag(1, 2) + zero)), request(s(attr(model, tag(1, 2) + zero)))]
    # depth: upb refuses the 101st nested message or group below the request
    for n in range(44, 50):
        cases.append(request(s(attr(b"k", nested_arrays(n)))))
        cases.append(request(s(attr(model, nested_arrays(n, b"")))))
        cases.append(request(s(attr(b"k", nested_arrays(n, ld(6, b""))))))
    for n in (95, 96, 97, 98):
        cases.append(request(s(groups(n))))
        cases.append(request(s(ld(11, ld(3, kv(b"k", nested_arrays(n // 2 - 1)))))))
    for n in (98, 99, 100, 101):
        cases.append(groups(n, 7))
        cases.append(ld(1, groups(n - 1)))
    return cases


def json_fixture_bodies() -> list[bytes]:
    """Every recorded OTLP/JSON trace fixture under tests/golden, as protobuf (ids hex to base64 for
    the protobuf JSON mapping)."""
    def ids_to_base64(node):
        if isinstance(node, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode()
                        if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str) else ids_to_base64(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [ids_to_base64(v) for v in node]
        return node

    out = []
    for path in sorted(GOLDEN.rglob("*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            continue
        if not isinstance(document, dict) or "resourceSpans" not in document:
            continue
        message = json_format.ParseDict(ids_to_base64(document), ExportTraceServiceRequest(), ignore_unknown_fields=True)
        out.append(message.SerializeToString())
    return out


def mutations(body: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        data = bytearray(body)
        kind = rng.randrange(6)
        if kind == 0 and data:
            del data[rng.randrange(len(data)):]
        elif kind == 1 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 2:
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif kind == 3 and data:
            i = rng.randrange(len(data))
            del data[i:i + rng.randrange(1, 4)]
        elif kind == 4 and data:
            i = rng.randrange(len(data))
            data[i] = rng.choice([0x00, 0x7F, 0x80, 0xFF, 0xC0, 0xED, 0xF4, 0x0B, 0x0C])
        elif data:
            i, j = sorted(rng.randrange(len(data)) for _ in range(2))
            data[i:i] = data[i:j]
        out.append(bytes(data))
    return out


# -- the differential tests --------------------------------------------------------------------------

@needs_compiled
@pytest.mark.parametrize("limits", LIMITS, ids=repr)
def test_edge_cases(limits):
    for body in edge_cases():
        assert_same(body, limits)


@needs_compiled
def test_edge_cases_cover_both_outcomes():
    kinds = {assert_same(body)[0] for body in edge_cases()}
    assert kinds == {"ok", "error"}


@needs_compiled
def test_recorded_fixtures():
    bodies = json_fixture_bodies()
    assert len(bodies) >= 10
    spans = 0
    for body in bodies:
        for limits in LIMITS:
            result = assert_same(body, limits)
        spans += len(assert_same(body)[1])
    assert spans > 50


@needs_compiled
@pytest.mark.parametrize("seed", range(4))
def test_mutated_bodies(seed):
    rng = random.Random(seed)
    bodies = json_fixture_bodies()[seed::4] + [pb_request().SerializeToString(), with_events_and_rejections()]
    bodies += [b for b in edge_cases() if len(b) < 200][seed::4]
    for body in bodies:
        for mutated in mutations(body, rng, 60):
            assert_same(mutated, rng.choice(LIMITS))


@needs_compiled
def test_workload_requests_and_their_mutations():
    rng = random.Random(7)
    body = request_bytes("-w")
    assert_same(body)
    assert_same(body, DecodeLimits(512, 10, 256))
    assert_same(body, DecodeLimits(511, 10, 256))
    for mutated in mutations(body, rng, 25):
        assert_same(mutated, rng.choice(LIMITS))


@needs_compiled
@SETTINGS
@given(export_requests(), st.sampled_from(LIMITS))
def test_generated_requests(request, limits):
    assert_same(request.SerializeToString(), limits)


@needs_compiled
@SETTINGS
@given(export_requests(), st.integers(0, 4096), st.binary(min_size=1, max_size=3), st.sampled_from(LIMITS))
def test_patched_requests(request, position, patch, limits):
    body = bytearray(request.SerializeToString())
    if body:
        position %= len(body)
        body[position:position + len(patch)] = patch
    assert_same(bytes(body), limits)


@needs_compiled
@SETTINGS
@given(st.binary(max_size=600), st.sampled_from(LIMITS))
def test_arbitrary_bytes(data, limits):
    assert_same(data, limits)


@needs_compiled
def test_other_keys_and_a_small_key_memory():
    body = with_events_and_rejections()
    assert_same(body, wanted=frozenset(), resource_keys=frozenset())
    assert_same(body, wanted=frozenset({"gen_ai.request.model", "x"}), resource_keys=frozenset({"host.name"}))
    keys = [b"k%d" % i for i in range(5000)] + [b"agent.k%d" % i for i in range(50)]
    many = request(span_bytes(*(attr(k, ld(1, b"v")) for k in keys)))
    for wanted in (frozenset({"k1", "k4999"}), frozenset({f"k{i}" for i in range(0, 5000, 7)})):
        assert_same(many, wanted=wanted)
        assert_same(many, wanted=wanted)  # the key memory is full now


@needs_compiled
def test_the_span_count_walk_matches_span_count_py():
    rng = random.Random(3)
    bodies = edge_cases() + json_fixture_bodies()
    bodies += [m for b in bodies[::5] for m in mutations(b, rng, 10)]
    for body in bodies:
        for cap in (-1, 0, 1, 2, 5, 2**62):
            try:
                expected = ("ok", count_spans(body, cap))
            except Malformed as exc:
                expected = ("malformed", str(exc))
            try:
                got = ("ok", _wire.count_spans(body, cap))
            except ValueError as exc:
                got = ("malformed", str(exc))
            assert got == expected, (body.hex(), cap)


@needs_compiled
def test_the_schema_is_read_from_the_installed_descriptors():
    types = _wire.schema(ExportTraceServiceRequestView.DESCRIPTOR)
    span = types["agentprom.otlp_view.Span"]
    assert span[9][1] == "message:agentprom.otlp_view.Span.AttributesEntry"
    assert span[5][1] == "string" and span[1][1] == "scalar" and span[16][2] == 5
    assert types["opentelemetry.proto.common.v1.AnyValue"][4][2] == 1


@needs_compiled
def test_bytearray_and_memoryview_bodies():
    body = pb_request().SerializeToString()
    expected = outcome(decode.decode_traces_python, body)
    assert outcome(_wire_decode, bytearray(body)) == expected
    assert outcome(_wire_decode, memoryview(body)) == expected


@needs_compiled
def test_two_threads_decoding_at_once_each_check_their_own_body():
    """The loop thread decodes small bodies while the decode thread decodes large ones, and the pass
    calls Python mid-walk (Span, bounded_text), where the interpreter switches threads. A body whose
    last span's name claims 2**33 bytes is corrupt, whatever the other thread is decoding; with the
    body's end shared between passes it was checked against the other's and scanned past its own
    end ("bad UTF-8" in 200 of 200 runs)."""
    import sys
    import threading

    good = span_bytes(ld(5, b"span-name"))
    bad = span_bytes(tag(5, 2) + vi(1 << 33))
    big = request(*([good] * 20000), bad)
    small = request(good)
    alone = outcome(_wire_decode, big)
    assert alone[0] == "error" and "Wire format was corrupt" in alone[2], alone
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            _wire_decode(small, WANTED_KEYS, NO_LIMITS, WANTED_RESOURCE_KEYS)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=other)
    thread.start()
    try:
        seen = {outcome(_wire_decode, big) for _ in range(30)}
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert seen == {alone}


@needs_compiled
def test_utf8_checked_at_every_position_around_the_eight_byte_ascii_steps():
    """The UTF-8 check skips ASCII eight bytes at a time and the key cache hashes eight bytes a step:
    a bad (or good multi-byte) sequence at each position before, inside and after those steps, in a
    dropped value, a kept value, a span name and a key, is judged as upb judges it."""
    sequences = [b"\xff", b"\xc3", b"\xc3\xa9", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xe2\x82\xac",
                 b"\xf0\x9f\x98\x80", b"\xf4\x90\x80\x80", b"\x80"]
    outcomes = set()
    for before in range(0, 20):
        for after in (0, 3, 9):
            for seq in sequences:
                text = b"a" * before + seq + b"b" * after
                for span in (span_bytes(attr(b"gen_ai.input.messages", ld(1, text))),
                             span_bytes(attr(b"gen_ai.agent.name", ld(1, text))),
                             span_bytes(ld(5, text)),
                             span_bytes(attr(text, ld(1, b"v")))):
                    outcomes.add(assert_same(request(span))[0])
    assert outcomes == {"ok", "error"}


@needs_compiled
def test_spans_filled_slot_by_slot_hold_their_values_once_and_are_collectable():
    """The pass writes a span's slots directly (``configure_span``): each value is held once more by
    the span, the span by its batch only, and the collector tracks it as it tracks ``Span(...)``."""
    import gc
    import sys

    batch = _wire.decode_traces(request_bytes(), WANTED_KEYS, NO_LIMITS, WANTED_RESOURCE_KEYS)
    span = batch.spans[1]
    # counted outside ``assert``: pytest's rewriting holds the values it shows
    refs = (sys.getrefcount(span), sys.getrefcount(span.attributes), sys.getrefcount(span.trace_id))
    assert refs == (3, 2, 2)  # the span: the batch's list, this name, the call's argument; its values: itself
    assert gc.is_tracked(span)
    assert [getattr(span, name) for name in _wire.SPAN_FIELDS] == \
        [getattr(decode.decode_traces_python(request_bytes()).spans[1], name) for name in _wire.SPAN_FIELDS]


@needs_compiled
def test_configure_span_refuses_a_span_class_it_cannot_fill_directly():
    import dataclasses

    from agentprom.model import Span

    @dataclasses.dataclass
    class WithDict:  # no slots
        trace_id: bytes

    fields = [(name, object) for name in _wire.SPAN_FIELDS]
    Extra = dataclasses.make_dataclass("Extra", [*fields, ("more", object, dataclasses.field(default=None))],
                                       slots=True)
    Checked = dataclasses.make_dataclass("Checked", fields, slots=True,
                                         namespace={"__post_init__": lambda self: setattr(self, "name", "x")})
    class Padded:  # a slotted base: the fields sit one slot further on
        __slots__ = ("pad",)

    def refuse(self):
        raise TypeError("not these values")

    Raising = dataclasses.make_dataclass("Raising", fields, bases=(Padded,), slots=True,
                                         namespace={"__post_init__": refuse})
    for cls, error in ((WithDict, ValueError), (Extra, ValueError), (Checked, ValueError), (Raising, TypeError)):
        with pytest.raises(error):
            _wire.configure_span(cls)
    assert_same(request_bytes())  # a refusal leaves the pass as it was (Raising's offsets would not fit Span)
    _wire.configure_span(Span)  # and the real class is taken
    assert_same(request_bytes())


@needs_compiled
def test_short_strings_come_from_a_bounded_cache_that_never_mixes_them_up():
    """Short ASCII values (span names, kept attribute values) repeat from a small cache of the str made
    for them last; more distinct values than it has slots (so they collide and replace each other),
    values alike but for one byte or in length, non-ASCII ones of the same byte length, empty ones and
    ones around the size limit all decode as the Python path decodes them, every time."""
    rng = random.Random(11)
    values = [b"v%d" % i for i in range(10_000)] + [b"", b"a" * 64, b"a" * 65, b"a" * 63 + b"b",
                                                   "caf\u00e9".encode(), "cafe\u0301".encode(), b"caf\xc3\xa9"]
    values += [bytes([rng.randrange(32, 127) for _ in range(rng.randrange(1, 70))]) for _ in range(2000)]
    for round_ in range(3):
        rng.shuffle(values)
        for start in range(0, len(values), 500):
            spans = [span_bytes(ld(5, v), attr(b"gen_ai.agent.name", ld(1, v[::-1])), attr(b"gen_ai.tool.name", ld(1, v)))
                     for v in values[start:start + 500]]
            assert_same(request(*spans))
    assert assert_same(request(span_bytes(ld(5, b"cafe\xcc"))))[0] == "error"  # not UTF-8: not from the cache
    # a value seen a moment ago is the same str again (what the cache is for)
    body = request(span_bytes(ld(5, b"chat gpt-4o")), span_bytes(ld(5, b"chat gpt-4o")))
    first, second = _wire.decode_traces(body, WANTED_KEYS, NO_LIMITS, WANTED_RESOURCE_KEYS).spans
    assert first.name == "chat gpt-4o" and first.name is second.name


def _text_slot(data: bytes) -> int:
    """The cache slot of ``data`` in the compiled decoder (``fnv`` and ``TEXT_SLOTS`` of _wire.pyx, for
    ASCII bytes): to put two strings in one slot on purpose."""
    mask = (1 << 64) - 1
    h = 1469598103934665603 ^ len(data)
    i = 0
    while i + 8 <= len(data):
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * 1099511628211) & mask
        h ^= h >> 29
        i += 8
    for byte in data[i:]:
        h = ((h ^ byte) * 1099511628211) & mask
    return h & 4095


@needs_compiled
def test_strings_sharing_a_cache_slot_replace_each_other_and_are_never_mistaken():
    """A held string that the probe is a prefix of, one that is a prefix of the probe, and one of the
    same length, each in the probe's slot: every name decodes as itself, and the probe in between
    replaced the held string (so they did share the slot)."""
    base = b"chat gpt-4o"
    longer = next(base + b"-%d" % i for i in range(10**6) if _text_slot(base + b"-%d" % i) == _text_slot(base))
    same_length = next(v for v in (b"%011d" % i for i in range(10**6)) if _text_slot(v) == _text_slot(base))
    assert len(same_length) == len(base)
    for held, probe in ((longer, base), (base, longer), (same_length, base)):
        body = request(*(span_bytes(ld(5, name)) for name in (held, probe, held)))
        spans = _wire.decode_traces(body, WANTED_KEYS, NO_LIMITS, WANTED_RESOURCE_KEYS).spans
        assert [span.name for span in spans] == [held.decode(), probe.decode(), held.decode()]
        assert spans[0].name is not spans[2].name  # the probe took the slot in between
        assert_same(body)
