"""What an operator does with a running stack: its status, the sync history, retry failures, redrive the DLQ.

Used by the operator command line (``nrtsync``); works against a deployed stack or the local one: the clients
it is given decide where the calls go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.event_source import CHANGING_STATES, LambdaEventSourceSwitch
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.adapters.aws.state import DynamoVersionStore, RecordLeasedError
from nrtsync.adapters.aws.tables import FAILURE_PK, plain_item, record_pk, session_pk
from nrtsync.domain.models.callout import record_key_of
from nrtsync.ports.breaker import BreakerUnavailableError
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.state import StateUnavailableError
from nrtsync_cli.stack_outputs import StackReadError, read_stack_outputs

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

Progress = Callable[[int, int], None]

# How far back ``status`` looks for the last session: a stack idle longer than this shows none.
LAST_SESSION_WINDOW: Final = timedelta(days=7)
# SQS publishes its queue metrics to CloudWatch once a minute; a quarter of an hour finds the latest one
# without reading a stale value from a queue that stopped reporting (SQS stops after 6 h of inactivity).
AGE_METRIC_WINDOW: Final = timedelta(minutes=15)
# A move task in one of these states still moves messages (ListMessageMoveTasksResultEntry: RUNNING,
# COMPLETED, CANCELLING, CANCELLED, FAILED).
ACTIVE_MOVE_STATES: Final = frozenset({"RUNNING", "CANCELLING"})


class OperationError(RuntimeError):
    """An AWS call an operation depends on failed; the message says which."""


class StateTableUnknownError(LookupError):
    """The stack's Outputs or state file name no state table (a state file written by hand, an old stack)."""


NO_STATE_TABLE: Final = "unknown: the stack's outputs (or state file) name no state table"


@dataclass(frozen=True)
class StackResources:
    """The names an operator's commands need, from the stack's Outputs or .local/stack.json.

    ``stack_name`` is the deployed stack's (its alarms are named ``<stack>-…``); ``None`` for the local stack.
    """

    history_table: str
    queue_url: str
    dlq_url: str
    state_table: str | None = None
    stack_name: str | None = None
    sync_function: str | None = None

    @classmethod
    def from_stack(cls, stack_name: str, cloudformation: Any = None) -> StackResources:
        try:
            outputs = read_stack_outputs(cloudformation or boto3.client("cloudformation"), stack_name)
            return cls(
                history_table=outputs["SyncHistoryTableName"],
                queue_url=outputs["CalloutQueueUrl"],
                dlq_url=outputs["CalloutDeadLetterQueueUrl"],
                state_table=outputs.get("SyncStateTableName"),
                stack_name=stack_name,
                sync_function=outputs.get("SyncFunctionName"),
            )
        except StackReadError as exc:
            raise OperationError(str(exc)) from exc


def queue_name(url: str) -> str:
    """The queue's name (the last segment of its URL), as CloudWatch's ``QueueName`` dimension spells it."""
    return url.rstrip("/").rsplit("/", 1)[-1]


