"""How the drill delivers a change: over HTTP through the local API Gateway front (the real ingest handler), with
Zuora's retries compressed, or straight onto the callout queue as ingest would queue it."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from nrtsync_local.callouts import CalloutSender
from nrtsync_local.drill.generator import Delivery

_HTTP_WORKERS = 4
_HTTP_ATTEMPTS = 6
_SQS_BATCH = 10


class Sender:
    """Sends deliveries; ``problems`` collects the callouts ingest never took."""

    def __init__(
        self, sqs: Any, queue_url: str, callout_url: str, callout_auth: tuple[str, str], counts: Counter[str]
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        # Zuora waits 30 minutes between attempts; the drill has less time.
        self._callouts = CalloutSender(callout_url, callout_auth, attempts=_HTTP_ATTEMPTS, retry_seconds=0.5)
        self._counts = counts
        self._direct: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=_HTTP_WORKERS, thread_name_prefix="drill-http")
        self._http_futures: list[Future[None]] = []
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
        self._callouts.close()

    # --- sending ---------------------------------------------------------------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        self._counts["deliveries"] += 1
        self._counts["redeliveries"] += delivery.redelivery
        if delivery.http:
            self._counts["sent_http"] += 1
            change = delivery.change
            self._http_futures.append(
                self._pool.submit(self._callouts.deliver, change.callout_body(), change.notification_id)
            )
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

    def _settle_http(self, future: Future[None]) -> bool:
        """False (drop it from the pending list) once done; a callout ingest never took is a problem."""
        error = future.exception()
        if error is not None:
            self.problems.append(f"lost at the door: {error}")
        return False
