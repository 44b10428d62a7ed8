"""What an operator does with a running stack: read the sync history, retry failures, redrive the DLQ.

Used by the operator command line (``nrtsync``); works against a deployed stack or the local one: the clients
it is given (or boto3's, which follow ``AWS_ENDPOINT_URL``) decide where the calls go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.tables import FAILURE_PK, plain_item, record_pk, session_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

Progress = Callable[[int, int], None]


class OperationError(RuntimeError):
    """An AWS call an operation depends on failed; the message says which."""


@dataclass(frozen=True)
class StackResources:
    """The names an operator's commands need, from the stack's Outputs or .local/stack.json."""

    history_table: str
    queue_url: str
    dlq_url: str

    @classmethod
    def from_stack(cls, stack_name: str) -> StackResources:
        try:
            stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read stack {stack_name}: {exc}") from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        try:
            return cls(
                history_table=outputs["SyncHistoryTableName"],
                queue_url=outputs["CalloutQueueUrl"],
                dlq_url=outputs["CalloutDeadLetterQueueUrl"],
            )
        except KeyError as exc:
            raise OperationError(f"stack {stack_name} has no output {exc}") from exc


class Operations:
    def __init__(
        self, resources: StackResources, *, dynamodb: DynamoDBClient | None = None, sqs: SQSClient | None = None
    ) -> None:
        self._res = resources
        self._ddb: DynamoDBClient = dynamodb or boto3.client("dynamodb")
        self._sqs: SQSClient = sqs or boto3.client("sqs")

    def _query(self, pk: str, *, newest_first: bool = False, limit: int | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._res.history_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": not newest_first,
        }
        returned = 0
        while True:
            try:
                page = self._ddb.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise OperationError(f"cannot read the sync history ({self._res.history_table}): {exc}") from exc
            for item in page.get("Items", []):
                yield plain_item(item)
                returned += 1
                if limit is not None and returned >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def sessions(self, *, since: timedelta, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
        """Sync sessions started within ``since``, newest first."""
        now = now or datetime.now(UTC)
        start = now - since
        found: list[dict[str, Any]] = []
        day = now.date()
        while day >= start.date() and len(found) < limit:
            for item in self._query(session_pk(day), newest_first=True):
                if str(item.get("started_at", "")) < start.isoformat(timespec="milliseconds"):
                    break
                found.append(item)
                if len(found) >= limit:
                    break
            day -= timedelta(days=1)
        return found

    def trail(self, object_type: str, record_id: str) -> list[dict[str, Any]]:
        """Every outcome recorded for one record, oldest first: from callout receipt to Salesforce Id."""
        return list(self._query(record_pk(object_type, record_id)))

    def failures(self, *, object_type: str | None = None, error_code: str | None = None) -> list[dict[str, Any]]:
        """The failure list, optionally filtered."""
        return [
            f
            for f in self._query(FAILURE_PK)
            if (object_type is None or f.get("object_type") == object_type)
            and (error_code is None or f.get("error_code") == error_code)
        ]

    def retry_failures(self, failures: list[dict[str, Any]], *, progress: Progress | None = None) -> tuple[int, int]:
        """Send each failure's original change back to the queue, then drop it from the list.

        The change keeps its version, so if something newer reached Salesforce meanwhile it is skipped as
        stale instead of overwriting it. Returns (retried, not retried).
        """
        done = failed = 0
        for n, failure in enumerate(failures, 1):
            try:
                self._sqs.send_message(QueueUrl=self._res.queue_url, MessageBody=str(failure["body"]))
                self._ddb.delete_item(
                    TableName=self._res.history_table,
                    Key={"pk": {"S": FAILURE_PK}, "sk": {"S": str(failure["sk"])}},
                )
                done += 1
            except (ClientError, BotoCoreError, KeyError):
                failed += 1
            if progress:
                progress(n, len(failures))
        return done, failed

    def redrive_dead_letters(self, *, progress: Progress | None = None, max_messages: int = 100_000) -> tuple[int, int]:
        """Move every message from the dead-letter queue back to the callout queue. Returns (moved, failed)."""
        moved = failed = 0
        total = self.dead_letter_count()
        while moved + failed < max_messages:
            try:
                batch = self._sqs.receive_message(
                    QueueUrl=self._res.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
                ).get("Messages", [])
            except (ClientError, BotoCoreError) as exc:
                raise OperationError(f"cannot read the dead-letter queue: {exc}") from exc
            if not batch:
                break
            for msg in batch:
                try:
                    self._sqs.send_message(QueueUrl=self._res.queue_url, MessageBody=msg["Body"])
                    self._sqs.delete_message(QueueUrl=self._res.dlq_url, ReceiptHandle=msg["ReceiptHandle"])
                    moved += 1
                except (ClientError, BotoCoreError):
                    failed += 1  # stays on the DLQ, visible again after 60 s
                if progress:
                    progress(moved + failed, max(total, moved + failed))
        return moved, failed

    def dead_letter_count(self) -> int:
        try:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=self._res.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read the dead-letter queue: {exc}") from exc
        return int(attrs.get("ApproximateNumberOfMessages", 0))
