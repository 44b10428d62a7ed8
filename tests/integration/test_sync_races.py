"""Writes that may still commit after a failure, refusals of the call itself, and a record that crashes its
collection: the sync session against moto's DynamoDB and the in-memory Salesforce."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.app.sync import build_sync
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.salesforce import (
    SalesforceConcurrencyLimitError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.domain.outcomes import RetryReason
from nrtsync.ports.breaker import BreakerReason
from nrtsync.ports.state import ClaimStatus
from nrtsync.services.sweep.service import is_newer_than_settled
from nrtsync.services.sync.leases import SALESFORCE_LONGEST_REQUEST_SECONDS
from nrtsync_fakes.zuora import MemoryZuora, zuora_account
from tests.support.sync_world import HISTORY_TABLE, T0, SyncWorld, change, message, settings

ACCOUNTS = "Zuora__CustomerAccount__c"
PAYMENTS = "Zuora__Payment__c"


def outcomes(result) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for o in result.outcomes:
        by.setdefault(o.outcome.value, []).append(o.change.record_id)
    return by


def reasons(result) -> dict[str, str | None]:
    return {o.change.record_id: o.error_code for o in result.outcomes if o.outcome.value == "waiting"}


def test_after_a_write_in_doubt_only_the_same_change_is_written_until_salesforce_has_surely_ended_it(
    world: SyncWorld,
) -> None:
    # Given v1 of A1 whose call timed out: Salesforce may still commit it
    v1 = change("Account", "A1", Name="first")
    world.salesforce.fail_calls.append(SalesforceRetryableError)  # in doubt unless proven otherwise
    assert outcomes(world.run(message(v1))) == {"waiting": ["A1"]}

    # When v2 arrives before v1 came back
    v2 = change("Account", "A1", updated=T0 + timedelta(seconds=1), Name="second")
    result = world.run(message(v2))

    # Then v2 waits for Salesforce's longest request time (a late commit of v1 would overwrite it), and nothing
    # was sent for it
    assert outcomes(result) == {"waiting": ["A1"]}
    assert reasons(result) == {"A1": RetryReason.RECORD_BUSY}
    assert ACCOUNTS not in world.salesforce.records

    # And v1's own redelivery is re-sent at once (the same values, harmless whenever the first call lands)
    assert outcomes(world.run(message(v1, receive_count=2))) == {"written": ["A1"]}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "first"

    # And v2 still waits while the doubt lasts
    assert outcomes(world.run(message(v2, receive_count=2))) == {"waiting": ["A1"]}


def test_the_doubt_lasts_past_salesforces_longest_request_time(world: SyncWorld) -> None:
    # Given a write in doubt
    world.salesforce.fail_calls.append(SalesforceRetryableError)
    world.run(message(change("Account", "A1")))

    # When another change claims the record (a version newer than any date)
    claim = world.state.claim("Account#A1", "9999", "another", owner="probe", lease_until_ms=0)

    # Then it is busy until at least Salesforce's longest request time from now
    assert claim.status is ClaimStatus.BUSY
    assert claim.lease_until_ms is not None
    assert claim.lease_until_ms >= (time.time() + SALESFORCE_LONGEST_REQUEST_SECONDS) * 1000


@pytest.mark.parametrize(
    "error",
    [SalesforceConcurrencyLimitError, lambda message: SalesforceRetryableError(message, in_doubt=False)],
    ids=["concurrent-request-limit", "connection-refused"],
)
def test_a_failure_that_proves_nothing_ran_frees_the_record_at_once(world: SyncWorld, error) -> None:
    # Given v1 refused before Salesforce ran it
    world.salesforce.fail_calls.append(error)
    world.run(message(change("Account", "A1", Name="first")))

    # When v2 arrives / Then it is written at once
    v2 = change("Account", "A1", updated=T0 + timedelta(seconds=1), Name="second")
    assert outcomes(world.run(message(v2))) == {"written": ["A1"]}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "second"


def _call_refusal(http_status: int, code: str) -> type[SalesforceRequestError]:
    class CallRefusedError(SalesforceRequestError):
        def __init__(self, message: str) -> None:
            super().__init__(f"{code}: {message}", status_code=code, http_status=http_status)

    return CallRefusedError


@pytest.mark.parametrize(
    ("http_status", "code"),
    [(403, "API_DISABLED_FOR_ORG"), (410, "GONE"), (404, "NOT_FOUND"), (401, "INVALID_SESSION_ID")],
)
def test_a_call_refused_for_every_record_opens_the_breaker_and_parks_nothing(
    world: SyncWorld, http_status: int, code: str
) -> None:
    # Given Salesforce refuses the call itself (the API switched off, the API version retired)
    world.salesforce.fail_calls.append(_call_refusal(http_status, code))
    batch = [message(change("Account", f"A{i}")) for i in range(3)]

    # When the batch is synced
    result = world.run(*batch)

    # Then every change waits, none is parked (parked, it would count as settled), and the breaker is open with
    # the reason, so the queue is no longer received from
    assert sorted(result.retry_message_ids) == sorted(m.message_id for m in batch)
    assert set(reasons(result).values()) == {RetryReason.SALESFORCE_REFUSED}
    assert world.history("FAILURE") == []
    state = world.breaker_store.read()
    assert state.is_open
    assert state.reason is BreakerReason.SALESFORCE_REFUSED
    assert code in (state.message or "")


def test_one_record_that_crashes_its_collection_is_isolated_after_the_second_failure(world: SyncWorld) -> None:
    # Given 200 payments, one of which makes Salesforce fail the whole collection with 500 UNKNOWN_EXCEPTION
    # 200 payments with no billing account (their parents are beside the point here): an org without the master-detail
    world.salesforce.enforce_master_detail = False
    world.salesforce.crash_collection.add("P137")
    payments = [change("Payment", f"P{i:03d}", Amount=str(i)) for i in range(200)]

    # When they fail once / Then they all wait: a first 5xx may be an outage
    first = world.run(*(message(p) for p in payments))
    assert outcomes(first) == {"waiting": [p.record_id for p in payments]}
    assert len(world.salesforce.api_requests) == 1

    # When they come back and fail again
    second = world.run(*(message(p, receive_count=2) for p in payments))

    # Then the collection is bisected down to the bad record: 199 written, P137 alone waits (to reach the
    # dead-letter queue alone), nothing parked
    by = outcomes(second)
    assert by["waiting"] == ["P137"]
    assert len(by["written"]) == 199
    assert world.history("FAILURE") == []
    assert len(world.salesforce.api_requests) - 1 <= 9


def test_zuoras_retry_of_an_earlier_change_in_the_same_second_does_not_overwrite_the_later_one(
    world: SyncWorld,
) -> None:
    # Given two changes of A1 within one second of Zuora's (same UpdatedDate), both written in order
    earlier = change("Account", "A1", received=T0 + timedelta(seconds=1), Name="earlier")
    earlier = earlier.model_copy(update={"notification_id": "n-earlier"})
    later = change("Account", "A1", received=T0 + timedelta(seconds=2), Name="later")
    later = later.model_copy(update={"notification_id": "n-later"})
    assert outcomes(world.run(message(earlier))) == {"written": ["A1"]}
    assert outcomes(world.run(message(later))) == {"written": ["A1"]}

    # When Zuora retries the earlier change (same notification id), received after the later one was written
    retry = earlier.model_copy(update={"received_at": T0 + timedelta(seconds=30)})
    result = world.run(message(retry))

    # Then the retry is a duplicate and Salesforce keeps the later value
    assert outcomes(result) == {"duplicate": ["A1"]}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "later"


def _from_reconcile(queued: QueuedChange, *, received: datetime) -> QueuedChange:
    """The change a reconcile run reads from Zuora for the record (its notification id names the sweep)."""
    notification = f"reconcile:{queued.object_type}:{queued.record_id}:{queued.updated_date.isoformat()}"
    return queued.model_copy(update={"notification_id": notification, "received_at": received})


def test_two_contents_with_one_updated_date_mark_the_record_for_the_next_reconcile_run(world: SyncWorld) -> None:
    # Given two different changes of A1 in one second of Zuora's (the same UpdatedDate), received in an order
    # that need not be Zuora's
    first = change("Account", "A1", received=T0 + timedelta(seconds=1), Name="first")
    second = change("Account", "A1", received=T0 + timedelta(seconds=2), Name="second")
    world.run(message(first))

    # When the second is written
    assert outcomes(world.run(message(second))) == {"written": ["A1"]}

    # Then the later receive is in Salesforce, and the record counts as unsettled for the next reconcile run,
    # whatever its dates say
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "second"
    assert world.state.settled_versions(["Account#A1"]) == {}
    assert is_newer_than_settled(first, None)

    # When that run reads Zuora's current values and they are what was written / Then the mark goes
    current = _from_reconcile(second, received=T0 + timedelta(minutes=30))
    assert outcomes(world.run(message(current))) == {"duplicate": ["A1"]}
    assert world.state.settled_versions(["Account#A1"]) == {"Account#A1": second.version}


def test_a_reconcile_reading_other_values_than_written_writes_them_and_settles_the_record(world: SyncWorld) -> None:
    # Given a record marked after two contents of one UpdatedDate
    world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=2), Name="second")))
    world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=3), Name="third")))
    assert world.state.settled_versions(["Account#A1"]) == {}

    # When the reconcile run reads Zuora's current values: the second's after all (Zuora's own order)
    zuora_now = _from_reconcile(
        change("Account", "A1", received=T0 + timedelta(seconds=1), Name="second"), received=T0 + timedelta(minutes=30)
    )
    assert outcomes(world.run(message(zuora_now))) == {"written": ["A1"]}

    # Then Zuora's values are in Salesforce and the record is settled again
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "second"
    assert world.state.settled_versions(["Account#A1"]) == {"Account#A1": zuora_now.version}


def test_a_change_with_a_newer_updated_date_leaves_no_mark(world: SyncWorld) -> None:
    world.run(message(change("Account", "A1", Name="first")))
    newer = change("Account", "A1", updated=T0 + timedelta(seconds=1), Name="second")
    world.run(message(newer))

    assert world.state.settled_versions(["Account#A1"]) == {"Account#A1": newer.version}


def test_with_zuora_configured_two_contents_of_one_second_are_settled_by_reading_zuora(world: SyncWorld) -> None:
    # Given Zuora readable, whose current values of A1 are the first change's (Zuora's own order)
    zuora = MemoryZuora()
    zuora.put("Account", zuora_account("A1", T0, Name="first"))
    world.zuora = zuora
    world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=2), Name="second")))

    # When a different change of the same second is received later
    result = world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=3), Name="first")))

    # Then Zuora was asked for the record by its Id, its current values are written, and nothing is left for a
    # reconcile run
    assert outcomes(result) == {"written": ["A1"]}
    assert zuora.queries[-1].endswith("from Account where Id = 'A1'")
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "first"
    assert world.state.settled_versions(["Account#A1"]) != {}


def test_when_zuora_cannot_be_read_the_record_is_marked_for_reconcile(world: SyncWorld) -> None:
    # Given Zuora configured but without the record (or failing)
    world.zuora = MemoryZuora()
    world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=1), Name="first")))

    # When a different change of the same second arrives / Then the later receive is written and the record marked
    assert outcomes(world.run(message(change("Account", "A1", received=T0 + timedelta(seconds=2), Name="second")))) == {
        "written": ["A1"]
    }
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "second"
    assert world.state.settled_versions(["Account#A1"]) == {}


def test_the_sync_function_assembled_with_a_zuora_secret_it_cannot_read_falls_back_to_reconcile(
    world: SyncWorld,
) -> None:
    # Given the sync function as assembled with ZUORA_SECRET_ID set, its secret missing from Secrets Manager
    service = build_sync(
        settings(ZUORA_SECRET_ID="nrtsync-zuora-missing"),
        mapping=load_mapping(),
        salesforce=world.salesforce,
        state=world.state,
        history=DynamoHistoryWriter(HISTORY_TABLE, ttl_days=30, client=world.dynamodb),
        retries=world.retries,
        breaker_store=world.breaker_store,
        event_source=world.switch,
    )
    # Linked accounts (a CrmId): the assembled function holds an account without one
    linked = "0015g00000XyZ12AAB"
    first = change("Account", "A1", received=T0 + timedelta(seconds=1), Name="first", CrmId=linked)
    second = change("Account", "A1", received=T0 + timedelta(seconds=2), Name="second", CrmId=linked)
    service.run([message(first)], deadline=time.monotonic() + 60)

    # When a different change of the same second arrives
    result = service.run([message(second)], deadline=time.monotonic() + 60)

    # Then the change is written all the same, and the record waits for the next reconcile run
    assert outcomes(result) == {"written": ["A1"]}
    assert world.state.settled_versions(["Account#A1"]) == {}


def test_a_write_answered_only_after_an_attempt_in_doubt_keeps_newer_changes_out(world: SyncWorld) -> None:
    # Given v1 written by a call that the adapter retried after a read timeout: that first attempt may still land
    world.salesforce.doubt_calls = 1
    assert outcomes(world.run(message(change("Account", "A1", Name="first")))) == {"written": ["A1"]}

    # When v2 arrives / Then it waits, so the first attempt's late commit cannot overwrite it
    v2 = change("Account", "A1", updated=T0 + timedelta(seconds=1), Name="second")
    result = world.run(message(v2))
    assert reasons(result) == {"A1": RetryReason.RECORD_BUSY}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "first"
