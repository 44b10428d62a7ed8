"""Window statistics: exact percentiles up to 1 h, histogram percentiles for 24 h and 7 d."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from nrtsync.domain.latency import DEFAULT_RELATIVE_ERROR, LatencyHistogram, percentiles
from nrtsync.observability.names import ALL_OBJECT_TYPES
from nrtsync.ports.metrics import HourRollup, MinuteSummary, RecordCounts


class LatencyDistribution(Protocol):
    @property
    def count(self) -> int: ...

    def percentiles(self, pcts: Sequence[int]) -> dict[int, float | None]: ...


@dataclass(slots=True)
class ExactLatencies:
    """Every value of a short window: percentiles by the rule, no approximation."""

    values: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.values)

    def percentiles(self, pcts: Sequence[int]) -> dict[int, float | None]:
        return percentiles(self.values, pcts)


@dataclass(slots=True)
class WindowStats:
    """One window's figures for one object type (or all of them)."""

    counts: RecordCounts
    sync: LatencyDistribution
    e2e: LatencyDistribution


def exact_window(summaries: Iterable[MinuteSummary]) -> dict[str, WindowStats]:
    """Per object type and ``All``: counts and exact latencies of the given minute summaries."""
    counts: dict[str, RecordCounts] = {ALL_OBJECT_TYPES: RecordCounts()}
    sync: dict[str, ExactLatencies] = {ALL_OBJECT_TYPES: ExactLatencies()}
    e2e: dict[str, ExactLatencies] = {ALL_OBJECT_TYPES: ExactLatencies()}
    for summary in summaries:
        for key in (summary.object_type, ALL_OBJECT_TYPES):
            counts[key] = counts.get(key, RecordCounts()) + summary.counts
            sync.setdefault(key, ExactLatencies()).values.extend(summary.sync_ms)
            e2e.setdefault(key, ExactLatencies()).values.extend(summary.e2e_ms)
    return {key: WindowStats(counts=counts[key], sync=sync[key], e2e=e2e[key]) for key in counts}


@dataclass(slots=True)
class _Partial:
    counts: RecordCounts
    sync: LatencyHistogram
    e2e: LatencyHistogram

    @classmethod
    def empty(cls, relative_error: float) -> _Partial:
        return cls(RecordCounts(), LatencyHistogram(relative_error), LatencyHistogram(relative_error))

    def add(self, other: _Partial) -> None:
        self.counts = self.counts + other.counts
        self.sync.merge(other.sync)
        self.e2e.merge(other.e2e)


def histogram_windows(
    rollups: Iterable[HourRollup],
    summaries: Iterable[MinuteSummary],
    first_hours: Mapping[str, datetime],
    relative_error: float = DEFAULT_RELATIVE_ERROR,
) -> dict[str, dict[str, WindowStats]]:
    """Nested windows that all end now: per window label, per object type and ``All``, the hourly rollups
    from the window's first hour merged with the minutes not rolled yet (``summaries``).

    Each rollup is merged once, into the segment between two window starts; a longer window is the next
    shorter one plus its own segment, so 7 d costs little more than 24 h.
    """
    labels = sorted(first_hours, key=lambda label: first_hours[label], reverse=True)  # shortest first
    segments: list[dict[str, _Partial]] = [{} for _ in labels]
    for rollup in rollups:
        index = next((n for n, label in enumerate(labels) if rollup.hour >= first_hours[label]), None)
        if index is None:
            continue
        partial = segments[index].setdefault(rollup.object_type, _Partial.empty(relative_error))
        partial.counts = partial.counts + rollup.counts
        partial.sync.merge(rollup.sync)
        partial.e2e.merge(rollup.e2e)
    running: dict[str, _Partial] = {}
    for summary in summaries:
        partial = running.setdefault(summary.object_type, _Partial.empty(relative_error))
        partial.counts = partial.counts + summary.counts
        partial.sync.extend(summary.sync_ms)
        partial.e2e.extend(summary.e2e_ms)
    result: dict[str, dict[str, WindowStats]] = {}
    for label, segment in zip(labels, segments, strict=True):
        for object_type, partial in segment.items():
            running.setdefault(object_type, _Partial.empty(relative_error)).add(partial)
        everything = _Partial.empty(relative_error)
        stats: dict[str, WindowStats] = {}
        for object_type, partial in running.items():
            everything.add(partial)
            # a snapshot: the running totals keep growing for the longer windows
            stats[object_type] = WindowStats(
                counts=partial.counts,
                sync=LatencyHistogram.merged([partial.sync], relative_error),
                e2e=LatencyHistogram.merged([partial.e2e], relative_error),
            )
        stats[ALL_OBJECT_TYPES] = WindowStats(counts=everything.counts, sync=everything.sync, e2e=everything.e2e)
        result[label] = stats
    return result
