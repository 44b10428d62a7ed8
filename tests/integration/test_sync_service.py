"""The sync session against moto's DynamoDB (in-process) and an in-memory Salesforce."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.salesforce import (
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceLimitExceededError,
    SalesforceRetryableError,
)
from nrtsync.domain.outcomes import Outcome
from nrtsync.services.sweep.service import is_newer_than_settled
from nrtsync_fakes.salesforce import FakeSalesforce
from tests.support.sync_world import T0, SyncWorld, change, message

ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"


def statuses(result) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for o in result.outcomes:
        by.setdefault(o.outcome.value, []).append(o.change.record_id)
    return by


def test_many_changes_to_one_record_become_one_write_of_the_newest(world: SyncWorld) -> None:
    # Given three versions of one account, delivered newest first
    versions = [change(updated=T0 + timedelta(seconds=s), Name=f"v{s}") for s in (30, 10, 20)]

    # When one batch carries all three
    result = world.run(*(message(v) for v in versions))

    # Then Salesforce got one call with one record, the newest, and nothing waits
    assert world.salesforce.calls == [(ACCOUNTS, 1)]
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "v30"
    assert sorted(statuses(result)["superseded"]) == ["A1", "A1"]
    assert result.retry_message_ids == []


def test_an_older_change_never_overwrites_a_newer_one_across_batches(world: SyncWorld) -> None:
    # Given the newer version was written by an earlier batch
    world.run(message(change(updated=T0 + timedelta(minutes=5), Name="new")))

    # When Zuora re-delivers an older notification hours later
    late = change(updated=T0, received=T0 + timedelta(hours=3), Name="old")
    result = world.run(message(late))

    # Then it is skipped as stale, acknowledged, and Salesforce keeps the newer value
    assert statuses(result) == {"stale": ["A1"]}
    assert result.retry_message_ids == []
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "new"
    assert len(world.salesforce.calls) == 1


def test_a_redelivery_of_the_same_change_is_a_no_op(world: SyncWorld) -> None:
    # Given a change that was written
    first = change(Name="same")
    world.run(message(first))

    # When Zuora delivers it again (same content, later receive time)
    again = first.model_copy(update={"received_at": first.received_at + timedelta(minutes=30)})
    result = world.run(message(again))

    # Then it is a duplicate: no second API call
    assert statuses(result) == {"duplicate": ["A1"]}
    assert len(world.salesforce.calls) == 1


def test_a_different_change_with_the_same_timestamp_is_not_lost(world: SyncWorld) -> None:
    # Given a change written for a timestamp (Zuora's precision is limited)
    world.run(message(change(updated=T0, received=T0 + timedelta(seconds=1), Name="first")))

    # When a different change with the same updatedDate arrives later
    result = world.run(message(change(updated=T0, received=T0 + timedelta(seconds=2), Name="second")))

    # Then the later-received one is written
    assert statuses(result) == {"written": ["A1"]}
    assert world.sf_record(ACCOUNTS, "A1")["Name"] == "second"


def test_a_child_waits_for_its_parent_and_is_written_when_it_lands(world: SyncWorld) -> None:
    # Given a subscription whose account is not in Salesforce yet
    sub = message(change("Subscription", "S1", Name="S1", AccountId="A1"))

    # When it is synced alone
    first = world.run(sub)

    # Then it waits: reported for retry with a short delay, not failed, not parked
    assert statuses(first) == {"waiting": ["S1"]}
    assert first.retry_message_ids == [sub.message_id]
    assert world.retries.delays[sub.receipt_handle] <= 10
    assert world.history("FAILURE") == []

    # And when the account lands and the subscription comes back
    world.run(message(change("Account", "A1", Name="Acme")))
    retried = message(change("Subscription", "S1", Name="S1", AccountId="A1"), receive_count=2)
    second = world.run(retried)

    # Then the subscription is written with its lookup to the account
    assert statuses(second) == {"written": ["S1"]}
    written = world.sf_record(SUBSCRIPTIONS, "S1")
    assert written["Zuora__CustomerAccount__r"] == {"Zuora__External_Id__c": "A1"}


def test_a_child_whose_parent_never_comes_is_parked_after_bounded_tries(world: SyncWorld) -> None:
    # Given a subscription that has already waited the configured number of times
    world.overrides["PARENT_WAIT_MAX_TRIES"] = 3
    sub = message(change("Subscription", "S9", AccountId="NOPE"), receive_count=3)

    # When it is synced again and the parent is still missing
    result = world.run(sub)

    # Then it is a failure on the failure list, acknowledged
    assert statuses(result) == {"failed": ["S9"]}
    assert result.retry_message_ids == []
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "INVALID_FIELD"
    assert "parent still missing after 3 tries" in failure["error_message"]


def test_parents_are_written_before_children_in_the_same_batch(world: SyncWorld) -> None:
    # Given a subscription that arrives before its account, in one batch
    batch = [message(change("Subscription", "S1", AccountId="A1")), message(change("Account", "A1"))]

    # When the batch is synced
    result = world.run(*batch)

    # Then the account call came first and both were written
    assert [c[0] for c in world.salesforce.calls] == [ACCOUNTS, SUBSCRIPTIONS]
    assert sorted(statuses(result)["written"]) == ["A1", "S1"]


def test_one_api_call_carries_up_to_five_collections_of_200(world: SyncWorld) -> None:
    # Given 450 accounts and 10 subscriptions of those accounts
    accounts = [message(change("Account", f"A{i}")) for i in range(450)]
    subs = [message(change("Subscription", f"S{i}", AccountId=f"A{i}")) for i in range(10)]

    # When they are synced in one session
    result = world.run(*accounts, *subs)

    # Then one Composite call carried four collections: the accounts (200, 200, 50), then the subscriptions
    assert world.salesforce.api_requests == [[(ACCOUNTS, 200), (ACCOUNTS, 200), (ACCOUNTS, 50), (SUBSCRIPTIONS, 10)]]
    assert result.session.counts[Outcome.WRITTEN] == 460


def test_permanent_errors_are_parked_with_the_original_change(world: SyncWorld) -> None:
    # Given Salesforce refuses one record with a validation rule
    world.salesforce.refuse["A2"] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name is banned")
    good, bad = message(change("Account", "A1")), message(change("Account", "A2", Name="banned"))

    # When both are synced
    result = world.run(good, bad)

    # Then the good one is written, the bad one parked with the error and the change, and both are acknowledged
    assert statuses(result) == {"written": ["A1"], "failed": ["A2"]}
    assert result.retry_message_ids == []
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert '"Name":"banned"' in failure["body"]


def test_a_parked_version_is_settled_for_a_sweep_of_zuora_and_a_newer_one_is_not(world: SyncWorld) -> None:
    # Given Salesforce refused a change for good (parked on the failure list)
    world.salesforce.refuse["A2"] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name is banned")
    refused = change("Account", "A2", Name="banned")
    world.run(message(refused))

    # Then a sweep that reads the same record from Zuora finds it settled (an operator has it): not queued again
    settled = world.state.settled_versions([refused.record_key])
    assert settled == {refused.record_key: refused.version}
    from_zuora = change("Account", "A2", Name="banned", received=T0 + timedelta(minutes=20))
    assert not is_newer_than_settled(from_zuora, settled[refused.record_key])
    # while a later change of that record in Zuora is still news
    later = change("Account", "A2", updated=T0 + timedelta(seconds=1))
    assert is_newer_than_settled(later, settled[refused.record_key])


def test_row_locks_are_retried_soon(world: SyncWorld) -> None:
    # Given Salesforce answers UNABLE_TO_LOCK_ROW for one record
    world.salesforce.refuse["A1"] = ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    locked = message(change("Account", "A1"))

    # When it is synced
    result = world.run(locked)

    # Then it waits with a short delay and its lease is released for the retry
    assert result.retry_message_ids == [locked.message_id]
    assert world.retries.delays[locked.receipt_handle] <= 10
    del world.salesforce.refuse["A1"]
    assert statuses(world.run(message(change("Account", "A1"), receive_count=2))) == {"written": ["A1"]}


@pytest.mark.parametrize("error", [SalesforceRetryableError, SalesforceAuthError])
def test_a_failed_call_sends_its_records_back_to_the_queue(world: SyncWorld, error: type[Exception]) -> None:
    # Given Salesforce fails the whole call
    world.salesforce.fail_calls.append(error)
    batch = [message(change("Account", f"A{i}")) for i in range(3)]

    # When the batch is synced
    result = world.run(*batch)

    # Then every record waits; none is lost or parked
    assert sorted(result.retry_message_ids) == sorted(m.message_id for m in batch)
    assert world.history("FAILURE") == []


def test_the_api_budget_stops_calls_until_usage_falls(world: SyncWorld) -> None:
    # Given the org's usage is at 96% and the budget is 95%
    world.salesforce = FakeSalesforce(api_limit=100, api_used=95)
    world.run(message(change("Account", "A0")))  # the call that reports 96/100
    calls_before = len(world.salesforce.calls)

    # When the next batch comes within the recheck interval
    blocked = message(change("Account", "A1"))
    result = world.run(blocked)

    # Then Salesforce is not called and the record waits for the recheck interval
    assert len(world.salesforce.calls) == calls_before
    assert result.retry_message_ids == [blocked.message_id]
    assert world.retries.delays[blocked.receipt_handle] == 60


def test_an_unreadable_message_is_parked_not_dropped(world: SyncWorld) -> None:
    # Given a message whose body is not a queued change
    bad = message(change())
    bad = type(bad)(message_id="bad-1", receipt_handle="rb", body='{"not": "a change"}')

    # When it is synced
    result = world.run(bad)

    # Then it is on the failure list with its raw body, and acknowledged
    assert result.retry_message_ids == []
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "MALFORMED_MESSAGE"
    assert failure["body"] == '{"not": "a change"}'


def test_the_history_records_the_session_outcomes_and_latencies(world: SyncWorld) -> None:
    # Given two changes, one superseded by the other
    older, newer = change(updated=T0), change(updated=T0 + timedelta(seconds=5), Name="n")

    # When they are synced
    world.run(message(older), message(newer))

    # Then the session, both outcomes and a minute summary with one latency are stored
    [session] = world.history("SESSION#")
    assert (session["records_in"], session["written"], session["superseded"]) == (2, 1, 1)
    trail = world.history("RECORD#Account#A1")
    assert sorted(i["status"] for i in trail) == ["superseded", "written"]
    [minute] = world.history("MINUTE#")
    assert minute["written"] == 1
    assert len(minute["sync_ms"]) == 1
    assert minute["e2e_ms"][0] >= minute["sync_ms"][0]


def test_two_concurrent_invocations_leave_the_newest_version(world: SyncWorld) -> None:
    # Given a slow Salesforce, and an old and a new version of one record in two different batches
    world.salesforce.latency_s = 0.05
    for round_ in range(10):
        record = f"C{round_}"
        old = message(change("Account", record, updated=T0, Name="old"))
        new = message(change("Account", record, updated=T0 + timedelta(seconds=1), Name="new"))
        pending = {old.message_id: old, new.message_id: new}
        barrier = threading.Barrier(2)

        # When two invocations process them at the same time, and retry whatever they were told to retry
        def invoke(msg, barrier=barrier, pending=pending) -> None:
            barrier.wait()
            result = world.run(msg)
            if msg.message_id in result.retry_message_ids:
                pending[msg.message_id] = msg
            else:
                pending.pop(msg.message_id, None)

        threads = [threading.Thread(target=invoke, args=(m,)) for m in (old, new)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for leftover in list(pending.values()):
            queued = QueuedChange.model_validate_json(leftover.body)
            world.run(message(change("Account", record, updated=queued.updated_date, **queued.fields), receive_count=2))

        # Then Salesforce holds the new version
        assert world.sf_record(ACCOUNTS, record)["Name"] == "new"


def test_more_than_five_collections_take_another_call_parents_first(
    world: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given collections of 2 records (to keep the test small), 11 accounts and a subscription of the last one
    monkeypatch.setattr("nrtsync.services.sync.composite.SOBJECT_COLLECTION_MAX", 2)
    accounts = [message(change("Account", f"A{i:02d}")) for i in range(11)]
    sub = message(change("Subscription", "S1", AccountId="A10"))

    # When they are synced in one session
    result = world.run(*accounts, sub)

    # Then two calls: five collections, then the sixth with the subscription after its parent
    assert world.salesforce.api_requests == [[(ACCOUNTS, 2)] * 5, [(ACCOUNTS, 1), (SUBSCRIPTIONS, 1)]]
    assert result.session.counts[Outcome.WRITTEN] == 12


def test_a_change_blocked_by_a_dead_writers_lease_backs_off_until_the_lease_expires(world: SyncWorld) -> None:
    # Given an invocation that claimed the record's lease for two minutes and then died
    old = change("Account", "A1", updated=T0, Name="v1")
    lease_seconds = 120
    lease_until_ms = int((time.time() + lease_seconds) * 1000)
    world.state.claim(old.record_key, old.version, old.content_hash, owner="dead", lease_until_ms=lease_until_ms)
    newer = change("Account", "A1", updated=T0 + timedelta(seconds=30), Name="v2")

    # When the newer change keeps coming back while the lease holds
    delays = []
    for receive in range(1, 11):
        msg = message(newer, receive_count=receive)
        result = world.run(msg)
        assert [o.outcome for o in result.outcomes] == [Outcome.WAITING]
        delays.append(world.retries.delays[msg.receipt_handle])

    # Then the delays double from the retry delay (plus up to 20% jitter) and stop at the lease's expiry, so
    # fewer than the queue's ten receives outlast the lease (a constant delay spent them all inside it)
    for n, delay in enumerate(delays[:4]):
        assert 5 * 2**n <= delay <= 6 * 2**n
    assert all(d <= lease_seconds + 1 for d in delays)
    assert sum(delays[:6]) > lease_seconds


PAYMENTS = "Zuora__Payment__c"
PARSER_MESSAGE = (
    "Cannot deserialize instance of datetime from VALUE_STRING value soon or request may be missing a required field "
    "at [line:1, column:4711]"
)


def test_one_bad_value_in_200_fails_alone_and_the_other_199_are_written(world: SyncWorld) -> None:
    # Given 200 payments, one of which Salesforce's parser refuses (the whole collection comes back 400)
    # 200 payments with no billing account (their parents are beside the point here): an org without the master-detail
    world.salesforce.enforce_master_detail = False
    world.salesforce.refuse_collection["P137"] = ("JSON_PARSER_ERROR", PARSER_MESSAGE)
    payments = [message(change("Payment", f"P{i:03d}", Amount=str(i))) for i in range(200)]

    # When they are synced
    result = world.run(*payments)

    # Then the refused collection was bisected down to the bad record: 199 written, 1 failed and parked with
    # Salesforce's code and message, nothing left waiting
    by = statuses(result)
    assert sorted(by) == ["failed", "written"]
    assert by["failed"] == ["P137"]
    assert len(by["written"]) == 199
    assert result.retry_message_ids == []
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "JSON_PARSER_ERROR"
    assert PARSER_MESSAGE in failure["error_message"]

    # And each level's two halves shared one Composite call, down to the record alone: at most
    # 1 + ceil(log2(200)) = 9 calls (8 here), all counted in the session
    calls = world.salesforce.api_requests
    assert calls[0] == [(PAYMENTS, 200)]
    assert calls[1] == [(PAYMENTS, 100), (PAYMENTS, 100)]
    assert all(len(call) == 2 for call in calls[1:])
    assert (PAYMENTS, 1) in calls[-1]
    assert len(calls) == 8
    assert result.session.api_calls == 8


def test_a_refused_collection_is_isolated_beside_other_collections_and_parents_stay_first(world: SyncWorld) -> None:
    # Given accounts and payments in one batch, two payments with values Salesforce cannot parse
    world.salesforce.refuse_collection.update(
        {"P1": ("JSON_PARSER_ERROR", "bad 1"), "P6": ("JSON_PARSER_ERROR", "bad 6")}
    )
    accounts = [message(change("Account", f"A{i}")) for i in range(3)]
    payments = [message(change("Payment", f"P{i}", AccountId=f"A{i % 3}")) for i in range(8)]

    # When they are synced
    result = world.run(*payments, *accounts)

    # Then only the two bad payments failed, each with its own message; the accounts went first, in the first call
    by = statuses(result)
    assert sorted(by["failed"]) == ["P1", "P6"]
    assert len(by["written"]) == 9
    assert sorted(f["error_message"] for f in world.history("FAILURE")) == [
        "upsert Zuora__Payment__c: HTTP 400 JSON_PARSER_ERROR: bad 1",
        "upsert Zuora__Payment__c: HTTP 400 JSON_PARSER_ERROR: bad 6",
    ]
    assert world.salesforce.api_requests[0] == [(ACCOUNTS, 3), (PAYMENTS, 8)]
    assert result.session.api_calls == len(world.salesforce.api_requests)


def test_what_the_deadline_leaves_unisolated_waits_and_nothing_is_parked_wholesale(world: SyncWorld) -> None:
    # Given a refused collection of 200 payments and a clock where each Salesforce call takes 1 s
    # 200 payments with no billing account (their parents are beside the point here): an org without the master-detail
    world.salesforce.enforce_master_detail = False
    now = [1_000.0]

    def one_second() -> None:
        now[0] += 1.0

    world.monotonic = lambda: now[0]
    world.salesforce.on_call = one_second
    world.salesforce.refuse_collection["P199"] = ("JSON_PARSER_ERROR", PARSER_MESSAGE)
    payments = [message(change("Payment", f"P{i:03d}")) for i in range(200)]

    # When the invocation has time for three calls (its deadline keeps 5 s back for the finish)
    result = world.run(*payments, remaining_seconds=8.0)

    # Then three calls isolated down to 50 records: 150 written; the 50 that include the bad one wait, saying why,
    # and come back via batchItemFailures; nothing failed or was parked
    by = statuses(result)
    assert len(world.salesforce.api_requests) == 3
    assert len(by["written"]) == 150
    assert len(by["waiting"]) == 50
    assert "P199" in by["waiting"]
    assert "failed" not in by
    assert world.history("FAILURE") == []
    waiting = [o for o in result.outcomes if o.outcome is Outcome.WAITING]
    assert {o.error_code for o in waiting} == {"OUT_OF_TIME"}
    assert all(
        "not isolated" in (o.error_message or "") and "JSON_PARSER_ERROR" in (o.error_message or "") for o in waiting
    )
    assert len(result.retry_message_ids) == 50
    assert result.session.api_calls == 3


def test_a_record_locked_by_an_approval_process_is_parked_not_retried(world: SyncWorld) -> None:
    # Given Salesforce answers ENTITY_IS_LOCKED for one record (an approval process holds it)
    world.salesforce.refuse["A1"] = ("ENTITY_IS_LOCKED", "the entity is locked for editing")
    locked, free = message(change("Account", "A1")), message(change("Account", "A2"))

    # When both are synced
    result = world.run(locked, free)

    # Then the locked one fails and is parked with that code (retrying in seconds would only reach the DLQ)
    assert statuses(result) == {"failed": ["A1"], "written": ["A2"]}
    assert result.retry_message_ids == []
    [failure] = world.history("FAILURE")
    assert failure["error_code"] == "ENTITY_IS_LOCKED"


def test_the_concurrent_request_limit_waits_briefly_and_does_not_stop_calls(world: SyncWorld) -> None:
    # Given Salesforce refuses the next call for its concurrent long-running request limit
    world.salesforce.fail_calls.append(SalesforceConcurrencyLimitError)
    first = message(change("Account", "A1"))

    # When a batch is synced
    result = world.run(first)

    # Then the record waits with a short backoff (the retry delay, not the usage recheck period)
    [outcome] = result.outcomes
    assert (outcome.outcome, outcome.error_code) == (Outcome.WAITING, "CONCURRENT_REQUEST_LIMIT")
    assert 5 <= world.retries.delays[first.receipt_handle] <= 6
    assert world.history("FAILURE") == []

    # And the next batch calls Salesforce at once: the daily-allocation stop was not engaged
    calls_before = len(world.salesforce.api_requests)
    again = world.run(message(change("Account", "A1"), receive_count=2))
    assert statuses(again) == {"written": ["A1"]}
    assert len(world.salesforce.api_requests) == calls_before + 1


def test_the_daily_allocation_variant_still_stops_for_the_recheck_period(world: SyncWorld) -> None:
    # Given Salesforce refuses the call because the daily allocation is used up
    world.salesforce.fail_calls.append(SalesforceLimitExceededError)
    held = message(change("Account", "A1"))

    # When it is synced, the record waits for the recheck period
    world.run(held)
    assert world.retries.delays[held.receipt_handle] == 60
