"""A callout's updatedDate without an offset is local time in the Zuora tenant's time zone, so a version from a
callout and one read from Zuora's API compare on the same instant."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from nrtsync.domain.mapping import coerce_value, load_mapping
from nrtsync.domain.models.callout import TENANT_TIME_ZONE, Callout, QueuedChange
from nrtsync.domain.zoql import change_from_record
from nrtsync.services.sweep.service import is_newer_than_settled

RECEIVED = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
TOKYO, LOS_ANGELES = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Los_Angeles")


def from_callout(updated: str, zone: ZoneInfo) -> QueuedChange:
    """The queued change of an account callout whose updatedDate Zuora rendered without an offset."""
    body = {"objectType": "Account", "id": "A1", "updatedDate": updated, "fields": {"Name": "Acme"}}
    callout = Callout.model_validate(body, context={"object_types": {"Account"}, TENANT_TIME_ZONE: zone})
    return QueuedChange.from_callout(callout, notification_id="n1", request_id=None, received_at=RECEIVED)


def from_api(updated: str) -> QueuedChange:
    """The change reconciliation reads for the account (ZOQL renders UpdatedDate with the tenant's offset)."""
    record = {"Id": "A1", "UpdatedDate": updated, "Name": "Acme"}
    return change_from_record(load_mapping(), "Account", record, source="reconcile", received_at=RECEIVED)


@pytest.mark.parametrize(
    ("zone", "offset"),
    [(TOKYO, "+09:00"), (LOS_ANGELES, "-08:00")],
)
def test_callout_and_api_versions_compare_on_the_same_instant(zone: ZoneInfo, offset: str) -> None:
    # Given an account written from its 09:00 callout (local time, no offset)
    written = from_callout("2026-12-01T09:00:00", zone)

    # When its 10:00 change's callout is lost and reconciliation reads it from the API
    lost = from_api(f"2026-12-01T10:00:00.000{offset}")

    # Then reconciliation sees it as newer than what was written, and queues it
    assert is_newer_than_settled(lost, written.version)

    # And the same 09:00 read from the API is what was written (in step: nothing to queue)
    assert not is_newer_than_settled(from_api(f"2026-12-01T09:00:00.000{offset}"), written.version)

    # And a live 11:00 callout after reconciliation wrote 10:00 is newer, never judged stale
    live = from_callout("2026-12-01T11:00:00", zone)
    assert live.version > lost.version


def test_an_updated_date_with_an_offset_is_taken_as_given() -> None:
    change = from_callout("2026-12-01T09:00:00-05:00", TOKYO)
    assert change.updated_date == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_a_datetime_goes_to_salesforce_with_an_offset_and_a_date_without() -> None:
    # A dateTime merge field without an offset is the tenant's local time; Salesforce gets it with the offset
    assert coerce_value("2024-03-05T10:25:48", "datetime", field="F", zone=LOS_ANGELES) == "2024-03-05T10:25:48-08:00"
    assert coerce_value("2024-03-05T10:25:48", "datetime", field="F") == "2024-03-05T10:25:48+00:00"
    assert coerce_value("2024-03-05T10:25:48+09:00", "datetime", field="F", zone=LOS_ANGELES) == (
        "2024-03-05T10:25:48+09:00"
    )
    # A date never carries one
    assert coerce_value("2024-03-05", "date", field="F", zone=TOKYO) == "2024-03-05"
