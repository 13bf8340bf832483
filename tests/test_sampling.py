"""Sampling-aware counting: a sampled span counts as its adjusted count."""

from __future__ import annotations

import math

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from agentprom.bounds import AmountLimits, SpanBounds
from agentprom.clock import ManualClock
from agentprom.metrics.catalog import active_catalog
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.receiver.decode import Batch
from agentprom.receiver.pipeline import AttributeDeny
from agentprom.sampling import SamplingWeights, probability_weight, threshold_weight
from agentprom.translator import Translator
from tests.exposition import openmetrics_families, promtool_check, render
from tests.otel import tracer


@pytest.mark.parametrize(
    ("trace_state", "expected"),
    [
        ("ot=th:0", 1),  # always sampled
        ("ot=th:8", 2),  # rejects half: T = 2**55
        ("ot=th:c", 4),
        ("ot=th:fd", 256 / 3),  # keeps 3/256
        ("ot=rv:9b8233f7e3a151;th:e", 8),  # other sub-keys around th
        ("vendor=abc,ot=th:8", 2),  # other tracestate members
        ("ot=th:80000000000000", 2),  # all 14 digits
        ("ot=th:ffffffffffffff", 2**56),  # the smallest probability there is
    ],
)
def test_threshold_to_adjusted_count(trace_state, expected):
    assert threshold_weight(trace_state) == pytest.approx(expected)


@pytest.mark.parametrize(
    "trace_state",
    ["", "vendor=abc", "ot=rv:abc", "ot=th:", "ot=th:8G", "ot=th:C", "ot=th:123456789abcdef", "ot=th:-1", "xot=th:8"],
)
def test_no_or_malformed_threshold_is_unknown(trace_state):
    assert threshold_weight(trace_state) is None


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (0.25, 4), ("0.5", 2), (0.1, 10)])
def test_probability_attribute(value, expected):
    assert probability_weight(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [0, -0.5, 1.5, "half", True, float("nan"), float("inf"), None, [0.5]])
def test_invalid_probability_is_unknown(value):
    assert probability_weight(value) is None


def _span(trace_state: str = "", **attributes) -> Span:
    return Span(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=b"", name="chat m", kind=3,
        start_ns=0, end_ns=30_000_000, status_code=0,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.agent.name": "a", "gen_ai.provider.name": "p",
                    "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10, **attributes},
        resource={}, trace_state=trace_state,
    )


def test_tracestate_wins_over_the_attribute_and_unknown_counts_once():
    weights = SamplingWeights(tracestate=True, probability_attribute="sampling.probability")
    assert weights.weight(_span("ot=th:8", **{"sampling.probability": 0.1})) == 2
    assert weights.weight(_span("", **{"sampling.probability": 0.1})) == pytest.approx(10)
    assert weights.weight(_span("ot=th:zz", **{"sampling.probability": "bad"})) == 1
    assert SamplingWeights(tracestate=False).weight(_span("ot=th:8")) == 1


