"""SQS message move tasks (StartMessageMoveTask, ListMessageMoveTasks) on top of moto, which lacks them (5.2).

Written from the SQS API Reference pages ``StartMessageMoveTask`` and ``ListMessageMoveTasksResultEntry``:
- only a queue that is another queue's dead-letter queue is accepted as ``SourceArn`` (InvalidParameterValue);
- ``MaxNumberOfMessagesPerSecond`` is at most 500;
- only one active task per queue at a time;
- the number to move is taken when the task starts; ``ListMessageMoveTasks`` returns the most recent tasks
  first, each with ``Status`` (RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED),
  ``ApproximateNumberOfMessagesMoved`` and ``ApproximateNumberOfMessagesToMove``.
The real task runs on its own clock; here each ``list_message_move_tasks`` call is one second of it, so a test
sees the task RUNNING first (when there are more messages than one second's rate) and COMPLETED later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@dataclass
class _Task:
    handle: str
    source_arn: str
    source_url: str
    destination_url: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    moved: int = 0
    status: str = "RUNNING"


@dataclass
class SqsWithMoveTasks:
    """A moto SQS client, plus message move tasks; every other call goes to moto unchanged."""

    sqs: Any
    started: list[dict[str, Any]] = field(default_factory=list)  # the StartMessageMoveTask requests, as sent
    fail_with: str | None = None  # a FailureReason: the next task fails after its first second
    _tasks: list[_Task] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    def _url_of(self, arn: str) -> str:
        for url in self.sqs.list_queues().get("QueueUrls", []):
            if (
                self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                == arn
            ):
                return str(url)
        raise _error("ResourceNotFoundException", f"no queue {arn}", "StartMessageMoveTask")

    def _is_dead_letter_queue(self, arn: str) -> bool:
        for url in self.sqs.list_queues().get("QueueUrls", []):
            policy = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
            if "RedrivePolicy" in policy and json.loads(policy["RedrivePolicy"])["deadLetterTargetArn"] == arn:
                return True
        return False

    # The keyword names are botocore's: the code under test calls these as it calls the real client.
    def start_message_move_task(
        self,
        *,
        SourceArn: str,  # noqa: N803
        DestinationArn: str | None = None,  # noqa: N803
        MaxNumberOfMessagesPerSecond: int | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        request = {
            "SourceArn": SourceArn,
            "DestinationArn": DestinationArn,
            "MaxNumberOfMessagesPerSecond": MaxNumberOfMessagesPerSecond,
        }
        self.started.append({k: v for k, v in request.items() if v is not None})
        if MaxNumberOfMessagesPerSecond is not None and not 1 <= MaxNumberOfMessagesPerSecond <= 500:
            raise _error("InvalidParameterValue", "MaxNumberOfMessagesPerSecond is 1..500", "StartMessageMoveTask")
        if not self._is_dead_letter_queue(SourceArn):
            raise _error("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.", "Start")
        if any(t.source_arn == SourceArn and t.status == "RUNNING" for t in self._tasks):
            raise _error("UnsupportedOperation", "There is already a task running.", "StartMessageMoveTask")
        source_url = self._url_of(SourceArn)
        destination_url = self._url_of(DestinationArn) if DestinationArn else self._original_source(SourceArn)
        depth = self.sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["ApproximateNumberOfMessages"])
        task = _Task(
            handle=f"task-{len(self._tasks) + 1}",
            source_arn=SourceArn,
            source_url=source_url,
            destination_url=destination_url,
            destination_arn=DestinationArn,
            rate=MaxNumberOfMessagesPerSecond,
            to_move=int(depth["Attributes"]["ApproximateNumberOfMessages"]),
        )
        self._tasks.append(task)
        return {"TaskHandle": task.handle}

    def _original_source(self, dlq_arn: str) -> str:
        for url in self.sqs.list_queues().get("QueueUrls", []):
            policy = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
            if "RedrivePolicy" in policy and json.loads(policy["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn:
                return str(url)
        raise AssertionError("unreachable: checked as a DLQ before")

    def _one_second(self, task: _Task) -> None:
        budget = task.rate or 500
        while budget > 0 and task.moved < task.to_move:
            batch = self.sqs.receive_message(QueueUrl=task.source_url, MaxNumberOfMessages=min(10, budget))
            messages = batch.get("Messages", [])
            if not messages:
                break
            for message in messages:
                self.sqs.send_message(QueueUrl=task.destination_url, MessageBody=message["Body"])
                self.sqs.delete_message(QueueUrl=task.source_url, ReceiptHandle=message["ReceiptHandle"])
                task.moved += 1
                budget -= 1
        if self.fail_with is not None:
            task.status = "FAILED"
        elif task.moved >= task.to_move:
            task.status = "COMPLETED"

    def list_message_move_tasks(self, *, SourceArn: str, MaxResults: int = 1) -> dict[str, Any]:  # noqa: N803
        tasks = [t for t in reversed(self._tasks) if t.source_arn == SourceArn][:MaxResults]
        results = []
        for task in tasks:
            entry: dict[str, Any] = {
                "TaskHandle": task.handle if task.status == "RUNNING" else None,
                "Status": task.status,
                "SourceArn": task.source_arn,
                "ApproximateNumberOfMessagesMoved": task.moved,
                "ApproximateNumberOfMessagesToMove": task.to_move,
            }
            if task.status == "FAILED":
                entry["FailureReason"] = self.fail_with
            results.append({k: v for k, v in entry.items() if v is not None})
            if task.status == "RUNNING":
                self._one_second(task)  # the next call sees one more second of progress
        return {"Results": results}
