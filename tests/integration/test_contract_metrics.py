"""One contract, two implementations: the metrics run's in-memory history and DynamoMetricsHistory on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nrtsync.adapters.aws.history_reader import DynamoMetricsHistory
from nrtsync.ports.metrics import HourRollup, MinuteSummary, RecordCounts
from nrtsync_fakes.metrics import FakeHistory
from tests.support.sync_world import HISTORY_TABLE

HOUR = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "moto"])
def history(request: pytest.FixtureRequest) -> FakeHistory | DynamoMetricsHistory:
    if request.param == "fake":
        return FakeHistory()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoMetricsHistory(HISTORY_TABLE, client=dynamodb)


def test_the_watermark_moves_only_from_where_the_caller_saw_it(history) -> None:
    # Given no publication yet
    assert history.distribution_watermark() is None
    first, second = HOUR, HOUR + timedelta(minutes=5)

    # When two runs both saw no watermark, only the first moves it
    assert history.advance_watermark(None, first) is True
    assert history.advance_watermark(None, second) is False

    # And a run that saw the first watermark moves it on
    assert history.advance_watermark(first, second) is True
    assert history.advance_watermark(first, second + timedelta(minutes=5)) is False
    assert history.distribution_watermark() == second


def test_written_rollups_are_read_back_for_their_hour_only(history) -> None:
    # Given an hour's rollups, from two sessions' minutes
    minutes = [
        MinuteSummary(
            HOUR + timedelta(minutes=1), "Account", "s1", RecordCounts(written=3), (50.0, 78.0, 25.0), (90.0,)
        ),
        MinuteSummary(HOUR + timedelta(minutes=2), "Invoice", "s2", RecordCounts(written=1, failed=1), (9.0,), (12.0,)),
    ]
    rollups = HourRollup.from_minutes(HOUR, minutes)

    # When they are written
    history.write_rollups(HOUR, rollups, skipped=0, expires_at=2_000_000_000)

    # Then the hour is rolled with the same rollups, and the hours around it are not
    found = history.rolled_hours(HOUR - timedelta(hours=1), HOUR + timedelta(hours=1))
    assert found.hours == frozenset({HOUR})
    assert sorted(found.rollups, key=lambda r: r.object_type) == [rollups["Account"], rollups["Invoice"]]
    assert history.rolled_hours(HOUR + timedelta(hours=1), HOUR + timedelta(hours=2)).hours == frozenset()
