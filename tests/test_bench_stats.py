"""The comparison statistics, checked against SciPy and NumPy (test-only references) and by brute force."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from agentprom.benchmark import stats

ALTERNATIVES = ("greater", "less", "two-sided")


def _reference(x, y, alternative, method):
    method = "exact" if method == "exact" else "asymptotic"
    return sp.mannwhitneyu(x, y, alternative=alternative, method=method, use_continuity=True)


@settings(max_examples=150, deadline=None)
@given(x=st.lists(st.integers(0, 8), min_size=1, max_size=25), y=st.lists(st.integers(0, 8), min_size=1, max_size=25),
       alternative=st.sampled_from(ALTERNATIVES))
def test_mann_whitney_with_ties_matches_scipy(x, y, alternative):
    mine = stats.mann_whitney(x, y, alternative)
    ref = _reference(x, y, alternative, mine.method)
    assert mine.u == ref.statistic
    if math.isnan(ref.pvalue):  # SciPy gives NaN when every value is the same; we say "no difference"
        assert len(set(x + y)) == 1 and mine.p == 1.0
    else:
        assert mine.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), m=st.integers(1, 30), n=st.integers(1, 30), alternative=st.sampled_from(ALTERNATIVES))
def test_mann_whitney_exact_without_ties_matches_scipy(data, m, n, alternative):
    values = data.draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=m + n, max_size=m + n,
                                unique=True))
    x, y = values[:m], values[m:]
    mine = stats.mann_whitney(x, y, alternative)
    assert mine.method == "exact"
    ref = _reference(x, y, alternative, "exact")
    assert mine.u == ref.statistic
    assert mine.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_large_samples_use_the_normal_approximation_like_scipy():
    rng = random.Random(5)
    x = [rng.gauss(10, 3) for _ in range(80)]
    y = [rng.gauss(12, 3) for _ in range(70)]
    for alternative in ALTERNATIVES:
        mine = stats.mann_whitney(x, y, alternative)
        assert mine.method == "normal"
        assert mine.p == pytest.approx(_reference(x, y, alternative, "normal").pvalue, rel=1e-9)
    assert stats.mann_whitney(x, y, "less").p < 0.05 < stats.mann_whitney(x, y, "greater").p


@pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 3), (4, 4), (5, 2), (6, 5)])
def test_exact_u_distribution_counts_every_ordering(m, n):
    counts = [0] * (m * n + 1)
    for positions in itertools.combinations(range(m + n), m):  # where x's values sit in the pooled order
        counts[sum(p - i for i, p in enumerate(positions))] += 1
    assert stats.u_distribution(m, n) == counts
    assert sum(counts) == math.comb(m + n, m)


@settings(max_examples=200, deadline=None)
@given(n1=st.integers(1, 40), n2=st.integers(1, 40), data=st.data())
def test_fisher_matches_scipy(n1, n2, data):
    s1, s2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    ref = sp.fisher_exact([[s2, n2 - s2], [s1, n1 - s1]], alternative="less").pvalue
    assert stats.fisher_less(s1, n1, s2, n2) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_fisher_rejects_impossible_tables():
    with pytest.raises(ValueError):
        stats.fisher_less(5, 4, 0, 1)


def test_holm_adjusts_as_the_procedure_says():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1, made monotone: 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([]) == []


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=50), st.floats(0, 1))
def test_quantile_is_numpys_linear_percentile(values, q):
    assert stats.quantile(values, q) == pytest.approx(float(np.percentile(values, q * 100)), rel=1e-9, abs=1e-6)


def test_bootstrap_is_reproducible_and_skips_undefined_changes():
    x, y = [0.0, 0.0, 1.0], [2.0, 3.0, 4.0]

    def relative(base, cand):
        return None if base == 0 else (cand - base) / base

    first = stats.bootstrap(x, y, stats.mean, relative, 500, random.Random(1))
    assert first == stats.bootstrap(x, y, stats.mean, relative, 500, random.Random(1))
    assert 0 < len(first) < 500  # resamples of x with mean 0 are left out
    assert all(value > 0 for value in first)
