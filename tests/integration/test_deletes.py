"""Deletes (issue 12): the callout's changeType, the tombstone, and the sync's sObject Collections delete."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.outcomes import Outcome
from nrtsync.services.sync.service import SyncResult
from tests.support.callouts import document, fields_named, headers, receive
from tests.support.sync_world import STATE_TABLE, T0, SyncWorld, change, message

ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"


def deleted(object_type: str = "Account", record_id: str = "A1", *, updated: datetime = T0) -> QueuedChange:
    # A subscription's delete names its subscription number (its record across versions), nothing else.
    kept = {"Name": record_id} if object_type == "Subscription" else {}
    return change(object_type, record_id, updated=updated).model_copy(update={"change_type": "DELETE", "fields": kept})


def tombstoned(world: SyncWorld, record_key: str) -> bool:
    """Whether the record's state item says its last written version is a delete."""
    item = world.dynamodb.get_item(TableName=STATE_TABLE, Key={"pk": {"S": record_key}}, ConsistentRead=True)
    return bool(item.get("Item", {}).get("deleted", {}).get("BOOL"))


def outcomes(result: SyncResult) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for o in result.outcomes:
        by.setdefault(o.outcome.value, []).append(o.change.record_id)
    return by


# -- the callout -------------------------------------------------------------------------------------------


def test_a_delete_callout_needs_no_fields_and_is_queued_as_a_delete() -> None:
    body = document(changeType="DELETE")
    del body["fields"]

    outcome, queue = receive(body)

    assert outcome.status_code == 200, outcome.body
    [queued] = queue.sent
    assert queued.change_type == "DELETE"
    assert queued.is_delete
    assert queued.fields == {}


def test_a_change_type_zuora_does_not_send_is_a_422_naming_it() -> None:
    outcome, queue = receive(document(changeType="REMOVE"))

    assert outcome.status_code == 422
    assert fields_named(outcome) == ["changeType"]
    assert queue.sent == []


def test_a_parameter_style_delete_callout_is_a_delete() -> None:
    form = "objectType=Account&id=A1&updatedDate=2024-03-05T10%3A22%3A39Z&changeType=DELETE"

    outcome, queue = receive(form, headers(**{"Content-Type": "application/x-www-form-urlencoded"}))

    assert outcome.status_code == 200, outcome.body
    assert queue.sent[0].is_delete
    assert queue.sent[0].fields == {}


def test_a_delete_and_an_update_of_the_same_version_are_different_changes() -> None:
    update = change(updated=T0).model_copy(update={"fields": {}})
    delete = update.model_copy(update={"change_type": "DELETE"})

    assert update.content_hash != delete.content_hash
    # An upsert's hash is what it was before changeType existed: stored hashes keep their meaning.
    assert update.model_copy(update={"change_type": "UPDATE"}).content_hash == update.content_hash


# -- the sync ----------------------------------------------------------------------------------------------


def test_a_delete_removes_the_record_by_its_kept_id_and_leaves_a_tombstone(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))
    salesforce_id = world.sf_record(ACCOUNTS, "A1")["Id"]

    result = world.run(message(deleted(updated=T0 + timedelta(minutes=1))))

    assert outcomes(result) == {"written": ["A1"]}
    assert result.outcomes[0].salesforce_id == salesforce_id
    assert "A1" not in world.salesforce.records[ACCOUNTS]
    assert world.salesforce.deletes == [(ACCOUNTS, 1)]
    assert world.salesforce.lookups == []  # the state table knew the Id: no look-up
    assert tombstoned(world, "Account#A1")
    assert world.state.salesforce_ids(["Account#A1"]) == {"Account#A1": salesforce_id}


def test_an_older_update_arriving_after_the_delete_is_stale(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))
    world.run(message(deleted(updated=T0 + timedelta(minutes=5))))

    late = change(updated=T0 + timedelta(minutes=2), received=T0 + timedelta(hours=1), Name="late")
    result = world.run(message(late))

    assert outcomes(result) == {"stale": ["A1"]}
    assert "A1" not in world.salesforce.records[ACCOUNTS]
    assert tombstoned(world, "Account#A1")


def test_a_newer_update_after_the_delete_writes_the_record_again(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))
    world.run(message(deleted(updated=T0 + timedelta(minutes=1))))

    result = world.run(message(change(updated=T0 + timedelta(minutes=2), Name="restored")))

    assert outcomes(result) == {"written": ["A1"]}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "restored"
    assert not tombstoned(world, "Account#A1")


def test_a_delete_and_an_older_update_in_one_batch_is_one_delete(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))

    result = world.run(
        message(change(updated=T0 + timedelta(seconds=10), Name="older")),
        message(deleted(updated=T0 + timedelta(seconds=20))),
    )

    assert outcomes(result) == {"superseded": ["A1"], "written": ["A1"]}
    assert "A1" not in world.salesforce.records[ACCOUNTS]


