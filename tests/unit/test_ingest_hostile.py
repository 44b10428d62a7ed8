"""Crafted callouts: impossible dates, forged delivery ids, unsigned parameters beside a signed body, and bodies
that grow past the queue's limit once parsed. Each is a 4xx naming what is wrong, and nothing is queued."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from nrtsync.domain.basic_auth import CalloutCredentials
from nrtsync.ports.queue import MAX_MESSAGE_BYTES
from nrtsync.services.ingest.endpoint import CalloutRequest, IngestOutcome, receive_callout
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_fakes.queue import MemoryQueue
from tests.support.events import basic_authorization

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HMAC_KEY = "hostile-test-hmac-key"
PLAIN = CalloutCredentials(username="zuora-callout", password="local-test-only-password")
SIGNED = CalloutCredentials(username="zuora-callout", password="local-test-only-password", hmac_key=HMAC_KEY)
LARGEST_BODY = 131_072  # the template's MaxValue of MaxCalloutBytes


def callout(updated: str = "2026-12-07T11:59:00Z", **fields: Any) -> bytes:
    document = {"objectType": "Account", "id": "A1", "updatedDate": updated, "fields": fields or {"Name": "Acme"}}
    return json.dumps(document).encode()


def sign(body: bytes) -> str:
    return hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()


def receive(
    body: bytes,
    *,
    credentials: CalloutCredentials = PLAIN,
    content_type: str = "application/json",
    query: dict[str, list[str]] | None = None,
    max_skew: timedelta = timedelta(minutes=10),
    max_body_bytes: int = LARGEST_BODY,
    headers: dict[str, str] | None = None,
) -> tuple[IngestOutcome, MemoryQueue]:
    queue = MemoryQueue()
    sent_headers = {"Authorization": basic_authorization(), "Content-Type": content_type, **(headers or {})}
    outcome = receive_callout(
        CalloutRequest.of(body, sent_headers, query),
        credentials=credentials,
        queue=queue,
        object_types=frozenset({"Account"}),
        max_body_bytes=max_body_bytes,
        hmac_header="X-Zuora-Signature",
        realm="nrtsync",
        max_clock_skew=max_skew,
        clock=lambda: NOW,
    )
    return outcome, queue


def refusal(outcome: IngestOutcome) -> tuple[int, list[str]]:
    return outcome.status_code, [problem["field"] for problem in outcome.body.get("errors", [])]


# --- impossible times ------------------------------------------------------------------------------------------


def test_an_updated_date_past_the_skew_is_refused_and_one_within_it_is_queued() -> None:
    far, far_queue = receive(callout("9999-12-31T23:59:59Z"))
    late, _ = receive(callout("2026-12-07T12:10:01Z"))
    within, within_queue = receive(callout("2026-12-07T12:09:59Z"))

    assert refusal(far) == (422, ["updatedDate"])
    assert far_queue.sent == []
    assert refusal(late) == (422, ["updatedDate"])
    assert within.status_code == 200
    assert len(within_queue.sent) == 1


def test_the_skew_is_configurable_and_defaults_to_ten_minutes() -> None:
    settings = IngestSettings.from_env({"CALLOUT_QUEUE_URL": "q", "CALLOUT_SECRET_ID": "s"})
    tight, _ = receive(callout("2026-12-07T12:00:30Z"), max_skew=timedelta(seconds=10))

    assert settings.max_clock_skew_seconds == 600
    assert (
        IngestSettings.from_env(
            {"CALLOUT_QUEUE_URL": "q", "CALLOUT_SECRET_ID": "s", "MAX_CLOCK_SKEW_SECONDS": "60"}
        ).max_clock_skew_seconds
        == 60
    )
    assert refusal(tight) == (422, ["updatedDate"])


@pytest.mark.parametrize(
    "updated", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "1969-12-31T23:59Z"]
)
def test_dates_at_the_calendars_ends_are_a_422_not_a_crash(updated: str) -> None:
    outcome, queue = receive(callout(updated))

    assert refusal(outcome) == (422, ["updatedDate"])
    assert queue.sent == []


# --- delivery ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Zuora-Notification-Id", "Zuora-Request-Id"])
@pytest.mark.parametrize("value", ["\ud800", "n-\udfff", "\ufffe", "\uffff", "a\x00b", "tab\there", "é", "x" * 201])
def test_a_delivery_id_that_is_not_printable_ascii_of_sane_length_is_a_400_naming_the_header(
    header: str, value: str
) -> None:
    outcome, queue = receive(callout(), headers={header: value})

    assert refusal(outcome) == (400, [header])
    assert queue.sent == []
    # The answer itself must serialise (a lone surrogate in it would fail the response instead).
    json.dumps(outcome.body).encode()


def test_printable_delivery_ids_are_kept_whole() -> None:
    notification = "2c9ab7c8-7ed4-4a6f-8b1f-0f3c1d2e4a5b" + "-" * 150

    outcome, queue = receive(callout(), headers={"Zuora-Notification-Id": notification, "Zuora-Request-Id": "r ~!"})

    assert outcome.status_code == 200
    assert (queue.sent[0].notification_id, queue.sent[0].request_id) == (notification, "r ~!")


# --- what the signature covers ------------------------------------------------------------------------------------


def test_a_signed_body_replayed_with_a_query_parameter_is_refused() -> None:
    body = callout()

    outcome, queue = receive(
        body, credentials=SIGNED, query={"changeType": ["DELETE"]}, headers={"X-Zuora-Signature": sign(body)}
    )

    assert refusal(outcome) == (400, ["query.changeType"])
    assert queue.sent == []


def test_with_a_key_an_empty_body_is_refused_even_with_its_signature() -> None:
    params = {"objectType": ["Account"], "id": ["A1"], "updatedDate": ["2026-12-07T11:59:00Z"]}

    outcome, queue = receive(
        b"", credentials=SIGNED, content_type="", query=params, headers={"X-Zuora-Signature": sign(b"")}
    )

    assert outcome.status_code == 400
    assert queue.sent == []


def test_with_a_key_a_signed_form_body_is_accepted() -> None:
    body = urlencode({"objectType": "Account", "id": "A1", "updatedDate": "2026-12-07T11:59:00Z"}).encode()

    outcome, queue = receive(
        body,
        credentials=SIGNED,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Zuora-Signature": sign(body)},
    )

    assert outcome.status_code == 200
    assert len(queue.sent) == 1


def test_without_a_key_a_parameter_style_callout_is_still_accepted() -> None:
    params = {"objectType": ["Account"], "id": ["A1"], "updatedDate": ["2026-12-07T11:59:00Z"]}

    outcome, queue = receive(b"", content_type="", query=params)

    assert outcome.status_code == 200
    assert queue.sent[0].record_id == "A1"


# --- sizes -----------------------------------------------------------------------------------------------------


def test_a_form_body_within_the_limit_that_doubles_past_the_queues_message_limit_is_a_413() -> None:
    # Each %01 is 3 bytes in the body and 6 ("\u0001") in the queued JSON: a body filled to the largest limit a
    # deployer may set becomes a message over the queue's 256 KiB.
    head = "objectType=Account&id=A1&updatedDate=2026-12-07T11:59:00Z"
    chars = (LARGEST_BODY - len(head) - 2 * len("&fields.Fn=")) // 3
    body = (head + f"&fields.F0={'%01' * (chars // 2)}&fields.F1={'%01' * (chars - chars // 2)}").encode()
    assert LARGEST_BODY - 3 < len(body) <= LARGEST_BODY

    outcome, queue = receive(
        body, content_type="application/x-www-form-urlencoded", headers={"Zuora-Notification-Id": "n" * 200}
    )

    assert refusal(outcome) == (413, ["fields"])
    assert queue.sent == []
    assert str(MAX_MESSAGE_BYTES) in outcome.body["message"]


def test_the_largest_body_allowed_fits_lambdas_request_limit_even_base64_encoded() -> None:
    # API Gateway hands a binary body over base64-encoded in the event; Lambda refuses a request over 6 MB.
    limit = IngestSettings.model_fields["max_body_bytes"].metadata
    largest = max(getattr(m, "le", 0) or 0 for m in limit)

    assert largest == LARGEST_BODY
    assert largest * 4 // 3 + 64 * 1024 < 6 * 1024 * 1024
