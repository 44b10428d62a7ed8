"""bench.cost_counter: the botocore hooks count the requests and DynamoDB units that really happen (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.cost_counter import (
    ESM,
    AwsCallCounter,
    CallerTracker,
    InvocationTimer,
    LogSink,
    item_size,
    moto_stored_item,
    read_units,
    value_size,
    write_units,
)

REGION = "eu-west-1"


@pytest.fixture
def counter() -> Iterator[AwsCallCounter]:
    with mock_aws():
        counter = AwsCallCounter(stored_item=moto_stored_item(REGION))
        counter.install()
        try:
            yield counter
        finally:
            counter.uninstall()


def _table(name: str = "t") -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def test_item_size_follows_dynamodbs_rules() -> None:
    # "Item sizes and formats": name + value; strings by UTF-8 bytes; numbers ~1 byte per 2 digits + 1.
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"name": {"S": "é"}}) == 4 + 2
    assert value_size({"N": "12345"}) == 4
    assert value_size({"BOOL": True}) == 1
    assert value_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (2 + 1) + (2 + 1)
    assert item_size(None) == 0


def test_units_round_up_per_started_kilobyte_or_4kb() -> None:
    assert write_units(0, 1) == 1
    assert write_units(0, 1024) == 1
    assert write_units(1025, 10) == 2  # the larger of before and after
    assert read_units(4097, consistent=True) == 2
    assert read_units(100, consistent=False) == 0.5


def test_n_puts_of_small_items_count_n_wru_and_n_requests(counter: AwsCallCounter) -> None:
    # Given a table made before counting starts
    with counter.paused():
        client = _table()
    counter.reset()
    # When 7 small items are put
    for n in range(7):
        client.put_item(TableName="t", Item={"pk": {"S": f"k{n}"}, "v": {"S": "x" * 100}})
    # Then 7 requests and 7 write units
    usage = counter.totals()["other"]
    assert usage["calls"] == {"dynamodb.PutItem": 7}
    assert usage["dynamodb_wru"] == 7


def test_a_large_item_and_an_update_count_by_size(counter: AwsCallCounter) -> None:
    with counter.paused():
        client = _table()
    counter.reset()
    # A 2.5 KB item: 3 WRU; an update that leaves it 2.5 KB: 3 WRU again (the larger of before and after).
    client.put_item(TableName="t", Item={"pk": {"S": "big"}, "v": {"S": "x" * 2500}})
    client.update_item(
        TableName="t",
        Key={"pk": {"S": "big"}},
        UpdateExpression="SET w = :w",
        ExpressionAttributeValues={":w": {"S": "y"}},
    )
    # A strongly consistent read of it: 1 RRU (under 4 KB); an eventually consistent one of a missing item: 0.5.
    client.get_item(TableName="t", Key={"pk": {"S": "big"}}, ConsistentRead=True)
    client.get_item(TableName="t", Key={"pk": {"S": "nothing"}})
    usage = counter.totals()["other"]
    assert usage["dynamodb_wru"] == 6
    assert usage["dynamodb_rru"] == 1.5


def test_batch_write_counts_each_item(counter: AwsCallCounter) -> None:
    with counter.paused():
        client = _table()
    counter.reset()
    items = [{"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "v": {"S": "x" * 1500}}}} for n in range(5)]
    client.batch_write_item(RequestItems={"t": items})
    usage = counter.totals()["other"]
    assert usage["calls"] == {"dynamodb.BatchWriteItem": 1}
    assert usage["dynamodb_wru"] == 10  # 5 items of ~1.5 KB: 2 each


def test_calls_are_counted_per_caller_and_empty_receives_apart(counter: AwsCallCounter) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    with counter.paused():
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
    counter.reset()
    timer = InvocationTimer(counter.tracker)
    send = timer.timed("IngestFunction", lambda event, context: sqs.send_message(QueueUrl=url, MessageBody="m"))
    send({}, None)
    send({}, None)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)  # both are in flight now: empty
    totals = counter.totals()
    assert totals["IngestFunction"]["calls"] == {"sqs.SendMessage": 2}
    assert totals["other"]["sqs_messages_received"] == 2
    assert totals["other"]["sqs_empty_receives"] == 1
    assert [i.function for i in timer.invocations] == ["IngestFunction", "IngestFunction"]


def test_the_poller_thread_is_the_event_source_outside_an_invocation() -> None:
    import threading  # noqa: PLC0415

    tracker = CallerTracker(poller_thread="poller-under-test")
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(tracker.caller()), name="poller-under-test")
    thread.start()
    thread.join()
    assert seen == [ESM]


def test_paused_calls_are_not_counted(counter: AwsCallCounter) -> None:
    with counter.paused():
        client = _table()
        client.put_item(TableName="t", Item={"pk": {"S": "k"}})
    assert counter.totals() == {}


def test_log_sink_counts_bytes_per_caller() -> None:
    tracker = CallerTracker()
    sink = LogSink(tracker)
    with tracker.running("SyncFunction"):
        sink.write('{"message": "sync session"}\n')
    sink.write("ü\n")
    assert sink.bytes == {"SyncFunction": 28, "other": 3}
    assert sink.lines == {"SyncFunction": 1, "other": 1}