def test_fractional_weights_render_valid_text_and_openmetrics(promtool):
    """th:aaab keeps about 1/3: counters become fractional, histogram counts stay integers."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)
    for _ in range(3):
        translator.span(_span("ot=th:aaab"))
    labels = ("a", "p", "m")
    assert store.value("agent_llm_calls_total", (*labels, "chat", "ok")) == pytest.approx(9.0001, rel=1e-4)
    assert store.value("agent_tokens_total", (*labels, "input")) == pytest.approx(90.001, rel=1e-4)
    text = render(store)
    promtool_check(promtool, text)
    assert 'agent_llm_duration_seconds_count{agent="a",provider="p",model="m",operation="chat"} 9\n' in text
    families = openmetrics_families(render(store, openmetrics=True))
    assert families["agent_llm_duration_seconds"].samples[-2].value == 9  # _count


def _emit_sampled_llm_calls(t, trace_state: TraceState, n: int, **extra) -> None:
    parent = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                         is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=trace_state)
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    for _ in range(n):
        with t.start_as_current_span("chat gpt-4o", context=context, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.agent.name": "planner", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100, **extra,
        }):
            pass


def test_sdk_spans_with_a_sampling_threshold_are_scaled(sidecar):
    with tracer(sidecar.grpc_address) as t:
        _emit_sampled_llm_calls(t, TraceState([("ot", "th:c")]), 3)  # p = 1/4
    llm = dict(agent="planner", provider="openai", model="gpt-4o")
    assert sidecar.value("agentprom_spans_received_total", transport="grpc") == 3  # raw
    assert sidecar.value("agent_llm_calls_total", **llm, operation="chat", status="ok") == 12
    assert sidecar.value("agent_tokens_total", **llm, type="input") == 1200
    assert 'agent_llm_duration_seconds_count{agent="planner",provider="openai",model="gpt-4o",operation="chat"} 12\n' \
        in sidecar.scrape()


def test_sdk_spans_with_a_probability_attribute_are_scaled(make_sidecar):
    sidecar = make_sidecar({"sampling": {"probability_attribute": "sampling.probability", "tracestate": False}})
    with tracer(sidecar.http_url, "http") as t:
        _emit_sampled_llm_calls(t, TraceState([("ot", "th:c")]), 2, **{"sampling.probability": 0.5})
        _emit_sampled_llm_calls(t, TraceState(), 1, **{"sampling.probability": "nonsense"})
    llm = dict(agent="planner", provider="openai", model="gpt-4o")
    # tracestate reading is off: 2 spans x 2 (attribute) + 1 span x 1 (unusable attribute)
    assert sidecar.value("agent_llm_calls_total", **llm, operation="chat", status="ok") == 5


def _batch(*spans: Span) -> Batch:
    batch = Batch()
    batch.spans.extend(spans)
    return batch


def test_span_bounds_refuse_llm_spans_beyond_a_bound_and_nothing_else():
    limits = AmountLimits(max_tokens=10, max_cost_usd=1.0, max_adjusted_count=100)
    deny = AttributeDeny(["gen_ai.usage.cost"])
    bounds = SpanBounds(limits, SamplingWeights(probability_attribute="sampling.probability"), deny.denied)
    fine = _span("ot=th:fd", **{"gen_ai.usage.input_tokens": 10, "llm.cost.total": 1.0})  # weight 85
    alias = _span(**{"llm.token_count.prompt": "11"})  # any spelling, numeric strings too
    costly = _span(**{"llm.cost.total": 1.5})
    rare = _span("ot=th:ffffffffffffff")
    rare_attribute = _span(**{"sampling.probability": 0.001})
    agent = _span(**{"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10**9})
    denied = _span(**{"gen_ai.usage.cost": 1e308})  # removed before anything reads it
    unusable = _span(**{"gen_ai.usage.input_tokens": float("inf"), "llm.cost.total": float("nan")})
    batch = _batch(fine, alias, costly, rare, rare_attribute, agent, denied, unusable)
    bounds.check(batch)
    assert batch.spans == [fine, agent, denied, unusable]
    assert batch.rejected == {"amount_out_of_range": 2, "sampling_weight_out_of_range": 2}


def test_no_counter_or_histogram_sum_reaches_infinity_at_the_largest_configurable_bounds():
    """Every bound at its configuration maximum, every compat output on, the widest OTLP duration:
    a thousand such spans leave every sample finite (so no finite stream of them can overflow)."""
    store = SeriesStore(clock=ManualClock(), catalog=active_catalog(("genai_metrics", "span_metrics")))
    translator = Translator(store)
    limits = AmountLimits(2**53, 1e12, 2**56)
    span = _span("ot=th:ffffffffffffff", **{
        f"gen_ai.usage.{kind}": 2**53 for kind in ("input_tokens", "output_tokens", "cache_read.input_tokens",
                                                     "cache_write.input_tokens")}, **{"gen_ai.usage.cost": 1e12})
    span.end_ns = 2**64 - 1
    batch = _batch(*[span] * 1000)
    SpanBounds(limits, translator.weights).check(batch)
    assert len(batch.spans) == 1000
    translator.consume(batch, "grpc")
    values = [v for family in store.families.values() for series in family.all_series()
              for v in (series.value, series.sum, *(series.counts or ()))]
    assert values and all(math.isfinite(v) for v in values)
    assert store.value("agent_llm_cost_usd_total", ("a", "p", "m")) == pytest.approx(1000 * 1e12 * 2**56)
