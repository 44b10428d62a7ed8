"""The circuit breaker: the sync opens it when Salesforce cannot take writes, the probe closes it, operators
pause and resume it; state in moto's DynamoDB (the real adapter), the event source mapping faked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.sync import app
from nrtsync.domain.models.salesforce import (
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.ports.breaker import BreakerReason
from nrtsync.services.sync.service import QueueMessage
from nrtsync_fakes.clock import FakeClock
from nrtsync_fakes.salesforce import FakeSalesforce
from nrtsync_local.stack.schedule import scheduled_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.sync_world import SyncWorld, change, message


@pytest.fixture
def world(world: SyncWorld) -> SyncWorld:
    world.clock = FakeClock()
    world.overrides = {"BREAKER_FAILURE_THRESHOLD": 3}
    return world


class MalformedRequestError(SalesforceRequestError):
    """A 400 for the whole request: Salesforce answered (it is up), it refused this request (not every call, as a
    404 for a retired API version would)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code="INVALID_FIELD", http_status=400)


def batch(n: int = 3, prefix: str = "A") -> list[QueueMessage]:
    return [message(change("Account", f"{prefix}{i}")) for i in range(n)]


def item(world: SyncWorld) -> dict[str, Any]:
    return dict(world.dynamodb.get_item(TableName="sync-state", Key={"pk": {"S": "ORG#BREAKER"}})["Item"])


# -- opening ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SalesforceLimitExceededError, BreakerReason.REQUEST_LIMIT_EXCEEDED),
        (SalesforceAuthError, BreakerReason.SALESFORCE_AUTH),
    ],
)
def test_a_used_up_allocation_or_refused_credentials_open_the_breaker_and_stop_receiving(
    world: SyncWorld, error: type[Exception], reason: BreakerReason
) -> None:
    # Given Salesforce refuses the call for the org's allocation / our credentials
    world.salesforce.fail_calls.append(error)
    messages = batch()

    # When a batch is synced
    result = world.run(*messages)

    # Then its changes go back to the queue, the breaker is open with why and since when, the mapping is disabled
    assert sorted(result.retry_message_ids) == sorted(m.message_id for m in messages)
    stored = item(world)
    assert stored["state"] == {"S": "open"}
    assert stored["reason"] == {"S": reason.value}
    assert stored["by"] == {"S": "sync"}
    assert stored["since"] == {"S": "2026-12-01T09:00:00+00:00"}
    assert stored["message"]["S"]
    assert world.switch.changes == [False]


def test_the_concurrent_long_request_limit_does_not_open_the_breaker(world: SyncWorld) -> None:
    # Given the 403 REQUEST_LIMIT_EXCEEDED variant that names ConcurrentPerOrgLongTxn (clears in seconds)
    world.salesforce.fail_calls.append(SalesforceConcurrencyLimitError)

    world.run(*batch())

    # Then the mapping keeps receiving
    assert world.switch.changes == []
    assert not world.breaker_store.read().is_open


def test_the_api_budget_reached_opens_the_breaker(world: SyncWorld) -> None:
    # Given the org's usage is over the budget (95%)
    world.salesforce = FakeSalesforce(api_limit=100, api_used=95)
    world.run(message(change("Account", "A0")))  # the call that reports 96/100
    calls = world.salesforce.api_calls

    # When the next batch comes
    result = world.run(*batch(2, "B"))

    # Then no call is made, the batch waits and the breaker is open for the budget
    assert world.salesforce.api_calls == calls
    assert len(result.retry_message_ids) == 2
    assert world.breaker_store.read().reason is BreakerReason.API_BUDGET_REACHED
    assert world.switch.enabled is False


def test_n_consecutive_failed_calls_across_invocations_open_the_breaker(world: SyncWorld) -> None:
    # Given the threshold is 3 and each invocation (a new service: another container) fails its call
    for n in range(2):
        world.salesforce.fail_calls.append(SalesforceRetryableError)
        world.run(*batch(1, f"C{n}"))
        assert not world.breaker_store.read().is_open, f"opened after {n + 1} failures"
    assert world.switch.changes == []

    # When the third consecutive call fails
    world.salesforce.fail_calls.append(SalesforceRetryableError)
    world.run(*batch(1, "C2"))

    # Then the breaker opens for an outage
    state = world.breaker_store.read()
    assert state.is_open
    assert state.reason is BreakerReason.SALESFORCE_UNAVAILABLE
    assert world.switch.changes == [False]


def test_an_answered_call_restarts_the_count_of_consecutive_failures(world: SyncWorld) -> None:
    # Given two failed calls, then one Salesforce answers (a 4xx request error counts as an answer too)
    for n in range(2):
        world.salesforce.fail_calls.append(SalesforceRetryableError)
        world.run(*batch(1, f"D{n}"))
    world.run(*batch(1, "OK"))
    assert world.breaker_store.read().failures == 0
    world.salesforce.fail_calls.append(MalformedRequestError)

    # When two more calls fail
    world.run(*batch(1, "E0"))
    for n in range(2):
        world.salesforce.fail_calls.append(SalesforceRetryableError)
        world.run(*batch(1, f"F{n}"))

    # Then the breaker is still closed: the failures were not consecutive
    assert not world.breaker_store.read().is_open


