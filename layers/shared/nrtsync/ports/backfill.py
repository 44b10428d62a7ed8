"""The contracts of a backfill (``services.backfill``): its run as stored, and what paces it so that live callouts
are not starved (the callout queue's backlog, the org's API usage, the circuit breaker)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class BackfillStatus(StrEnum):
    """What a backfill step (``BackfillStep.run``) answers; the state machine's Choice state branches on these
    very strings."""

    RUNNING = "running"
    """Not finished: call ``step`` again now."""
    WAITING = "waiting"
    """Paused by pacing or a passing outage: call ``step`` again after ``wait_seconds``."""
    DONE = "done"
    FAILED = "failed"
    """Stopped for good (a Zuora credential refused, a query Zuora rejects): an operator must act."""


@dataclass(frozen=True)
class ObjectProgress:
    """One object's part of a run: its sweep's counts (cumulative over every step) and when it ran."""

    object_type: str
    pages: int = 0
    read: int = 0
    queued: int = 0
    malformed: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def seconds(self, now: datetime) -> float:
        """Wall time from its first page to its last (or to ``now`` while it runs), pauses included."""
        if self.started_at is None:
            return 0.0
        return max(0.0, ((self.finished_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True)
class BackfillRun:
    """A backfill as stored in the state table (``BACKFILL#<run_id>``); its cursors are the sweep's items."""

    run_id: str
    objects: tuple[str, ...]
    """In the order they run: parents before children (``MappingConfig.write_order``)."""
    since: datetime
    until: datetime
    """Fixed when the run is created, so a resumed run reads the very windows it started."""
    created_at: datetime
    status: BackfillStatus = BackfillStatus.RUNNING
    reason: str = ""
    """Why it waits or failed, for the operator."""
    updated_at: datetime | None = None
    steps: int = 0
    progress: tuple[ObjectProgress, ...] = field(default=())

    def object_progress(self, object_type: str) -> ObjectProgress:
        for progress in self.progress:
            if progress.object_type == object_type:
                return progress
        return ObjectProgress(object_type)

    def with_progress(self, progress: ObjectProgress) -> BackfillRun:
        others = {p.object_type: p for p in self.progress}
        others[progress.object_type] = progress
        return replace(self, progress=tuple(others.get(o, ObjectProgress(o)) for o in self.objects))

    @property
    def sweep_name(self) -> str:
        """The name of its sweep: cursors ``SWEEP#backfill-<run_id>#<object>`` (``nrtsync.adapters.aws.tables``)."""
        return f"backfill-{self.run_id}"


class BackfillExistsError(RuntimeError):
    """A run with that id exists already."""


class BackfillStore(Protocol):
    def create(self, run: BackfillRun) -> None:
        """Store a new run; raises ``BackfillExistsError`` if its id is taken (never overwrites a run)."""
        ...

    def load(self, run_id: str) -> BackfillRun | None: ...

    def save(self, run: BackfillRun) -> None: ...

    def runs(self) -> list[BackfillRun]:
        """Every run, newest first."""
        ...


class QueueBacklog(Protocol):
    def backlog(self) -> int:
        """Messages waiting on the callout queue (SQS ``ApproximateNumberOfMessages``)."""
        ...
