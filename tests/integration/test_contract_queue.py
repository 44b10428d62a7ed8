"""One contract, two implementations: the in-memory callout queue and sink, and SqsChangeQueue on moto."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync_fakes.queue import MemoryQueue, MemorySink

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Queue:
    """A queue under test: ``send``/``send_batch`` through the port, ``received`` what reached the queue."""

    send: Callable[[QueuedChange], str]
    send_batch: Callable[[list[QueuedChange]], None]
    send_later: Callable[[list[QueuedChange], int], list[QueuedChange]]
    received: Callable[[], list[QueuedChange]]


@pytest.fixture(params=["fake", "moto"])
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    if request.param == "fake":
        single, sink = MemoryQueue(), MemorySink()
        yield Queue(single.send, sink.send_batch, single.send_later, lambda: single.sent + sink.sent)
        return
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="callouts")["QueueUrl"]
        adapter = SqsChangeQueue(url, client=sqs)

        def received() -> list[QueuedChange]:
            changes: list[QueuedChange] = []
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                changes += [QueuedChange.model_validate_json(m["Body"]) for m in messages]
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return changes

        yield Queue(adapter.send, adapter.send_batch, adapter.send_later, received)


@pytest.fixture(params=["fake", "moto"])
def down(request: pytest.FixtureRequest) -> Iterator[Queue]:
    """A queue that takes nothing: the fakes told to fail, the adapter pointed at a queue that does not exist."""
    if request.param == "fake":
        single, sink = MemoryQueue(failing=True), MemorySink(fail_after=0)
        yield Queue(single.send, sink.send_batch, single.send_later, lambda: single.sent + sink.sent)
        return
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        adapter = SqsChangeQueue("https://sqs.eu-west-1.amazonaws.com/123456789012/missing", client=sqs)
        yield Queue(adapter.send, adapter.send_batch, adapter.send_later, list)


def change(n: int) -> QueuedChange:
    updated = T0 + timedelta(seconds=n)
    return QueuedChange(
        object_type="Account",
        record_id=f"A{n:03d}",
        updated_date=updated,
        fields={"Name": f"Account {n}"},
        notification_id=f"n-{n}",
        received_at=updated + timedelta(seconds=1),
    )


def test_each_change_sent_gets_its_own_message_id_and_arrives_whole(queue: Queue) -> None:
    # When two changes are sent one by one
    ids = [queue.send(change(1)), queue.send(change(2))]

    # Then each has an id of its own and both arrive as sent
    assert all(ids)
    assert len(set(ids)) == 2
    assert sorted(queue.received(), key=lambda c: c.record_id) == [change(1), change(2)]


def test_a_batch_of_any_size_arrives_whole(queue: Queue) -> None:
    # When 25 changes go as one batch (more than one SendMessageBatch)
    queue.send_batch([change(n) for n in range(25)])

    # Then every one arrives
    assert sorted(queue.received(), key=lambda c: c.record_id) == [change(n) for n in range(25)]


def test_changes_sent_later_arrive_whole_and_none_is_refused(queue: Queue) -> None:
    # When 12 changes are sent with a delay (two SendMessageBatch calls), none delayed past SQS's 15 minutes
    refused = queue.send_later([change(n) for n in range(12)], 0)

    # Then the queue took them all, and every one arrives
    assert refused == []
    assert sorted(queue.received(), key=lambda c: c.record_id) == [change(n) for n in range(12)]


def test_a_queue_that_takes_nothing_says_so(down: Queue) -> None:
    with pytest.raises(QueueUnavailableError):
        down.send(change(1))
    with pytest.raises(QueueUnavailableError):
        down.send_batch([change(1)])
    # Sent later: each change not taken is handed back, for the caller to keep
    assert down.send_later([change(1), change(2)], 30) == [change(1), change(2)]


def test_sqs_holds_a_change_sent_later_for_its_delay() -> None:
    # The adapter alone: SQS's own DelaySeconds (the in-memory queue has no clock to wait on)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="callouts")["QueueUrl"]

        # When a change is sent to come back in 15 minutes, SQS's longest delay
        refused = SqsChangeQueue(url, client=sqs).send_later([change(1)], 900)

        # Then SQS took it and counts it delayed: nothing to receive yet
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
        assert refused == []
        assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
        assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