def test_while_open_a_batch_makes_no_call_and_waits(world: SyncWorld) -> None:
    # Given the breaker is open (a batch received just before the mapping stopped)
    world.breaker().trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    calls = world.salesforce.api_calls
    messages = batch()

    # When it is processed
    result = world.run(*messages)

    # Then Salesforce is not called and every change waits on the queue, none parked
    assert world.salesforce.api_calls == calls
    assert sorted(result.retry_message_ids) == sorted(m.message_id for m in messages)
    assert {o.error_code for o in result.outcomes} == {"BREAKER_OPEN"}
    assert world.history("FAILURE") == []


# -- the probe -------------------------------------------------------------------------------------------------


def test_the_probe_does_nothing_while_closed(world: SyncWorld) -> None:
    result = world.service().probe(deadline=world.monotonic() + 30)

    assert result is not None
    assert (result.action, result.paused) == ("idle", False)
    assert world.salesforce.api_calls == 0
    assert world.switch.changes == []


def test_the_probe_closes_the_breaker_when_salesforce_answers_and_counts_its_call(world: SyncWorld) -> None:
    # Given the breaker opened for an outage
    world.breaker().trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    used = world.salesforce.api_used

    # When the probe runs and /limits answers under the budget
    result = world.service().probe(deadline=world.monotonic() + 30)

    # Then one API call was made (counted in the usage), the breaker is closed by the probe, the mapping enabled
    assert result is not None
    assert (result.action, result.paused) == ("closed", False)
    assert world.salesforce.usage_checks == 1
    assert world.salesforce.api_used == used + 1
    assert world.state.api_usage() is not None  # shared with the other containers' budget guards
    assert item(world)["state"] == {"S": "closed"}
    assert item(world)["by"] == {"S": "probe"}
    assert world.switch.changes == [False, True]


def test_the_probe_keeps_a_budget_pause_until_usage_is_under_the_budget(world: SyncWorld) -> None:
    # Given the breaker opened for the budget and the usage is still at 97%
    world.salesforce = FakeSalesforce(api_limit=100, api_used=96)
    world.breaker().trip(BreakerReason.API_BUDGET_REACHED, "budget")

    # When the probe runs
    kept = world.service().probe(deadline=world.monotonic() + 30)

    # Then it stays open; once the day's allocation renews (usage falls) the next probe closes it
    assert kept is not None
    assert (kept.action, kept.paused) == ("kept_open", True)
    world.salesforce.api_used = 10
    closed = world.service().probe(deadline=world.monotonic() + 30)
    assert closed is not None
    assert closed.action == "closed"
    assert world.switch.enabled is True


@pytest.mark.parametrize("error", [SalesforceRetryableError, SalesforceAuthError, SalesforceLimitExceededError])
def test_the_probe_keeps_the_breaker_open_while_salesforce_still_fails(
    world: SyncWorld, error: type[Exception]
) -> None:
    world.breaker().trip(BreakerReason.SALESFORCE_AUTH, "refused")
    world.salesforce.fail_usage_checks.append(error)

    result = world.service().probe(deadline=world.monotonic() + 30)

    assert result is not None
    assert (result.action, result.paused) == ("kept_open", True)
    assert result.error
    assert world.switch.enabled is False
    assert world.breaker_store.read().since == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # since the first opening


def test_a_manual_pause_is_never_closed_by_the_probe_only_by_resume(world: SyncWorld) -> None:
    # Given an operator paused the sync
    breaker = world.breaker()
    breaker.pause("Salesforce release tonight", by="operator:ana")
    assert world.switch.enabled is False

    # When the probe runs (Salesforce is fine)
    result = world.service().probe(deadline=world.monotonic() + 30)

    # Then it stays paused and the probe made no call
    assert result is not None
    assert (result.action, result.paused) == ("manual", True)
    assert world.salesforce.api_calls == 0
    stored = world.breaker_store.read()
    assert (stored.reason, stored.by, stored.message) == (
        BreakerReason.MANUAL,
        "operator:ana",
        "Salesforce release tonight",
    )

    # And resume closes it and receives again
    breaker.resume("release done", by="operator:ana")
    assert not world.breaker_store.read().is_open
    assert world.switch.enabled is True


def test_a_mapping_that_cannot_be_enabled_leaves_the_breaker_open_for_the_next_probe(world: SyncWorld) -> None:
    world.breaker().trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    world.switch.fail = True

    result = world.service().probe(deadline=world.monotonic() + 30)

    assert result is not None
    assert result.paused
    assert world.breaker_store.read().is_open
    world.switch.fail = False
    assert world.service().probe(deadline=world.monotonic() + 30).action == "closed"  # type: ignore[union-attr]


# -- the handler -----------------------------------------------------------------------------------------------


def test_the_scheduled_event_runs_the_probe_and_emits_sync_paused(
    world: SyncWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the breaker is open and Salesforce is still down
    world.breaker().trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    world.salesforce.fail_usage_checks.append(SalesforceRetryableError)
    app.service.use(world.service())
    event = scheduled_event(region="eu-west-1", rule="nrtsync-SyncFunction-Probe")
    try:
        # When EventBridge's schedule invokes the sync function, twice (Salesforce is back the second time)
        response = app.lambda_handler(event, FakeLambdaContext())
        closed = app.lambda_handler(event, FakeLambdaContext())
    finally:
        app.service.use(None)

    # Then it answered with the breaker's state, and SyncPaused 1 then 0 went out as EMF (service dimension)
    assert response["paused"] is True
    assert response["reason"] == "SALESFORCE_UNAVAILABLE"
    assert closed["paused"] is False
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"SyncPaused"' in line]
    assert [doc["SyncPaused"] for doc in emf] == [[1.0], [0.0]]  # Powertools writes each value as a list
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
