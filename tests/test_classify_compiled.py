"""The compiled batch classification (conventions/_classify.pyx) makes of every span exactly what
``classify.classify`` makes of it: every field, of the same type, on every recorded span and on
seeded random attribute sets built from the conventions' own keys and values."""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
from pathlib import Path
from types import MappingProxyType

import pytest

from agentprom import conventions
from agentprom.conventions import profile as P
from agentprom.conventions.classify import Classified, classify, classify_spans_python
from agentprom.model import Span
from agentprom.receiver.decode import decode_traces
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.sampling import SamplingWeights
from bench.workload import request_bytes

#: the module (``agentprom.conventions.classify`` is also the name of its function, re-exported)
module = importlib.import_module("agentprom.conventions.classify")
assert module.COMPILED is conventions.COMPILED

try:
    from agentprom.conventions import _classify
except ImportError:
    _classify = None

needs_compiled = pytest.mark.skipif(
    not module.COMPILED, reason="the compiled classification is not in use: agentprom.conventions._classify is "
    "not built (pip install -e . with a C compiler) or AGENTPROM_PURE_PYTHON=1")

GOLDEN = Path(__file__).parent / "golden"
FIELDS = [f.name for f in dataclasses.fields(Classified)]


def test_the_compiled_classification_is_built_when_required():
    """CI sets AGENTPROM_REQUIRE_COMPILED=1 (scripts/test.sh): losing the extension fails the suite."""
    if os.environ.get("AGENTPROM_REQUIRE_COMPILED") != "1":
        pytest.skip("AGENTPROM_REQUIRE_COMPILED is not set")
    assert _classify is not None, "agentprom.conventions._classify is not built (pip install -e '.[test]')"
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") in ("", "0"):
        assert module.COMPILED and module.classify_spans is not classify_spans_python


def fields(c: Classified) -> list[tuple[str, object, type]]:
    """Every field's value and type (``1 == 1.0 == True``: the type tells them apart); NaN as its repr."""
    return [(name, repr(value) if isinstance(value, float) else value, type(value))
            for name, value in ((name, getattr(c, name)) for name in FIELDS)]


def assert_alike(spans: list, weigh=None, weigh_all: bool = False) -> None:
    compiled = module.classify_spans(spans, weigh, weigh_all)
    python = classify_spans_python(spans, weigh, weigh_all)
    assert len(compiled) == len(python) == len(spans)
    for span, a, b in zip(spans, compiled, python):
        assert type(a) is Classified
        assert fields(a) == fields(b), (span.name, span.scope_name, span.attributes)
    assert len({id(c.tokens) for c in compiled}) == len(compiled)  # each its own: the translator prices into it


def recorded_spans() -> list[Span]:
    spans = list(decode_traces(request_bytes()).spans)
    for path in sorted(GOLDEN.rglob("*.json")):
        try:
            spans += decode_traces_json(path.read_bytes()).spans
        except Exception:  # noqa: BLE001 - golden files of other shapes (expectations, metrics)
            continue
    return spans


@needs_compiled
def test_every_recorded_span_is_classified_alike():
    spans = recorded_spans()
    assert len(spans) > 700  # the benchmark's request and every recorded framework's spans
    assert {classify(s).kind for s in spans} == set(P.Kind)
    assert_alike(spans)


# -- seeded random spans from the conventions' own keys and values --------------------------------

KEYS = sorted(P.WANTED_KEYS | {P.ERROR_TYPE, "other.key"})
WORDS = sorted({*P.TRACELOOP_KINDS, *P.OPENINFERENCE_KINDS, *P.GENAI_OPERATIONS, *P.GENAI_OPERATION_ALIASES,
                *P.LLM_REQUEST_TYPES, P.MCP_TOOL_CALL, P.GUARDRAIL_OPERATION, "chat", "gpt-4o", "openai",
                "web_search", "planner", "stop", "length", "pass", "fail", "unknown", "other"})
SCOPES = sorted({*P.NOT_LLM_CALLS, *P.SPAN_NAME_AGENTS, *P.TTFT_MILLISECONDS_SCOPES, "", "some.library"})
NAMES = ["", "execute_tool", "execute_tool web_search", "tools/call lookup", "invoke_agent planner",
         "apply_guardrail pii", "chat gpt-4o", "Agent.run", "LangGraph", *(f"x{suffix}" for values in
         P.NOT_LLM_CALLS.values() for suffix in values)]


class Text(str):
    """A ``str`` subclass: not what decoders make, but classification must read it as the Python path does."""


def value(rng: random.Random) -> object:
    pick = rng.randrange(16)
    if pick < 5:
        return rng.choice(WORDS)
    return [lambda: "", lambda: rng.randrange(-5, 10**6), lambda: rng.choice([True, False]),
            lambda: rng.choice([None, b"chat", (1, "stop"), Text(rng.choice(WORDS)), Text("")]),
            lambda: rng.choice([-(10**20), 3.0, -0.0]),
            lambda: rng.choice([0.0, 2.5, -1.0, float("nan"), float("inf"), 1e300]),
            lambda: rng.choice(["12", "1e3", "-4", "abc", "0.5", " 7"]),
            lambda: tuple(rng.choice(WORDS + ["", "x"]) for _ in range(rng.randrange(4))),
            lambda: (rng.randrange(3), "stop"), lambda: 10**20, lambda: rng.choice(NAMES)][pick - 5]()