def test_a_delete_of_a_record_salesforce_never_had_is_done_without_a_write(world: SyncWorld) -> None:
    result = world.run(message(deleted(record_id="A9")))

    assert outcomes(result) == {"written": ["A9"]}
    assert world.salesforce.lookups == [(ACCOUNTS, "A9")]  # one look-up by external ID, no delete call
    assert world.salesforce.deletes == []
    assert tombstoned(world, "Account#A9")
    # and its tombstone keeps an older update out
    assert outcomes(world.run(message(change(record_id="A9", updated=T0 - timedelta(days=1))))) == {"stale": ["A9"]}


def test_a_record_the_state_has_no_id_for_is_found_by_external_id_and_deleted(world: SyncWorld) -> None:
    # Written to Salesforce by someone else (say, before this product was deployed)
    world.salesforce.records[ACCOUNTS] = {"A2": {"Zuora__External_Id__c": "A2", "Id": "a0000000000000000X"}}

    result = world.run(message(deleted(record_id="A2")))

    assert outcomes(result) == {"written": ["A2"]}
    assert world.salesforce.lookups == [(ACCOUNTS, "A2")]
    assert world.salesforce.records[ACCOUNTS] == {}
    assert world.state.salesforce_ids(["Account#A2"]) == {"Account#A2": "a0000000000000000X"}


def test_a_delete_of_a_record_salesforce_no_longer_has_counts_as_done(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))
    world.salesforce.records[ACCOUNTS].clear()  # a person deleted it in Salesforce: INVALID_CROSS_REFERENCE_KEY

    result = world.run(message(deleted(updated=T0 + timedelta(minutes=1))))

    assert outcomes(result) == {"written": ["A1"]}
    assert result.retry_message_ids == []
    assert world.history("FAILURE") == []
    assert tombstoned(world, "Account#A1")


def test_a_delete_salesforce_refuses_is_parked(world: SyncWorld) -> None:
    world.run(message(change(updated=T0, Name="Acme")))
    world.salesforce.refuse["A1"] = ("DELETE_FAILED", "Your attempt to delete Acme could not be completed")

    result = world.run(message(deleted(updated=T0 + timedelta(minutes=1))))

    assert outcomes(result) == {"failed": ["A1"]}
    assert not tombstoned(world, "Account#A1")
    assert [item["error_code"] for item in world.history("FAILURE")] == ["DELETE_FAILED"]


def test_deletes_go_first_children_before_parents_then_upserts_in_one_call(world: SyncWorld) -> None:
    world.run(message(change("Account", "A1", Name="Acme")), message(change("Account", "A2", Name="Old")))
    world.run(message(change("Subscription", "S1", updated=T0, Name="S1", AccountId="A1")))
    before = len(world.salesforce.api_requests)

    # One batch: the subscription and account A2 deleted, account A1 (the subscription's parent) updated
    result = world.run(
        message(deleted("Account", "A2", updated=T0 + timedelta(minutes=1))),
        message(change("Account", "A1", updated=T0 + timedelta(minutes=1), Name="Acme 2")),
        message(deleted("Subscription", "S1", updated=T0 + timedelta(minutes=1))),
    )

    assert sorted(outcomes(result)[Outcome.WRITTEN.value]) == ["A1", "A2", "S1"]
    assert world.salesforce.api_requests[before:] == [
        [(f"DELETE {SUBSCRIPTIONS}", 1), (f"DELETE {ACCOUNTS}", 1), (ACCOUNTS, 1)]
    ]
    assert world.salesforce.records[SUBSCRIPTIONS] == {}
    assert set(world.salesforce.records[ACCOUNTS]) == {"A1"}
    assert result.session.api_calls == 1


def test_an_update_with_the_deletes_own_updated_date_arriving_later_is_stale(world: SyncWorld) -> None:
    # The deleted record's UpdatedDate can be its last update's: Zuora retries that update after the delete landed
    world.run(message(deleted(updated=T0 + timedelta(minutes=1))))

    retried = change(updated=T0 + timedelta(minutes=1), received=T0 + timedelta(hours=1), Name="late retry")
    result = world.run(message(retried))

    assert outcomes(result) == {"stale": ["A1"]}
    assert tombstoned(world, "Account#A1")


def test_an_upsert_message_keeps_its_old_shape_and_a_delete_says_so() -> None:
    upsert = change()
    delete = deleted()

    assert "change_type" not in json.loads(upsert.model_dump_json())
    assert json.loads(delete.model_dump_json())["change_type"] == "DELETE"
    assert QueuedChange.model_validate_json(delete.model_dump_json()) == delete
