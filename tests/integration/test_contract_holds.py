"""One contract, two implementations: the in-memory hold store and DynamoHoldStore on moto answer alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from nrtsync.adapters.aws.holds import DynamoHoldStore
from nrtsync_fakes.holds import MemoryHoldStore
from tests.support.sync_world import STATE_TABLE, T0, change


@pytest.fixture(params=["fake", "moto"])
def holds(request: pytest.FixtureRequest) -> MemoryHoldStore | DynamoHoldStore:
    if request.param == "fake":
        return MemoryHoldStore()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoHoldStore(STATE_TABLE, client=dynamodb)


def test_held_changes_are_filed_under_their_account_and_only_the_newest_of_a_record_stays(holds: Any) -> None:
    # Given two invoices held under A1, and an older change of one of them held late
    newer = change("Invoice", "I1", updated=T0 + timedelta(minutes=1), InvoiceNumber="new", AccountId="A1")
    other = change("Invoice", "I2", updated=T0, InvoiceNumber="I2", AccountId="A1")
    holds.hold("Account#A1", newer)
    holds.hold("Account#A1", other)
    holds.hold("Account#A1", change("Invoice", "I1", updated=T0, InvoiceNumber="old", AccountId="A1"))

    # Then A1 has them, A2 nothing, and the newer I1 is the one kept
    assert holds.held_accounts(["Account#A1", "Account#A2"]) == {"Account#A1"}
    kept = holds.held_changes(["Account#A1", "Account#A2"])
    assert sorted(kept) == ["Account#A1"]
    assert sorted(kept["Account#A1"], key=lambda c: c.record_id) == [newer, other]


def test_a_drop_removes_only_the_version_it_names(holds: Any) -> None:
    older = change("Invoice", "I1", updated=T0, InvoiceNumber="old", AccountId="A1")
    newer = change("Invoice", "I1", updated=T0 + timedelta(minutes=1), InvoiceNumber="new", AccountId="A1")
    holds.hold("Account#A1", older)
    holds.hold("Account#A1", newer)

    # When the older version is dropped (a session released it while the newer one was held)
    holds.drop("Account#A1", older)

    # Then the newer one stays held, until it is dropped itself
    assert holds.held_changes(["Account#A1"]) == {"Account#A1": [newer]}
    holds.drop("Account#A1", newer)
    assert holds.held_accounts(["Account#A1"]) == set()
    assert holds.held_changes(["Account#A1"]) == {}
