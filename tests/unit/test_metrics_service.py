"""The metrics run with in-memory fakes of the history, the API usage and CloudWatch (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nrtsync.ports.metrics import (
    HOUR,
    HourRollup,
    MetricsPublishError,
    MinuteSummary,
    RecordCounts,
    ceil_hour,
)
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.services.metrics.service import MetricsService, distribution_points
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync_fakes.metrics import FakeHistory, FakePublisher, FakeUsage

NOW = datetime(2025, 6, 2, 10, 37, 20, tzinfo=UTC)


def settings(**env: str) -> MetricsSettings:
    return MetricsSettings.from_env(
        {"SYNC_HISTORY_TABLE": "h", "SYNC_STATE_TABLE": "s", "POWERTOOLS_METRICS_NAMESPACE": "Ns", **env}
    )


def summary(minute: datetime, sync: list[float], object_type: str = "Account", session: str = "s1") -> MinuteSummary:
    return MinuteSummary(
        minute=minute,
        object_type=object_type,
        session_id=session,
        counts=RecordCounts(written=len(sync)),
        sync_ms=tuple(sync),
        e2e_ms=tuple(v + 1_000 for v in sync),
    )


def service(
    history: FakeHistory, publisher: FakePublisher, usage: ApiUsage | None = None, **env: str
) -> MetricsService:
    return MetricsService(settings(**env), history=history, api_usage=FakeUsage(usage), publisher=publisher)


def all_hours_rolled(history: FakeHistory) -> None:
    hour = ceil_hour(NOW - timedelta(days=7))
    while hour < NOW - HOUR:
        history.rolled.setdefault(hour, {})
        hour += HOUR


def test_empty_history_publishes_zero_counts_and_no_percentiles() -> None:
    # Given no history at all
    history, publisher = FakeHistory(), FakePublisher()
    all_hours_rolled(history)
    # When
    result = service(history, publisher).run(NOW)
    # Then every window says 0 records for All, and no percentile is invented
    for window in ("5m", "1h", "24h", "7d"):
        assert publisher.value("RecordsSyncedInWindow", Window=window, ObjectType="All") == 0
        assert publisher.value("SyncLatencyCount", Window=window, ObjectType="All") == 0
        assert publisher.value("SyncLatencyP50", Window=window, ObjectType="All") is None
    assert result.object_types == ()


def test_the_brief_example_through_the_5m_window() -> None:
    history = FakeHistory([summary(datetime(2025, 6, 2, 10, 35, tzinfo=UTC), [50, 78, 25, 90, 102, 68])])
    publisher = FakePublisher()
    all_hours_rolled(history)
    service(history, publisher, WINDOW_METRICS_BY_OBJECT_TYPE="true").run(NOW)
    assert publisher.value("SyncLatencyP50", Window="5m", ObjectType="All") == 78
    assert publisher.value("SyncLatencyP90", Window="5m", ObjectType="Account") == 102
    assert publisher.value("EndToEndLatencyP50", Window="1h", ObjectType="All") == 1_078


def test_window_metrics_are_for_all_object_types_together_unless_asked_per_type() -> None:
    # Issue 13: each object type's window metrics are 44 custom metrics billed per month; the SLO alarms and
    # the dashboard read ObjectType=All only. Per object type, the raw distributions stay published.
    minute = datetime(2025, 6, 2, 10, 35, tzinfo=UTC)
    history = FakeHistory(
        [summary(minute, [50, 78, 25]), summary(minute, [9, 12], object_type="Invoice", session="s2")]
    )
    all_hours_rolled(history)
    default, per_type = FakePublisher(), FakePublisher()
    result = service(history, default).run(NOW)
    service(history, per_type, WINDOW_METRICS_BY_OBJECT_TYPE="true").run(NOW)
    window_names = {"SyncLatencyP50", "SyncLatencyCount", "RecordsSyncedInWindow", "EndToEndLatencyP90"}
    default_types = {dict(p.dimensions)["ObjectType"] for p in default.points if p.name in window_names}
    per_type_types = {dict(p.dimensions)["ObjectType"] for p in per_type.points if p.name in window_names}
    assert default_types == {"All"}
    assert per_type_types == {"All", "Account", "Invoice"}
    assert default.value("SyncLatencyP50", Window="5m", ObjectType="All") == 25
    assert result.object_types == ("Account", "Invoice")  # still reported in the run's log line


def test_first_deployment_rolls_a_bounded_number_of_hours_newest_first() -> None:
    # Given a 7-day window with no rollups yet
    history, publisher = FakeHistory(), FakePublisher()
    # When
    result = service(history, publisher, ROLLUP_MAX_HOURS_PER_RUN="5").run(NOW)
    # Then the 5 newest closed hours are rolled and the rest are reported, not read
    assert result.hours_rolled == 5
    assert result.hours_not_rolled == 167 - 5
    assert max(history.rolled) == datetime(2025, 6, 2, 9, tzinfo=UTC)  # 10:37 - 15 min lag - 1 h
    assert history.minute_reads == 5 * 60 + 60  # the rolled hours + the recent minutes (09:37..10:36)


def test_the_24h_window_starts_at_the_first_whole_hour_inside_it() -> None:
    inside = datetime(2025, 6, 1, 11, 0, tzinfo=UTC)
    outside = datetime(2025, 6, 1, 10, 59, tzinfo=UTC)
    history = FakeHistory([summary(inside, [1_000]), summary(outside, [2_000, 3_000])])
    publisher = FakePublisher()
    all_hours_rolled(history)
    history.rolled.pop(datetime(2025, 6, 1, 11, tzinfo=UTC))
    history.rolled.pop(datetime(2025, 6, 1, 10, tzinfo=UTC))
    service(history, publisher).run(NOW)
    assert publisher.value("RecordsSyncedInWindow", Window="24h", ObjectType="All") == 1
    assert publisher.value("RecordsSyncedInWindow", Window="7d", ObjectType="All") == 3


def test_api_usage_is_published_only_when_fresh() -> None:
    history = FakeHistory()
    all_hours_rolled(history)
    fresh, stale, none = FakePublisher(), FakePublisher(), FakePublisher()
    service(history, fresh, ApiUsage(used=932, limit=1000, observed_at=NOW - timedelta(minutes=3))).run(NOW)
    service(history, stale, ApiUsage(used=932, limit=1000, observed_at=NOW - timedelta(hours=1))).run(NOW)
    service(history, none, None).run(NOW)
    assert fresh.value("ApiUsagePercent") == 93.2
    assert stale.value("ApiUsagePercent") is None
    assert none.value("ApiUsagePercent") is None


def test_a_failed_distribution_publication_gives_the_minutes_back() -> None:
    minute = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    history = FakeHistory([summary(minute, [100, 200])])
    all_hours_rolled(history)
    history.watermark = datetime(2025, 6, 2, 10, 20, tzinfo=UTC)
    with pytest.raises(MetricsPublishError):
        service(history, FakePublisher(fail=True)).run(NOW)
    assert history.watermark == datetime(2025, 6, 2, 10, 20, tzinfo=UTC)
    # and the next run publishes them
    publisher = FakePublisher()
    result = service(history, publisher).run(NOW)
    assert result.distribution_minutes_published == 14  # 10:21..10:34
    assert history.watermark == datetime(2025, 6, 2, 10, 34, tzinfo=UTC)
    assert sorted(v for p in publisher.points if p.name == "SyncLatency" for v in p.values) == [100, 100, 200, 200]


def test_minutes_claimed_by_another_run_are_not_published() -> None:
    history = FakeHistory([summary(datetime(2025, 6, 2, 10, 30, tzinfo=UTC), [100])])
    all_hours_rolled(history)
    history.watermark = datetime(2025, 6, 2, 10, 20, tzinfo=UTC)
    history.advance_watermark = lambda expected, new: False  # type: ignore[method-assign]
    publisher = FakePublisher()
    result = service(history, publisher).run(NOW)
    assert result.distribution_minutes_published == 0
    assert not [p for p in publisher.points if p.values]


def test_distribution_points_group_values_with_counts() -> None:
    minute = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    points = distribution_points(
        minute, [summary(minute, [5, 5, 7]), summary(minute, [5, 9], object_type="Invoice", session="s2")]
    )
    sync_all = next(p for p in points if p.name == "SyncLatency" and dict(p.dimensions) == {"ObjectType": "All"})
    assert sync_all.values == (5, 7, 9)
    assert sync_all.counts == (3.0, 1.0, 1.0)
    assert sync_all.timestamp == minute
    assert {dict(p.dimensions)["ObjectType"] for p in points} == {"All", "Account", "Invoice"}


def test_rollups_are_deterministic() -> None:
    hour = datetime(2025, 6, 2, 8, tzinfo=UTC)
    summaries = [summary(hour + timedelta(minutes=i), [i * 10.0 + 1, i * 7.0 + 3]) for i in range(60)]
    once = HourRollup.from_minutes(hour, summaries)
    again = HourRollup.from_minutes(hour, list(reversed(summaries)))
    assert once == again
    assert once["Account"].counts.written == 120
    assert once["Account"].minute_items == 60


def test_overlapping_runs_count_nothing_twice() -> None:
    # docs/METRICS.md: no reserved concurrency, because two runs in one minute (EventBridge's at-least-once
    # delivery, Lambda's async retries) publish each minute's raw values once and the same window values.
    minute = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    rolled_hour = datetime(2025, 6, 2, 8, tzinfo=UTC)
    history = FakeHistory(
        [summary(minute, [100, 200]), *(summary(rolled_hour + timedelta(minutes=i), [50.0 + i]) for i in range(60))]
    )
    all_hours_rolled(history)
    del history.rolled[rolled_hour]
    rolled_before, watermark_before = dict(history.rolled), history.watermark
    first, second = FakePublisher(), FakePublisher()

    service(history, first).run(NOW)
    rollups_after_first = dict(history.rolled)
    # The second run read the history before the first wrote anything: it rolls the same hour again and
    # tries to claim the same minutes from the same watermark.
    history.rolled = dict(rolled_before)
    history.distribution_watermark = lambda: watermark_before  # type: ignore[method-assign]
    service(history, second).run(NOW)

    raw = [
        v
        for publisher in (first, second)
        for p in publisher.points
        if p.name == "SyncLatency" and p.dimension("ObjectType") == "All"
        for v in p.values
    ]
    assert sorted(raw) == [100, 200]
    assert [p for p in second.points if p.values] == []
    assert history.rolled == rollups_after_first
    windowed = [
        {(p.name, p.dimensions, p.timestamp, p.value) for p in publisher.points if not p.values}
        for publisher in (first, second)
    ]
    assert windowed[0] == windowed[1]
    assert windowed[0]


def test_a_run_near_its_deadline_leaves_the_hours_it_cannot_roll_for_the_next_run() -> None:
    # Given a week of history with no hour rolled up yet, and an invocation with 10 s left (under the margin kept
    # for publishing)
    history, publisher = FakeHistory(), FakePublisher()
    metrics = MetricsService(
        settings(), history=history, api_usage=FakeUsage(None), publisher=publisher, monotonic=lambda: 100.0
    )

    # When it runs
    result = metrics.run(NOW, deadline=110.0)

    # Then it rolls nothing, says how many hours wait, and still publishes the windows
    assert result.hours_rolled == 0
    assert result.hours_not_rolled > 0
    assert history.rolled == {}
    assert publisher.points
