"""A sweep's adapters on moto: checkpoints in the state table, written versions, and batched sends to SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.sqs import SQS_BATCH_BYTES_MAX, SqsChangeQueue
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.sweep import SweepCursor
from nrtsync.services.sweep.service import Sweep
from nrtsync_fakes.zuora import MemoryZuora, zuora_account
from tests.support.sync_world import STATE_TABLE, create_tables

SINCE = datetime(2026, 11, 30, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
REGION = "eu-west-1"


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="callouts")["QueueUrl"]
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue_url": queue_url}


def _change(record_id: str, *, updated: datetime = SINCE, name: str = "n") -> QueuedChange:
    return QueuedChange(
        object_type="Account",
        record_id=record_id,
        updated_date=updated,
        fields={"Name": name},
        notification_id=f"n-{record_id}",
        received_at=updated + timedelta(seconds=2),
    )


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return bodies


def test_a_cursor_is_saved_resumed_and_replaced_by_the_watermark_when_the_window_is_read(aws: dict[str, Any]) -> None:
    checkpoints = DynamoSweepCheckpoints(STATE_TABLE, aws["dynamodb"])
    assert checkpoints.load("reconcile", "Account") is None
    assert checkpoints.watermark("reconcile", "Account") is None

    cursor = SweepCursor("Account", SINCE, UNTIL, query_locator="2c9f-loc", pages=3, read=6000, queued=12, malformed=1)
    checkpoints.save("reconcile", cursor)
    assert checkpoints.load("reconcile", "Account") == cursor
    assert checkpoints.load("backfill-1", "Account") is None  # sweeps do not see each other's cursors

    checkpoints.finish("reconcile", cursor)
    assert checkpoints.load("reconcile", "Account") is None
    assert checkpoints.watermark("reconcile", "Account") == UNTIL

    # A later window's cursor keeps the watermark of the one before until it finishes in turn
    later = SweepCursor("Account", UNTIL, UNTIL + timedelta(hours=1))
    checkpoints.save("reconcile", later)
    assert checkpoints.watermark("reconcile", "Account") == UNTIL
    assert checkpoints.load("reconcile", "Account") == later


def test_settled_versions_are_the_versions_the_sync_committed_or_parked(aws: dict[str, Any]) -> None:
    store = DynamoVersionStore(STATE_TABLE, aws["dynamodb"])
    written = [_change(f"A{i}") for i in range(150)]  # more than one BatchGetItem (100 keys)
    for change in written:
        store.claim(change.record_key, change.version, change.content_hash, owner="s1", lease_until_ms=2**50)
        store.commit(change.record_key, change.version, change.content_hash, owner="s1", salesforce_id=None)
    leased_only = _change("B1")
    store.claim(leased_only.record_key, leased_only.version, leased_only.content_hash, owner="s1", lease_until_ms=2**50)

    parked = _change("P1")
    store.mark_parked(parked.record_key, parked.version)
    store.mark_parked(parked.record_key, _change("P1", updated=SINCE - timedelta(days=1)).version)  # older: kept out
    keys = [c.record_key for c in written] + [leased_only.record_key, parked.record_key, "Account#missing"]

    found = store.settled_versions(keys)

    # A lease alone settles nothing; a parked version does (an operator has it), and the newest one stays
    assert found == {c.record_key: c.version for c in written} | {parked.record_key: parked.version}
    newer = _change("A0", updated=SINCE + timedelta(hours=1))
    store.mark_parked(newer.record_key, newer.version)  # a newer version of a written record was refused
    assert store.settled_versions([newer.record_key]) == {newer.record_key: newer.version}


def test_send_batch_queues_every_change_in_batches_of_ten_within_the_payload_limit(aws: dict[str, Any]) -> None:
    calls: list[int] = []
    aws["sqs"].meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **_: calls.append(len(params["Entries"]))
    )
    queue = SqsChangeQueue(aws["queue_url"], aws["sqs"])
    small = [_change(f"S{i}") for i in range(23)]
    big = [_change(f"L{i}", name="x" * 30_000) for i in range(12)]  # ~30 KB each: 8 of them exceed 256 KiB

    queue.send_batch(small + big)

    assert calls[:3] == [10, 10, 10]  # 23 small, then the big ones start filling the third batch
    assert sum(calls) == 35
    per_batch_bytes = 30_000 * 8
    assert per_batch_bytes < SQS_BATCH_BYTES_MAX < 30_000 * 9
    assert max(calls[3:]) <= 8
    received = _drain(aws["sqs"], aws["queue_url"])
    assert sorted(b["record_id"] for b in received) == sorted(c.record_id for c in small + big)
    assert QueuedChange.model_validate(received[0]).record_id  # the same message the ingest function sends


class _RefusesSomeEntries:
    """An SQS client whose SendMessageBatch fails the given entry ids the first ``times`` calls (SQS can)."""

    def __init__(self, failing: set[str], times: int) -> None:
        self.failing, self.times, self.entries_per_call = failing, times, list[list[str]]()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:  # noqa: N803
        ids = [e["Id"] for e in Entries]
        self.entries_per_call.append(ids)
        failed = [i for i in ids if i in self.failing] if len(self.entries_per_call) <= self.times else []
        return {
            "Successful": [{"Id": i, "MessageId": i} for i in ids if i not in failed],
            "Failed": [{"Id": i, "SenderFault": False, "Code": "InternalError"} for i in failed],
        }


def test_entries_sqs_refuses_are_sent_again_and_persistent_refusal_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nrtsync.adapters.aws.sqs.time.sleep", lambda _s: None)
    flaky = _RefusesSomeEntries({"2", "5"}, times=1)
    SqsChangeQueue("q", flaky).send_batch([_change(f"A{i}") for i in range(8)])  # type: ignore[arg-type]
    assert flaky.entries_per_call == [[str(i) for i in range(8)], ["2", "5"]]

    broken = _RefusesSomeEntries({"1"}, times=99)
    with pytest.raises(QueueUnavailableError, match="refused 1 changes"):
        SqsChangeQueue("q", broken).send_batch([_change(f"A{i}") for i in range(3)])  # type: ignore[arg-type]


def test_a_sweep_on_moto_queues_what_the_state_table_lacks_and_checkpoints_in_it(aws: dict[str, Any]) -> None:
    store = DynamoVersionStore(STATE_TABLE, aws["dynamodb"])
    zuora = MemoryZuora(page_size=50)
    updated = SINCE + timedelta(hours=1)
    zuora.put("Account", *(zuora_account(f"A{i:03d}", updated) for i in range(120)))
    for i in range(0, 120, 2):  # every other one was written at that UpdatedDate
        change = _change(f"A{i:03d}", updated=updated)
        store.claim(change.record_key, change.version, change.content_hash, owner="s", lease_until_ms=2**50)
        store.commit(change.record_key, change.version, change.content_hash, owner="s", salesforce_id=None)
    sweep = Sweep(
        "reconcile",
        zuora=zuora,
        mapping=load_mapping(),
        versions=store,
        sink=SqsChangeQueue(aws["queue_url"], aws["sqs"]),
        checkpoints=DynamoSweepCheckpoints(STATE_TABLE, aws["dynamodb"]),
        source="reconcile",
    )

    outcome = sweep.run("Account", SINCE, UNTIL, deadline=1e12)

    assert outcome.finished
    assert outcome.pages == 3
    assert outcome.queued == 60
    received = _drain(aws["sqs"], aws["queue_url"])
    assert sorted(b["record_id"] for b in received) == [f"A{i:03d}" for i in range(1, 120, 2)]
    assert DynamoSweepCheckpoints(STATE_TABLE, aws["dynamodb"]).watermark("reconcile", "Account") == UNTIL
