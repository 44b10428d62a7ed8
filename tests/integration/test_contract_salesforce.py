"""One contract, two implementations: the in-memory Salesforce the unit tests use and the adapter on the HTTPS
stand-in refuse what Salesforce refuses for Zuora 360's master-detail fields (REQUIRED_FIELD_MISSING when one is
absent on insert or cleared on update), so a unit test cannot pass on a write the org would refuse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.domain.models.salesforce import CollectionUpsert, RecordResult, SalesforceCredentials, SalesforceError
from nrtsync_fakes.clock import FakeClock
from nrtsync_fakes.salesforce import FakeSalesforce
from tests.support.salesforce import StandinClient, running_salesforce_standin

pytestmark = pytest.mark.integration

ACCOUNTS = "Zuora__CustomerAccount__c"
PAYMENTS = "Zuora__Payment__c"
# The external ids the default mapping upserts on (layers/shared/nrtsync/config/default_mapping.json).
ACCOUNT_EXT = "Zuora__External_Id__c"
PAYMENT_EXT = "Zuora__EXT_ID__c"
CRM_ACCOUNT = "0015g00000XyZ12AAB"


class Upserts(Protocol):
    def upsert_collections(self, requests: Any, *, deadline: float) -> list[list[RecordResult] | SalesforceError]: ...


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as client:
        yield client


@pytest.fixture(params=["fake", "standin"])
def salesforce(request: pytest.FixtureRequest) -> Upserts:
    if request.param == "fake":
        return FakeSalesforce()
    standin: StandinClient = request.getfixturevalue("standin")
    standin.reset()
    credentials = SalesforceCredentials.model_validate(
        {"login_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
    )
    return SimpleSalesforceAdapter(
        lambda: credentials, session=standin.session(), sleep=FakeClock().sleep, rng=lambda: 0.5, timeout_seconds=5.0
    )


def upsert(salesforce: Upserts, sobject: str, ext: str, record: dict[str, Any]) -> RecordResult:
    [answer] = salesforce.upsert_collections(
        [CollectionUpsert(sobject=sobject, external_id_field=ext, records=[record])], deadline=time.monotonic() + 10
    )
    assert not isinstance(answer, SalesforceError), answer
    [result] = answer
    return result


def error_codes(result: RecordResult) -> list[str]:
    return [error.status_code for error in result.errors]


def test_a_billing_account_without_its_crm_account_is_refused(salesforce: Upserts) -> None:
    result = upsert(salesforce, ACCOUNTS, ACCOUNT_EXT, {ACCOUNT_EXT: "A1", "Name": "Acme"})
    assert (result.success, error_codes(result)) == (False, ["REQUIRED_FIELD_MISSING"])


def test_a_linked_billing_account_is_written_and_its_link_cannot_be_cleared(salesforce: Upserts) -> None:
    created = upsert(
        salesforce, ACCOUNTS, ACCOUNT_EXT, {ACCOUNT_EXT: "A1", "Name": "Acme", "Zuora__Account__c": CRM_ACCOUNT}
    )
    assert (created.success, created.created) == (True, True)

    # An update that leaves the link out keeps it; one that clears it is refused
    renamed = upsert(salesforce, ACCOUNTS, ACCOUNT_EXT, {ACCOUNT_EXT: "A1", "Name": "Acme Ltd"})
    assert (renamed.success, renamed.created) == (True, False)
    cleared = upsert(salesforce, ACCOUNTS, ACCOUNT_EXT, {ACCOUNT_EXT: "A1", "Zuora__Account__c": None})
    assert (cleared.success, error_codes(cleared)) == (False, ["REQUIRED_FIELD_MISSING"])


def test_a_payment_needs_its_billing_account(salesforce: Upserts) -> None:
    upsert(salesforce, ACCOUNTS, ACCOUNT_EXT, {ACCOUNT_EXT: "A1", "Name": "Acme", "Zuora__Account__c": CRM_ACCOUNT})

    bare = upsert(salesforce, PAYMENTS, PAYMENT_EXT, {PAYMENT_EXT: "P1", "Zuora__Amount__c": 10})
    assert (bare.success, error_codes(bare)) == (False, ["REQUIRED_FIELD_MISSING"])

    # Given through the relationship's external id, as the sync sends a parent lookup
    linked = upsert(
        salesforce,
        PAYMENTS,
        PAYMENT_EXT,
        {PAYMENT_EXT: "P1", "Zuora__Amount__c": 10, "Zuora__BillingAccount__r": {ACCOUNT_EXT: "A1"}},
    )
    assert (linked.success, linked.created) == (True, True)
