"""A backfill's adapters on moto: the BACKFILL# items and their index, and the callout queue's backlog."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.ports.backfill import BackfillExistsError, BackfillRun, BackfillStatus, ObjectProgress
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.state import StateUnavailableError
from tests.support.sync_world import STATE_TABLE, create_tables

REGION = "eu-west-1"
CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue_url": sqs.create_queue(QueueName="callouts")["QueueUrl"]}


def _run(run_id: str, created: datetime = CREATED) -> BackfillRun:
    return BackfillRun(
        run_id=run_id,
        objects=("Account", "Invoice"),
        since=datetime(2006, 1, 1, tzinfo=UTC),
        until=created,
        created_at=created,
        progress=(ObjectProgress("Account"), ObjectProgress("Invoice")),
    )


def test_a_run_round_trips_and_its_id_is_never_taken_twice(aws: dict[str, Any]) -> None:
    store = DynamoBackfillStore(STATE_TABLE, client=aws["dynamodb"])
    run = _run("r1")
    store.create(run)
    with pytest.raises(BackfillExistsError):
        store.create(run)

    progressed = run.with_progress(
        ObjectProgress("Account", pages=3, read=5000, queued=4990, malformed=1, started_at=CREATED, finished_at=CREATED)
    )
    saved = BackfillRun(**{**progressed.__dict__, "status": BackfillStatus.WAITING, "reason": "backlog", "steps": 4})
    store.save(saved)

    assert store.load("r1") == saved
    assert store.load("nope") is None
    item = aws["dynamodb"].get_item(TableName=STATE_TABLE, Key={"pk": {"S": "BACKFILL#r1"}})["Item"]
    assert item["status"] == {"S": "waiting"}


def test_runs_are_listed_newest_first_from_the_index_without_a_scan(aws: dict[str, Any]) -> None:
    store = DynamoBackfillStore(STATE_TABLE, client=aws["dynamodb"])
    store.create(_run("old", datetime(2026, 11, 1, tzinfo=UTC)))
    store.create(_run("new", datetime(2026, 11, 20, tzinfo=UTC)))
    assert [run.run_id for run in store.runs()] == ["new", "old"]
    index = aws["dynamodb"].get_item(TableName=STATE_TABLE, Key={"pk": {"S": "BACKFILL#INDEX"}})["Item"]
    assert set(index["runs"]["SS"]) == {"old", "new"}


def test_an_unreadable_run_item_is_a_state_error(aws: dict[str, Any]) -> None:
    aws["dynamodb"].put_item(TableName=STATE_TABLE, Item={"pk": {"S": "BACKFILL#bad"}, "status": {"S": "odd"}})
    with pytest.raises(StateUnavailableError, match="bad"):
        DynamoBackfillStore(STATE_TABLE, client=aws["dynamodb"]).load("bad")


def test_the_backlog_is_the_queues_waiting_messages(aws: dict[str, Any]) -> None:
    queue = SqsChangeQueue(aws["queue_url"], client=aws["sqs"])
    assert queue.backlog() == 0
    for n in range(7):
        aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=str(n))
    assert queue.backlog() == 7
    # A message being processed (in flight) is no longer ahead of a live callout
    aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=2)
    assert queue.backlog() == 5


def test_an_unreachable_queue_is_queue_unavailable(aws: dict[str, Any]) -> None:
    missing = aws["queue_url"].rsplit("/", 1)[0] + "/nope"
    with pytest.raises(QueueUnavailableError):
        SqsChangeQueue(missing, client=aws["sqs"]).backlog()
