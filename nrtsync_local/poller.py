"""What Lambda's SQS event source mapping does, on one machine: batch, invoke, delete, honour failures."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
_SQS_RECEIVE_MAX = 10
# Lambda's synchronous invocation payload limit, 6 MB ("Lambda quotas": 6 MB each for request and response;
# Lambda refuses a request over 6,291,456 bytes). The SQS event source mapping keeps a batch's event under it too.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
_LAST_SECOND_PAUSE_S = 0.1
# How often a waiting invocation checks its deadlines again (they can move: see LocalContext.begin).
_TIMEOUT_CHECK_S = 0.01


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

    def begin(self) -> None:
        """The invocation starts now: the local stack calls this once the handler has its turn (one invocation at
        a time here, while on AWS each function has containers of its own), so the wait is not charged to it."""
        self._started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


class FunctionTimedOutError(Exception):
    """The handler was still running at the function's timeout. Lambda ends such an invocation with an error
    ("Task timed out after N seconds"; Lambda Developer Guide, "Configure Lambda function timeout"). A thread cannot
    be stopped, so locally the handler runs on and its answer, when it comes, is dropped."""


def run_within_timeout(
    handler: Handler, event: dict[str, Any], context: LocalContext, *, give_up_at: float | None = None
) -> dict[str, Any] | None:
    """The handler's answer, as Lambda enforces ``context``'s timeout: FunctionTimedOutError once its countdown
    (``get_remaining_time_in_millis``) reaches 0 first; None once ``give_up_at`` (``time.monotonic()``; the
    caller's own limit, such as API Gateway's integration timeout) passes first. The handler's exception is raised
    here."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["response"] = handler(event, context)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"invocation-{context.function_name}", daemon=True).start()
    while True:
        # Read again each time: the countdown restarts when the handler gets its turn (LocalContext.begin).
        function_left = context.get_remaining_time_in_millis() / 1000
        caller_left = function_left if give_up_at is None else give_up_at - time.monotonic()
        if done.wait(max(_TIMEOUT_CHECK_S, min(function_left, caller_left))):
            break
        if give_up_at is not None and time.monotonic() >= give_up_at:
            return None
        if context.get_remaining_time_in_millis() <= 0:
            raise FunctionTimedOutError(f"{context.function_name}: task timed out after {context.timeout_seconds}s")
    if "error" in outcome:
        raise outcome["error"]
    response: dict[str, Any] = outcome["response"]
    return response


class MappingSwitch:
    """The event source mapping's ``Enabled`` flag (the ``EventSourceSwitch`` the sync service's breaker is given
    locally): while disabled the poller receives nothing, as Lambda stops polling a disabled mapping ("Lambda event
    source mappings", AWS Lambda Developer Guide: a disabled mapping does not poll; a batch already invoked
    finishes). moto's own Lambda event source mappings are not used: moto invokes a mapped function itself when a
    message is sent, which needs Docker.

    ``path``: the flag also lives in this JSON file (``{"enabled": false}``), so that ``nrtsync --local pause`` in
    another process switches the running stack's poller, as ``UpdateEventSourceMapping`` does on AWS.

    ``transition_seconds``: on AWS a change is asynchronous: the mapping is ``Enabling``, ``Disabling`` or
    ``Updating`` for a few seconds, and another ``UpdateEventSourceMapping`` meanwhile is refused with
    ``ResourceInUseException`` (Lambda API Reference, "UpdateEventSourceMapping"). With a transition, a change within
    that many seconds (by ``clock``) of the last one raises MappingBusyError. The poller follows a change at once.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        transition_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._enabled = threading.Event()
        self._enabled.set()
        self.changes: list[bool] = []
        self.refused = 0  # changes refused while the mapping was changing state
        self._transition_seconds = transition_seconds
        self._clock = clock
        self._changing: tuple[float, str] | None = None  # when the last change was accepted, and its state name
        self._lock = threading.Lock()
        if path is not None:
            self._write(enabled=True)

    @property
    def state(self) -> str:
        """The mapping's ``State`` as ``GetEventSourceMapping`` reports it."""
        self._read()  # another process (the CLI) may have switched it
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._changing is not None and self._clock() - self._changing[0] < self._transition_seconds:
            return self._changing[1]
        return "Enabled" if self._enabled.is_set() else "Disabled"

    @property
    def enabled(self) -> bool:
        if self._path is not None:
            self._read()
        return self._enabled.is_set()

    def set_enabled(self, enabled: bool) -> None:
        self._read()
        with self._lock:
            state = self._state()
            if state not in ("Enabled", "Disabled"):
                self.refused += 1
                raise MappingBusyError(f"the event source mapping is {state}")
            if self._transition_seconds > 0:
                changing = "Updating" if (state == "Enabled") == enabled else ("Enabling" if enabled else "Disabling")
                self._changing = (self._clock(), changing)
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


