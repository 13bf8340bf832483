"""Property-based fuzzing (hypothesis) of the decoders, translation, config loading and the real server.

Properties: no exception but the specified one escapes (``DecodeError``, ``ConfigError``); every
span is either kept or rejected with a reason; whatever is kept translates and renders; over the
real receivers every answer is one the OTLP specification names, and earlier counts never change.
Example counts are bounded so the suite stays quick.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.conventions.profile import WANTED_KEYS
from agentprom.metrics.exposition import Renderer
from agentprom.metrics.series_store import SeriesStore, StoreLimits
from agentprom.receiver.decode import DecodeError, decode_traces
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.translator import Translator
from tests.test_decode import JSON_DOC
from tests.test_receiver_errors import PROTOBUF, _grpc_export, good_protobuf

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.one_of(st.sampled_from(sorted(WANTED_KEYS)), st.sampled_from(["agent.checkpoint", "x", ""]), st.text(max_size=12))
U64 = st.integers(0, 2**64 - 1)


def any_values(depth: int = 3) -> st.SearchStrategy[AnyValue]:
    scalar = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=40)),
        st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda v: AnyValue(double_value=v), st.floats(allow_nan=True, allow_infinity=True)),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=16)),
        st.just(AnyValue()),
    )
    return st.recursive(scalar, lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
                  st.lists(st.tuples(st.text(max_size=5), inner), max_size=3)),
    ), max_leaves=depth * 3)


ATTRIBUTES = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), KEYS, any_values()), max_size=8)


@st.composite
def export_requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(ATTRIBUTES))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=10))
            for _ in range(draw(st.integers(0, 4))):
                span = ss.spans.add(
                    trace_id=draw(st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))),
                    span_id=draw(st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))),
                    name=draw(st.text(max_size=30)), kind=draw(st.integers(0, 7)),
                    start_time_unix_nano=draw(U64), end_time_unix_nano=draw(U64),
                )
                span.attributes.extend(draw(ATTRIBUTES))
                span.status.code = draw(st.integers(0, 3))
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add(name=draw(st.sampled_from(["exception", "agent.checkpoint", "e"])),
                                            time_unix_nano=draw(U64))
                    event.attributes.extend(draw(ATTRIBUTES))
    return request


def translate_and_render(batch) -> str:
    store = SeriesStore(StoreLimits(max_series_per_metric=50))
    Translator(store).consume(batch, "grpc")
    text = Renderer(store).render(False) + Renderer(store).render(True)
    text.encode("utf-8")  # what the server sends must be encodable
    return text


@pytest.mark.usefixtures("trace_decoder")  # the Python and the compiled decoder (tests/conftest.py)
@FAST
@given(st.binary(max_size=4096))
def test_protobuf_decoder_on_arbitrary_bytes(data):
    try:
        batch = decode_traces(data)
    except DecodeError:
        return
    translate_and_render(batch)


@pytest.mark.usefixtures("trace_decoder")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(export_requests())
def test_protobuf_decoder_on_generated_requests_keeps_or_rejects_every_span(request):
    batch = decode_traces(request.SerializeToString())
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert batch.received_count == total
    assert all(reason for reason in batch.rejected)
    translate_and_render(batch)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)


def _leaf_paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaf_paths(value, path + (i,))
    yield path


@st.composite
def mutated_otlp_json(draw) -> bytes:
    """The valid test document with one node (leaf or subtree) replaced by arbitrary JSON."""
    document = json.loads(json.dumps(JSON_DOC))
    path = draw(st.sampled_from(list(_leaf_paths(document))))
    replacement = draw(JSON_VALUES)
    if not path:
        return json.dumps(replacement).encode()
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = replacement
    return json.dumps(document, allow_nan=True).encode()


@FAST
@given(st.one_of(st.binary(max_size=512), JSON_VALUES.map(lambda v: json.dumps(v).encode()), mutated_otlp_json()))
def test_json_decoder_answers_decode_error_or_a_batch(data):
    try:
        batch = decode_traces_json(data)
    except DecodeError as error:
        assert str(error)
        return
    translate_and_render(batch)


CONFIG_KEYS = {
    "server": ["otlp_grpc", "otlp_http", "metrics", "max_request_bytes", "shutdown_grace_seconds",
               "metrics_gzip_level", "http_header_timeout_seconds", "http_request_timeout_seconds", "bogus"],
    "store": ["max_series_per_metric", "max_label_value_length", "series_ttl_seconds", "exemplars", "label_allow"],
    "log": ["level", "format"],
    "queue": ["max_spans", "memory_limit_mib", "retry_after_seconds"],
    "security": ["receivers", "metrics", "attribute_deny"],
    "forward": ["endpoint", "protocol", "compression", "headers", "tls", "timeout_seconds", "buffer_max_bytes"],
    "nonsense": ["x"],
}
CONFIG_VALUES = st.one_of(JSON_VALUES, st.sampled_from(["127.0.0.1:0", "[::1]:99999", "http://h:1", "(((", "a*b"]))


@st.composite
def config_documents(draw) -> dict:
    document = {}
    for section in draw(st.lists(st.sampled_from(sorted(CONFIG_KEYS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(CONFIG_KEYS[section]), max_size=4, unique=True))
        document[section] = draw(st.one_of(
            st.fixed_dictionaries({key: CONFIG_VALUES for key in keys}), CONFIG_VALUES))
    return document


@FAST
@given(config_documents())
def test_config_validation_reports_every_problem_with_a_path(document):
    try:
        validate(document)
    except ConfigError as error:
        assert error.problems and all(isinstance(p.path, str) and p.message for p in error.problems)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_config_files_with_arbitrary_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "agentprom.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, env={})
    except ConfigError as error:
        assert error.problems


def test_fuzzed_requests_against_the_real_server(sidecar):
    """Every answer is a specified one, and counts for earlier good data never change."""
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    baseline = dict(agent="svc", provider="unknown", model="unknown", operation="chat", status="ok")
    good = good_protobuf()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.binary(max_size=256).map(lambda b: (b, "application/x-protobuf")),
        st.builds(lambda i, b: (good[:i] + bytes([b]) + good[i + 1:], "application/x-protobuf"),
                  st.integers(0, len(good) - 1), st.integers(0, 255)),
        export_requests().map(lambda r: (r.SerializeToString(), "application/x-protobuf")),
        mutated_otlp_json().map(lambda b: (b, "application/json")),
        st.tuples(st.binary(max_size=64), st.sampled_from(["text/plain", "", "application/json; charset=x"])),
    ), st.booleans())
    def check(request, over_grpc):
        body, content_type = request
        if over_grpc and content_type == "application/x-protobuf":
            try:
                _grpc_export(sidecar, body)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        else:
            status, _headers, _payload = sidecar.post("/v1/traces", body, {"Content-Type": content_type})
            assert status in (200, 400, 415), status
        # generated spans never carry agent "svc" with an unknown model and chat, except the mutations
        # of the good request, which may: so compare with >=, and exactly via the untouched copy below
        assert sidecar.value("agent_llm_calls_total", **baseline) >= 1

    check()
    before = sidecar.value("agent_llm_calls_total", **baseline)
    assert sidecar.post("/v1/traces", good, PROTOBUF)[0] == 200
    assert sidecar.value("agent_llm_calls_total", **baseline) == before + 1
    assert math.isfinite(sidecar.value("agentprom_spans_received_total", transport="http"))
    sidecar.scrape()
    sidecar.scrape(openmetrics=True)


# -- the runtime event API over real HTTP ----------------------------------------------------

#: a valid value per field checker of sessions/events.py, and values each checker must refuse
#: (written out here rather than derived from the checkers, so the checkers are under test too)
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
VALID_VALUES = {
    "text": st.text(min_size=1, max_size=12),
    "timestamp": st.one_of(
        st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.none()).map(lambda d: d.isoformat() + "Z"),
        st.floats(min_value=0, max_value=MAX_EPOCH),
        st.integers(min_value=0, max_value=MAX_EPOCH),
    ),
    "amount": st.one_of(st.floats(min_value=0, max_value=1e12), st.integers(0, 10**12)),
    "count": st.integers(min_value=0, max_value=2**53),
    # an LLM call's tokens and cost have the per-span bounds (limits.max_tokens_per_span, max_cost_usd_per_span)
    "tokens": st.integers(min_value=0, max_value=10**8),
    "cost": st.one_of(st.floats(min_value=0, max_value=1e4), st.integers(0, 10**4)),
    "attempt": st.integers(min_value=1, max_value=2**53),
    "bool": st.booleans(),
    "status": st.sampled_from(["completed", "failed"]),
}
NOT_JSON_NUMBER = st.one_of(st.text(max_size=6), st.booleans(), st.lists(st.integers(), max_size=2), st.just({}))
INVALID_VALUES = {
    "text": st.one_of(st.just(""), st.integers(), st.booleans(), st.floats(), st.lists(st.text(), max_size=2),
                      st.text(min_size=257, max_size=300)),
    "timestamp": st.one_of(st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "", "12:00", "NaN",
                                            "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]),
                           st.floats(max_value=-1e-6), st.floats(min_value=MAX_EPOCH + 1),
                           st.integers(min_value=MAX_EPOCH + 1), st.booleans(), st.lists(st.integers(), max_size=2)),
    "amount": st.one_of(st.floats(max_value=-1e-9), st.integers(max_value=-1), st.floats(min_value=1.0001e12),
                        st.integers(min_value=10**12 + 1), NOT_JSON_NUMBER),
    "count": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**53 + 1), st.floats(), NOT_JSON_NUMBER),
    "tokens": st.one_of(st.integers(max_value=-1), st.integers(min_value=10**8 + 1), st.floats(), NOT_JSON_NUMBER),
    "cost": st.one_of(st.floats(max_value=-1e-9), st.integers(max_value=-1), st.floats(min_value=1.0001e4),
                      st.integers(min_value=10**4 + 1), NOT_JSON_NUMBER),
    "attempt": st.one_of(st.integers(max_value=0), st.integers(min_value=2**53 + 1), st.floats(), NOT_JSON_NUMBER),
    "bool": st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none().map(lambda _: [])),
    "status": st.one_of(st.text(max_size=8).filter(lambda s: s not in ("completed", "failed")), st.integers(),
                        st.booleans()),
}
FIELD_KINDS = {
    "session_id": "text", "timestamp": "timestamp", "agent": "text", "model": "text", "provider": "text",
    "phase_id": "text", "phase_name": "text", "tool_name": "text", "call_id": "text", "duration_ms": "amount",
    "success": "bool", "status": "status", "error_type": "text", "attempt": "attempt", "escalated": "bool",
    "input_tokens": "tokens", "output_tokens": "tokens", "cached_tokens": "tokens", "cost": "cost",
    "context_tokens_used": "count", "context_tokens_available": "count",
    "input_size_bytes": "count", "output_size_bytes": "count",
}
#: fuzzed events stay off the baseline session and agent, whose numbers must not change
FUZZ_SESSIONS = st.sampled_from([f"fz-{n}" for n in range(4)])
FUZZ_AGENTS = st.sampled_from(["fz-agent", "fz-other"])
MUTATIONS = ("bad_value", "unknown_field", "foreign_field", "no_session", "no_tool", "no_phase", "bad_type",
             "not_object", "failed_success", "half_context")


@st.composite
def valid_events(draw, event_type: str | None = None) -> dict:
    from agentprom.sessions import events as E

    event_type = event_type or draw(st.sampled_from(E.EVENT_TYPES))
    allowed = E.FIELDS_BY_TYPE[event_type]
    event = {"event_type": event_type, "session_id": draw(FUZZ_SESSIONS)}
    if event_type.startswith("tool_"):
        event["tool_name"] = draw(st.sampled_from(["grep", "edit", "fetch"]))
    if event_type.startswith("phase_"):
        event["phase_id"] = draw(st.sampled_from(["p1", "p2"]))
    optional = sorted(allowed - {"event_type", "session_id", "context_tokens_used", "context_tokens_available"})
    for name in draw(st.lists(st.sampled_from(optional), max_size=4, unique=True)):
        if name == "agent":
            event[name] = draw(FUZZ_AGENTS)
        elif name == "success" and event_type == E.TOOL_FAILED:
            event[name] = False
        else:
            event[name] = draw(VALID_VALUES[FIELD_KINDS[name]])
    if draw(st.booleans()):
        event["context_tokens_used"] = draw(VALID_VALUES["count"])
        event["context_tokens_available"] = draw(VALID_VALUES["count"])
    return event


@st.composite
def invalid_events(draw, event_type: str | None = None) -> tuple[object, set[str]]:
    """A valid event broken in one way, and the field(s) of which the answer must name one."""
    from agentprom.sessions import events as E

    event = draw(valid_events(event_type))
    event_type = event["event_type"]
    allowed = E.FIELDS_BY_TYPE[event_type]
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation == "bad_value":
        name = draw(st.sampled_from(sorted(set(event) - {"event_type"})))
        event[name] = draw(INVALID_VALUES[FIELD_KINDS[name]])
        return event, {name}
    if mutation == "unknown_field":
        from agentprom.sessions.event_names import ALIASES  # the specification's names are known fields too

        name = draw(st.text(max_size=10).filter(lambda k: k not in FIELD_KINDS and k not in ALIASES
                                                and k != "event_type"))
        event[name] = draw(JSON_VALUES)
        return event, {name}
    if mutation == "foreign_field" and allowed != frozenset(FIELD_KINDS) | {"event_type"}:
        name = draw(st.sampled_from(sorted(set(FIELD_KINDS) - allowed)))
        event[name] = draw(st.one_of(JSON_VALUES, VALID_VALUES[FIELD_KINDS[name]]))
        return event, {name}
    if mutation == "no_session":
        if draw(st.booleans()):
            del event["session_id"]
        else:
            event["session_id"] = None  # null is absent
        return event, {"session_id"}
    if mutation == "no_tool" and "tool_name" in event:
        del event["tool_name"]
        return event, {"tool_name"}
    if mutation == "no_phase" and event_type.startswith("phase_"):
        event.pop("phase_id", None)
        event.pop("phase_name", None)
        return event, {"phase_id"}
    if mutation == "failed_success" and event_type == E.TOOL_FAILED:
        event["success"] = True
        return event, {"success"}
    if mutation == "half_context":
        event.pop("context_tokens_used", None)
        event["context_tokens_available"] = draw(VALID_VALUES["count"])
        return event, {"context_tokens_used"}
    if mutation == "not_object":
        return draw(st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                              st.none(), st.booleans())), {""}
    event["event_type"] = draw(st.one_of(st.text(max_size=12).filter(lambda t: t not in E.FIELDS_BY_TYPE),
                                         st.integers(), st.none()))
    return event, {"event_type"}


def _family_total(sidecar, name: str) -> float:
    return sidecar.call(lambda: sum(s.value for s in sidecar.app.store[name].all_series()))


def _baseline(sidecar) -> tuple:
    """What the good data posted before the fuzzing shows: its session and its agent's series."""
    from tests.runtime_api import get_json

    store = sidecar.app.store
    series = sidecar.call(lambda: sorted(
        (name, s.labels, s.value) for name, family in store.families.items() if "agent" in family.spec.labels
        for s in family.all_series() if s.labels[family.spec.labels.index("agent")] == "coder"
        and hasattr(s, "value")))
    return get_json(sidecar, "/runtime/session/sess_abc123"), series


