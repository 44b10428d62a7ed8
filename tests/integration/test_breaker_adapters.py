"""The breaker's adapters against moto: the state item in the SyncStateTable, and the sync function's SQS event
source mapping through the Lambda API (moto implements Create/List/UpdateEventSourceMapping for SQS)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch
from nrtsync.ports.breaker import BreakerReason, BreakerState, BreakerUnavailableError
from nrtsync_local.moto_atomic import make_dynamodb_writes_atomic
from tests.support.sync_world import STATE_TABLE, create_tables

REGION = "eu-west-1"
SINCE = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[None]:
    make_dynamodb_writes_atomic()
    with mock_aws():
        yield


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _function_with_mapping(name: str, queue: str) -> tuple[Any, str, str]:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName=name, Runtime="python3.13", Role=role, Handler="app.lambda_handler", Code={"ZipFile": _zip()}
    )
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    uuid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10)["UUID"]
    return lam, arn, uuid


def test_the_switch_disables_and_enables_the_functions_own_mapping(aws: None) -> None:
    # Given the sync function's mapping on the callout queue, and another function's mapping on another queue
    lam, queue_arn, uuid = _function_with_mapping("nrtsync-sync", "callouts")
    _, _, other = _function_with_mapping("other", "other-queue")
    switch = LambdaEventSourceSwitch("nrtsync-sync", queue_arn, client=lam)

    # When the breaker disables it
    switch.set_enabled(False)

    # Then that mapping is disabled and the other one is left alone; enabling turns it back on
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"
    assert lam.get_event_source_mapping(UUID=other)["State"] == "Enabled"
    switch.set_enabled(True)
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"


def test_a_missing_mapping_is_a_clear_breaker_error(aws: None) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    switch = LambdaEventSourceSwitch("nrtsync-sync", "arn:aws:sqs:eu-west-1:123456789012:none", client=lam)

    with pytest.raises(BreakerUnavailableError, match="found 0"):
        switch.set_enabled(False)


@pytest.fixture
def store(aws: None) -> DynamoBreakerStore:
    client = boto3.client("dynamodb", region_name=REGION)
    create_tables(client)
    return DynamoBreakerStore(STATE_TABLE, client=client)


def test_no_item_is_a_closed_breaker_and_a_written_state_reads_back(store: DynamoBreakerStore) -> None:
    assert store.read() == BreakerState(is_open=False)
    opened = BreakerState(
        is_open=True,
        reason=BreakerReason.REQUEST_LIMIT_EXCEEDED,
        message="TotalRequests Limit exceeded.",
        since=SINCE,
        by="sync",
        updated_at=SINCE,
    )

    store.write(opened)

    assert store.read() == opened
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=STATE_TABLE, Key={"pk": {"S": "ORG#BREAKER"}}
    )["Item"]
    assert {k: v.get("S") for k, v in item.items() if "S" in v} == {
        "pk": "ORG#BREAKER",
        "state": "open",
        "reason": "REQUEST_LIMIT_EXCEEDED",
        "message": "TotalRequests Limit exceeded.",
        "since": "2026-12-01T09:30:00+00:00",
        "by": "sync",
        "updated_at": "2026-12-01T09:30:00+00:00",
    }


def test_concurrent_failures_are_each_counted_and_a_success_resets_them(store: DynamoBreakerStore) -> None:
    # Given 20 invocations failing at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: store.count_failure(SINCE), range(20)))

    # Then each got its own count (ADD is atomic) and the item holds 20; a success sets it back to 0
    assert sorted(counts) == list(range(1, 21))
    assert store.read().failures == 20
    store.reset_failures()
    assert store.read().failures == 0
    store.reset_failures()  # already 0: the conditional update writes nothing and raises nothing
    assert store.read() == BreakerState(is_open=False)