class MappingBusyError(RuntimeError):
    """The mapping is still changing state and refuses another change (``ResourceInUseException`` on AWS)."""


class LocalLambdaApi:
    """The Lambda API calls the layer's ``LambdaEventSourceSwitch`` makes (``ListEventSourceMappings``,
    ``UpdateEventSourceMapping``), answered from the local mapping as boto3's Lambda client answers them, a busy
    mapping's ``ResourceInUseException`` included, so that the breaker uses the same adapter locally as on AWS."""

    def __init__(self, switch: MappingSwitch, *, function_name: str, queue_arn: str) -> None:
        self._switch = switch
        self._function_name = function_name
        self._queue_arn = queue_arn
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{function_name}/{queue_arn}"))

    def list_event_source_mappings(self, *, FunctionName: str, EventSourceArn: str) -> dict[str, Any]:  # noqa: N803
        mine = FunctionName == self._function_name and EventSourceArn == self._queue_arn
        return {"EventSourceMappings": [self._mapping()] if mine else []}

    def update_event_source_mapping(self, *, UUID: str, Enabled: bool) -> dict[str, Any]:  # noqa: N803
        if self.uuid != UUID:
            raise _client_error("ResourceNotFoundException", f"no event source mapping {UUID}")
        try:
            self._switch.set_enabled(Enabled)
        except MappingBusyError as exc:
            raise _client_error("ResourceInUseException", str(exc)) from exc
        return self._mapping()

    def _mapping(self) -> dict[str, Any]:
        return {
            "UUID": self.uuid,
            "FunctionArn": self._function_name,
            "EventSourceArn": self._queue_arn,
            "State": self._switch.state,
        }


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "UpdateEventSourceMapping")


@dataclass
class PollStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    retried: int = 0
    handler_errors: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    receive_calls: int = 0  # ReceiveMessage requests made (none while the mapping is disabled)
    timeouts: int = 0  # invocations abandoned at the function's timeout (counted in handler_errors too)


class SqsEventSourcePoller:
    """Collects up to ``batch_size`` messages, until ``window_seconds`` pass or until one more would take the
    event over 6 MB, then invokes the handler.

    Like Lambda: a message in ``batchItemFailures`` stays on the queue (the handler may have shortened its
    visibility), everything else is deleted; a handler exception, or the handler still running at the function's
    timeout, leaves the whole batch on the queue, to come back after its visibility timeout; SQS itself moves a
    message to the dead-letter queue after maxReceiveCount receives. A message received that would take the batch
    over 6 MB opens the next batch ("Using Lambda with Amazon SQS": the batch's total size must fit Lambda's
    synchronous payload limit).
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
        self._held: list[dict[str, Any]] = []  # received, but over the last batch's size: the next one's first

    def _record_bytes(self, message: dict[str, Any]) -> int:
        # The record's share of the event's JSON, its separating comma included.
        return len(json.dumps(self._record(message), separators=(",", ":")).encode("utf-8")) + 1

    def _collect(self, stop: threading.Event) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        size = len(json.dumps({"Records": []}, separators=(",", ":")))

        def take(message: dict[str, Any]) -> None:
            nonlocal size
            size += self._record_bytes(message)
            if size > LAMBDA_SYNC_PAYLOAD_BYTES and messages:
                self._held.append(message)
            else:
                messages.append(message)

        held, self._held = self._held, []
        for message in held:
            take(message)
        first_at: float | None = time.monotonic() if messages else None
        while len(messages) < self._batch_size and not stop.is_set() and self.switch.enabled and not self._held:
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
            for message in received:
                take(message)
            if not received and first_at is None:
                break  # nothing waiting: let the caller loop (and notice a stop)
            if not received and first_at is not None and wait == 0:
                # SQS waits whole seconds only: in the window's last second, pause between short receives rather
                # than spin on empty ones (the event source does not poll faster than its long polls either).
                stop.wait(min(_LAST_SECOND_PAUSE_S, max(0.0, self._window - (time.monotonic() - first_at))))
        return messages

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        return {
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

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [self._record(m) for m in messages]}

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
            response = run_within_timeout(self._handler, self._event(messages), context)
        except FunctionTimedOutError:  # a failed invocation to Lambda: the whole batch again, after its visibility
            self.stats.timeouts += 1
            self.stats.handler_errors += 1
            return len(messages)
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
