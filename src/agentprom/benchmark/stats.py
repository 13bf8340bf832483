"""Small-sample statistics for comparing benchmark runs, with the standard library only.

* ``quantile``: linear interpolation between order statistics (NumPy's default,
  R's type 7).
* ``mann_whitney``: the Mann-Whitney U test. Exact p-values (the null
  distribution of U counted as the coefficients of the Gaussian binomial
  coefficient [m+n choose m]_q) when there are no ties and m*n <= 2500; else
  the normal approximation with the tie-corrected variance and a continuity
  correction. The same conventions as ``scipy.stats.mannwhitneyu`` (the tests
  check against it): U is the statistic of the first sample, the number of
  pairs where it is the larger value plus half the ties.
* ``fisher_less``: Fisher's exact test, one-sided: the chance, with the table's
  margins fixed, that the second group has this few successes or fewer
  (``scipy.stats.fisher_exact(..., alternative="less")`` on the table
  [[successes2, failures2], [successes1, failures1]]).
* ``bootstrap``: percentile bootstrap of a change between two groups, each
  resampled with replacement.
* ``holm``: Holm-Bonferroni adjusted p-values (family-wise error control).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: the largest m*n for which the exact null distribution of U is computed
EXACT_LIMIT = 2500


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class MannWhitney:
    u: float
    p: float
    method: str  # "exact" or "normal"


def _u_statistic(x: Sequence[float], y: Sequence[float]) -> tuple[float, dict[float, int]]:
    """U of ``x`` and the tie counts of the pooled sample, from mid-ranks (O(N log N))."""
    pooled = sorted([(value, 0) for value in x] + [(value, 1) for value in y])
    ranks_x = 0.0
    ties: Counter[float] = Counter(value for value, _ in pooled)
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mid_rank = (i + j) / 2.0 + 1.0
        ranks_x += mid_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        i = j + 1
    m = len(x)
    return ranks_x - m * (m + 1) / 2.0, ties


def u_distribution(m: int, n: int) -> list[int]:
    """How many of the C(m+n, m) orderings of two samples give U = 0, 1, ..., m*n (no ties)."""
    poly = [1]  # [n choose 0]_q
    for i in range(1, m + 1):
        # [n+i choose i]_q = [n+i-1 choose i-1]_q * (1 - q^(n+i)) / (1 - q^i)
        k = n + i
        grown = poly + [0] * k
        for j in range(len(grown) - 1, k - 1, -1):
            grown[j] -= poly[j - k]
        divided = [0] * (len(grown) - i)
        for j in range(len(divided)):
            divided[j] = grown[j] + (divided[j - i] if j >= i else 0)
        poly = divided
    return poly


def _upper_exact(u: float, m: int, n: int) -> float:
    """P(U >= u) under the null hypothesis, exactly."""
    counts = u_distribution(m, n)
    start = math.ceil(u)
    return min(1.0, sum(counts[start:]) / math.comb(m + n, m))


def _upper_normal(u: float, m: int, n: int, ties: dict[float, int]) -> float:
    """P(U >= u) by the normal approximation (tie-corrected variance, continuity correction)."""
    total = m + n
    tie_term = sum(t ** 3 - t for t in ties.values())
    variance = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    if variance <= 0:
        return 1.0  # every value is the same: nothing to tell the samples apart
    z = (u - m * n / 2.0 - 0.5) / math.sqrt(variance)
    return min(1.0, 0.5 * math.erfc(z / math.sqrt(2.0)))


def mann_whitney(x: Sequence[float], y: Sequence[float], alternative: str = "two-sided") -> MannWhitney:
    """Does ``x`` tend to be larger ("greater") or smaller ("less") than ``y``, or either ("two-sided")?"""
    m, n = len(x), len(y)
    if not m or not n:
        raise ValueError("both samples need at least one value")
    u, ties = _u_statistic(x, y)
    exact = all(count == 1 for count in ties.values()) and m * n <= EXACT_LIMIT
    method = "exact" if exact else "normal"

    def upper(value: float) -> float:
        return _upper_exact(value, m, n) if exact else _upper_normal(value, m, n, ties)

    if alternative == "greater":
        p = upper(u)
    elif alternative == "less":
        p = upper(m * n - u)
    elif alternative == "two-sided":
        p = min(1.0, 2.0 * upper(max(u, m * n - u)))
    else:
        raise ValueError(f"unknown alternative {alternative!r}")
    return MannWhitney(u, p, method)


def fisher_less(successes1: int, n1: int, successes2: int, n2: int) -> float:
    """One-sided Fisher exact p-value that group 2's success rate is lower than group 1's."""
    if not (0 <= successes1 <= n1 and 0 <= successes2 <= n2):
        raise ValueError("successes must be between 0 and the group size")
    total, successes = n1 + n2, successes1 + successes2
    failures = total - successes
    denominator = math.comb(total, n2)
    low = max(0, n2 - failures)
    tail = sum(math.comb(successes, k) * math.comb(failures, n2 - k) for k in range(low, successes2 + 1))
    return min(1.0, tail / denominator)


def bootstrap(x: Sequence[float], y: Sequence[float], statistic: Callable[[Sequence[float]], float],
              change: Callable[[float, float], float | None], resamples: int,
              rng: random.Random) -> list[float]:
    """``change(statistic(x*), statistic(y*))`` for resamples x*, y* drawn with replacement;
    resamples where the change is undefined (None or infinite) are left out."""
    out = []
    for _ in range(resamples):
        value = change(statistic(rng.choices(x, k=len(x))), statistic(rng.choices(y, k=len(y))))
        if value is not None and math.isfinite(value):
            out.append(value)
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
