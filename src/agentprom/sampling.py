"""Sampling weights: how many spans one received span stands for (its adjusted count).

When an agent samples its traces, counting received spans undercounts by the
sampling rate. OpenTelemetry's probability sampling records the decision in the
W3C ``tracestate`` as ``ot=th:<hex>`` (OTel specification, "TraceState:
Probability Sampling"): the threshold ``T`` is 1-14 hex digits, right-padded
with zeros to 14 (56 bits); a span is kept with probability
``p = (2**56 - T) / 2**56`` and its adjusted count is ``1 / p``. ``th:0`` means
``p = 1``. Some pipelines instead put the probability in a span attribute; the
attribute named in the config is read when the tracestate says nothing.

Anything missing or malformed gives weight 1: an unknown adjusted count is
counted as one span, never dropped and never an error. A weight above
``sampling.max_adjusted_count`` is a different matter: the span is refused at
ingest (``bounds.py``), since ``th:ffffffffffffff`` alone would make one span
count as 2^56.
"""

from __future__ import annotations

import math
from typing import Any

from agentprom.model import Span

_MAX_THRESHOLD = 1 << 56
#: tracestate strings repeat for every span of a trace: remember recent answers
_CACHE_LIMIT = 4096


def threshold_weight(trace_state: str) -> float | None:
    """The adjusted count that ``ot=th:`` in a W3C tracestate implies, or None."""
    if "ot=" not in trace_state:
        return None
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for field in value.split(";"):
            name, _, hex_digits = field.partition(":")
            if name != "th":
                continue
            # the spec's grammar: 1-14 lowercase hex digits
            if not 1 <= len(hex_digits) <= 14 or hex_digits.strip("0123456789abcdef"):
                return None
            threshold = int(hex_digits.ljust(14, "0"), 16)
            if threshold == 0:
                return 1
            return _MAX_THRESHOLD / (_MAX_THRESHOLD - threshold)
        return None
    return None


def probability_weight(value: Any) -> float | None:
    """The adjusted count for a sampling probability attribute (0 < p <= 1), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        return None
    return 1.0 / value


class SamplingWeights:
    """Computes each span's weight from the configured sources."""

    def __init__(self, tracestate: bool = True, probability_attribute: str = "") -> None:
        self.tracestate = tracestate
        self.probability_attribute = probability_attribute
        self._cache: dict[str, float | None] = {}

    @property
    def enabled(self) -> bool:
        return self.tracestate or bool(self.probability_attribute)

    def weight(self, span: Span) -> float:
        if self.tracestate and span.trace_state:
            state = span.trace_state
            cache = self._cache
            if state in cache:
                found = cache[state]
            else:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                found = cache[state] = threshold_weight(state)
            if found is not None:
                return found
        if self.probability_attribute:
            value = span.attributes.get(self.probability_attribute)
            if value is not None:
                found = probability_weight(value)
                if found is not None:
                    return found
        return 1
