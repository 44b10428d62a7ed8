"""The percentile rule (sorted[n * pct // 100], clamped) and the mergeable histogram behind 24h/7d."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nrtsync.domain.latency import (
    HistogramFormatError,
    LatencyHistogram,
    percentile,
    percentile_index,
    percentiles,
)

latencies = st.lists(st.integers(min_value=0, max_value=86_400_000), min_size=1, max_size=300)
positive_latencies = st.lists(
    st.floats(min_value=0.001, max_value=1e9, allow_nan=False, allow_infinity=False), min_size=1, max_size=300
)
pcts = st.integers(min_value=0, max_value=100)


def reference_percentile(values: list[int], pct: int) -> int:
    """Count-based definition: the result r has exactly floor(n * pct / 100) values before it in sorted
    order (clamped to the last), with the floor taken on exact rationals, never on floats."""
    ordered = sorted(values)
    skip = math.floor(Fraction(len(ordered) * pct, 100))
    return ordered[min(skip, len(ordered) - 1)]


def test_brief_example() -> None:
    # Given the seed's latencies
    values = [50, 78, 25, 90, 102, 68]
    # Then P50 skips 3 of the 6 sorted values and P90 skips 5
    assert percentile(values, 50) == 78
    assert percentile(values, 90) == 102
    assert percentiles(values, [50, 90]) == {50: 78, 90: 102}


def test_single_value_is_every_percentile() -> None:
    assert [percentile([42], p) for p in (0, 1, 50, 99, 100)] == [42] * 5


def test_pct_0_is_the_minimum_and_100_is_clamped_to_the_maximum() -> None:
    values = [5, 1, 3, 2, 4]
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 5  # index 5 would be past the end: clamped
    assert percentile_index(5, 100) == 4


def test_not_nearest_rank() -> None:
    # nearest-rank P50 of 4 values is the 2nd (index 1); the rule skips 2 and takes index 2
    assert percentile([1, 2, 3, 4], 50) == 3


def test_integer_arithmetic_avoids_the_float_trap() -> None:
    # floor(0.57 * 100) == 56 in floating point; the rule must skip 57 of 100 values
    assert math.floor(0.57 * 100) == 56
    assert percentile(list(range(100)), 57) == 57
    assert percentile_index(100, 57) == 57


def test_empty_input_is_none() -> None:
    assert percentile([], 50) is None
    assert percentiles([], [50, 90]) == {50: None, 90: None}
    assert LatencyHistogram().percentile(50) is None
    with pytest.raises(ValueError, match="no values"):
        percentile_index(0, 50)


@pytest.mark.parametrize("pct", [0.57, 50.0, True, "50"])
def test_pct_must_be_an_int(pct: object) -> None:
    with pytest.raises(TypeError, match="pct must be an int"):
        percentile([1, 2, 3], pct)  # type: ignore[arg-type]


@pytest.mark.parametrize("pct", [-1, 101])
def test_pct_must_be_in_range(pct: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1, 2, 3], pct)


@given(values=latencies, pct=pcts)
def test_rule_matches_the_count_based_reference(values: list[int], pct: int) -> None:
    result = percentile(values, pct)
    assert result == reference_percentile(values, pct)
    # and exactly floor(n * pct / 100) values (clamped) sort before the chosen position
    ordered = sorted(values)
    index = ordered.index(result)  # first occurrence: at most `skip` values are strictly smaller
    skip = min(len(values) * pct // 100, len(values) - 1)
    assert sum(1 for v in values if v < result) == index <= skip
    assert sum(1 for v in values if v <= result) > skip


@given(n=st.integers(min_value=1, max_value=10_000), pct=pcts)
def test_index_is_exact_where_floats_are_not(n: int, pct: int) -> None:
    assert percentile_index(n, pct) == min(math.floor(Fraction(n * pct, 100)), n - 1)


@given(values=latencies, pct=pcts)
def test_percentiles_agree_with_percentile(values: list[int], pct: int) -> None:
    assert percentiles(values, [pct])[pct] == percentile(values, pct)


# -- histogram ------------------------------------------------------------------------------------------
def _histogram(values: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.extend(values)
    return histogram


@given(values=positive_latencies, pct=pcts)
def test_histogram_percentile_is_within_the_relative_error(values: list[float], pct: int) -> None:
    histogram = _histogram(values)
    exact = percentile(values, pct)
    approx = histogram.percentile(pct)
    assert exact is not None
    assert approx is not None
    assert abs(approx - exact) <= histogram.relative_error * exact * (1 + 1e-9)


@given(a=positive_latencies, b=positive_latencies, c=positive_latencies)
def test_merge_is_associative_and_commutative(a: list[float], b: list[float], c: list[float]) -> None:
    left = LatencyHistogram.merged([LatencyHistogram.merged([_histogram(a), _histogram(b)]), _histogram(c)])
    right = LatencyHistogram.merged([_histogram(a), LatencyHistogram.merged([_histogram(b), _histogram(c)])])
    swapped = LatencyHistogram.merged([_histogram(c), _histogram(a), _histogram(b)])
    assert left == right == swapped
    # and merging is exact: the same as counting everything in one histogram
    assert left == _histogram(a + b + c)


@given(values=st.lists(st.floats(min_value=-5_000, max_value=1e7, allow_nan=False), max_size=200))
def test_histogram_survives_storage(values: list[float]) -> None:
    histogram = _histogram(values)
    restored = LatencyHistogram.from_bytes(histogram.to_bytes(), zero_count=histogram.zero_count)
    assert restored == histogram
    assert restored.count == len(values)


def test_non_positive_latencies_count_as_zero() -> None:
    histogram = _histogram([-120.0, 0.0, 10.0, 20.0])
    assert histogram.zero_count == 2
    assert histogram.percentile(0) == 0.0
    assert histogram.percentile(50) == pytest.approx(10.0, rel=0.01)


def test_histogram_applies_the_rule_to_the_brief_example() -> None:
    histogram = _histogram([50, 78, 25, 90, 102, 68])
    assert histogram.percentile(50) == pytest.approx(78, rel=0.01)
    assert histogram.percentile(90) == pytest.approx(102, rel=0.01)


def test_merging_histograms_of_different_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="different relative errors"):
        LatencyHistogram(0.01).merge(LatencyHistogram(0.02))


@pytest.mark.parametrize("data", [b"\x01\x02\x03", (5).to_bytes(4, "little") + (0).to_bytes(4, "little")])
def test_corrupt_histogram_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(HistogramFormatError):
        LatencyHistogram.from_bytes(data)
