"""One contract, two implementations: the in-memory version store and DynamoVersionStore on moto answer alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.state import ClaimStatus
from nrtsync_fakes.state import InMemoryVersionStore
from tests.support.sync_world import STATE_TABLE

KEY = "Account#A1"


@pytest.fixture(params=["fake", "moto"])
def store(request: pytest.FixtureRequest) -> InMemoryVersionStore | DynamoVersionStore:
    if request.param == "fake":
        return InMemoryVersionStore()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoVersionStore(STATE_TABLE, client=dynamodb)


def later(seconds: float = 60) -> int:
    return int((time.time() + seconds) * 1000)


def test_a_claimed_and_committed_version_is_settled_with_its_salesforce_id_and_kept_values(store) -> None:
    # Given a record nobody has written
    claim = store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())

    # When its owner commits it
    committed = store.commit(KEY, "v1", "h1", owner="a", salesforce_id="001A", kept={"CrmId": "0015", "Gone": None})

    # Then the claim and the commit succeeded and the store answers for the record
    assert claim.status is ClaimStatus.CLAIMED
    assert committed is True
    assert store.salesforce_ids([KEY, "Account#none"]) == {KEY: "001A"}
    assert store.kept_values([KEY]) == {KEY: {"CrmId": "0015", "Gone": None}}
    assert store.settled_versions([KEY]) == {KEY: "v1"}


def test_the_same_change_again_is_a_duplicate_and_an_older_version_is_stale(store) -> None:
    # Given v2 written
    store.claim(KEY, "v2", "h2", owner="a", lease_until_ms=later())
    store.commit(KEY, "v2", "h2", owner="a", salesforce_id="001A")

    # When the same change and an older version are claimed / Then they are refused, each for its reason
    duplicate = store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later())
    stale = store.claim(KEY, "v1", "h1", owner="b", lease_until_ms=later())
    assert (duplicate.status, duplicate.written_version) == (ClaimStatus.DUPLICATE, "v2")
    assert (stale.status, stale.written_version) == (ClaimStatus.STALE, "v2")


def test_a_live_lease_of_another_owner_makes_the_record_busy_until_it_expires(store) -> None:
    # Given owner a holds a live lease on v1
    lease_until = later()
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=lease_until)

    # When b claims a newer version / Then it is busy until a's lease ends, and b cannot commit
    busy = store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later())
    assert (busy.status, busy.lease_until_ms) == (ClaimStatus.BUSY, lease_until)
    assert store.commit(KEY, "v2", "h2", owner="b", salesforce_id="001B") is False

    # And once a's lease has expired, b's claim succeeds
    store.claim("Account#A2", "v1", "h1", owner="a", lease_until_ms=later(-60))
    assert store.claim("Account#A2", "v2", "h2", owner="b", lease_until_ms=later()).status is ClaimStatus.CLAIMED


def test_a_released_lease_frees_the_record_only_when_its_owner_releases_it(store) -> None:
    # Given owner a's lease
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())

    # When another owner releases it, nothing changes; when a does, b may claim
    store.release(KEY, owner="b")
    assert store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later()).status is ClaimStatus.BUSY
    store.release(KEY, owner="a")
    assert store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later()).status is ClaimStatus.CLAIMED


def test_a_parked_version_is_settled_and_only_a_newer_one_replaces_it(store) -> None:
    # When v2, then v1, are parked / Then v2 stays the settled version
    store.mark_parked(KEY, "v2")
    store.mark_parked(KEY, "v1")

    assert store.settled_versions([KEY, "Account#none"]) == {KEY: "v2"}


def test_the_api_usage_saved_is_the_one_read_back(store) -> None:
    # Given no usage saved yet
    assert store.api_usage() is None
    usage = ApiUsage(used=90, limit=100, observed_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    # When one is saved / Then it is read back whole
    store.save_api_usage(usage)

    assert store.api_usage() == usage
