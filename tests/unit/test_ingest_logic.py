"""receive_callout with an in-memory queue: every refusal names the field and queues nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from nrtsync.ports.secrets import SecretInvalidError, SecretUnavailableError
from nrtsync.services.ingest.endpoint import CalloutEndpoint, CalloutRequest
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from tests.support.callouts import MAX_BYTES, NOW, OBJECT_TYPES, document, fields_named, headers, receive
from tests.support.events import basic_authorization, event_body, load_event


def test_a_valid_callout_is_queued_with_its_delivery_ids() -> None:
    outcome, queue = receive(document())

    assert outcome.status_code == 200
    assert outcome.body == {"success": True, "status": "queued", "messageId": "msg-1", "notificationId": "notif-1"}
    [change] = queue.sent
    assert outcome.change == change
    assert change.record_key == "Account#8ad09be48db5aa2a018dc0b0c41a7d2e"
    assert change.notification_id == "notif-1"
    assert change.request_id == "req-1"
    assert change.received_at == NOW
    assert change.fields == {"Name": "Acme", "Balance": "1250.00"}


@pytest.mark.parametrize("name", ["callout_account", "callout_subscription", "callout_invoice", "callout_payment"])
def test_every_sample_event_body_is_accepted(name: str) -> None:
    event = load_event(name)

    outcome, queue = receive(event_body(event), event["headers"])

    assert outcome.status_code == 200, outcome.body
    assert queue.sent[0].notification_id == event["headers"]["Zuora-Notification-Id"]


@pytest.mark.parametrize(
    ("body", "request_headers", "status", "named"),
    [
        pytest.param(b"{not json", None, 400, ["body"], id="malformed-json"),
        pytest.param(b"\xff\xfe{}", None, 400, ["body"], id="not-utf8"),
        pytest.param(b'{"x": ' + b"1" * 5000 + b"}", None, 400, ["body"], id="huge-integer"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, None, 400, ["body"], id="deep-nesting"),
        pytest.param(b"[]", None, 422, ["body"], id="array-body"),
        pytest.param(b'"text"', None, 422, ["body"], id="string-body"),
        pytest.param(b"null", None, 422, ["body"], id="null-body"),
        pytest.param(document(objectType="Contact"), None, 422, ["objectType"], id="unknown-object"),
        pytest.param(document(Name="Acme"), None, 422, ["Name"], id="extra-top-level"),
        pytest.param(document(id=None), None, 422, ["id"], id="null-id"),
        pytest.param(document(updatedDate="1709662959"), None, 422, ["updatedDate"], id="numeric-date"),
        pytest.param(document(fields={"bad-name": "x"}), None, 422, ["fields.bad-name"], id="bad-field-name"),
        pytest.param(document(fields={"Name": ["x"]}), None, 422, ["fields.Name"], id="non-scalar"),
        pytest.param(document(fields="Name=Acme"), None, 422, ["fields"], id="fields-not-object"),
        pytest.param(
            b'{"objectType":"Account","id":"A1","id":"A2","updatedDate":"2024-03-05T10:22:39Z"}',
            None,
            422,
            ["id"],
            id="duplicate-key",
        ),
        pytest.param(document(), headers(**{"Content-Type": "text/plain"}), 415, ["Content-Type"], id="text-plain"),
        pytest.param(document(), {"Authorization": basic_authorization()}, 415, ["Content-Type"], id="no-type"),
        pytest.param(b"x" * (MAX_BYTES + 1), None, 413, ["body"], id="too-large"),
        pytest.param(document(), headers(Authorization=basic_authorization(password="no")), 401, ["Authorization"]),
    ],
)
def test_every_refusal_names_the_field_and_queues_nothing(
    body: bytes | dict[str, Any], request_headers: dict[str, str] | None, status: int, named: list[str]
) -> None:
    outcome, queue = receive(body, request_headers)

    assert outcome.status_code == status, outcome.body
    assert set(outcome.body) == {"success", "error", "message", "errors"}
    assert outcome.body["success"] is False
    assert fields_named(outcome) == named
    assert not outcome.accepted
    assert queue.sent == []


@pytest.mark.parametrize("key", ["objectType", "id", "updatedDate"])
def test_a_required_key_rendered_as_null_is_a_422_naming_it(key: str) -> None:
    # With Zuora's "send empty strings as null" on, an empty merge field arrives as the text null.
    outcome, queue = receive(document(**{key: "null"}))

    assert outcome.status_code == 422, outcome.body
    assert fields_named(outcome) == [key]
    assert "must not be empty" in outcome.body["errors"][0]["message"]
    assert queue.sent == []


def test_a_parameter_callout_with_an_id_of_null_is_a_422() -> None:
    form = "objectType=Account&id=null&updatedDate=2024-03-05T10%3A22%3A39Z&Name=Acme"

    outcome, queue = receive(form, headers(**{"Content-Type": "application/x-www-form-urlencoded"}))

    assert outcome.status_code == 422, outcome.body
    assert fields_named(outcome) == ["id"]
    assert queue.sent == []


def test_several_bad_fields_are_all_named() -> None:
    outcome, _ = receive(document(objectType="Contact", updatedDate=17, fields={"A": {}, "b c": "x"}, extra=1))

    assert outcome.status_code == 422
    assert sorted(fields_named(outcome)) == ["extra", "fields.A", "fields.b c", "objectType", "updatedDate"]


def test_a_body_too_large_is_refused_before_it_is_parsed() -> None:
    # Not JSON at all: a 400 would mean it was parsed first.
    outcome, queue = receive(b"{" * (MAX_BYTES + 1))

    assert outcome.status_code == 413
    assert outcome.reason == "body_too_large"
    assert queue.sent == []


def test_a_body_at_the_limit_is_read() -> None:
    doc = document()
    raw = json.dumps(doc).encode()
    padded = raw[:-1] + b" " * (MAX_BYTES - len(raw)) + b"}"

    outcome, _ = receive(padded)

    assert len(padded) == MAX_BYTES
    assert outcome.status_code == 200


def test_a_queue_failure_is_503_so_that_zuora_retries() -> None:
    outcome, queue = receive(document(), queue=MemoryQueue(failing=True))

    assert outcome.status_code == 503
    assert outcome.reason == "queue_unavailable"
    assert outcome.headers == {"Retry-After": "60"}
    assert outcome.body["error"] == "queue_unavailable"
    assert queue.sent == []


def test_without_a_notification_id_the_body_hash_stands_in() -> None:
    raw = json.dumps(document()).encode()
    request_headers = headers()
    del request_headers["Zuora-Notification-Id"]
    del request_headers["Zuora-Request-Id"]

    outcome, queue = receive(raw, request_headers)
    again, _ = receive(raw, request_headers)

    assert outcome.status_code == 200
    assert queue.sent[0].notification_id == "body-sha256:" + hashlib.sha256(raw).hexdigest()
    assert queue.sent[0].request_id is None
    assert again.change is not None
    assert again.change.notification_id == queue.sent[0].notification_id


def test_a_blank_notification_id_counts_as_none_and_a_long_one_is_refused() -> None:
    blank, _ = receive(document(), headers(**{"Zuora-Notification-Id": "  "}))
    long, queue = receive(document(), headers(**{"Zuora-Notification-Id": "n" * 201}))
    longest, _ = receive(document(), headers(**{"Zuora-Notification-Id": "n" * 200}))

    assert blank.change is not None
    assert blank.change.notification_id.startswith("body-sha256:")
    # Cut, two long ids sharing a prefix would become one: the duplicate check would drop a real change.
    assert (long.status_code, fields_named(long), queue.sent) == (400, ["Zuora-Notification-Id"], [])
    assert longest.change is not None
    assert longest.change.notification_id == "n" * 200


def test_header_names_are_case_insensitive() -> None:
    lower = {key.lower(): value for key, value in headers().items()}

    outcome, queue = receive(document(), lower)

    assert outcome.status_code == 200
    assert queue.sent[0].notification_id == "notif-1"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=UTF-8", "application/vnd.zuora+json", "APPLICATION/JSON"]
)
def test_json_media_types(content_type: str) -> None:
    outcome, _ = receive(document(), headers(**{"Content-Type": content_type}))

    assert outcome.status_code == 200


def test_a_form_encoded_callout_puts_other_keys_in_fields() -> None:
    body = (
        "eventType=AccountUpdated&objectType=Account&id=A1&updatedDate=2024-03-05T10%3A22%3A39Z"
        "&Name=Acme+%26+Sons&fields.Balance=1250.00&Status="
    )

    outcome, queue = receive(body, headers(**{"Content-Type": "application/x-www-form-urlencoded"}))

    assert outcome.status_code == 200, outcome.body
    [change] = queue.sent
    assert (change.object_type, change.record_id, change.event_type) == ("Account", "A1", "AccountUpdated")
    assert change.fields == {"Name": "Acme & Sons", "Balance": "1250.00", "Status": ""}


def test_a_query_parameter_callout_without_a_body() -> None:
    request_headers = headers()
    del request_headers["Content-Type"]
    query = {"objectType": ["Payment"], "id": ["P1"], "updatedDate": ["2024-03-05T10:22:39Z"], "Amount": ["10.00"]}

    outcome, queue = receive(b"", request_headers, query=query)

    assert outcome.status_code == 200, outcome.body
    assert queue.sent[0].fields == {"Amount": "10.00"}


def test_form_and_query_parameters_are_merged() -> None:
    outcome, queue = receive(
        "objectType=Invoice&id=I1",
        headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
        query={"updatedDate": ["2024-03-05T10:22:39Z"], "Amount": ["5"]},
    )

    assert outcome.status_code == 200, outcome.body
    assert queue.sent[0].record_key == "Invoice#I1"


def test_query_parameters_are_ignored_for_a_json_body() -> None:
    outcome, queue = receive(document(), query={"objectType": ["Payment"]})

    assert outcome.status_code == 200
    assert queue.sent[0].object_type == "Account"


def test_conflicting_parameters_are_named() -> None:
    outcome, queue = receive(
        "objectType=Account&id=A1&id=A2&Name=x&fields.Name=y&updatedDate=2024-03-05T10:22:39Z",
        headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )

    assert outcome.status_code == 422
    assert fields_named(outcome) == ["id", "fields.Name"]
    assert queue.sent == []


def test_a_parameter_callout_with_a_missing_key_names_it() -> None:
    outcome, queue = receive(
        "objectType=Account&Name=x", headers(**{"Content-Type": "application/x-www-form-urlencoded"})
    )

    assert outcome.status_code == 422
    assert sorted(fields_named(outcome)) == ["id", "updatedDate"]
    assert queue.sent == []


# The endpoint: the secret's failures become 5xx, so Zuora retries instead of dropping the change.


def settings() -> IngestSettings:
    return IngestSettings.from_env({"CALLOUT_QUEUE_URL": "https://sqs.local/q", "CALLOUT_SECRET_ID": "callout"})


def request() -> CalloutRequest:
    return CalloutRequest.of(json.dumps(document()).encode(), headers())


def test_the_endpoint_reads_the_named_secret_and_queues() -> None:
    queue, secrets = (
        MemoryQueue(),
        MemorySecrets(default={"username": "zuora-callout", "password": "local-test-only-password"}),
    )
    endpoint = CalloutEndpoint(settings(), queue=queue, secrets=secrets, object_types=OBJECT_TYPES)

    outcome = endpoint.handle(request())

    assert outcome.status_code == 200
    assert secrets.asked == ["callout"]
    assert len(queue.sent) == 1


@pytest.mark.parametrize(
    ("secret", "status", "reason"),
    [
        (SecretUnavailableError("down"), 503, "secret_unavailable"),
        (SecretInvalidError("not json"), 500, "secret_invalid"),
        ({"username": "zuora-callout"}, 500, "secret_invalid"),
    ],
)
def test_a_secret_problem_is_a_server_error(secret: Any, status: int, reason: str) -> None:
    queue = MemoryQueue()
    endpoint = CalloutEndpoint(
        settings(), queue=queue, secrets=MemorySecrets(default=secret), object_types=OBJECT_TYPES
    )

    outcome = endpoint.handle(request())

    assert (outcome.status_code, outcome.reason) == (status, reason)
    assert queue.sent == []


def test_the_endpoint_takes_object_types_from_the_mapping() -> None:
    queue = MemoryQueue()
    secrets = MemorySecrets(default={"username": "zuora-callout", "password": "local-test-only-password"})
    endpoint = CalloutEndpoint(settings(), queue=queue, secrets=secrets)

    outcome = endpoint.handle(CalloutRequest.of(json.dumps(document(objectType="Payment")).encode(), headers()))

    assert outcome.status_code == 200
