"""The ingest function end to end in-process: API Gateway event -> handler -> moto SQS and Secrets Manager."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

import functions.ingest.app as ingest_app
from nrtsync.app.ingest import ingest_settings
from nrtsync.domain.models.callout import QueuedChange
from tests.support.events import (
    CALLOUT_PASSWORD,
    basic_authorization,
    callout_secret,
    event_body,
    header,
    json_body,
    load_event,
    with_body,
    with_fields,
    with_headers,
)
from tests.support.lambda_context import FakeLambdaContext

SECRET_ID = "nrtsync/callout"
VALID = ["callout_account", "callout_subscription", "callout_invoice", "callout_payment", "callout_params"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
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


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def invoke(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = ingest_app.lambda_handler(event, context)
    return response


def drain(aws: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages"):
        messages.extend(batch)
        for message in batch:
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return messages


@pytest.mark.parametrize("name", VALID)
def test_a_valid_callout_is_answered_200_only_with_its_change_on_the_queue(
    name: str, aws: dict[str, Any], lambda_context: FakeLambdaContext
) -> None:
    # Given
    event = load_event(name)

    # When
    response = invoke(event, lambda_context)

    # Then
    assert response["statusCode"] == 200, response["body"]
    answer = json.loads(response["body"])
    # Zuora's "Confirm success by parsing response content": a 200 with a JSON body whose "success" is true
    assert answer["success"] is True
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    [message] = drain(aws)
    assert answer["messageId"] == message["MessageId"]
    change = QueuedChange.model_validate_json(message["Body"])
    assert change.notification_id == header(event, "Zuora-Notification-Id") == answer["notificationId"]
    assert change.request_id == header(event, "Zuora-Request-Id")
    assert change.schema_version == 1
    assert change.fields
    if name != "callout_params":
        document = json_body(event)
        assert change.object_type == document["objectType"]
        assert change.record_id == document["id"]
        assert change.fields == document["fields"]


def test_the_message_body_is_exactly_the_queued_change(aws: dict[str, Any], lambda_context: FakeLambdaContext) -> None:
    invoke(load_event("callout_invoice"), lambda_context)

    [message] = drain(aws)
    body = json.loads(message["Body"])

    # An upsert leaves change_type out (the shape a sync function of the previous version reads); a delete has it
    assert set(body) == set(QueuedChange.model_fields) - {"change_type", "rank"}  # both only when set
    assert body["object_type"] == "Invoice"
    assert body["updated_date"] == "2024-03-05T18:24:15.000000+00:00"
    assert body["fields"]["Comments"] == "March 2024 — annual plan, first instalment"


def test_the_same_notification_twice_is_queued_twice_with_one_notification_id(
    aws: dict[str, Any], lambda_context: FakeLambdaContext
) -> None:
    # Dedupe is the sync function's job; ingest must never drop a delivery it cannot prove it stored.
    event = load_event("callout_account")
    retry = with_headers(event, Zuora_Request_Id="another-attempt")

    assert invoke(event, lambda_context)["statusCode"] == 200
    assert invoke(retry, lambda_context)["statusCode"] == 200

    changes = [QueuedChange.model_validate_json(m["Body"]) for m in drain(aws)]
    assert {c.notification_id for c in changes} == {header(event, "Zuora-Notification-Id")}
    assert {c.request_id for c in changes} == {header(event, "Zuora-Request-Id"), "another-attempt"}
    assert len({c.content_hash for c in changes}) == 1


def test_a_callout_without_credentials_gets_the_basic_challenge(
    aws: dict[str, Any], lambda_context: FakeLambdaContext
) -> None:
    response = invoke(load_event("callout_unauthenticated"), lambda_context)

    assert response["statusCode"] == 401
    challenge = response["multiValueHeaders"].get("WWW-Authenticate") or [response["headers"]["WWW-Authenticate"]]
    assert challenge == ['Basic realm="nrtsync", charset="UTF-8"']
    assert json.loads(response["body"])["error"] == "unauthenticated"
    assert drain(aws) == []


def _with_unescaped_quote(event: dict[str, Any]) -> dict[str, Any]:
    """The body a callout template renders when a merge field holds a double quote: pasted in unescaped."""
    text = event_body(event).decode()
    name = json_body(event)["fields"]["Name"]
    return with_body(event, text.replace(json.dumps(name), '"Acme "Best" Widgets"'))


@pytest.mark.parametrize(
    ("event", "status", "field"),
    [
        pytest.param(lambda: load_event("callout_unmapped_object"), 422, "objectType", id="unmapped-object"),
        pytest.param(
            lambda: with_fields(load_event("callout_payment"), updatedDate=1709662959),
            422,
            "updatedDate",
            id="numeric-date",
        ),
        pytest.param(
            lambda: with_fields(load_event("callout_payment"), Amount="10.00"), 422, "Amount", id="extra-top-level"
        ),
        pytest.param(lambda: with_body(load_event("callout_payment"), "{oops"), 400, "body", id="malformed-json"),
        pytest.param(lambda: _with_unescaped_quote(load_event("callout_account")), 400, "body", id="unescaped-quote"),
        pytest.param(lambda: with_fields(load_event("callout_account"), id=None), 422, "id", id="no-id"),
        pytest.param(
            lambda: with_fields(load_event("callout_account"), updatedDate="2024-03-05"),
            422,
            "updatedDate",
            id="bare-date",
        ),
        pytest.param(
            lambda: with_body(load_event("callout_payment"), "<xml/>", content_type="text/xml"),
            415,
            "Content-Type",
            id="xml",
        ),
        pytest.param(lambda: with_body(load_event("callout_payment"), "x" * 70_000), 413, "body", id="too-large"),
        pytest.param(
            lambda: with_headers(load_event("callout_payment"), Authorization=basic_authorization("x", "y")),
            401,
            None,
            id="wrong-password",
        ),
    ],
)
def test_a_refused_callout_names_the_field_and_queues_nothing(
    event: Any, status: int, field: str | None, aws: dict[str, Any], lambda_context: FakeLambdaContext
) -> None:
    response = invoke(event(), lambda_context)

    assert response["statusCode"] == status, response["body"]
    answer = json.loads(response["body"])
    assert set(answer) == {"success", "error", "message", "errors"}
    assert answer["success"] is False
    if field is not None:
        assert field in [problem["field"] for problem in answer["errors"]]
    assert drain(aws) == []


def test_a_base64_encoded_body_is_decoded(aws: dict[str, Any], lambda_context: FakeLambdaContext) -> None:
    event = load_event("callout_subscription")
    encoded = with_body(event, event_body(event), base64_encoded=True)

    assert invoke(encoded, lambda_context)["statusCode"] == 200
    assert QueuedChange.model_validate_json(drain(aws)[0]["Body"]).object_type == "Subscription"


def test_a_signed_callout_is_checked_against_the_secrets_hmac_key(
    aws: dict[str, Any], lambda_context: FakeLambdaContext
) -> None:
    aws["secrets"].put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(callout_secret(hmac_key="k3y")))
    event = load_event("callout_account")
    signature = hmac.new(b"k3y", event_body(event), hashlib.sha256).hexdigest()

    unsigned = invoke(event, lambda_context)
    signed = invoke(with_headers(event, X_Zuora_Signature=signature), lambda_context)

    assert unsigned["statusCode"] == 403
    assert signed["statusCode"] == 200
    assert len(drain(aws)) == 1


def test_a_missing_queue_is_503_and_nothing_is_stored(
    aws: dict[str, Any], lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function points at a queue that does not exist
    monkeypatch.setenv("CALLOUT_QUEUE_URL", aws["queue_url"] + "-gone")
    ingest_settings.cache_clear()
    ingest_app.endpoint.use(None)

    # When
    response = invoke(load_event("callout_account"), lambda_context)

    # Then
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "queue_unavailable"
    assert json.loads(response["body"])["success"] is False
    assert drain(aws) == []


def test_a_missing_secret_is_503(aws: dict[str, Any], lambda_context: FakeLambdaContext) -> None:
    aws["secrets"].delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)

    response = invoke(load_event("callout_account"), lambda_context)

    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "secret_unavailable"
    assert json.loads(response["body"])["success"] is False
    assert drain(aws) == []


def test_a_secret_that_is_not_json_is_500(aws: dict[str, Any], lambda_context: FakeLambdaContext) -> None:
    aws["secrets"].put_secret_value(SecretId=SECRET_ID, SecretString="user:password")

    response = invoke(load_event("callout_account"), lambda_context)

    assert response["statusCode"] == 500
    assert json.loads(response["body"])["success"] is False
    assert drain(aws) == []


@pytest.fixture
def logs_to_capsys() -> None:
    """Powertools' output reaches capsys (tests/conftest.py points its handler at the current stdout)."""