def test_fuzzed_events_against_the_real_server(sidecar):
    """No 5xx; each bad event is a 400 naming its index and field; good events of the same
    request are applied; what earlier good data counted never changes."""
    from tests.runtime_api import get_json, post_json
    from tests.test_sessions_events import run_of_events

    assert post_json(sidecar, "/runtime/event", run_of_events())[0] == 200
    before = _baseline(sidecar)
    assert before[0][0] == 200 and before[1]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(valid_events().map(lambda e: (e, set())), invalid_events()), min_size=1, max_size=6),
           st.booleans())
    def check(items, bare):
        document = [event for event, _ in items]
        if bare and len(document) == 1 and isinstance(document[0], dict):
            # a single event object may be sent without the array (a bare non-object body is a
            # malformed request, not one bad event: test_bare_non_object_bodies_are_malformed)
            document = document[0]
        bad = {index: fields for index, (_event, fields) in enumerate(items) if fields}
        good = [event for index, (event, _f) in enumerate(items) if index not in bad]
        def counts() -> tuple[float, float, float, float]:
            return (_family_total(sidecar, "agent_tool_calls_total"), _family_total(sidecar, "agent_llm_calls_total"),
                    sidecar.value("agentprom_runtime_events_total", outcome="accepted"),
                    sidecar.value("agentprom_runtime_events_total", outcome="rejected"))

        before_counts = counts()

        status, body = post_json(sidecar, "/runtime/event", document)
        assert status == (400 if bad else 200), body
        assert (body["accepted"], body["rejected"]) == (len(good), len(bad))
        reported: dict[int, set[str]] = {}
        for error in body.get("errors", []):
            reported.setdefault(error["index"], set()).add(error["field"])
            assert error["message"]
        assert set(reported) == set(bad), (reported, bad)
        for index, fields in bad.items():
            assert fields & reported[index], (index, fields, reported[index])

        # the good events of the request were applied, each once
        tools = sum(e["event_type"] in ("tool_completed", "tool_failed") for e in good)
        llms = sum(e["event_type"] == "llm_call" for e in good)
        added = tuple(after - earlier for after, earlier in zip(counts(), before_counts, strict=True))
        assert added == (tools, llms, len(good), len(bad))
        for event in good[-1:]:  # and its session answers
            assert get_json(sidecar, f"/runtime/session/{event['session_id']}")[0] == 200

    check()
    assert _baseline(sidecar) == before
    assert get_json(sidecar, "/runtime/sessions?limit=1000")[0] == 200
    for n in range(4):
        for view in ("", "/metrics", "/phases", "/tool_calls"):
            assert get_json(sidecar, f"/runtime/session/fz-{n}{view}")[0] in (200, 404)
    sidecar.scrape()
    sidecar.scrape(openmetrics=True)


