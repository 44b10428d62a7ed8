"""The one module that knows the tables' keys and item shapes: what the sync function writes, the metrics
function and the operator tools read back the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from nrtsync.adapters.aws.tables import (
    api_usage_item,
    api_usage_of,
    hour_key,
    minute_pk,
    parse_hour_key,
    parse_minute_key,
    plain_item,
    to_item,
)
from nrtsync.ports.metrics import minute_key
from nrtsync.ports.salesforce import ApiUsage


def test_minute_and_hour_keys_are_utc_and_read_back() -> None:
    # Given a moment in another time zone
    moment = datetime(2026, 3, 1, 1, 30, 45, tzinfo=timezone(timedelta(hours=2)))

    # When / Then its keys name the UTC minute and hour, and parse back to them
    assert minute_key(moment) == "2026-02-28T23:30"
    assert minute_pk(moment) == "MINUTE#2026-02-28T23:30"
    assert hour_key(moment) == "2026-02-28T23"
    assert parse_minute_key(minute_key(moment)) == datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert parse_hour_key(hour_key(moment)) == datetime(2026, 2, 28, 23, tzinfo=UTC)


def test_items_convert_both_ways_with_readable_numbers() -> None:
    # Given a plain item with an int, a float and a list of latencies
    plain = {"pk": "MINUTE#x", "written": 3, "ratio": 0.123456, "sync_ms": [12, 40], "ok": True}

    # When it is written as a DynamoDB item and read back
    back = plain_item(to_item(plain))

    # Then numbers come back as int or float (floats rounded to 4 places), never Decimal
    assert back == {"pk": "MINUTE#x", "written": 3, "ratio": 0.1235, "sync_ms": [12, 40], "ok": True}
    assert type(back["written"]) is int


def test_the_api_usage_item_reads_back_as_the_same_usage() -> None:
    usage = ApiUsage(used=7, limit=0, observed_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert api_usage_of(api_usage_item(usage)) == usage
    assert api_usage_item(usage)["percent"] == {"N": "100.00"}
