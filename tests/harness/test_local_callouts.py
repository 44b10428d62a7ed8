"""The one generator of callout traffic the demo, the fault drill and the benchmarks share (nrtsync_local.callouts)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import requests

from nrtsync_local.callouts import callout_body, callout_document, queued_change, send_paced


def _answer(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


def test_a_change_renders_the_canonical_callout_and_a_delete_the_delete_event() -> None:
    # Given one change and one delete of an account
    changed = callout_document("Account", "A1", "2026-01-05T09:00:00.000-08:00", {"Name": "Acme"}, event_type="E")
    deleted = callout_document("Account", "A1", "2026-01-05T09:00:01.000-08:00", None, event_type="D")

    # Then the change carries its fields and the delete carries changeType DELETE and no fields
    assert changed == {
        "eventType": "E",
        "objectType": "Account",
        "id": "A1",
        "updatedDate": "2026-01-05T09:00:00.000-08:00",
        "fields": {"Name": "Acme"},
    }
    assert deleted["changeType"] == "DELETE"
    assert "fields" not in deleted
    assert json.loads(callout_body("Account", "A1", "d", {"Name": "Acme"}, event_type="E"))["fields"] == {
        "Name": "Acme"
    }


def test_the_queue_message_is_what_ingest_would_queue_for_the_callout() -> None:
    # Given a change received now
    updated = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    received = datetime(2026, 1, 5, 9, 0, 1, tzinfo=UTC)

    # When it is made into a queue message
    change = queued_change(
        "Invoice", "I1", updated, {"Amount": "10.00"}, event_type="E", notification_id="n1", received_at=received
    )

    # Then it names the record, the version, the notification and the moment ingest received it
    assert (change.record_key, change.updated_date, change.notification_id) == ("Invoice#I1", updated, "n1")
    assert (change.fields, change.received_at) == ({"Amount": "10.00"}, received)


def test_paced_sending_posts_every_callout_once_with_its_own_body() -> None:
    # Given a post that records what it was given
    posted: list[tuple[bytes, str]] = []
    lock = threading.Lock()

    def post(body: bytes, notification_id: str) -> requests.Response:
        with lock:
            posted.append((body, notification_id))
        return _answer(200 if notification_id != "n3" else 503)

    # When 6 callouts are sent from 3 threads
    sent = send_paced(post, lambda n: (f"body{n}".encode(), f"n{n}"), rate=10_000, count=6, workers=3)

    # Then each went out once, and each answer is kept with its number
    assert sorted(posted) == [(f"body{n}".encode(), f"n{n}") for n in range(6)]
    assert sorted((s.n, s.status) for s in sent) == [(0, 200), (1, 200), (2, 200), (3, 503), (4, 200), (5, 200)]


def test_paced_sending_without_a_count_runs_until_stopped() -> None:
    # Given a post that stops the run after its third callout
    stop = threading.Event()

    def post(_body: bytes, notification_id: str) -> requests.Response:
        if notification_id == "n2":
            stop.set()
        return _answer(200)

    # When callouts are sent until stopped
    sent = send_paced(post, lambda n: (b"{}", f"n{n}"), rate=10_000, stop=stop)

    # Then exactly the first three went out
    assert [s.n for s in sent] == [0, 1, 2]


def test_paced_sending_needs_an_end() -> None:
    with pytest.raises(ValueError, match="count or a stop"):
        send_paced(lambda _b, _n: _answer(200), lambda n: (b"", ""), rate=1.0)
