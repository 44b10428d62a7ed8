"""The contracts of a sweep: reading Zuora's records of one object over a time window, page by page, and queueing
the changes Salesforce does not have yet (reconciliation and backfill share it: ``nrtsync.services.sweep.service``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nrtsync.domain.models.callout import QueuedChange


@dataclass(frozen=True)
class SweepCursor:
    """Where one object's sweep stands: its window, the next page to read, and what it has done so far.

    Saved after every page is queued, so a sweep that stops (a deadline, a crash) resumes at the next page with
    the same window, not a new one: ZOQL has no ORDER BY, so only the whole window read once is complete.
    """

    object_type: str
    since: datetime
    until: datetime
    query_locator: str | None = None
    """The next page's locator; None before the first page (the query is sent again)."""
    pages: int = 0
    read: int = 0
    queued: int = 0
    malformed: int = 0
    restarts: int = 0
    """How often the window was read again from its first page because Zuora refused a saved locator."""


class SweepCheckpoints(Protocol):
    """A sweep's progress per object, kept where a later invocation finds it (the state table)."""

    def load(self, sweep: str, object_type: str) -> SweepCursor | None:
        """The cursor of a sweep in progress, None when none is (never started, or finished)."""
        ...

    def save(self, sweep: str, cursor: SweepCursor) -> None: ...

    def finish(self, sweep: str, cursor: SweepCursor) -> None:
        """The window was read to its end: the watermark becomes ``cursor.until`` and the cursor goes."""
        ...

    def watermark(self, sweep: str, object_type: str) -> datetime | None:
        """The end of the last window read to its end, None before the first."""
        ...


class SettledVersions(Protocol):
    def settled_versions(self, record_keys: Collection[str]) -> dict[str, str]:
        """Per record that has one, the newest version the sync settled: written to Salesforce (or deleted), or
        parked on the failure list for an operator (record key -> version). A sweep queues only newer ones."""
        ...


class ChangeSink(Protocol):
    def send_batch(self, changes: Sequence[QueuedChange]) -> None:
        """Queues every change or raises ``QueueUnavailableError`` (then some may be queued: a sweep re-reads)."""
        ...
