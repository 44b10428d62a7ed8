"""In-memory stand-ins for the callout queue's ports (``nrtsync.ports.queue``, ``ChangeSink``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.queue import MAX_DELAY_SECONDS, QueueUnavailableError


@dataclass
class MemoryQueue:
    """``ChangeQueue``: keeps each change, and its body serialised as the SQS adapter serialises it (so a benchmark
    pays that cost too); ``failing`` refuses every send, as a queue that is down. A change sent with a delay is in
    ``delayed`` with it (and in ``sent``)."""

    sent: list[QueuedChange] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    delayed: list[tuple[QueuedChange, int]] = field(default_factory=list)
    failing: bool = False

    def send(self, change: QueuedChange) -> str:
        if self.failing:
            raise QueueUnavailableError("the queue is down")
        self.sent.append(change)
        self.bodies.append(change.model_dump_json())
        return f"msg-{len(self.sent)}"

    def send_later(self, changes: Sequence[QueuedChange], delay_seconds: int) -> list[QueuedChange]:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            # SQS refuses the request (InvalidParameterValue): nothing of it is queued.
            return list(changes)
        if self.failing:
            return list(changes)
        for change in changes:
            self.send(change)
            self.delayed.append((change, delay_seconds))
        return []


@dataclass
class MemorySink:
    """The callout queue: what was sent, in order; ``fail_after`` sends succeed, then every send fails."""

    sent: list[QueuedChange] = field(default_factory=list)
    calls: int = 0
    fail_after: int | None = None

    def send_batch(self, changes: Sequence[QueuedChange]) -> None:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise QueueUnavailableError("the queue is down")
        self.calls += 1
        self.sent.extend(changes)


@dataclass
class FakeRetryScheduler:
    """Records the visibility delays the service asks for."""

    delays: dict[str, int] = field(default_factory=dict)

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]:
        for handle in receipt_handles:
            self.delays[handle] = seconds
        return []
