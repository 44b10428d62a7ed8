"""ZOQL from the mapping, and Zuora query records as the canonical changes the callout path produces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from nrtsync.domain.mapping import MappingError, load_mapping
from nrtsync.domain.models.callout import Callout, QueuedChange
from nrtsync.domain.zoql import (
    RECONCILE_SOURCE,
    change_from_record,
    change_source,
    changes_query,
    queried_fields,
)
from nrtsync.ports.zuora import QueryPage

MAPPING = load_mapping()
SINCE = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def test_the_query_selects_id_updated_date_and_every_mapped_and_parent_field_of_the_object() -> None:
    # Given the default mapping's Subscription (mapped fields, a parent id, an inherited field)
    # When its query is built for a window
    zoql = changes_query(MAPPING, "Subscription", SINCE, UNTIL)

    # Then it selects Id, UpdatedDate, the mapped fields (Name: the subscription number) and the parent id, not
    # the inherited CrmId, and only the current version of each subscription
    fields = ", ".join(["Id", "UpdatedDate", *MAPPING.objects["Subscription"].fields, "AccountId"])
    where = "where UpdatedDate >= '2026-11-30T10:00:00+00:00' and UpdatedDate < '2026-11-30T10:15:00+00:00'"
    assert zoql == " ".join(["select", fields, "from Subscription", where, "and Status != 'Expired'"])
    assert "CrmId" not in zoql
    assert "order by" not in zoql.lower()  # ZOQL has no ORDER BY


def test_an_open_ended_query_has_only_the_lower_bound_and_bounds_are_written_in_utc() -> None:
    since = datetime(2026, 11, 30, 2, 0, tzinfo=timezone(timedelta(hours=-8)))

    zoql = changes_query(MAPPING, "Account", since)

    assert zoql.endswith("from Account where UpdatedDate >= '2026-11-30T10:00:00+00:00'")


@pytest.mark.parametrize(
    ("object_type", "since", "until", "message"),
    [
        ("Widget", SINCE, None, "not mapped"),
        ("Account", SINCE.replace(tzinfo=None), None, "timezone-aware"),
        ("Account", SINCE, SINCE, "until must be after since"),
    ],
)
def test_a_query_that_cannot_be_right_is_refused(
    object_type: str, since: datetime, until: datetime | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        changes_query(MAPPING, object_type, since, until)


def test_a_record_becomes_the_change_a_callout_with_the_same_values_would_queue() -> None:
    # Given a query record as Zuora answers it: null fields left out, numbers and booleans as JSON
    record = {
        "Id": "8a8082c45aa81b51015ab4ad4bb42a41",
        "UpdatedDate": "2026-11-30T02:05:00.000-08:00",
        "Name": "Acme",
        "Balance": 12.5,
        "AutoPay": True,
    }

    # When it is turned into a change
    change = change_from_record(MAPPING, "Account", record, received_at=NOW)

    # Then its fields are those a callout of the same record would carry, absent ones as null (cleared)
    callout = Callout.model_validate(
        {
            "objectType": "Account",
            "id": record["Id"],
            "updatedDate": record["UpdatedDate"],
            "fields": {name: record.get(name) for name in queried_fields(MAPPING, "Account")[2:]},
        }
    )
    expected = QueuedChange.from_callout(
        callout, notification_id=change.notification_id, request_id=None, received_at=NOW
    )
    assert change == expected
    assert change.updated_date == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    assert change.fields["Status"] is None
    assert set(change.fields) == set(MAPPING.objects["Account"].fields)
    # And it is marked as read from Zuora's API, with an id stable for the same record version
    assert change_source(change) == RECONCILE_SOURCE
    assert change.notification_id == f"reconcile:Account:{record['Id']}:2026-11-30T10:05:00+00:00"
    assert change_from_record(MAPPING, "Account", record, received_at=NOW + timedelta(hours=1)).notification_id == (
        change.notification_id
    )


def test_a_change_from_a_callout_is_not_marked_as_reconciled() -> None:
    callout = Callout.model_validate({"objectType": "Account", "id": "A1", "updatedDate": "2026-11-30T10:00:00Z"})
    change = QueuedChange.from_callout(callout, notification_id="n-1", request_id=None, received_at=NOW)
    assert change_source(change) != RECONCILE_SOURCE


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"UpdatedDate": "2026-11-30T10:00:00Z"}, "no Id"),
        ({"Id": "A1"}, "no UpdatedDate"),
        ({"Id": "A1", "UpdatedDate": "11/30/2026 10:00"}, "ambiguous"),
        ({"Id": "A1", "UpdatedDate": "2026-11-30T10:00:00"}, "no offset"),
    ],
)
def test_a_record_that_cannot_be_read_is_a_mapping_error_naming_what_is_wrong(
    record: dict[str, object], message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        change_from_record(MAPPING, "Account", record, received_at=NOW)


class _PagedZuora:
    """A ZuoraPort over fixed pages: records what it was asked."""

    def __init__(self, pages: list[QueryPage]) -> None:
        self._pages = pages
        self.calls: list[tuple[str, str]] = []

    def query(self, zoql: str) -> QueryPage:
        self.calls.append(("query", zoql))
        return self._pages[0]

    def query_more(self, query_locator: str) -> QueryPage:
        self.calls.append(("queryMore", query_locator))
        return self._pages[int(query_locator)]
