"""The sync handler over real HTTP: moto in server mode (SQS, DynamoDB, Secrets Manager) and the HTTPS
Salesforce stand-in, with messages delivered by the same poller the local stack uses."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.sync import app
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.app.sync import build_sync
from nrtsync.domain.mapping import DEFAULT_MAPPING_PATH, load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.outcomes import Outcome
from nrtsync.services.sync.service import QueueMessage
from nrtsync.services.sync.settings import SyncSettings
from nrtsync_local.aws import LocalResources, client, provision
from nrtsync_local.poller import MappingSwitch, SqsEventSourcePoller
from tests.support.salesforce import StandinClient, running_salesforce_standin
from tests.support.sync_world import T0
from tests.support.sync_world import change as unlinked_change

LINKED_CRM_ID = "0015g00000LnK00AAA"


def change(object_type: str = "Account", record_id: str = "A1", **kw: Any) -> QueuedChange:
    """A change as Zuora sends it; an account carries its CRM link unless the test says otherwise, because
    Zuora 360 syncs only linked accounts (an unlinked one is held: tests/integration/test_unlinked_accounts.py)."""
    if object_type == "Account" and "CrmId" not in kw:
        fields = {k: v for k, v in kw.items() if k not in ("updated", "received")}
        kw = {**kw, "CrmId": LINKED_CRM_ID, **({} if fields else {"Name": f"{record_id} linked"})}
    return unlinked_change(object_type, record_id, **kw)


pytestmark = pytest.mark.integration
ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
_stacks = itertools.count()


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as sf:
        yield sf


@dataclass
class Pipeline:
    resources: LocalResources
    sf: StandinClient
    sqs: Any
    settings: SyncSettings
    switch: MappingSwitch  # the sync function's event source mapping, as the local stack has it

    def send(self, *changes: QueuedChange) -> None:
        queue = SqsChangeQueue(self.resources.queue_url, client=self.sqs)
        for queued in changes:
            queue.send(queued)

    def poller(self) -> SqsEventSourcePoller:
        return SqsEventSourcePoller(
            self.sqs,
            queue_url=self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            handler=app.lambda_handler,
            batch_size=200,
            window_seconds=0.2,
            function_timeout_seconds=60,
            switch=self.switch,
        )

    def drain(self, rounds: int = 10) -> SqsEventSourcePoller:
        poller = self.poller()
        for _ in range(rounds):
            if poller.poll_once() == 0 and self.depth() == 0:
                break
        return poller

    def depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def find(self, sobject: str, ext_id: str) -> dict[str, Any] | None:
        # Each sObject is matched on its mapping's external id (a payment on Zuora__EXT_ID__c).
        ext_field = next(o.external_id_field for o in load_mapping().objects.values() if o.sobject == sobject)
        return next((r for r in self.sf.records(sobject) if r.get(ext_field) == ext_id), None)

    def record(self, sobject: str, ext_id: str) -> dict[str, Any]:
        found = self.find(sobject, ext_id)
        assert found is not None, f"{sobject} {ext_id} is not in the stand-in"
        return found

    def failures(self) -> list[dict[str, Any]]:
        ddb = client("dynamodb", self.resources.aws_endpoint_url)
        items = ddb.query(
            TableName=self.resources.history_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "FAILURE"}},
        )["Items"]
        return [{k: next(iter(v.values())) for k, v in i.items()} for i in items]


@pytest.fixture
def pipeline(moto_endpoint: str, standin: StandinClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    standin.reset()
    resources = provision(
        moto_endpoint,
        callout_credentials={"username": "zuora", "password": "pw"},
        salesforce_credentials={
            "auth_flow": "client_credentials",
            "login_url": standin.url,
            "client_id": standin.client_id,
            "client_secret": standin.client_secret,
        },
        stack=f"it{next(_stacks)}",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_file)
    settings = SyncSettings.from_env(
        {
            "CALLOUT_QUEUE_URL": resources.queue_url,
            "SYNC_STATE_TABLE": resources.state_table,
            "SYNC_HISTORY_TABLE": resources.history_table,
            "SALESFORCE_SECRET_ID": resources.salesforce_secret_id,
            "RETRY_DELAY_SECONDS": "0",
            "API_USAGE_RECHECK_SECONDS": "1",
        }
    )
    switch = MappingSwitch()
    app.service.use(build_sync(settings, event_source=switch))
    yield Pipeline(resources, standin, client("sqs", moto_endpoint), settings, switch)
    app.service.use(None)
    standin.set_faults(latency_ms=0, expire_sessions=False)


def test_partial_failures_write_the_good_and_park_the_bad(pipeline: Pipeline) -> None:
    # Given a validation rule in the org that refuses one account's name
    pipeline.sf.set_faults(validation_rules=[{"field": "Name", "equals": "Forbidden Ltd"}])
    pipeline.send(change("Account", "A1", Name="Good Inc"), change("Account", "A2", Name="Forbidden Ltd"))

    # When the queue is drained
    poller = pipeline.drain()

    # Then one call wrote the good record; the bad one is on the failure list; the queue is empty
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "Good Inc"
    assert pipeline.find(ACCOUNTS, "A2") is None
    [failure] = pipeline.failures()
    assert failure["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert pipeline.depth() == 0
    assert poller.stats.deleted == 2
    pipeline.sf.set_faults(validation_rules=[])


def test_a_child_before_its_parent_waits_then_lands(pipeline: Pipeline) -> None:
    # Given a subscription queued and synced before its account exists
    pipeline.send(change("Subscription", "S1", Name="S1", AccountId="A9"))
    first = pipeline.poller()
    first.poll_once()
    assert first.stats.retried == 1
    assert pipeline.find(SUBSCRIPTIONS, "S1") is None

    # When the account arrives and the queue is drained
    pipeline.send(change("Account", "A9", Name="Parent"))
    pipeline.drain()

    # Then both are in Salesforce, the subscription linked to the account, nothing failed
    parent = pipeline.record(ACCOUNTS, "A9")
    child = pipeline.record(SUBSCRIPTIONS, "S1")
    assert child["Zuora__CustomerAccount__c"] == parent["Id"]
    assert pipeline.failures() == []


def test_an_expired_session_is_renewed_without_losing_the_batch(pipeline: Pipeline) -> None:
    # Given a warm service whose token the org has just expired
    pipeline.send(change("Account", "A1", Name="one"))
    pipeline.drain()
    pipeline.sf.set_faults(expire_sessions=True)

    # When the next change is synced
    pipeline.send(change("Account", "A1", updated=T0 + timedelta(seconds=5), Name="two"))
    pipeline.drain()

    # Then it was written with a new token
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "two"
    assert pipeline.sf.stats()["token_requests"] >= 2


def test_a_used_up_api_allocation_holds_changes_until_it_frees_up(pipeline: Pipeline) -> None:
    # Given an org whose API allocation is used up
    pipeline.sf.set_faults(api_limit=100, api_used=100)
    pipeline.send(change("Account", "A1", Name="held"))

    # When the sync runs, the change waits on the queue (not failed, not written)
    poller = pipeline.poller()
    poller.poll_once()
    assert poller.stats.retried == 1
    assert pipeline.find(ACCOUNTS, "A1") is None
    assert pipeline.failures() == []

    # and the circuit breaker is open (issue 11): the mapping is disabled until the probe closes it
    assert app.service.get().breaker.current().is_open  # type: ignore[union-attr]
    assert pipeline.switch.enabled is False

    # And when the allocation frees up, the probe closes the breaker and the next poll after the recheck writes it
    pipeline.sf.set_faults(api_limit=100_000, api_used=10)
    probe = app.service.get().probe(deadline=time.monotonic() + 30)
    assert probe is not None
    assert probe.action == "closed"
    # Real time: the retry's 1 s visibility delay runs on moto's SQS server, whose clock a test cannot move.
    time.sleep(1.1)
    pipeline.drain()
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "held"


def test_two_invocations_at_once_keep_the_newest_version(pipeline: Pipeline) -> None:
    # Given a slow org and two versions of each record, the older one in a different batch
    pipeline.sf.set_faults(latency_ms=150)
    old = [change("Account", f"C{i}", updated=T0, Name="old") for i in range(5)]
    new = [change("Account", f"C{i}", updated=T0 + timedelta(seconds=1), Name="new") for i in range(5)]

    # When two containers (separate services) sync their batches at the same moment, then retry what waits
    services = [build_sync(pipeline.settings), build_sync(pipeline.settings)]
    barrier = threading.Barrier(2)

    def invoke(service: Any, batch: list[QueuedChange]) -> None:
        messages = [
            QueueMessage(message_id=f"{q.record_id}-{q.fields['Name']}", receipt_handle="", body=q.model_dump_json())
            for q in batch
        ]
        barrier.wait()
        result = service.run(messages, deadline=time.monotonic() + 30)
        leftovers[id(service)] = [m for m in messages if m.message_id in result.retry_message_ids]

    leftovers: dict[int, list[Any]] = {}
    threads = [threading.Thread(target=invoke, args=(s, b)) for s, b in zip(services, (old, new), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for service in services:
        for _ in range(20):  # bounded: a record that never settles fails the test instead of hanging it
            pending = leftovers.pop(id(service), [])
            if not pending:
                break
            # Real time: what this waits out is the other container's write to the stand-in (150 ms latency).
            time.sleep(0.2)
            result = service.run(pending, deadline=time.monotonic() + 30)
            leftovers[id(service)] = [m for m in pending if m.message_id in result.retry_message_ids]
        assert not leftovers.get(id(service)), "changes still waiting after 20 retries"

    # Then every record in Salesforce holds the new version
    assert sorted(r["Name"] for r in pipeline.sf.records(ACCOUNTS)) == ["new"] * 5


def test_children_carry_the_accounts_crm_id_and_text_null_clears_over_https(pipeline: Pipeline) -> None:
    # Given an account synced with its CrmId (the Salesforce Account it belongs to)
    crm_id, other_crm_id = "0015g00000XyZ12AAB", "0015g00000AbC34DDE"
    pipeline.send(change("Account", "A7", Name="Acme", CrmId=crm_id))
    pipeline.drain()

    # When an invoice without CrmId (its empty merge fields rendered as null) and a payment carrying its own
    # CrmId arrive, with a subscription whose other values are null
    pipeline.send(
        change("Invoice", "I7", InvoiceNumber="INV-7", AccountId="A7", Amount="null", DueDate="null", Comments="null"),
        change("Payment", "P7", PaymentNumber="P-7", AccountId="A7", CrmId=other_crm_id),
        change("Subscription", "S7", Name="S7", AccountId="null", Version="null", AutoRenew="null"),
    )
    pipeline.drain()

    # Then the stand-in holds the children linked to the Account, the null values cleared, nothing failed
    invoice = pipeline.record("Zuora__ZInvoice__c", "I7")
    assert invoice["Zuora__Account__c"] == crm_id
    assert invoice["Zuora__BillingAccount__c"] == pipeline.record(ACCOUNTS, "A7")["Id"]
    assert (invoice["Zuora__TotalAmount__c"], invoice["Zuora__DueDate__c"], invoice["Zuora__Description__c"]) == (
        None,
        None,
        None,
    )
    assert pipeline.record("Zuora__Payment__c", "P7")["Zuora__Account__c"] == other_crm_id
    subscription = pipeline.record(SUBSCRIPTIONS, "S7")
    assert "Zuora__CustomerAccount__c" not in subscription
    assert "Zuora__Account__c" not in subscription  # no parent, nothing known: left out
    assert (subscription["Name"], subscription["Zuora__Version__c"], subscription["Zuora__AutoRenew__c"]) == (
        "S7",
        None,
        None,
    )
    assert pipeline.failures() == []
    assert pipeline.depth() == 0


PAYMENTS = "Zuora__Payment__c"


def service_with_amount_as_text(pipeline: Pipeline, tmp_path: Path) -> Any:
    """A deployer's mapping override that maps Payment.Amount as text: Zuora's "n/a" then reaches Salesforce,
    whose parser refuses it for the number field Zuora__Amount__c."""
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    mapping["objects"]["Payment"]["fields"]["Amount"]["type"] = "string"
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    return build_sync(pipeline.settings.model_copy(update={"mapping_path": str(path)}))


def payment_messages(pipeline: Pipeline, count: int, bad: str) -> list[QueueMessage]:
    """Payments of one billing account, already in the org (a payment's master-detail)."""
    pipeline.sf.seed(ACCOUNTS, [{"Zuora__External_Id__c": "A1", "Name": "Acme", "Zuora__Account__c": LINKED_CRM_ID}])
    changes = [change("Payment", f"P{i:03d}", PaymentNumber=f"P-{i}", AccountId="A1") for i in range(count)]
    changes = [
        c.model_copy(update={"fields": {**c.fields, "Amount": "n/a"}}) if c.record_id == bad else c for c in changes
    ]
    return [QueueMessage(message_id=c.record_id, receipt_handle="", body=c.model_dump_json()) for c in changes]


def test_one_bad_value_in_200_payments_is_isolated_over_https(pipeline: Pipeline, tmp_path: Path) -> None:
    # Given 200 payments, one with an amount Salesforce cannot deserialize into its number field
    service = service_with_amount_as_text(pipeline, tmp_path)

    # When they are synced in one invocation
    result = service.run(payment_messages(pipeline, 200, bad="P137"), deadline=time.monotonic() + 60)

    # Then the stand-in refused the collection whole, the sync bisected it: 199 written, the bad one failed with
    # Salesforce's JSON_PARSER_ERROR and message, nothing waits
    failed = [o for o in result.outcomes if o.outcome is Outcome.FAILED]
    assert [(o.change.record_id, o.error_code) for o in failed] == [("P137", "JSON_PARSER_ERROR")]
    assert "Cannot deserialize instance of double from VALUE_STRING value n/a" in (failed[0].error_message or "")
    assert result.session.counts[Outcome.WRITTEN] == 199
    assert result.retry_message_ids == []
    assert len(pipeline.sf.records(PAYMENTS)) == 199
    assert [f["error_code"] for f in pipeline.failures()] == ["JSON_PARSER_ERROR"]

    # And every API call was counted, the same by the session and by Salesforce: 1 + at most ceil(log2(200))
    assert result.session.api_calls == pipeline.sf.stats()["api_calls"]
    assert 2 <= result.session.api_calls <= 9


def test_a_deadline_mid_isolation_leaves_the_rest_waiting_not_parked(pipeline: Pipeline, tmp_path: Path) -> None:
    # Given an org answering in 1.5 s and an invocation with 8 s to go (13 s left, 5 s kept back): time for the
    # token, the first call and a few halves, not for the eight calls that isolate one record in 200
    service = service_with_amount_as_text(pipeline, tmp_path)
    pipeline.sf.set_faults(latency_ms=1_500)

    # When 200 payments with one bad value are synced
    result = service.run(payment_messages(pipeline, 200, bad="P137"), deadline=time.monotonic() + 13)

    # Then Salesforce refused the collection (the call alone answers 400), and whatever was not isolated in time
    # waits (batchItemFailures), the bad one among it; nothing failed or was parked
    assert pipeline.sf.stats()["by_status"].get("400", 0) >= 1
    waiting = {o.change.record_id for o in result.outcomes if o.outcome is Outcome.WAITING}
    written = {o.change.record_id for o in result.outcomes if o.outcome is Outcome.WRITTEN}
    assert "P137" in waiting
    assert len(waiting) + len(written) == 200
    assert Outcome.FAILED not in result.session.counts or result.session.counts[Outcome.FAILED] == 0
    assert pipeline.failures() == []
    assert set(result.retry_message_ids) == waiting


def test_an_approval_locked_record_is_parked_with_entity_is_locked(pipeline: Pipeline) -> None:
    # Given an account in Salesforce that an approval process has locked
    pipeline.sf.seed(ACCOUNTS, [{"Zuora__External_Id__c": "A1", "Name": "Acme", "Zuora__Account__c": LINKED_CRM_ID}])
    pipeline.sf.set_faults(approval_locks=["A1"])
    pipeline.send(change("Account", "A1", Name="Acme Renamed"), change("Account", "A2", Name="Other"))

    # When the queue is drained
    poller = pipeline.drain()

    # Then the locked change is on the failure list with ENTITY_IS_LOCKED and acknowledged, not retried to the DLQ
    [failure] = pipeline.failures()
    assert failure["error_code"] == "ENTITY_IS_LOCKED"
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "Acme"
    assert pipeline.record(ACCOUNTS, "A2")["Name"] == "Other"
    assert poller.stats.retried == 0
    assert pipeline.depth() == 0
    pipeline.sf.set_faults(approval_locks=[])


def test_the_concurrent_request_limit_waits_briefly_without_the_allocation_stop(pipeline: Pipeline) -> None:
    # Given the org at its concurrent long-running request limit for the next call
    pipeline.sf.set_faults(fail_next=[{"kind": "concurrent_long_txn"}])
    service = build_sync(pipeline.settings)
    held = change("Account", "A1", Name="held")
    msg = QueueMessage(message_id="m1", receipt_handle="", body=held.model_dump_json())

    # When it is synced, the change waits for that reason (not the daily allocation's)
    first = service.run([msg], deadline=time.monotonic() + 30)
    [outcome] = first.outcomes
    assert (outcome.outcome, outcome.error_code) == (Outcome.WAITING, "CONCURRENT_REQUEST_LIMIT")
    assert "ConcurrentPerOrgLongTxn" in (outcome.error_message or "")

    # And the retry right after is written: nothing stopped the calls
    again = service.run([msg], deadline=time.monotonic() + 30)
    assert [o.outcome for o in again.outcomes] == [Outcome.WRITTEN]
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "held"


def test_one_batch_of_upserts_and_deletes_is_one_composite_call(pipeline: Pipeline) -> None:
    # Given two accounts and a subscription of the first, in Salesforce
    pipeline.send(change("Account", "A1", Name="Acme"), change("Account", "A2", Name="Beta"))
    pipeline.drain()
    pipeline.send(change("Subscription", "S1", Name="S1", AccountId="A1"))
    pipeline.drain()
    calls_before = pipeline.sf.stats()["api_calls"]

    # When one batch deletes the subscription and account A2 and updates account A1 (Zuora's changeType DELETE)
    later = T0 + timedelta(minutes=1)
    pipeline.send(
        # A subscription's delete names its number (its one record across versions)
        change("Subscription", "S1", updated=later).model_copy(
            update={"change_type": "DELETE", "fields": {"Name": "S1"}}
        ),
        change("Account", "A1", updated=later, Name="Acme 2"),
        change("Account", "A2", updated=later).model_copy(update={"change_type": "DELETE", "fields": {}}),
    )
    pipeline.drain()

    # Then one API call did it all: the deletes by the Ids the state table kept, the update; nothing failed
    stats = pipeline.sf.stats()
    assert stats["api_calls"] - calls_before == 1
    assert stats["records_per_call"][-1] == 3
    assert pipeline.find(SUBSCRIPTIONS, "S1") is None
    assert pipeline.find(ACCOUNTS, "A2") is None
    assert pipeline.record(ACCOUNTS, "A1")["Name"] == "Acme 2"
    assert pipeline.failures() == []
    assert pipeline.depth() == 0


def test_a_childs_delete_after_its_accounts_cascaded_is_done(pipeline: Pipeline) -> None:
    # Given an account with a subscription and an invoice, in Salesforce
    pipeline.send(change("Account", "A1", Name="Acme"))
    pipeline.drain()
    pipeline.send(
        change("Subscription", "S1", Name="S1", AccountId="A1"),
        change("Invoice", "I1", InvoiceNumber="INV-1", AccountId="A1"),
    )
    pipeline.drain()

    # When Zuora deletes the account (Salesforce cascades to its subscriptions and invoices), then its children
    later = T0 + timedelta(minutes=1)
    pipeline.send(change("Account", "A1", updated=later).model_copy(update={"change_type": "DELETE", "fields": {}}))
    pipeline.drain()
    pipeline.send(
        change("Subscription", "S1", updated=later).model_copy(
            update={"change_type": "DELETE", "fields": {"Name": "S1"}}
        ),
        change("Invoice", "I1", updated=later).model_copy(update={"change_type": "DELETE", "fields": {}}),
    )
    pipeline.drain()

    # Then the children's deletes are done (already gone with their account), not failures, nothing left behind
    assert pipeline.find(SUBSCRIPTIONS, "S1") is None
    assert pipeline.find("Zuora__ZInvoice__c", "I1") is None
    assert pipeline.failures() == []
    assert pipeline.depth() == 0


def test_a_released_child_that_meets_a_row_lock_reaches_salesforce_without_another_callout(pipeline: Pipeline) -> None:
    # Given an account without its CrmId and two invoices, held (nothing sent)
    pipeline.send(
        change("Account", "A5", Name="Acme", CrmId=""),
        change("Invoice", "I51", InvoiceNumber="INV-51", AccountId="A5"),
        change("Invoice", "I52", InvoiceNumber="INV-52", AccountId="A5"),
    )
    pipeline.drain()
    assert pipeline.find("Zuora__ZInvoice__c", "I51") is None

    # When the account's CrmId arrives, and the org holds a lock on one invoice when the held ones are released
    pipeline.sf.set_faults(row_lock={"external_ids": ["I52"], "count": 1})
    pipeline.send(change("Account", "A5", updated=T0 + timedelta(minutes=5), Name="Acme", CrmId=LINKED_CRM_ID))
    poller = pipeline.drain()

    # Then the locked invoice went back to the callout queue on its own and was written in a later session: no other
    # callout, nothing failed, nothing left on the queue
    account = pipeline.record(ACCOUNTS, "A5")
    for invoice_id in ("I51", "I52"):
        invoice = pipeline.record("Zuora__ZInvoice__c", invoice_id)
        assert (invoice["Zuora__BillingAccount__c"], invoice["Zuora__Account__c"]) == (account["Id"], LINKED_CRM_ID)
    assert poller.stats.invocations >= 2
    assert pipeline.failures() == []
    assert pipeline.depth() == 0
