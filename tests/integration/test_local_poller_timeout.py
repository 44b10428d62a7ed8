"""The local SQS event source on moto: an invocation still running at the function's timeout fails its batch, and
SQS hands every message of it out again once its visibility timeout has passed, as with Lambda."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync_local.poller import SqsEventSourcePoller

pytestmark = pytest.mark.integration

VISIBILITY_SECONDS = 1  # the queue's; short so that the test is quick (the template's is 6x the timeout)


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="eu-west-1")


def poller(sqs: Any, queue_url: str, handler: Any) -> SqsEventSourcePoller:
    return SqsEventSourcePoller(
        sqs,
        queue_url=queue_url,
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:callouts",
        handler=handler,
        batch_size=10,
        window_seconds=0,
        function_timeout_seconds=0.2,
    )


def test_a_timed_out_batch_comes_back_whole_after_its_visibility_timeout(sqs: Any) -> None:
    # Given two changes on a queue and a sync handler that hangs past the function's timeout
    queue_url = sqs.create_queue(QueueName="callouts", Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)})[
        "QueueUrl"
    ]
    for body in ('{"n": 1}', '{"n": 2}'):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    released = threading.Event()

    def stuck(event: dict[str, Any], context: Any) -> dict[str, Any]:
        released.wait(5)  # a real wait: the poller times the invocation out on its own thread
        return {"batchItemFailures": []}

    first = poller(sqs, queue_url, stuck)
    try:
        # When the invocation times out
        assert first.poll_once(threading.Event()) == 2
        assert first.stats.timeouts == 1
    finally:
        released.set()

    # Then nothing was deleted, and once the visibility timeout passed both come back in the next batch
    received: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        received.extend(event["Records"])
        return {"batchItemFailures": []}

    second = poller(sqs, queue_url, record)
    deadline = time.monotonic() + VISIBILITY_SECONDS + 3
    while not received and time.monotonic() < deadline:
        second.poll_once(threading.Event())  # SQS's visibility runs on real time in moto too
    assert sorted(r["body"] for r in received) == ['{"n": 1}', '{"n": 2}']
    assert {r["attributes"]["ApproximateReceiveCount"] for r in received} == {"2"}
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )
