"""The compiled first look of the span bounds (receiver/_wire.pyx ``suspects``) changes nothing that
``bounds.SpanBounds.check`` decides: the same spans pass, the same are refused, for the same reasons."""

from __future__ import annotations

import random

import pytest

from agentprom.bounds import AmountLimits, SpanBounds
from agentprom.model import Span
from agentprom.receiver import decode
from agentprom.receiver.decode import Batch
from agentprom.receiver.pipeline import AttributeDeny
from agentprom.sampling import SamplingWeights

needs_compiled = pytest.mark.skipif(decode.bounds_suspects is None,
                                    reason="the compiled decoder (agentprom.receiver._wire) is not in use")

AMOUNT_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.prompt",
               "gen_ai.usage.cost", "llm.cost.total", "gen_ai.usage.cache_read.input_tokens"]
OTHER_KEYS = ["gen_ai.request.model", "gen_ai.agent.name", "sampling.probability", "x"]
TRACE_STATES = ["", "", "", "ot=th:fd", "ot=th:ffffffffffffff", "ot=th:0", "garbage"]


class OwnSpan(Span):
    """A subclass: it could read differently, so it is always judged."""

    __slots__ = ()


class OwnDict(dict):
    pass


def amount(rng: random.Random, bound: float):
    return rng.choice([
        rng.randrange(0, 20), bound, bound + 1, rng.uniform(0, 2 * bound), float("nan"), float("inf"),
        -1, True, False, str(rng.randrange(30)), "many", None, 2**70, 1e308, -0.0, (1, 2),
    ])


def spans(rng: random.Random, n: int, limits: AmountLimits) -> list[Span]:
    out = []
    for _ in range(n):
        attributes = {"gen_ai.operation.name": rng.choice(["chat", "invoke_agent", "execute_tool", "text_completion"])}
        for key in rng.sample(AMOUNT_KEYS, rng.randrange(0, 4)):
            attributes[key] = amount(rng, limits.max_cost_usd if "cost" in key else limits.max_tokens)
        for key in rng.sample(OTHER_KEYS, rng.randrange(0, 3)):
            attributes[key] = rng.choice([0.5, 0.0001, "m", 3, "nonsense"])
        cls = OwnSpan if rng.random() < 0.05 else Span
        if rng.random() < 0.05:
            attributes = OwnDict(attributes)
        out.append(cls(trace_id=b"\x01" * 16, span_id=rng.randbytes(8), parent_span_id=b"", name="s",
                       kind=rng.choice([1, 3]), start_ns=0, end_ns=1, status_code=0, attributes=attributes,
                       resource={}, trace_state=rng.choice(TRACE_STATES)))
    return out


def judged(check: SpanBounds, batch_spans: list[Span], compiled: bool) -> tuple[list[int], dict]:
    batch = Batch()
    batch.spans.extend(batch_spans)
    check.check(batch, decode.bounds_suspects if compiled else None)
    return [id(span) for span in batch.spans], dict(batch.rejected)


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_compiled_first_look_decides_as_the_python_check(seed):
    rng = random.Random(seed)
    limits = AmountLimits(max_tokens=rng.choice([10, 1000, 2**53]), max_cost_usd=rng.choice([1.0, 5, 1e12]),
                          max_adjusted_count=rng.choice([1, 100, 2**56]))
    checks = [SpanBounds(limits), SpanBounds(limits, SamplingWeights(tracestate=False)),
              SpanBounds(limits, SamplingWeights(probability_attribute="sampling.probability")),
              SpanBounds(limits, None, AttributeDeny(["gen_ai.usage.cost"]).denied)]
    passed_unjudged = 0
    for _ in range(30):
        batch_spans = spans(rng, rng.randrange(0, 60), limits)
        if batch_spans and rng.random() < 0.3:
            batch_spans.append(rng.choice(batch_spans))  # the same span twice
        for check in checks:
            assert judged(check, batch_spans, True) == judged(check, batch_spans, False)
        found = decode.bounds_suspects(batch_spans, checks[0]._amount_keys, checks[0]._bound_of, False)
        assert all(span in batch_spans for span in found)
        passed_unjudged += len(batch_spans) - len(found)
    assert passed_unjudged > 0  # the first look did pass some spans, so the comparison above means something


@needs_compiled
def test_the_receivers_decoder_takes_the_compiled_first_look():
    from agentprom.receiver import decode_workers

    assert decode_workers.bounds_suspects is decode.bounds_suspects


@needs_compiled
def test_compiled_first_look_passes_plain_spans_and_keeps_every_doubtful_one():
    limits = AmountLimits(max_tokens=10, max_cost_usd=1.0, max_adjusted_count=100)
    check = SpanBounds(limits)

    def span(trace_state: str = "", cls=Span, **attributes) -> Span:
        return cls(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=b"", name="chat m", kind=3,
                   start_ns=0, end_ns=1, status_code=0, attributes={"gen_ai.operation.name": "chat", **attributes},
                   resource={}, trace_state=trace_state)

    plain = [span(), span(**{"gen_ai.usage.input_tokens": 10, "llm.cost.total": 1.0, "x": "y"}),
             span(**{"gen_ai.usage.output_tokens": 0, "gen_ai.request.model": 10**9})]
    doubtful = [span(**{"gen_ai.usage.input_tokens": 11}), span(**{"llm.cost.total": float("nan")}),
                span(**{"gen_ai.usage.input_tokens": True}), span(**{"gen_ai.usage.input_tokens": "3"}),
                span("ot=th:0"), span(cls=OwnSpan), span(**{"llm.cost.total": 1.5, "gen_ai.usage.input_tokens": 1})]
    doubtful.append(span())
    doubtful[-1].attributes = OwnDict(doubtful[-1].attributes)
    assert decode.bounds_suspects(plain + doubtful, check._amount_keys, check._bound_of, False) == doubtful
    # weights read from an attribute: every span is judged
    assert decode.bounds_suspects(plain, check._amount_keys, check._bound_of, True) == plain
