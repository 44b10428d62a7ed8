"""The callout queue's contracts: putting a change on it, and putting one back for a later retry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nrtsync.domain.models.callout import QueuedChange

# The callout queue's MaximumMessageSize (template.yaml) and SQS's ceiling for it: a larger change is never queued.
MAX_MESSAGE_BYTES = 256 * 1024
# SQS's ceiling for a message's own DelaySeconds (SendMessage, "Amazon SQS delay queues"): 15 minutes.
MAX_DELAY_SECONDS = 900


class RetryScheduler(Protocol):
    """Hands messages back to the queue, visible again after ``seconds``; returns the handles it could not."""

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]: ...


class QueueUnavailableError(RuntimeError):
    """The change could not be stored on the queue (retryable: the caller answers 5xx so Zuora retries)."""


@dataclass(frozen=True)
class QueueDepth:
    """A queue's messages as SQS counts them (approximate)."""

    visible: int
    """Waiting to be received (``ApproximateNumberOfMessages``)."""
    in_flight: int
    """Received and not yet deleted or made visible again (``ApproximateNumberOfMessagesNotVisible``)."""
    delayed: int
    """Not visible yet (``ApproximateNumberOfMessagesDelayed``)."""


class ChangeQueue(Protocol):
    def send(self, change: QueuedChange) -> str: ...

    def send_later(self, changes: Sequence[QueuedChange], delay_seconds: int) -> list[QueuedChange]:
        """Queue each change, delivered no sooner than ``delay_seconds`` (at most ``MAX_DELAY_SECONDS``) from now;
        returns the changes the queue did not take."""
        ...
