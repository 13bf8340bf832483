"""Per-span bounds on counted amounts and sampling weights: refuse what could push a counter to +Inf.

A Prometheus counter only goes up, so one absurd increment (a cost of 1e308, or a
cost of 1e300 times the adjusted count 2^56 of the tracestate threshold
``ot=th:ffffffffffffff``, OTel specification "TraceState: Probability Sampling")
stays in it until the process restarts. Each amount a span adds to a counter
(tokens of each type, cost) and its sampling weight therefore has a configured
maximum (``limits.*``, ``sampling.max_adjusted_count``). A span beyond one is
rejected after decoding, before anything counts it, with a reason for OTLP
partial success (``amount_out_of_range``, ``sampling_weight_out_of_range``); so
it reaches no metric, session or log, and the client is told.

With the bounds at their configuration maxima, one span adds at most
2^53 x 2^56 (tokens) or 1e12 x 2^56 (dollars) to a counter, and a histogram sum at
most 1.8e10 s (the widest OTLP duration) x 2^56: about 1e29 per span, so no
finite stream of spans reaches float64's 1.8e308.

Values a convention reader ignores anyway (negative, NaN, infinite, not a number)
are not a reason to refuse: they are not counted (``conventions.classify``).
Usage on spans that are not LLM calls is never counted either, so it is checked
only when out of range, and then only an LLM-call span is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentprom.conventions.classify import cost_amount, span_kind, token_count
from agentprom.conventions.profile import COST_KEYS, TOKEN_KEYS
from agentprom.model import Kind, Span
from agentprom.sampling import SamplingWeights

if TYPE_CHECKING:
    from agentprom.config.schema import Config
    from agentprom.receiver.decode import Batch

_LLM = Kind.LLM
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
SAMPLING_WEIGHT_OUT_OF_RANGE = "sampling_weight_out_of_range"


@dataclass(frozen=True, slots=True)
class AmountLimits:
    """The bounds, as configured (defaults in ``config/schema.py``)."""

    max_tokens: int
    max_cost_usd: float
    max_adjusted_count: float

    @classmethod
    def from_config(cls, config: Config) -> AmountLimits:
        return cls(config.limits.max_tokens_per_span, config.limits.max_cost_usd_per_span,
                   config.sampling.max_adjusted_count)

    @classmethod
    def defaults(cls) -> AmountLimits:
        from agentprom.config.schema import Config

        return cls.from_config(Config())


class SpanBounds:
    """Moves the spans of a decoded batch that break a bound into its ``rejected`` counts."""

    def __init__(self, limits: AmountLimits, weights: SamplingWeights | None = None,
                 ignored: Callable[[str], bool] | None = None) -> None:
        """``weights`` must read what the translator reads; ``ignored`` says which attribute keys
        are removed before anything reads them (``security.attribute_deny``)."""
        def kept(keys):
            return frozenset(key for key in keys if ignored is None or not ignored(key))

        self.limits = limits
        self._token_keys = kept(key for keys in TOKEN_KEYS.values() for key in keys)
        self._cost_keys = kept(COST_KEYS)
        self._amount_keys = self._token_keys | self._cost_keys
        #: amount attribute key -> its bound (any spelling of any token type, or a cost)
        self._bound_of = {**dict.fromkeys(self._token_keys, limits.max_tokens),
                          **dict.fromkeys(self._cost_keys, limits.max_cost_usd)}
        weights = weights or SamplingWeights()
        if weights.probability_attribute and ignored is not None and ignored(weights.probability_attribute):
            weights = SamplingWeights(weights.tracestate, "")
        self._weights = weights
        self._weigh_attribute = bool(weights.probability_attribute)

    def check(self, batch: Batch, first_look: Callable[..., list[Span]] | None = None) -> None:
        """Remove out-of-range spans from ``batch.spans`` and count them by reason. The hot path:
        a span without amounts costs one ``isdisjoint`` over its kept attribute keys, an LLM span
        one comparison per amount it carries. ``first_look`` (the receiver's compiled one,
        receiver/_wire.pyx ``suspects``) passes the spans this loop would pass at its first look
        and returns the others, which the loop judges."""
        amount_keys, bound_of, beyond = self._amount_keys, self._bound_of, self._beyond
        weigh_attribute, weigh, max_weight = self._weigh_attribute, self._weights.weight, self.limits.max_adjusted_count
        spans = batch.spans
        if first_look is not None:
            spans = first_look(spans, amount_keys, bound_of, weigh_attribute)
        refused: list[tuple[Span, str]] | None = None
        for span in spans:
            attrs = span.attributes
            reason = None
            if not attrs.keys().isdisjoint(amount_keys):  # looks up the keys, not every attribute
                for key in amount_keys.intersection(attrs):
                    value = attrs[key]
                    # the usual plain number within its bound needs no parsing (NaN fails the comparison)
                    if (value.__class__ is int or value.__class__ is float) and value <= bound_of[key]:
                        continue
                    if beyond(key, value) and span_kind(attrs)[0] is _LLM:
                        reason = AMOUNT_OUT_OF_RANGE
                        break
            if reason is None:
                if not ((span.trace_state or weigh_attribute) and weigh(span) > max_weight):
                    continue
                reason = SAMPLING_WEIGHT_OUT_OF_RANGE
            if refused is None:
                refused = []
            refused.append((span, reason))
        if refused is None:
            return
        rejected = batch.rejected
        for _span, reason in refused:
            rejected[reason] = rejected.get(reason, 0) + 1
        doomed = {id(span) for span, _reason in refused}
        batch.spans[:] = [span for span in batch.spans if id(span) not in doomed]

    def _beyond(self, key: str, value: object) -> bool:
        """Whether an amount, read exactly as ``conventions.classify`` reads it, is above its bound
        (a value classify would not count is not)."""
        amount = token_count(value) if key in self._token_keys else cost_amount(value)
        return amount is not None and amount > self._bound_of[key]
