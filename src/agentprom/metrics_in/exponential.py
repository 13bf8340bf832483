"""Exponential histogram points as explicit-bucket histograms (Prometheus text has no native histograms).

The rule (specification: exponential histograms "MAY be converted to
fixed-bucket histograms"):

* Every point is first downscaled to scale 0, whose bucket ``j`` holds the
  values ``(2**j, 2**(j+1)]``. For scales >= 0 this merges whole buckets, so it
  is exact: bucket ``i`` at scale ``s`` lies inside bucket ``i >> s``.
* A positive scale-0 bucket ``j`` becomes the explicit bucket ``le = 2**(j+1)``.
  OTel buckets include their upper bound, as ``le`` does, so every cumulative
  ``le`` count is exact. Between the lowest and highest populated bucket every
  power of two is listed (when that is fewer than ``MAX_FILLED_BUCKETS`` and the
  caller's ``fill_limit``), and the lower edge of
  the lowest bucket is added with count 0, so ``histogram_quantile`` has the
  same resolution as the source at scale 0.
* A negative bucket ``j`` (values in ``[-2**(j+1), -2**j)``) becomes
  ``le = -2**j``; the zero bucket (``|v| <= zero_threshold``) becomes
  ``le = 0`` when the threshold is 0, else the smallest power of two at or
  above it. Only values exactly at a negative power of two (or inside a
  non-zero zero threshold) can land one bucket high.
* Negative scales have buckets wider than scale 0; each one's count goes to its
  upper bound, so ``le`` counts are exact at those bounds and lower bounds in
  between.

Because every bound is 0 or a power of two, points with different ranges can be
merged exactly onto the union of their bounds (delta accumulation).

Hostile scales and offsets stay bounded: a double has about 2,100 distinct
powers of two (beyond them a bound is +Inf, folded into the +Inf bucket, or 0),
so a point gives at most about 4,200 bounds (both signs) whatever its scale,
offset or bucket count; the translator refuses points with more than
``metrics_in.max_histogram_buckets``.
"""

from __future__ import annotations

import math

from agentprom.metrics_in.model import ExponentialHistogramPoint

#: beyond this many scale-0 buckets between the extremes, only populated ones are listed
MAX_FILLED_BUCKETS = 160


def _power(exponent: int) -> float:
    try:
        return math.ldexp(1.0, exponent)
    except OverflowError:
        return math.inf


def _to_scale0(offset: int, counts: tuple[int, ...], scale: int) -> dict[int, int]:
    """Scale-0 bucket index -> count."""
    out: dict[int, int] = {}
    for i, count in enumerate(counts):
        if not count:
            continue
        index = offset + i
        if scale >= 0:
            j = index >> scale
        else:  # a wide bucket: its count goes to the scale-0 bucket that shares its upper bound
            j = ((index + 1) << -scale) - 1
        out[j] = out.get(j, 0) + count
    return out


def to_explicit(point: ExponentialHistogramPoint,
                fill_limit: int = MAX_FILLED_BUCKETS) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """``(bounds, counts)`` of the explicit histogram; ``counts`` has one more entry (+Inf)."""
    by_bound: dict[float, int] = {}
    positive = _to_scale0(point.positive_offset, point.positive_counts, point.scale)
    if positive:
        low, high = min(positive), max(positive)
        filled = range(low, high + 1) if high - low < min(MAX_FILLED_BUCKETS, fill_limit) else sorted(positive)
        by_bound[_power(low)] = 0
        for j in filled:  # added, not set: far beyond the range of a double, bounds collide at 0 and +Inf
            bound = _power(j + 1)
            by_bound[bound] = by_bound.get(bound, 0) + positive.get(j, 0)
    for j, count in _to_scale0(point.negative_offset, point.negative_counts, point.scale).items():
        bound = -_power(j)
        by_bound[bound] = by_bound.get(bound, 0) + count
    if point.zero_count:
        threshold = point.zero_threshold
        bound = 0.0 if threshold <= 0 else _power(math.ceil(math.log2(threshold)))
        by_bound[bound] = by_bound.get(bound, 0) + point.zero_count
    overflow = 0
    for bound in [b for b in by_bound if math.isinf(b)]:
        count = by_bound.pop(bound)
        if bound > 0:
            overflow += count
        else:  # below the smallest double: fold into the lowest finite bucket
            by_bound[min(by_bound, default=0.0)] = by_bound.get(min(by_bound, default=0.0), 0) + count
    bounds = tuple(sorted(by_bound))
    return bounds, tuple(by_bound[b] for b in bounds) + (overflow,)
