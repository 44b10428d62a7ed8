"""What Lambda's SQS event source mapping does, on one machine: batch, invoke, delete, honour failures."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
_SQS_RECEIVE_MAX = 10
_LAST_SECOND_PAUSE_S = 0.1


def _md5(body: str) -> str:
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


@dataclass
class LocalContext:
    """The Lambda context the handlers read, with the function's real timeout counting down."""

    function_name: str
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    aws_request_id: str = "local"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:000000000000:function:local"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


class MappingSwitch:
    """The event source mapping's ``Enabled`` flag (the ``EventSourceSwitch`` the sync service's breaker is given
    locally): while disabled the poller receives nothing, as Lambda stops polling a disabled mapping ("Lambda event
    source mappings", AWS Lambda Developer Guide: a disabled mapping does not poll; a batch already invoked
    finishes). moto's own Lambda event source mappings are not used: moto invokes a mapped function itself when a
    message is sent, which needs Docker.

    ``path``: the flag also lives in this JSON file (``{"enabled": false}``), so that ``nrtsync --local pause`` in
    another process switches the running stack's poller, as ``UpdateEventSourceMapping`` does on AWS.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._enabled = threading.Event()
        self._enabled.set()
        self.changes: list[bool] = []
        if path is not None:
            self._write(enabled=True)

    @property
    def enabled(self) -> bool:
        if self._path is not None:
            self._read()
        return self._enabled.is_set()

    def set_enabled(self, enabled: bool) -> None:
        self.changes.append(enabled)
        if self._path is not None:
            self._write(enabled=enabled)
        if enabled:
            self._enabled.set()
        else:
            self._enabled.clear()

    def _write(self, *, enabled: bool) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the state file's directory
        partial = self._path.with_suffix(".tmp")
        partial.write_text(json.dumps({"enabled": enabled}), encoding="utf-8")
        partial.replace(self._path)  # atomic: a reader never sees half a file

    def _read(self) -> None:
        if self._path is None:
            return
        # Read every time (a few bytes, ten times a second): an mtime check could miss two writes in one tick.
        try:
            enabled = bool(json.loads(self._path.read_text(encoding="utf-8"))["enabled"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # keep the last known state
        if enabled:
            self._enabled.set()
        else:
            self._enabled.clear()


@dataclass
class PollStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    retried: int = 0
    handler_errors: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    receive_calls: int = 0  # ReceiveMessage requests made (none while the mapping is disabled)


class SqsEventSourcePoller:
    """Collects up to ``batch_size`` messages or until ``window_seconds`` pass, then invokes the handler.

    Like Lambda: a message in ``batchItemFailures`` stays on the queue (the handler may have shortened its
    visibility), everything else is deleted; a handler exception leaves the whole batch on the queue; SQS
    itself moves a message to the dead-letter queue after maxReceiveCount receives.
    """

    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        batch_size: int,
        window_seconds: float,
        function_timeout_seconds: float,
        function_name: str = "SyncFunction",
        region: str = "eu-west-1",
        switch: MappingSwitch | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._window = window_seconds
        self._timeout = function_timeout_seconds
        self._function_name = function_name
        self._region = region
        self.stats = PollStats()
        self._invocation = 0
        self.switch = switch or MappingSwitch()

    def _collect(self, stop: threading.Event) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        first_at: float | None = None
        while len(messages) < self._batch_size and not stop.is_set() and self.switch.enabled:
            waited = 0.0 if first_at is None else time.monotonic() - first_at
            if first_at is not None and waited >= self._window:
                break
            wait = 1 if first_at is None else max(0, min(1, int(self._window - waited)))
            self.stats.receive_calls += 1
            received = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(_SQS_RECEIVE_MAX, self._batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and first_at is None:
                first_at = time.monotonic()
            messages += received
            if not received and first_at is None:
                break  # nothing waiting: let the caller loop (and notice a stop)
            if not received and first_at is not None and wait == 0:
                # SQS waits whole seconds only: in the window's last second, pause between short receives rather
                # than spin on empty ones (the event source does not poll faster than its long polls either).
                stop.wait(min(_LAST_SECOND_PAUSE_S, max(0.0, self._window - (time.monotonic() - first_at))))
        return messages

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {
                        key: m.get("Attributes", {}).get(key, "0")
                        for key in (
                            "ApproximateReceiveCount",
                            "SentTimestamp",
                            "SenderId",
                            "ApproximateFirstReceiveTimestamp",
                        )
                    },
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody") or _md5(m["Body"]),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._queue_arn,
                    "awsRegion": self._region,
                }
                for m in messages
            ]
        }

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """One batch: returns how many messages it carried (0 when the queue was empty, or after a short idle
        wait without any receive while the mapping is disabled)."""
        stop = stop or threading.Event()
        if not self.switch.enabled:
            stop.wait(0.1)
            return 0
        messages = self._collect(stop)
        if not messages:
            return 0
        self._invocation += 1
        context = LocalContext(
            function_name=self._function_name,
            timeout_seconds=self._timeout,
            aws_request_id=f"local-{self._invocation}",
        )
        self.stats.invocations += 1
        self.stats.messages += len(messages)
        self.stats.batch_sizes.append(len(messages))
        try:
            response = self._handler(self._event(messages), context)
        except Exception:  # noqa: BLE001 - Lambda treats any exception as "retry the whole batch"
            self.stats.handler_errors += 1
            return len(messages)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), _SQS_RECEIVE_MAX):
            chunk = done[start : start + _SQS_RECEIVE_MAX]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self.stats.deleted += len(done)
        self.stats.retried += len(failed)
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; idle (no receives) while the mapping is disabled."""
        while not stop.is_set():
            self.poll_once(stop)
