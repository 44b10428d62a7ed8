"""The sync function's input: SQS messages, read into the incoming changes of a session.

A change has one name per stage: a Zuora ``Callout`` (ingest) becomes a ``QueuedChange`` (the queue message's
body); the sync function receives it as a ``QueueMessage`` and reads it into an ``IncomingChange`` (the queued
change with its delivery: message id, receipt handle, receive count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsModel
from pydantic import ValidationError

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.services.sync.session_ledger import SessionLedger


@dataclass(frozen=True)
class QueueMessage:
    """One SQS message as the event source mapping delivers it."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1

    @classmethod
    def batch_from_sqs(cls, event: Mapping[str, Any]) -> list[QueueMessage]:
        """The messages of an SQS event; the bodies stay raw strings (``read_changes`` validates each one)."""
        batch = SqsModel.model_validate(event)
        return [
            cls(
                message_id=record.messageId,
                receipt_handle=record.receiptHandle,
                body=str(record.body),
                receive_count=int(record.attributes.ApproximateReceiveCount),
            )
            for record in batch.Records
        ]


def read_changes(messages: Sequence[QueueMessage], ledger: SessionLedger) -> list[IncomingChange]:
    """The incoming changes of the batch; a message that is no queued change is parked as it is."""
    incoming: list[IncomingChange] = []
    for message in messages:
        try:
            change = QueuedChange.model_validate_json(message.body)
        except ValidationError as exc:
            ledger.park_unreadable(
                message.message_id, message.receipt_handle, message.body, message.receive_count, str(exc)
            )
            continue
        incoming.append(IncomingChange(message.message_id, message.receipt_handle, message.receive_count, change))
    return incoming
