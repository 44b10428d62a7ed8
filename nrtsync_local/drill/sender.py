"""How the drill delivers a change: over HTTP through the local API Gateway front (the real ingest handler), with
Zuora's retries compressed, or straight onto the callout queue as ingest would queue it."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from nrtsync_local.drill.generator import Change, Delivery

_HTTP_WORKERS = 4
_HTTP_ATTEMPTS = 6
_SQS_BATCH = 10


class DrillFailedError(RuntimeError):
    """The drill found changes lost, records not at their newest version, or unexpected failures."""


class Sender:
    """Sends deliveries; ``problems`` collects the callouts ingest never took."""

    def __init__(
        self, sqs: Any, queue_url: str, callout_url: str, callout_auth: tuple[str, str], counts: Counter[str]
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._callout_url = callout_url
        self._callout_auth = callout_auth
        self._counts = counts
        self._direct: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=_HTTP_WORKERS, thread_name_prefix="drill-http")
        self._http_futures: list[Future[None]] = []
        self._local = threading.local()
        self.problems: list[str] = []

    @property
    def idle(self) -> bool:
        """Nothing waits to go onto the queue and no callout is in flight."""
        return not self._direct and not self._http_futures

    def settle(self) -> None:
        """Drops the callouts that are done from the pending list."""
        self._http_futures = [f for f in self._http_futures if not f.done() or self._settle_http(f)]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

    # --- sending ---------------------------------------------------------------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        self._counts["deliveries"] += 1
        self._counts["redeliveries"] += delivery.redelivery
        if delivery.http:
            self._counts["sent_http"] += 1
            self._http_futures.append(self._pool.submit(self._post, delivery.change))
        else:
            self._counts["sent_queue"] += 1
            self._direct.append(delivery.change.queued_body(datetime.now(UTC)))

    def flush_direct(self) -> None:
        while self._direct:
            chunk, self._direct = self._direct[:_SQS_BATCH], self._direct[_SQS_BATCH:]
            answer = self._sqs.send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
            )
            failed = [chunk[int(entry["Id"])] for entry in answer.get("Failed", [])]
            if failed:
                self._direct = failed + self._direct
                return

    def _post(self, change: Change) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # 127.0.0.1: no proxy, whatever the shell says
            self._local.session = session
        answer = "no answer"
        for attempt in range(_HTTP_ATTEMPTS):
            if attempt:
                time.sleep(0.5)  # Zuora waits 30 minutes; the drill has less time
            try:
                response = session.post(
                    self._callout_url,
                    data=change.callout_body(),
                    headers={
                        "Content-Type": "application/json",
                        "Zuora-Notification-Id": change.notification_id,
                        "Zuora-Request-Id": str(uuid.uuid4()),
                    },
                    auth=self._callout_auth,
                    timeout=30,
                )
            except requests.RequestException as exc:
                answer = type(exc).__name__
                continue
            if response.status_code == 200:
                return
            answer = f"HTTP {response.status_code} {response.text[:200]}"
        raise DrillFailedError(f"ingest did not take {change.notification_id} in {_HTTP_ATTEMPTS} attempts: {answer}")

    def _settle_http(self, future: Future[None]) -> bool:
        """False (drop it from the pending list) once done; a callout ingest never took is a problem."""
        error = future.exception()
        if error is not None:
            self.problems.append(f"lost at the door: {error}")
        return False
