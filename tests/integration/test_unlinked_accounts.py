"""Billing accounts without a CRM link are held, not sent; the link's arrival writes them and their children.

The sync service with the real DynamoDB state and hold adapters (moto, tables built from template.yaml) and the
in-memory Salesforce."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from nrtsync.adapters.aws.holds import DynamoHoldStore
from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.mapping import load_mapping
from nrtsync.services.sync.holds import plan_holds
from tests.support.sync_world import STATE_TABLE, T0, SyncWorld, change, message

ACCOUNTS = "Zuora__CustomerAccount__c"
CRM_ID = "0015g00000XyZ12AAB"


@pytest.fixture
def world(dynamodb: Any) -> SyncWorld:
    """The sync service on moto's DynamoDB with holds, as the deployed function has them."""
    return SyncWorld(dynamodb=dynamodb, holds=True)


def outcomes(result: Any) -> dict[str, str]:
    return {o.change.record_id: o.outcome.value for o in result.outcomes}


def children(account: str = "A1", *, at: timedelta = timedelta(0)) -> list[Any]:
    return [
        change("Subscription", "S1", updated=T0 + at, Name="S1", AccountId=account),
        change("Invoice", "I1", updated=T0 + at, InvoiceNumber="INV-1", AccountId=account),
        change("Payment", "P1", updated=T0 + at, PaymentNumber="P-1", AccountId=account),
    ]


def test_an_account_without_a_crm_link_and_its_children_are_held_without_a_call(world: SyncWorld) -> None:
    # When an account without CrmId and its subscription, invoice and payment arrive
    result = world.run(*(message(c) for c in [change("Account", "A1", Name="Acme", CrmId=""), *children()]))

    # Then all four are held: no Salesforce call, nothing failed, nothing back on the queue
    assert outcomes(result) == {"A1": "held", "S1": "held", "I1": "held", "P1": "held"}
    assert world.salesforce.api_calls == 0
    assert result.failures == []
    assert result.retry_message_ids == []

    # And children arriving in a later batch are held too, without a call
    later = world.run(message(change("Invoice", "I2", InvoiceNumber="INV-2", AccountId="A1")))
    assert outcomes(later) == {"I2": "held"}
    assert world.salesforce.api_calls == 0


def test_the_link_arriving_writes_the_account_and_every_held_child_in_batched_calls(world: SyncWorld) -> None:
    # Given an account held for its missing CrmId, with 200 invoices held behind it
    world.run(message(change("Account", "A1", Name="Acme", CrmId="")))
    invoices = [change("Invoice", f"I{n}", InvoiceNumber=f"INV-{n}", AccountId="A1") for n in range(200)]
    world.run(*(message(c) for c in invoices[:10]))
    for start in range(10, 200, 10):
        world.run(*(message(c) for c in invoices[start : start + 10]))
    assert world.salesforce.api_calls == 0

    # When the account's update with its CrmId arrives (no other callout, no reconcile run)
    result = world.run(message(change("Account", "A1", updated=T0 + timedelta(minutes=5), Name="Acme", CrmId=CRM_ID)))

    # Then the account and all 200 invoices are written in this session, at most one call per 190 records
    assert world.sf_record(ACCOUNTS, "A1")["Zuora__Account__c"] == CRM_ID
    assert len(world.salesforce.records["Zuora__ZInvoice__c"]) == 200
    assert all(r["Zuora__Account__c"] == CRM_ID for r in world.salesforce.records["Zuora__ZInvoice__c"].values())
    assert sum(1 for o in result.outcomes if o.outcome.value == "written") == 201
    # The account's call, then the invoices as any 200 changes go: 200 a collection, up to five a call
    assert world.salesforce.api_calls == 2
    assert [n for _, n in world.salesforce.calls] == [1, 200]
    assert result.retry_message_ids == []

    # And nothing stays held: the next invoice goes straight out
    after = world.run(message(change("Invoice", "I9", updated=T0 + timedelta(minutes=6), AccountId="A1")))
    assert outcomes(after) == {"I9": "written"}


def test_a_callout_that_clears_the_link_keeps_it_and_warns(world: SyncWorld, caplog: Any) -> None:
    # Given an account written with its CrmId
    world.run(message(change("Account", "A1", Name="Acme", CrmId=CRM_ID)))

    # When a newer change clears CrmId (an empty merge field) and renames it
    result = world.run(message(change("Account", "A1", updated=T0 + timedelta(minutes=1), Name="Acme 2", CrmId="")))

    # Then the rename is written with the link it had: never null on the master-detail
    assert outcomes(result) == {"A1": "written"}
    record = world.sf_record(ACCOUNTS, "A1")
    assert (record["Name"], record["Zuora__Account__c"]) == ("Acme 2", CRM_ID)
    assert "cleared the billing account's CRM link" in caplog.text
    assert "Account#A1" in caplog.text  # the warning names the record

    # And its children still inherit the link
    child = world.run(message(change("Invoice", "I1", updated=T0 + timedelta(minutes=2), AccountId="A1")))
    assert outcomes(child) == {"I1": "written"}
    assert world.sf_record("Zuora__ZInvoice__c", "I1")["Zuora__Account__c"] == CRM_ID


def test_an_older_held_change_never_replaces_a_newer_one(world: SyncWorld) -> None:
    # Given a newer change of an invoice held for its account
    holds = DynamoHoldStore(STATE_TABLE, client=world.dynamodb)
    newer = change("Invoice", "I1", updated=T0 + timedelta(minutes=1), InvoiceNumber="new", AccountId="A1")
    older = change("Invoice", "I1", updated=T0, InvoiceNumber="old", AccountId="A1")
    holds.hold("Account#A1", newer)

    # When an older change of it is held late, and then dropped
    holds.hold("Account#A1", older)
    kept = holds.held_changes(["Account#A1", "Account#A2"])
    holds.drop("Account#A1", older)

    # Then the newer one is what stays held, until it is dropped itself
    assert kept == {"Account#A1": [newer]}
    assert holds.held_accounts(["Account#A1"]) == {"Account#A1"}
    holds.drop("Account#A1", newer)
    assert holds.held_accounts(["Account#A1"]) == set()


def test_a_child_waits_for_a_held_account_and_not_for_a_linked_one() -> None:
    mapping = load_mapping()
    invoice = IncomingChange("m1", "r1", 1, change("Invoice", "I1", AccountId="A1"))
    payment = IncomingChange("m2", "r2", 1, change("Payment", "P1", AccountId="A2"))
    plan = plan_holds(mapping, [invoice, payment], links={}, held_accounts={"Account#A1"})
    assert plan.held == [("Account#A1", invoice)]
    assert plan.send == [payment]
