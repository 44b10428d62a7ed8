"""The ingest function against moto in server mode: boto3 talks real HTTP to SQS and Secrets Manager."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import functions.ingest.app as ingest_app
from nrtsync.app.ingest import ingest_settings
from nrtsync.domain.models.callout import QueuedChange
from tests.support.events import callout_secret, header, load_event
from tests.support.lambda_context import FakeLambdaContext

pytestmark = pytest.mark.integration

SECRET_ID = "nrtsync/callout"


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # A fresh server state per test: every resource this test uses is created here.
    boto3.client("sqs").list_queues()  # fail fast if the server is not answering
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="nrtsync-callouts")["QueueUrl"]
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps(callout_secret()))
    monkeypatch.setenv("CALLOUT_QUEUE_URL", queue_url)
    monkeypatch.setenv("CALLOUT_SECRET_ID", SECRET_ID)
    ingest_settings.cache_clear()
    ingest_app.endpoint.use(None)
    yield {"sqs": sqs, "queue_url": queue_url, "secrets": secrets}
    ingest_app.endpoint.use(None)
    ingest_settings.cache_clear()
    secrets.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
    for url in sqs.list_queues().get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = ingest_app.lambda_handler(event, FakeLambdaContext())
    return response


def received(aws: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = aws["sqs"]
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages"):
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return messages


def test_the_boto3_clients_really_go_to_the_server(aws: dict[str, Any], moto_endpoint: str) -> None:
    assert aws["queue_url"].startswith(moto_endpoint)


@pytest.mark.parametrize(
    "name", ["callout_account", "callout_subscription", "callout_invoice", "callout_payment", "callout_params"]
)
def test_a_callout_is_stored_on_the_queue_over_http(name: str, aws: dict[str, Any]) -> None:
    event = load_event(name)

    response = invoke(event)

    assert response["statusCode"] == 200, response["body"]
    [message] = received(aws)
    change = QueuedChange.model_validate_json(message["Body"])
    assert change.notification_id == header(event, "Zuora-Notification-Id")
    assert json.loads(response["body"])["messageId"] == message["MessageId"]


def test_refused_callouts_store_nothing(aws: dict[str, Any]) -> None:
    assert invoke(load_event("callout_unauthenticated"))["statusCode"] == 401
    assert invoke(load_event("callout_unmapped_object"))["statusCode"] == 422
    assert received(aws) == []


def test_a_deleted_queue_is_503_and_nothing_is_stored(aws: dict[str, Any]) -> None:
    # Given the queue disappears after the function was configured
    aws["sqs"].delete_queue(QueueUrl=aws["queue_url"])

    # When
    response = invoke(load_event("callout_account"))

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["60"]
    assert json.loads(response["body"])["error"] == "queue_unavailable"
    assert aws["sqs"].list_queues().get("QueueUrls", []) == []


def test_a_wrong_queue_url_is_503_and_nothing_is_stored(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLOUT_QUEUE_URL", aws["queue_url"].replace("nrtsync-callouts", "no-such-queue"))
    ingest_settings.cache_clear()
    ingest_app.endpoint.use(None)

    response = invoke(load_event("callout_payment"))

    assert response["statusCode"] == 503
    assert received(aws) == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_sqs_is_503_and_nothing_is_stored(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Only SQS is unreachable; the secret still reads from the server.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{_closed_port()}")
    ingest_app.endpoint.use(None)

    response = invoke(load_event("callout_invoice"))

    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    assert response["statusCode"] == 503
    assert received(aws) == []