def _output_of(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def _assert_no_credentials(output: str) -> None:
    token = basic_authorization().split(" ", 1)[1]
    assert CALLOUT_PASSWORD not in output
    assert token not in output
    assert "Basic " not in output
    # The field name may appear ({"field": "Authorization"}), the header never.
    assert '"Authorization":' not in output
    assert '"authorization":' not in output


@pytest.mark.usefixtures("logs_to_capsys")
@pytest.mark.parametrize(
    "name", ["callout_account", "callout_params", "callout_unauthenticated", "callout_unmapped_object"]
)
def test_logs_and_metrics_carry_no_credentials(
    name: str, aws: dict[str, Any], lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    invoke(load_event(name), lambda_context)

    output = _output_of(capsys)
    assert "CalloutsAccepted" in output or "CalloutsRejected" in output
    assert lambda_context.aws_request_id in output
    _assert_no_credentials(output)


@pytest.mark.usefixtures("logs_to_capsys")
def test_a_rejection_is_counted_by_reason_and_logged_with_the_fields(
    aws: dict[str, Any], lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    invoke(
        with_headers(load_event("callout_account"), Authorization=basic_authorization(password="guess")), lambda_context
    )

    output = _output_of(capsys)
    emf = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]
    rejected = [doc for doc in emf if "CalloutsRejected" in doc]
    assert rejected, output
    assert rejected[0]["Reason"] == "unauthenticated"
    assert "guess" not in output
    _assert_no_credentials(output)


@pytest.mark.usefixtures("logs_to_capsys")
def test_the_event_is_not_logged_even_when_the_environment_asks(
    aws: dict[str, Any],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The handler is decorated at import, so the module is re-imported with the variable set.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    try:
        module = importlib.reload(ingest_app)
        capsys.readouterr()

        module.lambda_handler(load_event("callout_account"), lambda_context)

        _assert_no_credentials(_output_of(capsys))
    finally:
        monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
        importlib.reload(ingest_app)
