"""A callout body and its headers as Zuora sends them, and ``receive_callout`` run on an in-memory queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nrtsync.domain.basic_auth import CalloutCredentials
from nrtsync.services.ingest.endpoint import CalloutRequest, IngestOutcome, receive_callout
from nrtsync_fakes.queue import MemoryQueue
from tests.support.events import basic_authorization

NOW = datetime(2024, 3, 5, 18, 22, 41, tzinfo=UTC)
CREDENTIALS = CalloutCredentials(username="zuora-callout", password="local-test-only-password")
OBJECT_TYPES = frozenset({"Account", "Subscription", "Invoice", "Payment"})
MAX_BYTES = 32_768


def headers(**extra: str) -> dict[str, str]:
    return {
        "Authorization": basic_authorization(),
        "Content-Type": "application/json",
        "Zuora-Notification-Id": "notif-1",
        "Zuora-Request-Id": "req-1",
        **extra,
    }


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "eventType": "AccountUpdated",
        "objectType": "Account",
        "id": "8ad09be48db5aa2a018dc0b0c41a7d2e",
        "updatedDate": "2024-03-05T10:22:39.000-08:00",
        "fields": {"Name": "Acme", "Balance": "1250.00"},
    }
    doc.update(overrides)
    return doc


def receive(
    body: bytes | dict[str, Any] | str,
    request_headers: dict[str, str] | None = None,
    *,
    queue: MemoryQueue | None = None,
    query: dict[str, list[str]] | None = None,
) -> tuple[IngestOutcome, MemoryQueue]:
    queue = queue if queue is not None else MemoryQueue()
    raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    outcome = receive_callout(
        CalloutRequest.of(raw, headers() if request_headers is None else request_headers, query),
        credentials=CREDENTIALS,
        queue=queue,
        object_types=OBJECT_TYPES,
        max_body_bytes=MAX_BYTES,
        hmac_header="X-Zuora-Signature",
        realm="nrtsync",
        clock=lambda: NOW,
    )
    return outcome, queue


def fields_named(outcome: IngestOutcome) -> list[str]:
    return [problem["field"] for problem in outcome.body.get("errors", [])]
