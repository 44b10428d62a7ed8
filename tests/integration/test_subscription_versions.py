"""Subscription versions: one Salesforce record per subscription number, the newest Version always winning.

The sync service with the real DynamoDB state adapter (moto) and the in-memory Salesforce."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.zoql import change_from_record, changes_query
from tests.support.sync_world import T0, SyncWorld, change, message

SUBSCRIPTIONS = "Zuora__Subscription__c"


def version(zuora_id: str, number: int, *, status: str, at: timedelta, auto_renew: str = "true") -> Any:
    return change(
        "Subscription",
        zuora_id,
        updated=T0 + at,
        Name="A-S00000001",  # the subscription number (Zuora's Subscription.Name), the same in every version
        AutoRenew=auto_renew,
        Version=str(number),
        Status=status,
    )


def test_an_amendment_ends_as_one_record_whatever_order_the_callouts_arrive(world: SyncWorld) -> None:
    # Given version 1, then the amendment: version 2 (a new Id) inserted, version 1 updated to Expired a second
    # later (a later UpdatedDate than version 2's insert)
    v1 = version("8ad0887e-v1", 1, status="Active", at=timedelta(0))
    v2 = version("8ad0887e-v2", 2, status="Active", at=timedelta(minutes=5), auto_renew="false")
    v1_expired = version("8ad0887e-v1", 1, status="Expired", at=timedelta(minutes=5, seconds=1))

    # When they arrive out of order: version 2 first, then version 1's insert and its Expired update
    world.run(message(v2))
    late = world.run(message(v1), message(v1_expired))

    # Then Salesforce holds one record for the subscription number: version 2's values, its own Zuora Id
    records = world.salesforce.records[SUBSCRIPTIONS]
    assert list(records) == ["A-S00000001"]
    record = records["A-S00000001"]
    assert (record["Zuora__Status__c"], record["Zuora__Version__c"], record["Zuora__AutoRenew__c"]) == (
        "Active",
        2,
        False,
    )
    assert (record["Zuora__External_Id__c"], record["Zuora__Zuora_Id__c"]) == ("8ad0887e-v2", "8ad0887e-v2")
    assert {o.outcome.value for o in late.outcomes} <= {"stale", "superseded"}


def test_in_order_the_newer_version_replaces_the_older_in_the_same_record(world: SyncWorld) -> None:
    world.run(message(version("8ad0887e-v1", 1, status="Active", at=timedelta(0))))
    world.run(message(version("8ad0887e-v2", 2, status="Active", at=timedelta(minutes=5), auto_renew="false")))
    world.run(message(version("8ad0887e-v1", 1, status="Expired", at=timedelta(minutes=5, seconds=1))))

    [record] = world.salesforce.records[SUBSCRIPTIONS].values()
    assert (record["Zuora__AutoRenew__c"], record["Zuora__Status__c"], record["Zuora__External_Id__c"]) == (
        False,
        "Active",
        "8ad0887e-v2",
    )


def test_reconciliation_reads_only_current_versions_keyed_by_subscription_number() -> None:
    mapping = load_mapping()
    record = {
        "Id": "8ad0887e-v2",
        "UpdatedDate": "2026-12-01T10:00:00.000-08:00",
        "Name": "A-S00000001",
        "Version": 2,
        "Status": "Active",
    }
    queued = change_from_record(mapping, "Subscription", record, source="reconcile", received_at=T0)

    assert (queued.record_id, queued.rank, queued.fields["Id"]) == ("A-S00000001", 2, "8ad0887e-v2")
    assert queued.record_key == "Subscription#A-S00000001"
    assert changes_query(mapping, "Subscription", T0).endswith("and Status != 'Expired'")
