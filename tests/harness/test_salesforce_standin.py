"""The Salesforce stand-in over real HTTPS: it must answer as Salesforce's REST API documents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nrtsync_local.salesforce import SalesforceStandin, StandinConfig, salesforce_id
from tests.support.salesforce import (
    ACCOUNTS,
    API,
    EXT,
    SUBSCRIPTIONS,
    StandinClient,
    collection_sub,
    composite,
    running_salesforce_standin,
    token_for,
    trusting_session,
    upsert,
)

pytestmark = pytest.mark.integration
# The Salesforce Account a billing account belongs to: Zuora__Account__c is a master-detail, required on a new
# Zuora__CustomerAccount__c as Salesforce requires it.
CRM_ACCOUNT = salesforce_id("001", 7)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(standin: StandinClient) -> None:
    standin.reset()


@pytest.fixture(scope="module")
def http(standin: StandinClient) -> Iterator[requests.Session]:
    session = trusting_session(standin.ca_file)
    yield session
    session.close()


def test_client_credentials_token_has_salesforce_shape(standin, http):
    # Given the stand-in's client id and secret
    form = {"grant_type": "client_credentials", "client_id": standin.client_id, "client_secret": standin.client_secret}

    # When a token is requested
    response = http.post(f"{standin.url}/services/oauth2/token", data=form, timeout=5)

    # Then the answer has the fields Salesforce returns
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == standin.url
    assert body["id"].startswith(f"{standin.url}/id/00D")
    assert body["issued_at"].isdigit()
    assert {"access_token", "signature", "scope"} <= body.keys()
    assert response.headers["Sforce-Limit-Info"] == "api-usage=0/15000"


@pytest.mark.parametrize(
    ("client_id", "secret", "error"),
    [("right", "wrong", "invalid_client"), ("wrong", "right", "invalid_client_id")],
)
def test_wrong_client_credentials_are_refused_with_oauth_error(standin, http, client_id, secret, error):
    # Given credentials where one part is wrong
    form = {
        "grant_type": "client_credentials",
        "client_id": standin.client_id if client_id == "right" else "nope",
        "client_secret": standin.client_secret if secret == "right" else "nope",
    }

    # When a token is requested
    response = http.post(f"{standin.url}/services/oauth2/token", data=form, timeout=5)

    # Then Salesforce's OAuth error shape comes back
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_jwt_bearer_assertion_is_verified_against_the_configured_key(standin: StandinClient, http: requests.Session):
    # Given a key pair whose public half the stand-in knows, and another key it does not know
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin.configure(jwt_public_key_pem=public_pem.decode(), jwt_username="integration@example.com")
    claims = {
        "iss": standin.client_id,
        "sub": "integration@example.com",
        "aud": "https://login.salesforce.com",  # never the token endpoint's own URL (test_salesforce_jwt.py)
        "exp": int(time.time()) + 60,
    }

    def token_response(signing_key: rsa.RSAPrivateKey, **overrides: Any) -> requests.Response:
        assertion = jwt.encode({**claims, **overrides}, signing_key, algorithm="RS256")
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        return http.post(f"{standin.url}/services/oauth2/token", data=form, timeout=5)

    # When assertions are signed right, with the wrong key, for the wrong user and the wrong audience
    good = token_response(key)
    wrong_key = token_response(other)
    wrong_user = token_response(key, sub="someone@example.com")
    wrong_audience = token_response(key, aud="https://login.example.com")

    # Then only the right one gets a token
    assert good.status_code == 200
    assert "scope" not in good.json()
    assert (wrong_key.status_code, wrong_key.json()["error"]) == (400, "invalid_grant")
    assert wrong_user.json()["error"] == "invalid_grant"
    assert wrong_audience.json()["error_description"] == "audience is invalid"


def test_upsert_creates_then_updates_merging_fields_and_clearing_nulls(standin, http):
    # Given an account created with a name, a status and a currency
    first = upsert(
        standin,
        http,
        [
            {
                EXT: "A1",
                "Zuora__Account__c": CRM_ACCOUNT,
                "Name": "Acme",
                "Zuora__Status__c": "Draft",
                "Zuora__Currency__c": "USD",
            }
        ],
    )

    # When it is upserted again with a new status and a null currency
    second = upsert(standin, http, [{EXT: "A1", "Zuora__Status__c": "Active", "Zuora__Currency__c": None}])

    # Then the first call created it, the second updated the same record, fields merged and the null cleared
    assert first.status_code == 200
    created = first.json()[0]
    assert created["success"] is True
    assert created["created"] is True
    assert len(created["id"]) == 18
    assert second.json() == [{"id": created["id"], "success": True, "errors": [], "created": False}]
    assert standin.records(ACCOUNTS) == [
        {
            "Id": created["id"],
            EXT: "A1",
            "Zuora__Account__c": CRM_ACCOUNT,
            "Name": "Acme",
            "Zuora__Status__c": "Active",
            "Zuora__Currency__c": None,
        },
    ]


def test_a_required_name_cannot_be_cleared_and_a_lookup_takes_only_an_id(standin, http):
    # Given an account in Salesforce
    upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme"}])

    # When its Name is cleared (an empty merge field as null), and records carry "null" or a record Id in the
    # Account lookup
    answer = upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": None},
            {EXT: "A2", "Name": "Beta", "Zuora__Account__c": "null"},
            {EXT: "A3", "Name": "Gamma", "Zuora__Account__c": "0015g00000XyZ12AAB"},
        ],
    ).json()

    # Then Salesforce's per-record errors come back for the first two, and the third is written
    assert answer[0]["errors"] == [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]", "fields": ["Name"]}
    ]
    assert answer[1]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert answer[1]["errors"][0]["fields"] == ["Zuora__Account__c"]
    assert answer[2]["success"] is True
    assert {r[EXT]: r["Name"] for r in standin.records(ACCOUNTS)} == {"A1": "Acme", "A3": "Gamma"}


def test_per_record_errors_come_back_in_order_with_http_200(standin, http):
    # Given a validation rule on Name and a row lock on one external id
    standin.set_faults(
        validation_rules=[{"field": "Name", "equals": "REJECT", "message": "Name is not allowed"}],
        row_lock={"external_ids": ["A3"]},
    )

    # When four records are upserted, the second and third of which fail
    response = upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "ok"},
            {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Name": "REJECT"},
            {EXT: "A3", "Zuora__Account__c": CRM_ACCOUNT},
            {EXT: "A4", "Zuora__Account__c": CRM_ACCOUNT},
        ],
    )

    # Then HTTP is 200 and each record has its own result, in input order
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, False, False, True]
    assert results[1]["errors"] == [
        {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Name is not allowed", "fields": []}
    ]
    assert results[2]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert "id" not in results[1]
    assert sorted(r[EXT] for r in standin.records(ACCOUNTS)) == ["A1", "A4"]


def test_more_than_200_records_are_refused_whole(standin, http):
    # Given 201 records
    records = [{EXT: f"A{i}", "Zuora__Account__c": CRM_ACCOUNT} for i in range(201)]

    # When they are sent in one call
    response = upsert(standin, http, records)

    # Then the whole request is refused as Salesforce does, and nothing is stored
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert standin.records(ACCOUNTS) == []


def test_duplicate_external_ids_in_one_request_fail_those_records(standin, http):
    # Given two records with the same external id and one other
    records = [
        {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "one"},
        {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT},
        {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "two"},
    ]

    # When they are upserted together
    results = upsert(standin, http, records).json()

    # Then both duplicates fail with DUPLICATE_VALUE, the other succeeds
    assert [r["success"] for r in results] == [False, True, False]
    assert results[0]["errors"] == [
        {"statusCode": "DUPLICATE_VALUE", "message": "Duplicate external id specified: A1", "fields": [EXT]}
    ]


def test_child_fails_until_its_parent_exists_then_links_to_it(standin, http):
    # Given a subscription whose billing account is not in Salesforce yet
    child = {EXT: "S1", "Name": "Sub", "Zuora__CustomerAccount__r": {EXT: "A1"}}
    missing = upsert(standin, http, [child], sobject=SUBSCRIPTIONS).json()[0]

    # When the account arrives and the subscription is sent again
    parent_id = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]).json()[0]["id"]
    linked = upsert(standin, http, [child], sobject=SUBSCRIPTIONS).json()[0]

    # Then the first attempt failed with Salesforce's foreign key error, the second links the lookup field
    assert missing["errors"] == [
        {
            "statusCode": "INVALID_FIELD",
            "message": f"Foreign key external ID: A1 not found for field {EXT} in entity {ACCOUNTS}",
            "fields": [],
        }
    ]
    assert linked["success"] is True
    assert standin.records(SUBSCRIPTIONS)[0]["Zuora__CustomerAccount__c"] == parent_id


def test_unknown_sobject_and_unknown_relationship_are_refused_whole(standin, http):
    # Given a token
    token = token_for(standin, http)

    # When an unknown sObject and an unconfigured relationship are used
    unknown = upsert(standin, http, [{EXT: "X"}], sobject="Nope__c", token=token)
    relation = upsert(
        standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Nope__r": {EXT: "Z"}}], token=token
    )

    # Then Salesforce's whole-request errors come back
    assert unknown.status_code == 404
    assert unknown.json()[0]["errorCode"] == "NOT_FOUND"
    assert relation.status_code == 400
    assert relation.json()[0]["errorCode"] == "INVALID_FIELD"


def test_all_or_none_rolls_back_every_record(standin, http):
    # Given one record that will fail validation
    standin.set_faults(validation_rules=[{"field": "Name", "equals": "REJECT"}])

    # When it is sent with a good record and allOrNone true
    results = upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT},
            {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Name": "REJECT"},
        ],
        all_or_none=True,
    ).json()

    # Then the good record is rolled back too
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert standin.records(ACCOUNTS) == []


def test_every_api_call_counts_and_is_reported_in_header_and_limits(standin, http):
    # Given an allocation of 1,000 of which 10 are used
    standin.set_faults(api_limit=1000, api_used=10)
    token = token_for(standin, http)

    # When one upsert and one limits call are made
    upserted = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    limits = http.get(f"{standin.url}{API}/limits", headers={"Authorization": f"Bearer {token}"}, timeout=5)

    # Then each counted one call, in the header and in /limits
    assert upserted.headers["Sforce-Limit-Info"] == "api-usage=11/1000"
    assert limits.headers["Sforce-Limit-Info"] == "api-usage=12/1000"
    assert limits.json()["DailyApiRequests"] == {"Max": 1000, "Remaining": 988}


def test_request_limit_exceeded_once_the_allocation_is_used(standin, http):
    # Given an allocation with one call left
    standin.set_faults(api_limit=100, api_used=99)
    token = token_for(standin, http)

    # When two calls are made
    last = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    refused = upsert(standin, http, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}], token=token)

    # Then the second is refused with 403 REQUEST_LIMIT_EXCEEDED
    assert last.status_code == 200
    assert refused.status_code == 403
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=100/100"


def test_expired_or_missing_session_gets_401_invalid_session_id(standin, http):
    # Given a token that the stand-in then expires
    token = token_for(standin, http)
    standin.set_faults(expire_sessions=True)

    # When it is used, and when no token is sent at all
    expired = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    anonymous = http.get(f"{standin.url}{API}/limits", timeout=5)

    # Then both get Salesforce's 401 body and nothing is counted
    for response in (expired, anonymous):
        assert response.status_code == 401
        assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert standin.stats()["api_calls"] == 0


def test_injected_503_fails_the_next_call_only_and_latency_slows_calls(standin, http):
    # Given a token, one injected 503 and 150 ms of latency
    token = token_for(standin, http)
    standin.set_faults(fail_next=[{"status": 503}], latency_ms=150)

    # When two calls are made
    started = time.monotonic()
    failed = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    passed = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    elapsed = time.monotonic() - started

    # Then the first fails whole with 503, the second succeeds, and both waited
    assert failed.status_code == 503
    assert failed.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert passed.status_code == 200
    assert elapsed >= 0.3
    assert standin.stats()["injected_faults"] == 1


def test_row_lock_by_rate_and_count_releases_after_count(standin, http):
    # Given every record locked, for two records only
    standin.set_faults(row_lock={"rate": 1.0, "count": 2})

    # When three records are upserted
    results = upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT},
            {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT},
            {EXT: "A3", "Zuora__Account__c": CRM_ACCOUNT},
        ],
    ).json()

    # Then the first two hit the lock and the third goes through
    assert [r["success"] for r in results] == [False, False, True]
    assert standin.set_faults()["row_lock"] is None


def test_stats_count_calls_per_endpoint_and_records_per_call_and_reset_clears(standin, http):
    # Given seeded parents (not counted) and a token
    standin.seed(
        ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}]
    )
    token = token_for(standin, http)

    # When two upserts of 2 and 1 records are made
    upsert(
        standin,
        http,
        [{EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A1"}}, {EXT: "S2"}],
        sobject=SUBSCRIPTIONS,
        token=token,
    )
    upsert(standin, http, [{EXT: "S3"}], sobject=SUBSCRIPTIONS, token=token)
    stats = standin.stats()
    standin.reset()

    # Then the stats say so, and reset forgets records and counters
    assert stats["api_calls"] == 2
    assert stats["by_endpoint"]["PATCH composite/sobjects"] == 2
    assert stats["records_per_call"] == [2, 1]
    assert stats["token_requests"] == 1
    assert standin.stats()["api_calls"] == 0
    assert standin.records(SUBSCRIPTIONS) == []


def test_in_process_standin_serves_https_and_stops(tmp_path: Path):
    # Given a stand-in started in this process with fixed credentials
    with SalesforceStandin(StandinConfig(client_id="cid", client_secret="secret")) as server:
        session = trusting_session(str(server.write_ca(tmp_path / "ca.pem")))
        form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "secret"}

        # When a token is requested over HTTPS
        response = session.post(f"{server.url}/services/oauth2/token", data=form, timeout=5)

    # Then it answered, and the ids it makes look like Salesforce's
    assert response.status_code == 200
    assert salesforce_id("001", 1) == "0015g0000000001AAA"


def upsert_row(
    standin: StandinClient,
    http: requests.Session,
    external_id: str,
    fields: dict[str, Any],
    *,
    sobject: str = ACCOUNTS,
    token: str,
    api: str = API,
) -> requests.Response:
    return http.patch(
        f"{standin.url}{api}/sobjects/{sobject}/{EXT}/{external_id}",
        json=fields,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_single_record_upsert_by_external_id_creates_updates_and_counts_one_call_each(standin, http):
    # Given a token, 150 ms of latency, and a subscription whose parent account does not exist yet
    token = token_for(standin, http)
    standin.set_faults(latency_ms=150)
    orphan = upsert_row(
        standin, http, "S1", {"Zuora__CustomerAccount__r": {EXT: "A1"}}, sobject=SUBSCRIPTIONS, token=token
    )

    # When an account is upserted by its external id, then again (current API, then an API before 46.0),
    # and the subscription again once its parent exists
    started = time.monotonic()
    created = upsert_row(standin, http, "A1", {"Name": "Acme", "Zuora__Account__c": CRM_ACCOUNT}, token=token)
    updated = upsert_row(standin, http, "A1", {"Name": "Acme Ltd"}, token=token)
    elapsed = time.monotonic() - started
    old_api = upsert_row(standin, http, "A1", {"Zuora__Status__c": "Active"}, token=token, api="/services/data/v45.0")
    child = upsert_row(
        standin, http, "S1", {"Zuora__CustomerAccount__r": {EXT: "A1"}}, sobject=SUBSCRIPTIONS, token=token
    )
    stats = standin.stats()

    # Then the answers are Salesforce's: 201 on create, 200 with created false on update, 204 without a body
    # before API 46.0, 400 with the error list for a refused record; each request is one API call, with latency
    assert orphan.status_code == 400
    assert orphan.json()[0]["errorCode"] == "INVALID_FIELD"
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True
    assert body["created"] is True
    assert body["errors"] == []
    assert len(body["id"]) == 18
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    assert old_api.status_code == 204
    assert old_api.content == b""
    assert child.status_code == 201
    assert elapsed >= 0.3
    assert standin.records(ACCOUNTS) == [
        {
            "Id": body["id"],
            EXT: "A1",
            "Name": "Acme Ltd",
            "Zuora__Account__c": CRM_ACCOUNT,
            "Zuora__Status__c": "Active",
        }
    ]
    [subscription] = standin.records(SUBSCRIPTIONS)
    assert subscription["Zuora__CustomerAccount__c"] == body["id"]
    assert stats["api_calls"] == 5
    assert stats["by_endpoint"]["PATCH sobjects/external-id"] == 5
    assert stats["records_per_call"] == [1, 1, 1, 1, 1]
    assert updated.headers["Sforce-Limit-Info"].startswith("api-usage=3/")
    standin.set_faults(latency_ms=0)


def test_composite_writes_parents_then_children_in_one_api_call(standin, http):
    # Given a token, and accounts then subscriptions that look their accounts up, in one Composite request
    token = token_for(standin, http)
    accounts = collection_sub(
        "accounts",
        ACCOUNTS,
        [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme"}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}],
    )
    subscriptions = collection_sub(
        "subs",
        SUBSCRIPTIONS,
        [
            {EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A1"}},
            {EXT: "S2", "Zuora__CustomerAccount__r": {EXT: "A2"}},
            {EXT: "S3", "Zuora__CustomerAccount__r": {EXT: "A3"}},
        ],
    )

    # When it is sent
    response = composite(standin, http, [accounts, subscriptions], token=token)

    # Then each subrequest answers as its standalone resource, the lookups resolved, and one API call counted
    assert response.status_code == 200
    first, second = response.json()["compositeResponse"]
    assert (first["referenceId"], first["httpStatusCode"], first["httpHeaders"]) == ("accounts", 200, {})
    assert [r["created"] for r in first["body"]] == [True, True]
    assert second["referenceId"] == "subs"
    assert [r["success"] for r in second["body"]] == [True, True, False]
    assert "A3 not found" in second["body"][2]["errors"][0]["message"]
    account_ids = {r[EXT]: r["Id"] for r in standin.records(ACCOUNTS)}
    linked = {r[EXT]: r["Zuora__CustomerAccount__c"] for r in standin.records(SUBSCRIPTIONS)}
    assert linked == {"S1": account_ids["A1"], "S2": account_ids["A2"]}
    stats = standin.stats()
    assert stats["api_calls"] == 1
    assert stats["by_endpoint"]["POST composite"] == 1
    assert stats["records_per_call"] == [5]
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=1/")


def test_composite_refuses_more_than_5_collections_whole(standin, http):
    # Given six collections subrequests, and five
    six = [collection_sub(f"c{i}", ACCOUNTS, [{EXT: f"A{i}", "Zuora__Account__c": CRM_ACCOUNT}]) for i in range(6)]

    # When each is sent
    refused = composite(standin, http, six)
    accepted = composite(standin, http, six[:5])

    # Then six are refused whole with nothing written, five go through
    assert refused.status_code == 400
    [entry] = refused.json()["compositeResponse"]
    assert entry["referenceId"] is None
    assert entry["httpStatusCode"] == 400
    assert entry["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    assert accepted.status_code == 200
    assert [r["httpStatusCode"] for r in accepted.json()["compositeResponse"]] == [200] * 5
    assert sorted(r[EXT] for r in standin.records(ACCOUNTS)) == ["A0", "A1", "A2", "A3", "A4"]


def test_composite_refuses_more_than_25_subrequests_and_an_empty_list(standin, http):
    # Given a token
    token = token_for(standin, http)
    rows = [
        {"method": "PATCH", "url": f"{API}/sobjects/{ACCOUNTS}/{EXT}/A{i}", "referenceId": f"r{i}", "body": {}}
        for i in range(26)
    ]

    # When 26 row upserts, then none, are sent
    too_many = composite(standin, http, rows, token=token)
    empty = composite(standin, http, [], token=token)

    # Then both are refused whole
    assert too_many.status_code == 400
    assert too_many.json()["compositeResponse"][0]["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    assert empty.status_code == 400
    assert standin.records(ACCOUNTS) == []


def test_a_failing_subrequest_does_not_stop_its_neighbours(standin, http):
    # Given an unknown sObject between two good collections, and an unsupported subrequest
    subrequests = [
        collection_sub("good1", ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
        collection_sub("bad", "Nope__c", [{EXT: "X1"}]),
        {"method": "GET", "url": f"{API}/limits", "referenceId": "limits"},
        collection_sub("good2", SUBSCRIPTIONS, [{EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A1"}}]),
    ]

    # When they are sent in one Composite request
    response = composite(standin, http, subrequests)

    # Then the bad ones carry their own error bodies and the good ones were applied
    assert response.status_code == 200
    results = {r["referenceId"]: r for r in response.json()["compositeResponse"]}
    assert results["bad"]["httpStatusCode"] == 404
    assert results["bad"]["body"][0]["errorCode"] == "NOT_FOUND"
    assert results["limits"]["httpStatusCode"] == 400
    assert results["limits"]["body"][0]["errorCode"]
    assert results["good1"]["body"][0]["success"] is True
    assert results["good2"]["body"][0]["success"] is True
    assert standin.stats()["api_calls"] == 1


def test_row_locks_and_validation_rules_apply_per_record_inside_a_composite(standin, http):
    # Given a row lock on one account and a validation rule on subscription names
    standin.set_faults(
        row_lock={"external_ids": ["A2"]},
        validation_rules=[{"sobject": SUBSCRIPTIONS, "field": "Name", "equals": "BAD", "message": "bad name"}],
    )
    subrequests = [
        collection_sub(
            "a",
            ACCOUNTS,
            [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}],
        ),
        collection_sub("s", SUBSCRIPTIONS, [{EXT: "S1", "Name": "BAD"}, {EXT: "S2", "Name": "ok"}]),
    ]

    # When both collections go in one Composite request
    accounts, subscriptions = composite(standin, http, subrequests).json()["compositeResponse"]

    # Then each failure is its record's own, inside a 200 subresponse
    assert accounts["httpStatusCode"] == 200
    assert [r["success"] for r in accounts["body"]] == [True, False]
    assert accounts["body"][1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert [r["success"] for r in subscriptions["body"]] == [False, True]
    assert subscriptions["body"][0]["errors"][0] == {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "bad name",
        "fields": [],
    }


def test_outer_all_or_none_rolls_back_every_subrequest(standin, http):
    # Given a validation rule that fails one record of the second collection
    standin.set_faults(validation_rules=[{"field": "Name", "equals": "BAD"}])
    subrequests = [
        collection_sub("a", ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}]),
        collection_sub("s", SUBSCRIPTIONS, [{EXT: "S1", "Name": "BAD"}, {EXT: "S2"}]),
    ]

    # When they are sent with the outer allOrNone true
    accounts, subscriptions = composite(standin, http, subrequests, all_or_none=True).json()["compositeResponse"]

    # Then nothing was written: the good subrequest is halted, the failing one rolled back record by record
    assert accounts["httpStatusCode"] == 400
    assert accounts["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert subscriptions["body"][1]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert standin.records(ACCOUNTS) == []
    assert standin.records(SUBSCRIPTIONS) == []


def test_injected_503_fails_the_whole_composite_and_latency_is_paid_once(standin, http):
    # Given a token, one injected 503 and 200 ms of latency
    token = token_for(standin, http)
    standin.set_faults(fail_next=[{"status": 503}], latency_ms=200)
    subrequests = [
        collection_sub(f"c{i}", ACCOUNTS, [{EXT: f"A{i}", "Zuora__Account__c": CRM_ACCOUNT}]) for i in range(5)
    ]

    # When the Composite request is sent twice
    failed = composite(standin, http, subrequests, token=token)
    started = time.monotonic()
    passed = composite(standin, http, subrequests, token=token)
    elapsed = time.monotonic() - started
    standin.set_faults(latency_ms=0)

    # Then the first failed whole with nothing written, the second waited once, not once per subrequest
    assert failed.status_code == 503
    assert failed.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert passed.status_code == 200
    assert 0.2 <= elapsed < 0.9
    assert len(standin.records(ACCOUNTS)) == 5
    assert standin.stats()["api_calls"] == 1


PAYMENTS = "Zuora__Payment__c"


def test_a_value_that_does_not_fit_its_field_refuses_the_whole_collection(standin, http):
    # Given three payments of a billing account, the second with a date where Zuora 360 has a dateTime
    standin.seed(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}])
    billing_account = {"Zuora__BillingAccount__r": {EXT: "A1"}}
    records: list[dict[str, Any]] = [
        {EXT: "P1", "Zuora__EffectiveDate__c": "2024-03-05T10:25:48-08:00", "Zuora__Amount__c": 10, **billing_account},
        {EXT: "P2", "Zuora__EffectiveDate__c": "2024-03-05", "Zuora__Amount__c": 20, **billing_account},
        {EXT: "P3", "Zuora__EffectiveDate__c": None, "Zuora__Amount__c": "30.50", **billing_account},
    ]

    # When they are upserted as one collection
    response = upsert(standin, http, records, sobject=PAYMENTS)

    # Then Salesforce's parser refuses the request as a whole: 400 JSON_PARSER_ERROR, no per-record results, nothing
    # written, and the call still counted
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "JSON_PARSER_ERROR"
    assert error["message"].startswith(
        "Cannot deserialize instance of datetime from VALUE_STRING value 2024-03-05 "
        "or request may be missing a required field at [line:1, column:"
    )
    assert standin.records(PAYMENTS) == []
    assert standin.stats()["api_calls"] == 1

    # And without the bad record the same request is written
    good = upsert(standin, http, [records[0], records[2]], sobject=PAYMENTS)
    assert [r["success"] for r in good.json()] == [True, True]


def test_text_in_a_number_or_checkbox_is_refused_and_unknown_fields_are_not_checked(standin, http):
    # Given accounts with text in a number, text in a checkbox, and a field Zuora 360 does not have
    token = token_for(standin, http)
    number = upsert(
        standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Zuora__Balance__c": "twelve"}], token=token
    )
    checkbox = upsert(
        standin, http, [{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Zuora__AutoPay__c": "maybe"}], token=token
    )
    custom = upsert(
        standin,
        http,
        [{EXT: "A3", "Zuora__Account__c": CRM_ACCOUNT, "Custom__c": "anything", "Zuora__AutoPay__c": "true"}],
        token=token,
    )

    # Then the first two are refused whole, the third is written
    assert (number.status_code, number.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    assert "instance of double from VALUE_STRING value twelve " in number.json()[0]["message"]
    assert (checkbox.status_code, checkbox.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    assert custom.status_code == 200
    assert [r[EXT] for r in standin.records(ACCOUNTS)] == ["A3"]


def test_inside_a_composite_only_the_refused_collection_answers_400(standin, http):
    # Given two collections in one Composite request, the first with a value its field cannot take
    subrequests = [
        collection_sub(
            "bad",
            ACCOUNTS,
            [
                {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT},
                {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Zuora__LastInvoiceDate__c": "last week"},
            ],
        ),
        collection_sub("good", PAYMENTS, [{EXT: "P1", "Zuora__Amount__c": 5, "Zuora__BillingAccount__r": {EXT: "A9"}}]),
    ]
    standin.seed(ACCOUNTS, [{EXT: "A9", "Zuora__Account__c": CRM_ACCOUNT}])

    # When it is sent
    response = composite(standin, http, subrequests)

    # Then the refused subrequest carries its own 400 and error list, and its neighbour still ran
    assert response.status_code == 200
    bad, good = response.json()["compositeResponse"]
    assert (bad["referenceId"], bad["httpStatusCode"]) == ("bad", 400)
    assert bad["body"][0]["errorCode"] == "JSON_PARSER_ERROR"
    assert "instance of date from VALUE_STRING value last week " in bad["body"][0]["message"]
    assert good["httpStatusCode"] == 200
    assert good["body"][0]["success"] is True
    assert [r[EXT] for r in standin.records(ACCOUNTS)] == ["A9"]
    assert standin.stats()["api_calls"] == 1


def test_a_record_locked_by_an_approval_process_fails_with_entity_is_locked(standin, http):
    # Given an existing account that an approval process has locked
    standin.seed(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme"}])
    standin.set_faults(approval_locks=["A1", "A9"])

    # When it and a new account are upserted
    results = upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme 2"},
            {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT},
        ],
    ).json()

    # Then the locked one fails with ENTITY_IS_LOCKED and keeps its value; the other is written
    assert results[0] == {
        "success": False,
        "errors": [{"statusCode": "ENTITY_IS_LOCKED", "message": "the entity is locked for editing", "fields": []}],
    }
    assert results[1]["success"] is True
    assert standin.record(ACCOUNTS, "A1")["Name"] == "Acme"

    # And a new record cannot be locked yet; clearing the fault unlocks
    assert upsert(standin, http, [{EXT: "A9", "Zuora__Account__c": CRM_ACCOUNT}]).json()[0]["success"] is True
    standin.set_faults(approval_locks=[])
    assert (
        upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme 3"}]).json()[0]["success"]
        is True
    )


def test_the_concurrent_long_running_request_limit_answers_403_with_its_own_message(standin, http):
    # Given the org's concurrent long-running request limit reached for the next call
    token = token_for(standin, http)
    standin.set_faults(fail_next=[{"kind": "concurrent_long_txn"}])

    # When two calls are made
    refused = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)
    passed = upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}], token=token)

    # Then the first is refused with REQUEST_LIMIT_EXCEEDED naming ConcurrentPerOrgLongTxn, the second passes
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert passed.status_code == 200


def test_an_unknown_fault_kind_is_refused(standin):
    with pytest.raises(requests.HTTPError) as refused:
        standin.set_faults(fail_next=[{"kind": "nope"}])
    assert refused.value.response.status_code == 400
    assert standin.set_faults()["fail_next"] == []


def test_configured_field_types_are_checked_and_the_daily_limit_can_be_injected_by_kind(standin, http):
    # Given an org with a custom object whose amount is a number, and the daily allocation refusal queued
    standin.configure(sobjects=["Custom__c"], fields={"Custom__c": {"Amount__c": "double"}})
    token = token_for(standin, http)
    standin.set_faults(fail_next=[{"kind": "total_requests"}])

    # When text goes into the number, after the injected refusal
    limited = upsert(standin, http, [{EXT: "C1", "Amount__c": 1}], sobject="Custom__c", token=token)
    refused = upsert(standin, http, [{EXT: "C1", "Amount__c": "lots"}], sobject="Custom__c", token=token)

    # Then the first is Salesforce's 403 for the daily allocation and the second is refused whole by the parser
    assert limited.status_code == 403
    assert limited.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert (refused.status_code, refused.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    assert standin.configure()["fields"]["Custom__c"] == {"Amount__c": "double"}


def upsert_on(
    standin: StandinClient, http: requests.Session, sobject: str, ext_field: str, records: list[dict[str, Any]]
) -> requests.Response:
    body = {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in records]}
    return http.patch(
        f"{standin.url}{API}/composite/sobjects/{sobject}/{ext_field}",
        json=body,
        headers={"Authorization": f"Bearer {token_for(standin, http)}"},
        timeout=5,
    )


def test_a_missing_or_cleared_master_detail_is_refused_per_record(standin, http):
    # Given the stand-in as it starts: it refuses what Salesforce always refuses for Zuora 360's master-details
    assert standin.config()["enforce_master_detail"] is True

    # When an account arrives without its CRM Account, another with it, and the second is later cleared
    answer = upsert(
        standin,
        http,
        [{EXT: "A1", "Name": "No link"}, {EXT: "A2", "Name": "Linked", "Zuora__Account__c": CRM_ACCOUNT}],
    )
    cleared = upsert(standin, http, [{EXT: "A2", "Zuora__Account__c": None}])
    renamed = upsert(standin, http, [{EXT: "A2", "Name": "Linked, renamed"}])
    # And a payment arrives without its billing account, and another is seeded without one
    orphan = upsert_on(standin, http, PAYMENTS, "Zuora__EXT_ID__c", [{"Zuora__EXT_ID__c": "P1", "Name": "P-1"}])
    with pytest.raises(ValueError, match="REQUIRED_FIELD_MISSING"):
        standin.seed(PAYMENTS, [{"Zuora__EXT_ID__c": "P2"}], external_id_field="Zuora__EXT_ID__c")

    # Then the unlinked account, the clearing and the orphan payments are refused; an update that leaves the link
    # alone is written
    first, second = answer.json()
    assert first["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert first["errors"][0]["fields"] == ["Zuora__Account__c"]
    assert second["success"] is True
    assert cleared.json()[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert renamed.json()[0]["success"] is True
    assert orphan.json()[0]["errors"][0]["fields"] == ["Zuora__BillingAccount__c"]
    assert [r["Zuora__Account__c"] for r in standin.records(ACCOUNTS)] == [CRM_ACCOUNT]
    assert standin.records(PAYMENTS) == []


def test_a_bare_org_takes_records_without_their_master_detail_only_when_switched_so(standin, http):
    # Given the refusal switched off, for a test that needs a bare org
    standin.configure(enforce_master_detail=False)
    try:
        # When an account without its CRM Account arrives
        answer = upsert(standin, http, [{EXT: "A1", "Name": "No link"}])
    finally:
        standin.configure(enforce_master_detail=True)

    # Then it is written; and the switch is back on for the next test
    assert answer.json()[0]["success"] is True
    assert standin.config()["enforce_master_detail"] is True


def test_an_upsert_on_a_field_that_is_not_an_external_id_is_refused(standin, http):
    # When payments are upserted matching on Name
    response = upsert_on(standin, http, PAYMENTS, "Name", [{"Name": "P-1"}])

    # Then the request is refused whole, as Salesforce refuses it
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"] == "Field name provided, Name is not an External ID or indexed field for Zuora__Payment__c"
    assert standin.records(PAYMENTS) == []


def test_a_non_unique_external_id_that_matches_two_records_is_the_multiple_match_answer(standin, http):
    # Given two payments of a billing account that share the deprecated, non-unique Zuora__External_Id__c
    standin.seed(ACCOUNTS, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}])
    billing_account = {"Zuora__BillingAccount__r": {EXT: "A1"}}
    standin.seed(
        PAYMENTS,
        [
            {"Zuora__EXT_ID__c": "P1", EXT: "shared", **billing_account},
            {"Zuora__EXT_ID__c": "P2", EXT: "shared", **billing_account},
        ],
        external_id_field="Zuora__EXT_ID__c",
    )

    # When a collection and a single row upsert on it
    collection = upsert_on(standin, http, PAYMENTS, EXT, [{EXT: "shared", "Zuora__Amount__c": 5}])
    row = http.patch(
        f"{standin.url}{API}/sobjects/{PAYMENTS}/{EXT}/shared",
        json={"Zuora__Amount__c": 5},
        headers={"Authorization": f"Bearer {token_for(standin, http)}"},
        timeout=5,
    )

    # Then neither updates either record: the collection says which, the row answers 300 with both
    [result] = collection.json()
    assert result["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert row.status_code == 300
    assert len(row.json()) == 2
    assert all("Zuora__Amount__c" not in r for r in standin.records(PAYMENTS))