#: the attributes that say a span's kind, each with the values its convention gives it
KIND_KEYS = [(P.TRACELOOP_SPAN_KIND, sorted(P.TRACELOOP_KINDS)), (P.OPENINFERENCE_SPAN_KIND, sorted(P.OPENINFERENCE_KINDS)),
             (P.GENAI_OPERATION, sorted({*P.GENAI_OPERATIONS, *P.GENAI_OPERATION_ALIASES})),
             (P.MCP_METHOD, [P.MCP_TOOL_CALL]), (P.LLM_REQUEST_TYPE, sorted(P.LLM_REQUEST_TYPES))]


def random_span(rng: random.Random, i: int) -> Span:
    attrs = {rng.choice(KEYS): value(rng) for _ in range(rng.randrange(0, 9))}
    for _ in range(rng.choice([0, 1, 1, 1, 2])):  # most spans say a kind, some two (which one wins?)
        key, values = rng.choice(KIND_KEYS)
        attrs[key] = rng.choice(values)
    resource = rng.choice([{}, {P.SERVICE_NAME: "svc"}, {P.SERVICE_NAME: ""}, {P.SERVICE_NAME: 7}])
    start = 1_700_000_000_000_000_000 + i
    return Span(trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), parent_span_id=b"",
                name=rng.choice(NAMES), kind=1, start_ns=start, end_ns=start + 10**6,
                status_code=rng.choice([0, 1, 2]), attributes=attrs, resource=resource,
                exception_type=rng.choice([None, "", "openai.APIError"]),
                trace_state=rng.choice(["", "", "ot=th:8", "ot=th:c;rv:ffffffffffffff", "bogus"]),
                scope_name=rng.choice(SCOPES), first_token_ns=rng.choice([0, 0, start + 500, start - 5]))


@needs_compiled
@pytest.mark.parametrize("seed", range(4))
def test_random_spans_are_classified_alike(seed):
    rng = random.Random(seed)
    spans = [random_span(rng, i) for i in range(5000)]
    made = [classify(span) for span in spans]
    for kind in P.Kind:  # every branch is taken many times
        assert sum(c.kind is kind for c in made) > 300, kind
    for name in ("guardrail", "streaming", "ttft", "tpot", "cost"):
        assert sum(getattr(c, name) is not None for c in made) > 5, name
    assert sum(bool(c.finish_reasons) for c in made) > 20 and sum(bool(c.tokens) for c in made) > 100
    assert_alike(spans)
    weights = SamplingWeights(tracestate=True, probability_attribute="other.key")
    assert_alike(spans, weights.weight, False)
    assert_alike(spans, weights.weight, True)


@needs_compiled
def test_spans_it_cannot_read_directly_take_the_python_path():
    """A span of another class, or attributes that are not a dict, are classified as the Python path does."""

    @dataclasses.dataclass
    class OtherSpan(Span):  # noqa: D401 - a subclass is not Span: its fields may sit elsewhere
        pass

    rng = random.Random(9)
    plain = [random_span(rng, i) for i in range(200)]
    others = [OtherSpan(**{f.name: getattr(s, f.name) for f in dataclasses.fields(Span)}) for s in plain]
    assert_alike(others)
    for span in plain:
        span.attributes = MappingProxyType(dict(span.attributes))
    assert_alike(plain)


@needs_compiled
def test_classes_it_cannot_write_in_place_are_refused_and_the_python_path_is_used(caplog):
    """``configure`` refuses a Classified or a Span that is not a slots class of the fields it writes
    (where a write by offset would corrupt memory), and ``compiled.extension`` then keeps the Python path."""
    from agentprom.compiled import extension

    def without_slots(cls):
        return dataclasses.make_dataclass(cls.__name__, [(f.name, object, dataclasses.field(default=None))
                                                         for f in dataclasses.fields(cls)])

    try:
        with pytest.raises(ValueError, match="slots"):
            _classify.configure(without_slots(Classified), Span, module)
        with pytest.raises(ValueError, match="slot"):
            _classify.configure(Classified, without_slots(Span), module)
        with pytest.raises(ValueError, match="fields"):
            _classify.configure(dict, Span, module)
    finally:  # as the module was configured at import
        _classify.configure(Classified, Span, module)
    with caplog.at_level("WARNING"):
        assert extension("agentprom.conventions._classify",
                         lambda m: m.configure(without_slots(Classified), Span, module)) is None
    assert "agentprom.conventions._classify is built but not used" in caplog.text
    _classify.configure(Classified, Span, module)
    assert_alike(recorded_spans()[:100])