def test_fuzzed_session_start_and_end_against_the_real_server(sidecar):
    """POST /runtime/session/start and /end: 201/200 for good bodies, 404 for an unknown session,
    400 naming the field for bad ones, 415 for another content type; never 5xx, baseline intact."""
    from agentprom.sessions import events as E
    from tests.runtime_api import post_json
    from tests.test_sessions_events import run_of_events

    assert post_json(sidecar, "/runtime/event", run_of_events())[0] == 200
    before = _baseline(sidecar)
    routes = {"/runtime/session/start": E.SESSION_STARTED, "/runtime/session/end": E.SESSION_COMPLETED}

    def without_type(item: tuple[object, set[str]]) -> tuple[object, set[str]]:
        body, fields = item
        if isinstance(body, dict) and "event_type" not in fields:
            body = {k: v for k, v in body.items() if k != "event_type"}
        return body, fields

    def bodies(event_type: str):
        bad = invalid_events(event_type).map(without_type)
        if event_type == E.SESSION_STARTED:  # start makes up a session id when there is none
            bad = bad.filter(lambda item: item[1] != {"session_id"})
        return st.one_of(valid_events(event_type).map(lambda e: without_type((e, set()))), bad)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(routes)).flatmap(lambda path: st.tuples(st.just(path), bodies(routes[path]))))
    def check(case):
        path, (body, bad_fields) = case
        known = (isinstance(body, dict) and isinstance(body.get("session_id"), str)
                 and sidecar.call(lambda: sidecar.app.tracker.get(body["session_id"])))
        accepted = sidecar.value("agentprom_runtime_events_total", outcome="accepted")
        status, answer = post_json(sidecar, path, body)
        if bad_fields:
            assert status == 400, (status, answer)
            assert {e["index"] for e in answer["errors"]} == {None}
            assert bad_fields & {e["field"] for e in answer["errors"]}, answer
        elif path.endswith("/start"):
            assert status == 201 and answer["session"]["status"] == "active", answer
            if "session_id" in body:
                assert answer["session"]["session_id"] == body["session_id"]
        else:
            assert status == (200 if known else 404), answer
        ok = status in (200, 201)
        assert sidecar.value("agentprom_runtime_events_total", outcome="accepted") == accepted + ok

    check()

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from([*routes, "/runtime/event"]),
           st.one_of(st.binary(max_size=64), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
           st.sampled_from(["application/json", "text/plain", ""]))
    def raw(path, body, content_type):
        status, _headers, payload = sidecar.post(path, body, {"Content-Type": content_type})
        assert status in (200, 201, 400, 404, 415), (status, payload)
        json.loads(payload)  # every answer, errors included, is JSON

    raw()
    assert _baseline(sidecar) == before
    sidecar.scrape()


@pytest.mark.parametrize("body", [None, 5, "event", True])
def test_bare_non_object_bodies_are_malformed(sidecar, body):
    """A body that is neither an event object nor an array is refused whole, naming the body."""
    from tests.runtime_api import post_json

    status, answer = post_json(sidecar, "/runtime/event", body)
    assert status == 400
    assert (answer["accepted"], answer["rejected"]) == (0, 0)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(None, "")]
    assert sidecar.value("agentprom_runtime_events_total", outcome="accepted") == 0
