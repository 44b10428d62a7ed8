"""Zuora 360's Zuora__Account__c on the children, and Zuora's text null, through the sync service with the
real DynamoDB state adapter (moto, tables built from template.yaml) and the in-memory Salesforce."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import pytest

from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.domain.mapping import load_mapping
from nrtsync.ports.state import StateUnavailableError
from nrtsync.services.sync.service import SyncService
from tests.support.sync_world import (
    HISTORY_TABLE,
    NO_CRM_ID,
    STATE_TABLE,
    T0,
    SyncWorld,
    change,
    message,
    settings,
)

ACCOUNTS = "Zuora__CustomerAccount__c"
CHILDREN = {"Subscription": "Zuora__Subscription__c", "Invoice": "Zuora__ZInvoice__c", "Payment": "Zuora__Payment__c"}
CRM_ID = "0015g00000XyZ12AAB"
OTHER_CRM_ID = "0015g00000AbC34DDE"


def outcomes(result) -> dict[str, str]:
    return {o.change.record_id: o.outcome.value for o in result.outcomes}


@pytest.mark.parametrize("object_type", sorted(CHILDREN))
def test_a_child_takes_the_crm_id_its_callout_carries(world: SyncWorld, object_type: str) -> None:
    # Given the account in Salesforce (its own sync knew no CrmId)
    world.run(message(change("Account", "A1", Name="Acme")))

    # When a child's callout carries the billing account's CrmId ({{DataSource.Account.CrmId}})
    result = world.run(message(change(object_type, "C1", AccountId="A1", CrmId=CRM_ID)))

    # Then the child is linked to the Salesforce Account
    assert outcomes(result) == {"C1": "written"}
    assert world.sf_record(CHILDREN[object_type], "C1")["Zuora__Account__c"] == CRM_ID


@pytest.mark.parametrize("object_type", sorted(CHILDREN))
def test_a_child_without_a_crm_id_takes_the_one_its_accounts_sync_stored(world: SyncWorld, object_type: str) -> None:
    # Given the account was written with its CrmId in an earlier batch
    world.run(message(change("Account", "A1", Name="Acme", CrmId=CRM_ID)))
    assert world.state.kept_values(["Account#A1"]) == {"Account#A1": {"CrmId": CRM_ID}}

    # When a child's callout has no CrmId
    result = world.run(message(change(object_type, "C1", AccountId="A1")))

    # Then it gets the account's, from the state table
    assert outcomes(result) == {"C1": "written"}
    assert world.sf_record(CHILDREN[object_type], "C1")["Zuora__Account__c"] == CRM_ID


def test_the_callouts_own_crm_id_wins_over_the_stored_one(world: SyncWorld) -> None:
    world.run(message(change("Account", "A1", CrmId=CRM_ID)))

    world.run(message(change("Invoice", "I1", AccountId="A1", CrmId=OTHER_CRM_ID)))

    assert world.sf_record(CHILDREN["Invoice"], "I1")["Zuora__Account__c"] == OTHER_CRM_ID


def test_an_account_and_its_child_in_one_batch(world: SyncWorld) -> None:
    # Given the account was stored with one CrmId, and a newer change moves it to another
    world.run(message(change("Account", "A1", CrmId=CRM_ID)))
    newer = change("Account", "A1", updated=T0 + timedelta(minutes=1), CrmId=OTHER_CRM_ID)

    # When the newer account change and a child without CrmId travel in one batch
    world.run(message(change("Payment", "P1", AccountId="A1", Amount="5")), message(newer))

    # Then the child takes the batch's newer value, and the state keeps it for later children
    assert world.sf_record(CHILDREN["Payment"], "P1")["Zuora__Account__c"] == OTHER_CRM_ID
    assert world.state.kept_values(["Account#A1"]) == {"Account#A1": {"CrmId": OTHER_CRM_ID}}


def test_when_nothing_knows_the_crm_id_an_existing_link_is_not_cleared(world: SyncWorld) -> None:
    # Given an account whose sync stored no CrmId, and a subscription already linked in Salesforce
    world.salesforce.enforce_master_detail = False  # the account's own write is not what this test is about
    world.run(message(change("Account", "A1", Name="Acme", CrmId=NO_CRM_ID)))
    world.run(message(change("Subscription", "S1", AccountId="A1", CrmId=CRM_ID)))

    # When the subscription changes again without a CrmId
    later = change("Subscription", "S1", updated=T0 + timedelta(minutes=1), AccountId="A1", Status="Cancelled")
    world.run(message(later))

    # Then the field was left out of the record, and Salesforce kept the link
    record = world.sf_record(CHILDREN["Subscription"], "S1")
    assert record["Zuora__Status__c"] == "Cancelled"
    assert record["Zuora__Account__c"] == CRM_ID


def test_an_account_whose_crm_id_was_emptied_clears_its_childrens_link(world: SyncWorld) -> None:
    # Given an account that had a CrmId, then lost it (Zuora renders the empty CrmId as null). Without a hold store
    # the sync sends the cleared link, which an org refuses (with one, the link is kept: test_unlinked_accounts.py);
    # this test is about the children, so the fake org takes it.
    world.salesforce.enforce_master_detail = False
    world.run(message(change("Account", "A1", CrmId=CRM_ID)))
    world.run(message(change("Account", "A1", updated=T0 + timedelta(minutes=1), CrmId="null")))
    assert world.sf_record(ACCOUNTS, "A1")["Zuora__Account__c"] is None

    # When a child without CrmId follows
    world.run(message(change("Invoice", "I1", AccountId="A1")))

    # Then the child follows its account: known empty clears, it does not write the word null
    assert world.sf_record(CHILDREN["Invoice"], "I1")["Zuora__Account__c"] is None


def test_an_account_change_without_the_crm_id_keeps_the_stored_one(world: SyncWorld) -> None:
    world.run(message(change("Account", "A1", CrmId=CRM_ID)))
    world.run(message(change("Account", "A1", updated=T0 + timedelta(minutes=1), Name="Renamed", CrmId=NO_CRM_ID)))

    assert world.state.kept_values(["Account#A1"]) == {"Account#A1": {"CrmId": CRM_ID}}


def test_a_stale_account_change_does_not_replace_the_stored_crm_id(world: SyncWorld) -> None:
    # Given the newer account change was written
    world.run(message(change("Account", "A1", updated=T0 + timedelta(minutes=5), CrmId=OTHER_CRM_ID)))

    # When an older one is re-delivered
    result = world.run(message(change("Account", "A1", updated=T0, CrmId=CRM_ID)))

    # Then it is stale, and the kept CrmId is still the newer one's
    assert outcomes(result) == {"A1": "stale"}
    assert world.state.kept_values(["Account#A1"]) == {"Account#A1": {"CrmId": OTHER_CRM_ID}}


def test_an_account_with_an_invalid_crm_id_is_parked_and_nothing_is_kept(world: SyncWorld) -> None:
    result = world.run(message(change("Account", "A1", CrmId="Acme Corp")))

    assert outcomes(result) == {"A1": "failed"}
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "MAPPING_ERROR"
    assert world.state.kept_values(["Account#A1"]) == {}


class _KeptValuesDown(DynamoVersionStore):
    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]:
        if record_keys:
            raise StateUnavailableError("injected")
        return {}


def test_a_child_that_needs_the_stored_crm_id_waits_when_the_state_cannot_be_read(world: SyncWorld) -> None:
    # Given the account was stored with its CrmId, and reading it back fails
    world.run(message(change("Account", "A1", CrmId=CRM_ID)))
    service = SyncService(
        settings(),
        mapping=load_mapping(),
        salesforce=world.salesforce,
        state=_KeptValuesDown(STATE_TABLE, client=world.dynamodb),
        history=DynamoHistoryWriter(HISTORY_TABLE, ttl_days=30, client=world.dynamodb),
        retries=world.retries,
    )
    needs = message(change("Invoice", "I1", AccountId="A1"))
    has_own = message(change("Invoice", "I2", AccountId="A1", CrmId=CRM_ID))

    # When a child that needs it and one that carries its own are synced
    result = service.run([needs, has_own], deadline=world.monotonic() + 60)

    # Then the one that needs it waits (it is not written without its link), with its lease released
    assert outcomes(result) == {"I1": "waiting", "I2": "written"}
    assert result.retry_message_ids == [needs.message_id]
    assert "I1" not in world.salesforce.records.get(CHILDREN["Invoice"], {})
    assert outcomes(world.run(message(change("Invoice", "I1", AccountId="A1"), receive_count=2))) == {"I1": "written"}
    assert world.sf_record(CHILDREN["Invoice"], "I1")["Zuora__Account__c"] == CRM_ID


def test_kept_values_are_read_in_chunks_of_100(world: SyncWorld) -> None:
    # Given 150 accounts written with a CrmId each (BatchGetItem takes at most 100 keys)
    world.run(*(message(change("Account", f"A{n}", CrmId=f"0015g00000X{n:07d}")) for n in range(150)))

    # When their kept values are read at once
    kept = world.state.kept_values([f"Account#A{n}" for n in range(150)] + ["Account#none"])

    # Then all come back, and a record with nothing kept is absent
    assert len(kept) == 150
    assert kept["Account#A149"] == {"CrmId": "0015g00000X0000149"}


# -- Zuora's text null through the whole sync ---------------------------------------------------------------


def test_a_change_with_every_field_rendered_as_null_is_written_with_the_fields_cleared(world: SyncWorld) -> None:
    # Given an account and a subscription whose empty merge fields arrived as the text null
    world.run(message(change("Account", "A1", Name="Acme")))
    nulls = change(
        "Subscription",
        "S1",
        AccountId="A1",
        Name="S1",
        Status="null",
        AutoRenew="null",
        TermStartDate="null",
        CancelledDate="null",
        Version="null",
        CrmId="null",
    )

    # When the subscription is synced
    result = world.run(message(nulls))

    # Then it is written (not failed as an unconvertible value), each such field cleared, none holding "null"
    # (Name stays filled: Salesforce refuses a record whose required Name is null)
    assert outcomes(result) == {"S1": "written"}
    record = world.sf_record(CHILDREN["Subscription"], "S1")
    for field in ("Zuora__Status__c", "Zuora__AutoRenew__c", "Zuora__TermStartDate__c"):
        assert record[field] is None, field
    assert record["Zuora__CancelledDate__c"] is None
    assert record["Zuora__Version__c"] is None
    assert record["Zuora__Account__c"] is None


def test_a_child_whose_parent_id_is_null_has_no_lookup(world: SyncWorld) -> None:
    result = world.run(message(change("Invoice", "I1", InvoiceNumber="INV-1", AccountId="null")))

    assert outcomes(result) == {"I1": "written"}
    assert "Zuora__BillingAccount__r" not in world.sf_record(CHILDREN["Invoice"], "I1")