class Operations:
    """The commands' calls. ``cloudwatch`` is ``None`` on the local stack: moto has no SQS metrics or alarms.

    ``server_side_redrive``: redrive the DLQ with SQS ``StartMessageMoveTask`` (AWS) rather than by receiving
    and re-sending each message (the local stack: moto 5.2 does not implement message move tasks).
    """

    def __init__(
        self,
        resources: StackResources,
        *,
        dynamodb: DynamoDBClient | None = None,
        sqs: SQSClient | None = None,
        cloudwatch: CloudWatchClient | None = None,
        server_side_redrive: bool = False,
        lambda_client: Any = None,
    ) -> None:
        self._res = resources
        # The sync function's event source mapping, through the Lambda API (None: the local stack, no Lambda API).
        self._lambda = lambda_client
        self._ddb: DynamoDBClient = dynamodb or boto3.client("dynamodb")
        self._sqs: SQSClient = sqs or boto3.client("sqs")
        self._queue = SqsChangeQueue(resources.queue_url, client=self._sqs)
        self._cloudwatch = cloudwatch
        self.server_side_redrive = server_side_redrive

    @property
    def resources(self) -> StackResources:
        return self._res

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
                self._queue.send_body(str(failure["body"]))
                self._ddb.delete_item(
                    TableName=self._res.history_table,
                    Key={"pk": {"S": FAILURE_PK}, "sk": {"S": str(failure["sk"])}},
                )
                done += 1
            except (QueueUnavailableError, ClientError, BotoCoreError, KeyError):
                failed += 1
            if progress:
                progress(n, len(failures))
        return done, failed

    # -- the dead-letter queue ---------------------------------------------------------------------------------
    def redrive_dead_letters(self, *, progress: Progress | None = None, max_messages: int = 100_000) -> tuple[int, int]:
        """Move every message from the dead-letter queue back to the callout queue by receive, send, delete.

        The local stack's way (moto has no move tasks); on AWS ``start_dead_letter_move`` does it server side.
        Returns (moved, failed).
        """
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
                    self._queue.send_body(msg["Body"])
                    self._sqs.delete_message(QueueUrl=self._res.dlq_url, ReceiptHandle=msg["ReceiptHandle"])
                    moved += 1
                except (QueueUnavailableError, ClientError, BotoCoreError):
                    failed += 1  # stays on the DLQ, visible again after 60 s
                if progress:
                    progress(moved + failed, max(total, moved + failed))
        return moved, failed

    def dead_letter_count(self) -> int:
        return self.queue_depth(self._res.dlq_url)["visible"]

    def queue_arn(self, url: str) -> str:
        try:
            return SqsChangeQueue(url, client=self._sqs).arn()
        except QueueUnavailableError as exc:
            raise OperationError(f"cannot read queue {queue_name(url)}: {exc}") from exc

    def start_dead_letter_move(self, *, rate: int | None = None) -> str:
        """Start an SQS message move task from the DLQ to the callout queue; returns its task handle.

        ``rate`` is ``MaxNumberOfMessagesPerSecond`` (1..500); ``None`` lets SQS choose. The API has no count
        limit: a task moves every message on the DLQ when it starts.
        """
        kwargs: dict[str, Any] = {
            "SourceArn": self.queue_arn(self._res.dlq_url),
            "DestinationArn": self.queue_arn(self._res.queue_url),
        }
        if rate is not None:
            kwargs["MaxNumberOfMessagesPerSecond"] = rate
        try:
            return str(self._sqs.start_message_move_task(**kwargs)["TaskHandle"])
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot start moving the dead-letter queue's messages: {exc}") from exc

    def dead_letter_move(self) -> dict[str, Any] | None:
        """The DLQ's most recent message move task (``ListMessageMoveTasksResultEntry``), or ``None``."""
        try:
            tasks = self._sqs.list_message_move_tasks(SourceArn=self.queue_arn(self._res.dlq_url), MaxResults=1)
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read the dead-letter queue's move tasks: {exc}") from exc
        results = tasks.get("Results", [])
        return dict(results[0]) if results else None

    # -- status ------------------------------------------------------------------------------------------------
    def queue_depth(self, url: str) -> dict[str, int]:
        """Visible, in-flight and delayed messages (approximate, as SQS says)."""
        try:
            depth = SqsChangeQueue(url, client=self._sqs).depth()
        except QueueUnavailableError as exc:
            raise OperationError(f"cannot read queue {queue_name(url)}: {exc}") from exc
        return {"visible": depth.visible, "in_flight": depth.in_flight, "delayed": depth.delayed}

    def oldest_message_age(self, url: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The queue's ``ApproximateAgeOfOldestMessage`` in seconds, the latest minute CloudWatch has.

        It is a CloudWatch metric (namespace ``AWS/SQS``), not a queue attribute: SQS's API cannot tell the age
        without receiving the message, and a receive would spend its redrive budget. Without CloudWatch (the
        local stack) the age is ``None`` with the reason.
        """
        if self._cloudwatch is None:
            return {"seconds": None, "at": None, "note": "unavailable on the local stack (a CloudWatch metric)"}
        now = now or datetime.now(UTC)
        try:
            points = self._cloudwatch.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": queue_name(url)}],
                StartTime=now - AGE_METRIC_WINDOW,
                EndTime=now,
                Period=60,
                Statistics=["Maximum"],
            )["Datapoints"]
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read the queue's metrics from CloudWatch: {exc}") from exc
        if not points:
            return {"seconds": None, "at": None, "note": f"no datapoint in the last {AGE_METRIC_WINDOW}"}
        latest = max(points, key=lambda p: p["Timestamp"])
        return {"seconds": float(latest.get("Maximum", 0.0)), "at": latest["Timestamp"].isoformat(), "note": None}

    def _state_table(self) -> str:
        if self._res.state_table is None:
            # Not "never opened" or "not seen yet": without the table's name nothing can be said.
            raise StateTableUnknownError
        return self._res.state_table

    def _state_item(self, key: str) -> dict[str, Any] | None:
        table = self._state_table()
        try:
            item = self._ddb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read the state table ({table}): {exc}") from exc
        return item

    def record_state(self, object_type: str, record_id: str) -> dict[str, Any] | None:
        """The record's version state in the state table (what the sync last wrote of it), or None."""
        try:
            item = self._state_item(record_key_of(object_type, record_id))
        except StateTableUnknownError as exc:
            raise OperationError(NO_STATE_TABLE) from exc
        return None if item is None else {k: v for k, v in plain_item(item).items() if k != "pk"}

    def forget_record(self, object_type: str, record_id: str) -> dict[str, Any] | None:
        """Delete the record's version state (``DynamoVersionStore.forget``); returns what it was, or None.

        Raises RecordLeasedError while a sync is writing the record."""
        if self._res.state_table is None:
            raise OperationError(NO_STATE_TABLE)
        store = DynamoVersionStore(self._res.state_table, client=self._ddb)
        try:
            old = store.forget(record_key_of(object_type, record_id))
        except RecordLeasedError:
            raise
        except StateUnavailableError as exc:
            raise OperationError(str(exc)) from exc
        return None if old is None else {k: v for k, v in plain_item(old).items() if k != "pk"}

    def api_usage(self) -> dict[str, Any] | None:
        """The org's API usage as the sync function last saw it (``ORG#API_USAGE``), or ``None`` before any."""
        table = self._state_table()
        try:
            usage = DynamoApiUsageStore(table, client=self._ddb).read()
        except StateUnavailableError as exc:
            raise OperationError(f"cannot read the state table ({table}): {exc}") from exc
        except ValueError as exc:
            return {"error": f"unreadable: {exc}"}
        if usage is None:
            return None
        return {
            "used": usage.used,
            "limit": usage.limit,
            "percent": round(usage.percent, 2),
            "observed_at": usage.observed_at.isoformat(timespec="seconds"),
        }

    def breaker(self) -> dict[str, Any] | None:
        """The circuit breaker's item (read only), or ``None`` when the breaker never opened (or is not deployed)."""
        table = self._state_table()
        try:
            return DynamoBreakerStore(table, client=self._ddb).stored()
        except BreakerUnavailableError as exc:
            raise OperationError(f"cannot read the state table ({table}): {exc}") from exc

    def alarms(self) -> list[dict[str, Any]] | None:
        """The stack's CloudWatch alarms (named ``<stack>-…`` by the template) and their states.

        ``None`` on the local stack, which deploys no alarms.
        """
        if self._cloudwatch is None or self._res.stack_name is None:
            return None
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "AlarmNamePrefix": f"{self._res.stack_name}-",
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
        }
        try:
            while True:
                page = self._cloudwatch.describe_alarms(**kwargs)
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found.append(
                        {
                            "name": alarm["AlarmName"],
                            "state": alarm["StateValue"],
                            "since": alarm["StateUpdatedTimestamp"].isoformat(timespec="seconds"),
                            "reason": alarm.get("StateReason", ""),
                        }
                    )
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except (ClientError, BotoCoreError) as exc:
            raise OperationError(f"cannot read the stack's alarms: {exc}") from exc
        return sorted(found, key=lambda a: (a["state"] != "ALARM", a["name"]))

    def _state_table_parts(self) -> dict[str, Any]:
        try:
            return {"breaker": self.breaker(), "api_usage": self.api_usage()}
        except StateTableUnknownError:
            return {"breaker": {"state": "unknown", "error": NO_STATE_TABLE}, "api_usage": {"error": NO_STATE_TABLE}}

    def event_source(self) -> dict[str, Any] | None:
        """The sync function's SQS event source mapping: its state, and whether a change of it is in progress (the
        breaker's pause or resume taking effect); None where the stack has no Lambda API to ask (the local stack)."""
        if self._lambda is None or self._res.sync_function is None:
            return None
        try:
            queue_arn = self._queue.arn()
            state = LambdaEventSourceSwitch(self._res.sync_function, queue_arn, client=self._lambda).state()
        except (BreakerUnavailableError, QueueUnavailableError) as exc:
            return {"state": "unknown", "in_progress": False, "error": str(exc)}
        return {"state": state, "in_progress": state in CHANGING_STATES}

    def status(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Everything ``nrtsync status`` shows, as plain JSON-ready values."""
        sessions = self.sessions(since=LAST_SESSION_WINDOW, limit=1, now=now)
        return {
            "event_source": self.event_source(),
            "queue": {
                "name": queue_name(self._res.queue_url),
                **self.queue_depth(self._res.queue_url),
                "oldest_message_age": self.oldest_message_age(self._res.queue_url, now=now),
            },
            "dead_letter_queue": {"name": queue_name(self._res.dlq_url), **self.queue_depth(self._res.dlq_url)},
            **self._state_table_parts(),
            "last_session": sessions[0] if sessions else None,
            "alarms": self.alarms(),
        }
