"""Latency percentiles, exactly as the product defines them, and a mergeable histogram for long windows.

The rule (from the product brief): sort ascending, skip the first ``pct``% of the values and take the next
one, i.e. ``sorted[n * pct // 100]`` (0-based), clamped to the last value. The index is computed with
integers because ``floor(0.57 * 100)`` is 56 in floating point. This is neither nearest-rank nor numpy's
default interpolation. Every percentile the product shows goes through :func:`percentile_index`.

For windows too long to keep every value (24 h, 7 days), :class:`LatencyHistogram` keeps sparse counts in
log-spaced buckets. A bucket ``k`` holds the values in ``(gamma**(k-1), gamma**k]`` with
``gamma = (1 + a) / (1 - a)`` and reports ``2 * gamma**k / (gamma + 1)``, which is within a relative error
``a`` of every value in the bucket. The same rule applied to the bucketed distribution picks the bucket
that holds the exact answer, so a histogram percentile is within ``a`` of the exact percentile.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Self

DEFAULT_RELATIVE_ERROR: Final = 0.01
MAX_LATENCY_MS: Final = 1e12
"""About 31 years: no real latency comes near it, and CloudWatch accepts every value below it."""
_PAIR_BYTES: Final = 8  # one int32 bucket index + one int32 count


class HistogramFormatError(ValueError):
    """Stored histogram bytes cannot be decoded (the item is malformed)."""


def _check_pct(pct: int) -> None:
    # bool is an int subclass; True as a percentile is a bug, not 1%.
    if isinstance(pct, bool) or not isinstance(pct, int):
        raise TypeError(f"pct must be an int in 0..100 (got {pct!r}); float percentiles are not accepted")
    if not 0 <= pct <= 100:
        raise ValueError(f"pct must be in 0..100 (got {pct})")


def percentile_index(n: int, pct: int) -> int:
    """The 0-based index the rule picks among ``n`` sorted values: ``min(n * pct // 100, n - 1)``."""
    _check_pct(pct)
    if n <= 0:
        raise ValueError("no values: a percentile of nothing is undefined")
    return min(n * pct // 100, n - 1)


def percentile[T: (int, float)](values: Iterable[T], pct: int) -> T | None:
    """The ``pct`` percentile of ``values`` by the product's rule; None when there are no values."""
    _check_pct(pct)
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[percentile_index(len(ordered), pct)]


def percentiles[T: (int, float)](values: Iterable[T], pcts: Sequence[int]) -> dict[int, T | None]:
    """Several percentiles of the same values, sorting once; every value None when there are no values."""
    for pct in pcts:
        _check_pct(pct)
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(pcts)
    return {pct: ordered[percentile_index(len(ordered), pct)] for pct in pcts}


class LatencyHistogram:
    """Sparse log-bucketed counts of latencies (ms); merging is exact, percentiles are within ``relative_error``.

    Values <= 0 (an end-to-end latency can be slightly negative when Zuora's clock is ahead of ours) are
    counted in a zero bucket that reports 0.
    """

    __slots__ = ("_buckets", "_gamma", "_log_gamma", "relative_error", "zero_count")

    def __init__(self, relative_error: float = DEFAULT_RELATIVE_ERROR) -> None:
        if not 0 < relative_error < 1:
            raise ValueError("relative_error must be in (0, 1)")
        self.relative_error = relative_error
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self.zero_count = 0

    # -- building -------------------------------------------------------------------------------------
    def bucket_of(self, value: float) -> int:
        """The index ``k`` of the bucket ``(gamma**(k-1), gamma**k]`` that holds a positive value."""
        return math.ceil(math.log(value) / self._log_gamma)

    def representative(self, index: int) -> float:
        """The value a bucket reports: within ``relative_error`` of everything in it."""
        return 2 * math.exp(index * self._log_gamma) / (self._gamma + 1)

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` ``count`` times."""
        if count < 0:
            raise ValueError("count must be >= 0")
        if count == 0:
            return
        if value <= 0:
            self.zero_count += count
            return
        index = self.bucket_of(value)
        self._buckets[index] = self._buckets.get(index, 0) + count

    def extend(self, values: Iterable[float]) -> None:
        """Count every value once."""
        buckets = self._buckets
        log_gamma = self._log_gamma
        for value in values:
            if value <= 0:
                self.zero_count += 1
                continue
            index = math.ceil(math.log(value) / log_gamma)
            buckets[index] = buckets.get(index, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this histogram (exact: no error is introduced by merging)."""
        if other.relative_error != self.relative_error:
            raise ValueError("cannot merge histograms with different relative errors")
        buckets = self._buckets
        for index, count in other._buckets.items():
            buckets[index] = buckets.get(index, 0) + count
        self.zero_count += other.zero_count

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram], relative_error: float = DEFAULT_RELATIVE_ERROR) -> Self:
        """A new histogram holding the counts of all ``histograms``."""
        result = cls(relative_error)
        for histogram in histograms:
            result.merge(histogram)
        return result

    # -- reading --------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """How many values were counted."""
        return self.zero_count + sum(self._buckets.values())

    @property
    def buckets(self) -> Mapping[int, int]:
        """Bucket index -> count (positive values only); read-only view for tests and storage."""
        return dict(self._buckets)

    def percentile(self, pct: int) -> float | None:
        """The rule applied to the bucketed distribution, reported as the bucket's representative value."""
        _check_pct(pct)
        total = self.count
        if total == 0:
            return None
        rank = percentile_index(total, pct)
        if rank < self.zero_count:
            return 0.0
        seen = self.zero_count
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if rank < seen:
                return self.representative(index)
        raise AssertionError("unreachable: rank is below the total count")  # pragma: no cover

    def percentiles(self, pcts: Sequence[int]) -> dict[int, float | None]:
        """Several percentiles of the bucketed distribution."""
        return {pct: self.percentile(pct) for pct in pcts}

    # -- storage --------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact little-endian int32 (index, count) pairs sorted by index; the zero count is stored apart."""
        pairs = array("i")
        for index in sorted(self._buckets):
            pairs.append(index)
            pairs.append(self._buckets[index])
        if sys.byteorder == "big":  # pragma: no cover - Lambda is little-endian
            pairs.byteswap()
        return pairs.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, zero_count: int = 0, relative_error: float = DEFAULT_RELATIVE_ERROR) -> Self:
        """The histogram :meth:`to_bytes` wrote; raises HistogramFormatError on anything else."""
        if len(data) % _PAIR_BYTES or zero_count < 0:
            raise HistogramFormatError("histogram bytes are not whole (index, count) pairs")
        pairs = array("i")
        pairs.frombytes(data)
        if sys.byteorder == "big":  # pragma: no cover
            pairs.byteswap()
        histogram = cls(relative_error)
        indexes, counts = pairs[0::2], pairs[1::2]
        if any(c <= 0 for c in counts):
            raise HistogramFormatError("histogram counts must be positive")
        # A bucket beyond any plausible latency can only come from a corrupt item, and its representative
        # would overflow math.exp: refuse it here so the item is skipped instead of failing every run.
        limit = histogram.bucket_of(MAX_LATENCY_MS)
        if any(i > limit for i in indexes):
            raise HistogramFormatError("histogram has a bucket beyond any plausible latency")
        buckets = dict(zip(indexes, counts, strict=True))
        if len(buckets) != len(indexes):
            raise HistogramFormatError("histogram has a bucket twice")
        histogram._buckets = buckets
        histogram.zero_count = zero_count
        return histogram

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            self.relative_error == other.relative_error
            and self.zero_count == other.zero_count
            and self._buckets == other._buckets
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, buckets={len(self._buckets)}, a={self.relative_error})"
