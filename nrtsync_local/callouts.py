"""Zuora callout traffic made by hand, for what drives the local pipeline faster or harder than the Zuora
stand-in's own callouts do (the fault drill, the benchmarks, harness tests): the body a callout template renders,
the queue message ingest makes of a callout, and a sender that posts callouts to the callout URL as Zuora does, at
a steady rate if asked.

What differs between the drivers is a parameter: the event type's name and the date's rendering (the caller's
template), which credentials an attempt carries, how many attempts Zuora makes
(its 30-minute retries compressed to ``retry_seconds``), and the pace.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

import requests

if TYPE_CHECKING:
    from nrtsync.domain.models.callout import QueuedChange

Auth = tuple[str, str] | None

_SAME: Final = ("", "")  # ``auth`` left out: the sender's own credentials


def callout_document(
    object_type: str, record_id: str, updated_date: str, fields: Mapping[str, str] | None, *, event_type: str
) -> dict[str, object]:
    """What the callout template renders (docs/CALLOUTS.md); ``fields`` None is the delete event's document, which
    has ``changeType: DELETE`` and no fields."""
    document: dict[str, object] = {
        "eventType": event_type,
        "objectType": object_type,
        "id": record_id,
        "updatedDate": updated_date,
    }
    if fields is None:
        document["changeType"] = "DELETE"
    else:
        document["fields"] = dict(fields)
    return document


def callout_body(
    object_type: str, record_id: str, updated_date: str, fields: Mapping[str, str], *, event_type: str
) -> bytes:
    """``callout_document`` as compact JSON."""
    return json.dumps(callout_document(object_type, record_id, updated_date, fields, event_type=event_type)).encode()


def queued_change(
    object_type: str,
    record_id: str,
    updated: datetime,
    fields: Mapping[str, str],
    *,
    event_type: str,
    notification_id: str,
    received_at: datetime,
) -> QueuedChange:
    """The queue message ingest would make of this callout, received at ``received_at``."""
    from nrtsync.domain.models.callout import QueuedChange  # noqa: PLC0415 - the layer, imported once the stack runs

    return QueuedChange(
        object_type=object_type,
        record_id=record_id,
        updated_date=updated,
        event_type=event_type,
        fields=dict(fields),
        notification_id=notification_id,
        request_id=str(uuid.uuid4()),
        received_at=received_at,
    )


class CalloutRefusedError(RuntimeError):
    """Every attempt of a callout was answered with something other than 200 (or not answered)."""


class CalloutSender:
    """Posts callouts to a callout URL as Zuora does: its headers, a new ``Zuora-Request-Id`` on every attempt,
    HTTP Basic auth, one keep-alive session per thread (``trust_env`` off: no proxy for 127.0.0.1)."""

    def __init__(self, url: str, auth: Auth, *, attempts: int = 1, retry_seconds: float = 0.5) -> None:
        self._url = url
        self._auth = auth
        self._attempts = attempts
        self._retry_seconds = retry_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def post(self, body: bytes, notification_id: str, *, auth: Auth = _SAME) -> requests.Response:
        """One attempt; ``auth`` None sends none (Zuora's first, non-preemptive attempt)."""
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Accept": "*/*",
            "User-Agent": "Zuora-Notification/1.0",
            "Zuora-Notification-Id": notification_id,
            "Zuora-Request-Id": str(uuid.uuid4()),
        }
        credentials = self._auth if auth is _SAME else auth
        return self._session().post(self._url, data=body, headers=headers, auth=credentials, timeout=30)

    def deliver(self, body: bytes, notification_id: str) -> None:
        """Attempts until a 200, as Zuora retries; ``CalloutRefusedError`` after the last attempt."""
        answer = "no answer"
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(self._retry_seconds)
            try:
                response = self.post(body, notification_id)
            except requests.RequestException as exc:
                answer = type(exc).__name__
                continue
            if response.status_code == 200:
                return
            answer = f"HTTP {response.status_code} {response.text[:200]}"
        raise CalloutRefusedError(f"ingest did not take {notification_id} in {self._attempts} attempts: {answer}")

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
            with self._lock:
                self._sessions.append(session)
        return session


@dataclass(frozen=True)
class Sent:
    """The ``n``-th callout of a paced run: its HTTP status and how long the answer took."""

    n: int
    status: int
    seconds: float


def send_paced(
    post: Callable[[bytes, str], requests.Response],
    callout: Callable[[int], tuple[bytes, str]],
    *,
    rate: float,
    count: int | None = None,
    stop: threading.Event | None = None,
    workers: int = 1,
) -> list[Sent]:
    """Posts ``callout(n)`` (its body and notification id) with ``post`` (``CalloutSender.post``) for n = 0, 1, ...
    at ``n / rate`` seconds after the start, from ``workers`` threads, until ``count`` are sent or ``stop`` is set;
    returns what each got, as answered. ``callout(n)`` is called when n is due, so a date it renders is the send's."""
    if count is None and stop is None:
        raise ValueError("send_paced needs a count or a stop event")
    stop = stop or threading.Event()
    started = time.monotonic()
    sent: list[Sent] = []
    lock = threading.Lock()
    numbers: Iterator[int] = iter(range(count)) if count is not None else itertools.count()

    def send_next() -> bool:
        with lock:
            n = next(numbers, None)
        if n is None or stop.wait(max(0.0, started + n / rate - time.monotonic())):
            return False
        body, notification_id = callout(n)
        t0 = time.perf_counter()
        status = post(body, notification_id).status_code
        with lock:
            sent.append(Sent(n, status, time.perf_counter() - t0))
        return True

    def worker() -> None:
        while send_next():
            pass

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callouts") as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    return sent
