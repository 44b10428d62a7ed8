"""SimpleSalesforceAdapter against the HTTPS Salesforce stand-in running as a subprocess."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.domain.models.salesforce import (
    CollectionUpsert,
    RecordError,
    RecordResult,
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceCredentials,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync_fakes.clock import FakeClock
from tests.support.salesforce import StandinClient, running_salesforce_standin

pytestmark = pytest.mark.integration

ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
EXT = "Zuora__External_Id__c"
# The Salesforce Account each billing account belongs to: the master-detail a new Zuora__CustomerAccount__c needs.
CRM_ACCOUNT = "0015g00000XyZ12AAB"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(standin: StandinClient) -> None:
    standin.reset()


def credentials(standin: StandinClient, **overrides: Any) -> SalesforceCredentials:
    values: dict[str, Any] = {
        "login_url": standin.url,
        "client_id": standin.client_id,
        "client_secret": standin.client_secret,
        **overrides,
    }
    return SalesforceCredentials.model_validate(values)


def adapter_for(
    standin: StandinClient, creds: SalesforceCredentials | None = None, **kwargs: Any
) -> SimpleSalesforceAdapter:
    chosen = creds or credentials(standin)
    kwargs.setdefault("sleep", FakeClock().sleep)  # records the backoff delays instead of sleeping them
    kwargs.setdefault("rng", lambda: 0.5)
    kwargs.setdefault("timeout_seconds", 5.0)
    return SimpleSalesforceAdapter(lambda: chosen, session=standin.session(), **kwargs)


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def upsert(
    adapter: SimpleSalesforceAdapter, sobject: str, ext: str, records: list[dict[str, Any]], *, deadline: float
) -> list[RecordResult]:
    """One sObject Collections upsert; the error Salesforce answers for it is raised."""
    [answer] = adapter.upsert_collections(
        [CollectionUpsert(sobject=sobject, external_id_field=ext, records=records)], deadline=deadline
    )
    if isinstance(answer, SalesforceError):
        raise answer
    return answer


def test_per_record_failures_are_reported_per_record(standin):
    # Given one known account, and a validation rule on Name
    standin.seed(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}])
    standin.set_faults(validation_rules=[{"field": "Name", "equals": "BAD", "message": "bad name"}])
    adapter = adapter_for(standin)
    records: list[dict[str, Any]] = [
        {EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A1"}},
        {EXT: "S2", "Zuora__CustomerAccount__r": {EXT: "A404"}},
        {EXT: "S3", "Name": "BAD"},
    ]

    # When they are upserted
    results = upsert(adapter, SUBSCRIPTIONS, EXT, records, deadline=soon())

    # Then the good one succeeded and each failure carries Salesforce's error
    assert results[0].success
    assert results[0].created is True
    assert results[1].success is False
    assert results[1].salesforce_id is None
    assert results[1].errors[0].status_code == "INVALID_FIELD"
    assert "A404 not found" in results[1].errors[0].message
    assert results[2].errors == [RecordError(status_code="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="bad name")]


def test_upsert_again_updates_and_token_is_reused(standin):
    # Given an adapter that has created a record
    adapter = adapter_for(standin)
    first = upsert(
        adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "one"}], deadline=soon()
    )

    # When the same record is upserted again
    second = upsert(
        adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "two"}], deadline=soon()
    )

    # Then it was updated in place, with one token for both calls
    assert second[0].created is False
    assert second[0].salesforce_id == first[0].salesforce_id
    assert standin.stats()["tokens_issued"] == 1


def test_injected_503s_are_retried_with_backoff_then_succeed(standin):
    # Given two 503 answers queued
    standin.set_faults(fail_next=[{"status": 503}, {"status": 503}])
    clock = FakeClock()
    adapter = adapter_for(standin, sleep=clock.sleep, rng=lambda: 1.0)

    # When a record is upserted
    results = upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then it succeeded on the third attempt after exponentially growing waits
    assert results[0].success
    assert adapter.api_calls == 3
    assert clock.sleeps == [0.25, 0.5]


def test_gives_up_at_the_deadline_when_salesforce_keeps_failing(standin):
    # Given Salesforce answering 503 to everything, and real sleeps
    adapter = adapter_for(standin, sleep=time.sleep, rng=lambda: 1.0, max_attempts=50)
    adapter.fetch_api_usage(deadline=soon())  # the token is cached before the 503s start
    standin.set_faults(fail_next=[{"status": 503}] * 50)
    started = time.monotonic()

    # When a record is upserted with 1 s left
    with pytest.raises(SalesforceRetryableError, match="deadline"):
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=started + 1.0)

    # Then it stopped before the deadline instead of sleeping past it
    assert time.monotonic() - started < 1.0


def test_a_slow_salesforce_is_cut_off_at_the_deadline(standin):
    # Given a token already cached, then 1.2 s of latency on every call
    adapter = adapter_for(standin, sleep=time.sleep)
    adapter.fetch_api_usage(deadline=soon())
    standin.set_faults(latency_ms=1200)
    started = time.monotonic()

    # When a record is upserted with 0.3 s left
    with pytest.raises(SalesforceRetryableError):
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=started + 0.3)

    # Then the request timed out at the deadline rather than after the adapter's 5 s timeout
    assert time.monotonic() - started < 1.0
    # ... and, as in Salesforce, the abandoned request is still applied (the retry must be idempotent)
    landed = time.monotonic() + 5
    while not standin.records(ACCOUNTS) and time.monotonic() < landed:
        time.sleep(0.05)  # polls the stand-in process, which applies the abandoned request in its own time
    assert [r[EXT] for r in standin.records(ACCOUNTS)] == ["A1"]


def test_deadline_already_passed_starts_no_call(standin):
    # Given an adapter
    adapter = adapter_for(standin)

    # When the deadline is in the past
    with pytest.raises(SalesforceRetryableError):
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=time.monotonic() - 1)

    # Then nothing was sent
    assert adapter.api_calls == 0
    assert standin.stats()["token_requests"] == 0


def test_expired_session_is_renewed_once_and_the_call_repeated(standin):
    # Given an adapter with a cached token that Salesforce then expires
    adapter = adapter_for(standin)
    upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    standin.set_faults(expire_sessions=True)

    # When it upserts again
    results = upsert(adapter, ACCOUNTS, EXT, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then a new token was fetched and the call succeeded
    assert results[0].success
    assert standin.stats()["tokens_issued"] == 2
    assert adapter.api_calls == 3


def test_session_refused_again_after_renewal_is_an_auth_error(standin):
    # Given Salesforce refusing the session twice in a row
    adapter = adapter_for(standin)
    standin.set_faults(fail_next=[{"status": 401, "body": INVALID_SESSION}] * 2)

    # When a record is upserted
    with pytest.raises(SalesforceAuthError):
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the token was renewed once only
    assert standin.stats()["tokens_issued"] == 2


def test_request_limit_exceeded_raises_at_once_and_usage_is_seen(standin):
    # Given an org whose allocation is used up
    adapter = adapter_for(standin)
    standin.set_faults(api_limit=500, api_used=500)

    # When a record is upserted
    with pytest.raises(SalesforceLimitExceededError):
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then there was no retry, and the usage of the refusal was recorded
    assert adapter.api_calls == 1
    assert adapter.api_usage is not None
    assert (adapter.api_usage.used, adapter.api_usage.limit, adapter.api_usage.percent) == (500, 500, 100.0)


def test_api_usage_is_parsed_from_each_answer_and_fetched_from_limits(standin):
    # Given 899 of 1,000 calls used
    standin.set_faults(api_limit=1000, api_used=899)
    adapter = adapter_for(standin)
    assert adapter.api_usage is None

    # When one upsert is made, then the limits read
    upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    seen = adapter.api_usage
    fetched = adapter.fetch_api_usage(deadline=soon())

    # Then both report the usage as Salesforce counted it
    assert seen is not None
    assert (seen.used, seen.limit, seen.percent) == (900, 1000, 90.0)
    assert (fetched.used, fetched.limit) == (901, 1000)
    assert adapter.api_usage is not None
    assert adapter.api_usage.used == 901


def test_jwt_bearer_flow_with_a_key_pair_made_here(standin):
    # Given a key pair whose public half the stand-in trusts for one user
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin.configure(jwt_public_key_pem=public_pem.decode(), jwt_username="sync@example.com")
    creds = credentials(
        standin, auth_flow="jwt_bearer", client_secret=None, username="sync@example.com", private_key=private_pem
    )
    adapter = adapter_for(standin, creds)

    # When a record is upserted
    results = upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the assertion was accepted
    assert results[0].success
    assert standin.stats()["tokens_issued"] == 1


def test_wrong_client_secret_is_an_auth_error_without_retries(standin):
    # Given a wrong client secret
    adapter = adapter_for(standin, credentials(standin, client_secret="not-the-secret"))

    # When a record is upserted
    with pytest.raises(SalesforceAuthError, match="invalid_client") as raised:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the token endpoint was asked once, no API call was made, and the secret is not in the message
    assert standin.stats()["token_requests"] == 1
    assert adapter.api_calls == 0
    assert "not-the-secret" not in str(raised.value)


def test_token_endpoint_503_is_retried(standin):
    # Given the token endpoint failing once
    standin.set_faults(fail_next=[{"status": 503, "endpoint": "token"}])
    adapter = adapter_for(standin)

    # When a record is upserted
    results = upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the second token request succeeded
    assert results[0].success
    assert standin.stats()["token_requests"] == 2


def test_unknown_sobject_is_a_request_error_with_salesforce_code(standin):
    # Given an adapter
    adapter = adapter_for(standin)

    # When an unknown sObject is upserted
    with pytest.raises(SalesforceRequestError) as raised:
        upsert(adapter, "Nope__c", EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the error carries Salesforce's code and the HTTP status, and was not retried
    assert (raised.value.status_code, raised.value.http_status) == ("NOT_FOUND", 404)
    assert adapter.api_calls == 1


def collection(sobject: str, records: list[dict[str, Any]]) -> CollectionUpsert:
    return CollectionUpsert(sobject=sobject, external_id_field=EXT, records=records)


def test_one_collection_goes_as_a_plain_collections_call(standin):
    # Given an adapter
    adapter = adapter_for(standin)

    # When one collection is upserted through upsert_collections
    [results] = adapter.upsert_collections(
        [
            collection(
                ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]
            )
        ],
        deadline=soon(),
    )

    # Then it went as a plain sObject Collections PATCH, not a Composite
    assert isinstance(results, list)
    assert [r.created for r in results] == [True, True]
    stats = standin.stats()
    assert stats["by_endpoint"]["PATCH composite/sobjects"] == 1
    assert "POST composite" not in stats["by_endpoint"]
    assert stats["records_per_call"] == [2]
    assert adapter.api_calls == 1


def test_three_collections_go_in_one_composite_call_with_results_in_order(standin):
    # Given accounts, subscriptions looking them up, and more accounts
    adapter = adapter_for(standin)
    requests = [
        collection(
            ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]
        ),
        collection(SUBSCRIPTIONS, [{EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A2"}}]),
        collection(
            ACCOUNTS,
            [
                {EXT: "A3", "Zuora__Account__c": CRM_ACCOUNT},
                {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "again"},
                {EXT: "A4", "Zuora__Account__c": CRM_ACCOUNT},
            ],
        ),
    ]

    # When they are upserted together
    answers = adapter.upsert_collections(requests, deadline=soon())

    # Then one Composite call was made and each request got its own results, in order
    stats = standin.stats()
    assert adapter.api_calls == 1
    assert stats["by_endpoint"]["POST composite"] == 1
    assert stats["records_per_call"] == [6]
    first, second, third = answers
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert isinstance(third, list)
    assert [r.created for r in first] == [True, True]
    assert second[0].success
    assert [r.created for r in third] == [True, False, True]
    assert third[1].salesforce_id == first[0].salesforce_id
    stored = {r[EXT]: r["Id"] for r in standin.records(ACCOUNTS)}
    assert standin.records(SUBSCRIPTIONS)[0]["Zuora__CustomerAccount__c"] == stored["A2"]


def test_a_refused_subrequest_is_returned_beside_the_good_results(standin):
    # Given an unknown sObject between two good collections
    adapter = adapter_for(standin)
    requests = [
        collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
        collection("Nope__c", [{EXT: "X1"}]),
        collection(ACCOUNTS, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]),
    ]

    # When they are upserted together
    good1, bad, good2 = adapter.upsert_collections(requests, deadline=soon())

    # Then the refusal is that request's error, not raised, and the others succeeded in the same call
    assert isinstance(bad, SalesforceRequestError)
    assert (bad.status_code, bad.http_status) == ("NOT_FOUND", 404)
    assert isinstance(good1, list)
    assert good1[0].success
    assert isinstance(good2, list)
    assert good2[0].success
    assert adapter.api_calls == 1


def test_a_refused_single_collection_is_returned_too(standin):
    # Given an adapter
    adapter = adapter_for(standin)

    # When a single collection of an unknown sObject is upserted
    [answer] = adapter.upsert_collections([collection("Nope__c", [{EXT: "X1"}])], deadline=soon())

    # Then its refusal is returned, as it would be inside a Composite
    assert isinstance(answer, SalesforceRequestError)
    assert answer.status_code == "NOT_FOUND"


def test_a_composite_failing_whole_with_503_is_retried_then_succeeds(standin):
    # Given two 503 answers queued
    standin.set_faults(fail_next=[{"status": 503}, {"status": 503}])
    clock = FakeClock()
    adapter = adapter_for(standin, sleep=clock.sleep, rng=lambda: 1.0)
    requests = [
        collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
        collection(SUBSCRIPTIONS, [{EXT: "S1"}]),
    ]

    # When two collections are upserted together
    answers = adapter.upsert_collections(requests, deadline=soon())

    # Then the third attempt succeeded after the same backoff as upsert
    assert all(isinstance(a, list) and a[0].success for a in answers)
    assert adapter.api_calls == 3
    assert clock.sleeps == [0.25, 0.5]


def test_composite_refused_for_the_api_limit_raises_at_once(standin):
    # Given an org whose allocation is used up
    adapter = adapter_for(standin)
    standin.set_faults(api_limit=500, api_used=500)

    # When two collections are upserted together
    with pytest.raises(SalesforceLimitExceededError):
        adapter.upsert_collections(
            [
                collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
                collection(ACCOUNTS, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]),
            ],
            deadline=soon(),
        )

    # Then there was no retry and the usage was seen
    assert adapter.api_calls == 1
    assert adapter.api_usage is not None
    assert adapter.api_usage.percent == 100.0


def test_composite_with_an_expired_session_renews_the_token_once(standin):
    # Given an adapter with a cached token that Salesforce then expires
    adapter = adapter_for(standin)
    upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    standin.set_faults(expire_sessions=True)

    # When two collections are upserted together
    answers = adapter.upsert_collections(
        [
            collection(ACCOUNTS, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]),
            collection(SUBSCRIPTIONS, [{EXT: "S2"}]),
        ],
        deadline=soon(),
    )

    # Then a new token was fetched and the Composite call made again
    assert all(isinstance(a, list) and a[0].success for a in answers)
    assert standin.stats()["tokens_issued"] == 2
    assert adapter.api_calls == 3


def test_composite_keeps_giving_up_at_the_deadline(standin):
    # Given Salesforce answering 503 to everything after the token is cached
    adapter = adapter_for(standin, sleep=time.sleep, rng=lambda: 1.0, max_attempts=50)
    adapter.fetch_api_usage(deadline=soon())
    standin.set_faults(fail_next=[{"status": 503}] * 50)
    started = time.monotonic()

    # When two collections are upserted with 1 s left
    with pytest.raises(SalesforceRetryableError, match="deadline"):
        adapter.upsert_collections(
            [
                collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
                collection(ACCOUNTS, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]),
            ],
            deadline=started + 1.0,
        )

    # Then it stopped before the deadline
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("count", [0, 6])
def test_zero_or_more_than_5_requests_are_a_value_error(standin, count):
    # Given an adapter
    adapter = adapter_for(standin)

    # When 0 or 6 collections are passed
    with pytest.raises(ValueError, match="1 to 5"):
        adapter.upsert_collections(
            [collection(ACCOUNTS, [{EXT: f"A{i}", "Zuora__Account__c": CRM_ACCOUNT}]) for i in range(count)],
            deadline=soon(),
        )

    # Then nothing was sent
    assert adapter.api_calls == 0


@pytest.mark.parametrize("size", [0, 201])
def test_a_collection_takes_1_to_200_records(size):
    # Given an empty and an oversized record list
    records = [{EXT: f"A{i}", "Zuora__Account__c": CRM_ACCOUNT} for i in range(size)]

    # When a CollectionUpsert is built from it
    with pytest.raises(ValidationError):
        collection(ACCOUNTS, records)

    # Then it was refused before any call (and a valid one is frozen)
    built = collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}])
    with pytest.raises(ValidationError):
        built.sobject = "Other__c"  # type: ignore[misc]


PAYMENTS = "Zuora__Payment__c"


@pytest.mark.parametrize("together", [False, True])
def test_a_collection_refused_whole_for_a_value_is_its_own_400_error(standin, together):
    # Given a payments collection with a date where Zuora 360 has a dateTime, alone or beside a good collection
    adapter = adapter_for(standin)
    bad = collection(PAYMENTS, [{EXT: "P1"}, {EXT: "P2", "Zuora__EffectiveDate__c": "2024-03-05"}])
    requests = [bad, collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}])] if together else [bad]

    # When they are upserted
    answers = adapter.upsert_collections(requests, deadline=soon())

    # Then the refused collection's answer is a 400 request error with Salesforce's code and message (no results to
    # pair with its records), the neighbour was written, and it was one call
    refusal = answers[0]
    assert isinstance(refusal, SalesforceRequestError)
    assert (refusal.status_code, refusal.http_status) == ("JSON_PARSER_ERROR", 400)
    assert "Cannot deserialize instance of datetime from VALUE_STRING value 2024-03-05" in refusal.message
    if together:
        assert isinstance(answers[1], list)
        assert answers[1][0].success
    assert adapter.api_calls == 1


def test_the_concurrent_long_running_limit_is_not_the_daily_allocation(standin):
    # Given the org at its concurrent long-running request limit for the next two calls
    standin.set_faults(fail_next=[{"kind": "concurrent_long_txn"}, {"kind": "concurrent_long_txn"}])
    adapter = adapter_for(standin)

    # When a record is upserted, and then two collections together
    with pytest.raises(SalesforceConcurrencyLimitError) as alone:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    with pytest.raises(SalesforceConcurrencyLimitError):
        adapter.upsert_collections(
            [
                collection(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
                collection(ACCOUNTS, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]),
            ],
            deadline=soon(),
        )

    # Then each raised at once, as its own error: retryable, but not the allocation error that stops all calls
    assert not isinstance(alone.value, SalesforceLimitExceededError)
    assert isinstance(alone.value, SalesforceRetryableError)
    assert "ConcurrentPerOrgLongTxn Limit exceeded." in alone.value.message
    assert adapter.api_calls == 2


def test_concurrent_requests_is_the_concurrency_limit_not_the_daily_allocation(standin):
    # Given the org at its concurrent API request limit ("ConcurrentRequests (Concurrent API Requests) ...")
    standin.set_faults(fail_next=[{"kind": "concurrent_requests"}])
    adapter = adapter_for(standin)

    # When a record is upserted
    with pytest.raises(SalesforceConcurrencyLimitError) as refused:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then it is the short-backoff concurrency error, not the allocation error that stops every call
    assert not isinstance(refused.value, SalesforceLimitExceededError)
    assert "ConcurrentRequests" in refused.value.message


def test_a_read_timeout_is_in_doubt_and_the_write_commits_after_the_client_gave_up(standin):
    # Given a token cached, then Salesforce holding the next call 1.5 s before it runs and commits
    adapter = adapter_for(standin, timeout_seconds=0.4, max_attempts=1)
    adapter.fetch_api_usage(deadline=soon())
    standin.set_faults(commit_late={"count": 1, "delay_ms": 1500})

    # When a record is upserted and the client times out first
    with pytest.raises(SalesforceRetryableError) as failed:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the failure is in doubt: nothing proves the write did not run
    assert failed.value.in_doubt
    assert standin.records(ACCOUNTS) == []
    # ... and indeed it commits after the client left
    landed = time.monotonic() + 5
    while not standin.records(ACCOUNTS) and time.monotonic() < landed:
        time.sleep(0.05)  # polls the stand-in process, which commits the abandoned request in its own time
    assert [r[EXT] for r in standin.records(ACCOUNTS)] == ["A1"]


@pytest.mark.parametrize(
    ("status", "body", "in_doubt"),
    [
        (429, None, False),  # refused before it ran
        (503, None, False),  # Salesforce's SERVER_UNAVAILABLE: the server that had it answered
        (500, None, False),  # Salesforce's UNKNOWN_EXCEPTION: its transaction ended, rolled back
        (504, None, True),  # a front gave up waiting
        (502, None, True),
        (500, "<html>Internal error</html>", True),  # not Salesforce's own answer
    ],
)
def test_a_5xx_from_a_front_is_in_doubt_and_salesforces_own_5xx_or_a_429_is_not(standin, status, body, in_doubt):
    # Given a token cached, then an answer with that status once
    adapter = adapter_for(standin, max_attempts=1)
    adapter.fetch_api_usage(deadline=soon())
    standin.set_faults(fail_next=[{"status": status, **({"body": body} if body else {})}])

    # When a record is upserted / Then the failure says whether the request may have run, and its status
    with pytest.raises(SalesforceRetryableError) as failed:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    assert (failed.value.in_doubt, failed.value.http_status) == (in_doubt, status)


def test_a_refused_connection_is_not_in_doubt(standin):
    # Given an instance URL where nothing listens (a port just freed)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_for(standin, max_attempts=1)
    adapter.fetch_api_usage(deadline=soon())
    assert adapter._client is not None
    adapter._client.base_url = adapter._client.base_url.replace(adapter._client.sf_instance, f"127.0.0.1:{port}")

    # When a record is upserted / Then the failure proves nothing ran
    with pytest.raises(SalesforceRetryableError) as failed:
        upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    assert failed.value.in_doubt is False


def test_a_deadline_passed_before_any_attempt_is_not_in_doubt(standin):
    with pytest.raises(SalesforceRetryableError) as failed:
        upsert(
            adapter_for(standin),
            ACCOUNTS,
            EXT,
            [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}],
            deadline=time.monotonic() - 1,
        )
    assert failed.value.in_doubt is False


def test_a_call_answered_after_a_timed_out_attempt_says_it_was_in_doubt(standin):
    # Given a token cached, then Salesforce holding only the next call past the client's timeout
    adapter = adapter_for(standin, timeout_seconds=0.4, max_attempts=3)
    adapter.fetch_api_usage(deadline=soon())
    standin.set_faults(commit_late={"count": 1, "delay_ms": 1000})

    # When a record is upserted: the first attempt times out, the second is answered
    results = upsert(adapter, ACCOUNTS, EXT, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())

    # Then the call succeeded but says an attempt of it may still commit
    assert results[0].success
    assert adapter.last_call_in_doubt

    # And the next call, answered at once, is not in doubt
    upsert(adapter, ACCOUNTS, EXT, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}], deadline=soon())
    assert not adapter.last_call_in_doubt
