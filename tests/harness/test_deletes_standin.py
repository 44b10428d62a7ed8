"""Deletes over the HTTPS Salesforce stand-in: sObject Collections delete alone and inside Composite, the GET by
external ID, and the adapter's one-call mix of deletes and upserts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.domain.models.salesforce import CollectionDelete, CollectionUpsert, RecordResult, SalesforceCredentials
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
# The Salesforce Account each billing account belongs to: the master-detail a new Zuora__CustomerAccount__c needs.
CRM_ACCOUNT = "0015g00000XyZ12AAB"


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


def ids_of(standin: StandinClient, sobject: str) -> dict[str, str]:
    return {r[EXT]: r["Id"] for r in standin.records(sobject)}


def adapter(standin: StandinClient) -> SimpleSalesforceAdapter:
    creds = SalesforceCredentials.model_validate(
        {"login_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
    )
    return SimpleSalesforceAdapter(lambda: creds, session=standin.session(), timeout_seconds=5.0)


def test_a_collections_delete_answers_per_id_in_order_and_cascades_to_the_children(
    standin: StandinClient, http: requests.Session
) -> None:
    token = token_for(standin, http)
    upsert(
        standin,
        http,
        [
            {EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme"},
            {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Beta"},
        ],
        token=token,
    )
    upsert(standin, http, [{EXT: "S1", "Zuora__CustomerAccount__r": {EXT: "A1"}}], sobject=SUBSCRIPTIONS, token=token)
    accounts = ids_of(standin, ACCOUNTS)
    subscription = ids_of(standin, SUBSCRIPTIONS)["S1"]
    never = "001000000000000AAA"
    calls_before = standin.stats()["api_calls"]

    def delete(*ids: str) -> requests.Response:
        return http.delete(
            f"{standin.url}{API}/composite/sobjects?ids={','.join(ids)}&allOrNone=false",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )

    first = delete(accounts["A1"], never)
    again = delete(accounts["A1"])

    assert first.status_code == 200
    assert first.json() == [
        {"id": accounts["A1"], "success": True, "errors": []},
        {
            "success": False,
            "errors": [
                {"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": []}
            ],
        },
    ]
    assert again.json()[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert set(ids_of(standin, ACCOUNTS)) == {"A2"}
    # The subscription's lookup to its billing account cascades on delete (zuora360_package.json): it went with
    # the account, into the recycle bin, so deleting it later answers ENTITY_IS_DELETED (the sync counts it done)
    assert standin.records(SUBSCRIPTIONS) == []
    assert delete(subscription).json()[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert standin.stats()["api_calls"] == calls_before + 3
    assert delete(*[never] * 201).status_code == 400


def test_a_record_is_read_by_external_id_or_not_found(standin: StandinClient, http: requests.Session) -> None:
    token = token_for(standin, http)
    upsert(standin, http, [{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Acme"}], token=token)
    auth = {"Authorization": f"Bearer {token}"}

    found = http.get(f"{standin.url}{API}/sobjects/{ACCOUNTS}/{EXT}/A1?fields=Id", headers=auth, timeout=5)
    missing = http.get(f"{standin.url}{API}/sobjects/{ACCOUNTS}/{EXT}/A9?fields=Id", headers=auth, timeout=5)

    assert found.status_code == 200
    assert found.json()["Id"] == ids_of(standin, ACCOUNTS)["A1"]
    assert missing.status_code == 404
    assert missing.json()[0]["errorCode"] == "NOT_FOUND"


def test_a_delete_inside_composite_counts_as_one_of_the_five_collections(
    standin: StandinClient, http: requests.Session
) -> None:
    token = token_for(standin, http)
    delete_sub: dict[str, Any] = {
        "method": "DELETE",
        "url": f"{API}/composite/sobjects?ids=001000000000000AAA&allOrNone=false",
        "referenceId": "gone",
    }
    upserts = [collection_sub(f"c{n}", ACCOUNTS, [{EXT: f"A{n}", "Zuora__Account__c": CRM_ACCOUNT}]) for n in range(5)]

    too_many = composite(standin, http, [delete_sub, *upserts], token=token)
    five = composite(standin, http, [delete_sub, *upserts[:4]], token=token)

    assert too_many.status_code == 400
    assert "5 sObject Collections" in too_many.json()["compositeResponse"][0]["body"][0]["message"]
    assert five.status_code == 200
    gone = five.json()["compositeResponse"][0]
    assert (gone["referenceId"], gone["httpStatusCode"]) == ("gone", 200)
    assert gone["body"][0]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_the_adapter_deletes_and_upserts_in_one_composite_call_and_finds_ids(standin: StandinClient) -> None:
    sf = adapter(standin)
    deadline = time.monotonic() + 30
    [written] = sf.upsert_collections(
        [
            CollectionUpsert(
                sobject=ACCOUNTS,
                external_id_field=EXT,
                records=[{EXT: "A1", "Zuora__Account__c": CRM_ACCOUNT}, {EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT}],
            )
        ],
        deadline=deadline,
    )
    assert isinstance(written, list)
    a1 = sf.find_id(ACCOUNTS, EXT, "A1", deadline=deadline)
    assert a1 == ids_of(standin, ACCOUNTS)["A1"]
    assert sf.find_id(ACCOUNTS, EXT, "nope", deadline=deadline) is None
    calls_before = sf.api_calls

    deleted, updated = sf.upsert_collections(
        [
            CollectionDelete(sobject=ACCOUNTS, ids=[a1]),
            CollectionUpsert(
                sobject=ACCOUNTS,
                external_id_field=EXT,
                records=[{EXT: "A2", "Zuora__Account__c": CRM_ACCOUNT, "Name": "Beta"}],
            ),
        ],
        deadline=deadline,
    )

    assert deleted == [RecordResult(success=True, salesforce_id=a1)]
    assert isinstance(updated, list)
    assert updated[0].success
    assert sf.api_calls == calls_before + 1
    assert standin.stats()["by_endpoint"]["POST composite"] == 1
    assert {r[EXT]: r.get("Name") for r in standin.records(ACCOUNTS)} == {"A2": "Beta"}

    # alone, a delete is a plain sObject Collections DELETE
    [again] = sf.upsert_collections([CollectionDelete(sobject=ACCOUNTS, ids=[a1])], deadline=deadline)
    assert isinstance(again, list)
    assert again[0].errors[0].status_code == "ENTITY_IS_DELETED"
    assert standin.stats()["by_endpoint"]["DELETE composite/sobjects"] == 1
