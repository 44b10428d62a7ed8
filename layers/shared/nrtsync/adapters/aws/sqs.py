"""An SQS queue of changes: what ingest writes, the sync function adjusts, a backfill paces itself by and an
operator inspects (its depth, its ARN)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.calls import limited_chunks
from nrtsync.adapters.aws.clients import STANDARD_CONFIG
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.queue import QueueDepth, QueueUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

SQS_BATCH_MAX = 10
# SendMessageBatch's payload limit, all entries together (SQS quotas: 256 KiB; the 1 MiB raised in 2025 applies
# to single messages in some regions only, so the lower figure is the safe one).
SQS_BATCH_BYTES_MAX = 256 * 1024
_SEND_BATCH_TRIES = 4


class SqsChangeQueue:
    """Sends accepted changes to the callout queue."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client: SQSClient = client or boto3.client("sqs", config=STANDARD_CONFIG)

    def send(self, change: QueuedChange) -> str:
        """Queue one change and return its SQS message id."""
        return self.send_body(change.model_dump_json())

    def send_body(self, body: str) -> str:
        """Queue a message body as it is (a parked or dead-lettered one, which the sync reads again); returns its
        SQS message id."""
        try:
            response = self._client.send_message(QueueUrl=self._queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailableError("the callout queue did not take the change") from exc
        return response["MessageId"]

    def send_batch(self, changes: Sequence[QueuedChange]) -> None:
        """Queue every change, ten (and at most 256 KiB) per SendMessageBatch; entries SQS refuses are sent again.

        Raises QueueUnavailableError if some change is still not queued after the retries: the caller (a sweep)
        has not moved its cursor, so it reads the page again later.
        """
        bodies = [change.model_dump_json() for change in changes]
        for chunk in _chunks(bodies):
            pending = dict(enumerate(chunk))
            for attempt in range(_SEND_BATCH_TRIES):
                entries: list[SendMessageBatchRequestEntryTypeDef] = [
                    {"Id": str(i), "MessageBody": body} for i, body in pending.items()
                ]
                try:
                    response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
                except (ClientError, BotoCoreError) as exc:
                    if attempt == _SEND_BATCH_TRIES - 1:
                        raise QueueUnavailableError("the callout queue did not take a batch of changes") from exc
                else:
                    pending = {int(e["Id"]): pending[int(e["Id"])] for e in response.get("Failed", [])}
                    if not pending:
                        break
                time.sleep(0.1 * 2**attempt)
            else:
                raise QueueUnavailableError(f"the callout queue refused {len(pending)} changes of a batch")

    def send_later(self, changes: Sequence[QueuedChange], delay_seconds: int) -> list[QueuedChange]:
        """Queue every change with its own ``DelaySeconds`` (ten, and at most 256 KiB, per SendMessageBatch); returns
        the changes not queued: those of a batch that failed, and the entries SQS refused. One attempt each: the
        caller (the sync, releasing held changes) keeps what was not queued and tries again later."""
        pending = [(change, change.model_dump_json()) for change in changes]
        not_queued: list[QueuedChange] = []
        for chunk in limited_chunks(
            pending, lambda item: len(item[1].encode()), max_count=SQS_BATCH_MAX, max_bytes=SQS_BATCH_BYTES_MAX
        ):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": delay_seconds} for i, (_, body) in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                not_queued.extend(change for change, _ in chunk)
                continue
            not_queued.extend(chunk[int(entry["Id"])][0] for entry in response.get("Failed", []))
        return not_queued

    def backlog(self) -> int:
        """Messages waiting to be received (``ApproximateNumberOfMessages``; in-flight and delayed ones excluded).

        What a live callout queues behind, so what a backfill paces itself by (nrtsync.services.backfill.step).
        """
        return int(self._attributes("ApproximateNumberOfMessages").get("ApproximateNumberOfMessages", "0"))

    def depth(self) -> QueueDepth:
        """Visible, in-flight and delayed messages (an operator's status)."""
        attributes = self._attributes(
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def arn(self) -> str:
        return self._attributes("QueueArn")["QueueArn"]

    def _attributes(self, *names: QueueAttributeNameType) -> dict[str, str]:
        try:
            response = self._client.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=list(names))
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailableError(f"could not read the queue's attributes: {exc}") from exc
        return {str(name): value for name, value in response.get("Attributes", {}).items()}

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]:
        """Make messages visible again after ``seconds`` (a short retry instead of the full visibility timeout).

        Returns the receipt handles whose visibility could not be changed; those simply come back after the
        queue's visibility timeout, so a failure here delays a retry but loses nothing.
        """
        handles = list(receipt_handles)
        failed: list[str] = []
        for start in range(0, len(handles), SQS_BATCH_MAX):
            chunk = handles[start : start + SQS_BATCH_MAX]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds} for i, handle in enumerate(chunk)
            ]
            try:
                response = self._client.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                failed.extend(chunk)
                continue
            failed.extend(chunk[int(entry["Id"])] for entry in response.get("Failed", []))
        return failed


def _chunks(bodies: list[str]) -> Iterable[list[str]]:
    return limited_chunks(
        bodies, lambda body: len(body.encode()), max_count=SQS_BATCH_MAX, max_bytes=SQS_BATCH_BYTES_MAX
    )
