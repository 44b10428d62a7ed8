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


def test_after_a_release_in_doubt_only_the_same_change_claims_until_the_doubt_ends(store) -> None:
    # Given a's write of v1 failed in doubt (Salesforce may still commit it)
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())
    doubt_until = later(660)
    store.release_in_doubt(KEY, "h1", owner="a", until_ms=doubt_until)

    # When a newer change claims / Then it is busy until the doubt ends
    busy = store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later())
    assert (busy.status, busy.lease_until_ms) == (ClaimStatus.BUSY, doubt_until)

    # And the same change claims at once, to be sent again
    assert store.claim(KEY, "v1", "h1", owner="c", lease_until_ms=later()).status is ClaimStatus.CLAIMED

    # And once the doubt has ended, a newer change claims as usual
    store.claim("Account#A2", "v1", "h1", owner="a", lease_until_ms=later())
    store.release_in_doubt("Account#A2", "h1", owner="a", until_ms=later(-1))
    assert store.claim("Account#A2", "v2", "h2", owner="b", lease_until_ms=later()).status is ClaimStatus.CLAIMED


def test_only_the_lease_owner_releases_in_doubt(store) -> None:
    # Given a's lease / When b releases it in doubt / Then nothing changed: a's lease still holds the record
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())
    store.release_in_doubt(KEY, "h1", owner="b", until_ms=later(660))
    assert store.commit(KEY, "v1", "h1", owner="a", salesforce_id="001A") is True


def test_a_notification_id_already_settled_for_the_record_is_a_duplicate_whatever_its_version(store) -> None:
    # Given n1 (v1) then n2 (v2) written for the record
    for version, content, notification in (("v1", "h1", "n1"), ("v2", "h2", "n2")):
        claim = store.claim(KEY, version, content, owner="a", lease_until_ms=later(), notification_id=notification)
        assert claim.status is ClaimStatus.CLAIMED
        store.commit(
            KEY, version, content, owner="a", salesforce_id="001A", notification_id=notification, settled=claim.settled
        )

    # When Zuora's retry of n1 comes with a newer version (a later receive time) / Then it is a duplicate
    retry = store.claim(KEY, "v3", "h1", owner="b", lease_until_ms=later(), notification_id="n1")
    assert retry.status is ClaimStatus.DUPLICATE

    # And a new notification with that version claims, and finds both ids settled
    fresh = store.claim(KEY, "v3", "h3", owner="b", lease_until_ms=later(), notification_id="n3")
    assert fresh.status is ClaimStatus.CLAIMED
    assert set(fresh.settled) == {"n1", "n2"}


def test_a_record_marked_for_recheck_is_unsettled_until_the_mark_is_cleared(store) -> None:
    # Given v1 committed with a recheck mark
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())
    store.commit(KEY, "v1", "h1", owner="a", salesforce_id="001A", recheck=True)

    # Then a sweep finds it unsettled; once cleared, settled at v1
    assert store.settled_versions([KEY]) == {}
    store.clear_recheck(KEY)
    assert store.settled_versions([KEY]) == {KEY: "v1"}

    # And a commit without the mark clears it too; clearing a record with no state creates none
    store.claim(KEY, "v2", "h2", owner="a", lease_until_ms=later())
    store.commit(KEY, "v2", "h2", owner="a", salesforce_id="001A", recheck=True)
    store.claim(KEY, "v3", "h3", owner="a", lease_until_ms=later())
    store.commit(KEY, "v3", "h3", owner="a", salesforce_id="001A")
    assert store.settled_versions([KEY]) == {KEY: "v3"}
    store.clear_recheck("Account#none")
    assert store.claim("Account#none", "v1", "h1", owner="a", lease_until_ms=later()).written_version is None


def test_a_commit_in_doubt_keeps_other_changes_out_until_the_doubt_ends(store) -> None:
    # Given v1 written by a call that succeeded only after an attempt in doubt
    store.claim(KEY, "v1", "h1", owner="a", lease_until_ms=later())
    doubt_until = later(660)
    assert store.commit(KEY, "v1", "h1", owner="a", salesforce_id="001A", doubt_until_ms=doubt_until)

    # When a newer change claims / Then it is busy until the doubt ends
    busy = store.claim(KEY, "v2", "h2", owner="b", lease_until_ms=later())
    assert (busy.status, busy.lease_until_ms) == (ClaimStatus.BUSY, doubt_until)
