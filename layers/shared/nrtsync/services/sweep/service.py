"""A sweep: read one mapped object's Zuora records over a time window, page by page, and queue a change for every
record whose version is newer than the one Salesforce has (the state table's ``written_version``).

Reconciliation and backfill are both sweeps; they differ in the window and in what stops them. The rules here:

- A page's changes are queued before the cursor moves past it, and the cursor is saved after every page, so a
  sweep stopped anywhere (a deadline, a crash, a full queue) resumes at the first page not known to be queued.
  A page queued but not checkpointed is queued again on resume: the sync function drops the copies (same
  version: duplicate or stale), so the cost is queue traffic, never a Salesforce call or a lost change.
- The window stays the cursor's until the window is read to its end, because ZOQL has no ORDER BY: only then
  does the watermark move (``SweepCheckpoints.finish``).
- A record counts as settled when Salesforce has a version with the same or a newer ``UpdatedDate``, whatever
  the receive time in that version: so a sweep over an org that is in step queues nothing and costs no
  Salesforce call. A tombstone counts too: a record Zuora still returns with an older ``UpdatedDate`` than its
  delete is not brought back. So does a version parked on the failure list: Salesforce refused it for good,
  an operator sees it there, and queueing it again would only park it again (and count it as a lost callout).
- A record that cannot become a change (no ``Id``, an unreadable ``UpdatedDate``, a value our model refuses) is
  counted and reported, not queued and not fatal: one bad record must not stop a tenant's sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from nrtsync.domain.mapping import MappingConfig, MappingError
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.zuora import ZuoraRequestError
from nrtsync.domain.zoql import SWEEP_SOURCES, change_from_record, changes_query
from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints, SweepCursor
from nrtsync.ports.zuora import QueryPage, ZuoraPort

DEFAULT_PAGE_RESERVE_S = 60.0
"""Time kept back before a deadline for one more page: a 2,000-record page, its state reads and its sends."""

MAX_RESTARTS = 3
MAX_REPORTED_MALFORMED = 20

StopCheck = Callable[[], str | None]
"""Asked before every page: a reason to stop now (e.g. ``"queue backlog"``), or None to go on."""


@dataclass(frozen=True)
class Malformed:
    record_id: str | None
    reason: str


@dataclass
class SweepOutcome:
    """What one call of ``Sweep.run`` did for one object."""

    cursor: SweepCursor
    finished: bool
    """The window was read to its end (the watermark moved); otherwise the cursor is saved to resume."""
    stopped_by: str | None = None
    """Why it stopped before the end: ``"deadline"`` or the reason a ``StopCheck`` gave."""
    pages: int = 0
    read: int = 0
    queued: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    """This call's unreadable records (the first ``MAX_REPORTED_MALFORMED``; the cursor counts them all)."""


def version_date_part(version: str) -> str:
    """The ``UpdatedDate`` part of a version (``QueuedChange.version``), which sorts as the whole does."""
    return version.split(".", 1)[0]


def is_newer_than_settled(change: QueuedChange, settled_version: str | None) -> bool:
    """Whether the sync has yet to see this change: nothing settled, or a version with an older ``UpdatedDate``."""
    return settled_version is None or version_date_part(change.version) > version_date_part(settled_version)


class Sweep:
    """Sweeps named ``name`` (e.g. ``reconcile``, ``backfill-<id>``) over Zuora's records, one object at a time."""

    def __init__(
        self,
        name: str,
        *,
        zuora: ZuoraPort,
        mapping: MappingConfig,
        versions: SettledVersions,
        sink: ChangeSink,
        checkpoints: SweepCheckpoints,
        source: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if source not in SWEEP_SOURCES:
            raise ValueError(f"source must be one of {SWEEP_SOURCES}, not {source!r}")
        self.name = name
        self._zuora = zuora
        self._mapping = mapping
        self._versions = versions
        self._sink = sink
        self._checkpoints = checkpoints
        self._source = source
        self._clock = clock
        self._monotonic = monotonic

    def cursor(self, object_type: str, since: datetime, until: datetime) -> SweepCursor:
        """The saved cursor of ``object_type`` if a sweep is in progress, else a new one for ``[since, until)``."""
        return self._checkpoints.load(self.name, object_type) or SweepCursor(object_type, since, until)

    def run(
        self,
        object_type: str,
        since: datetime,
        until: datetime,
        *,
        deadline: float,
        should_stop: StopCheck | None = None,
        page_reserve_s: float = DEFAULT_PAGE_RESERVE_S,
    ) -> SweepOutcome:
        """Reads pages of ``object_type`` until the window ends, ``deadline`` (monotonic) nears, or ``should_stop``.

        ``since``/``until`` apply only when no sweep of the object is in progress; a saved cursor keeps its own.
        Raises the Zuora client's errors (``ZuoraRetryableError``, ``ZuoraAuthError``, ``ZuoraRequestError``) and
        ``QueueUnavailableError``/``StateUnavailableError``: the cursor saved before the failing page stays, so
        the next run resumes there.
        """
        cursor = self.cursor(object_type, since, until)
        outcome = SweepOutcome(cursor=cursor, finished=False)
        while True:
            if self._monotonic() > deadline - page_reserve_s:
                outcome.stopped_by = "deadline"
                return outcome
            if should_stop is not None and (reason := should_stop()):
                outcome.stopped_by = reason
                return outcome
            page, cursor = self._next_page(cursor)
            changes, malformed = self._changes(object_type, page)
            settled = self._versions.settled_versions([c.record_key for c in changes]) if changes else {}
            fresh = [c for c in changes if is_newer_than_settled(c, settled.get(c.record_key))]
            if fresh:
                self._sink.send_batch(fresh)
            if not page.done and not page.query_locator:
                raise ZuoraRequestError(
                    "Zuora answered done=false without a queryLocator", code="NO_QUERY_LOCATOR", http_status=200
                )
            cursor = replace(
                cursor,
                query_locator=None if page.done else page.query_locator,
                pages=cursor.pages + 1,
                read=cursor.read + len(page.records),
                queued=cursor.queued + len(fresh),
                malformed=cursor.malformed + len(malformed),
                # A page was read: the locator works again. Only restarts in a row, with no page between them,
                # mean Zuora keeps refusing; a long pause between two runs (a locator lives 15 minutes) does not.
                restarts=0,
            )
            outcome.cursor = cursor
            outcome.pages += 1
            outcome.read += len(page.records)
            outcome.queued += len(fresh)
            room = MAX_REPORTED_MALFORMED - len(outcome.malformed)
            outcome.malformed.extend(malformed[: max(0, room)])
            if page.done:
                self._checkpoints.finish(self.name, cursor)
                outcome.finished = True
                return outcome
            self._checkpoints.save(self.name, cursor)

    def _next_page(self, cursor: SweepCursor) -> tuple[QueryPage, SweepCursor]:
        if cursor.query_locator is None:
            return self._zuora.query(self._query(cursor)), cursor
        try:
            return self._zuora.query_more(cursor.query_locator), cursor
        except ZuoraRequestError:
            # A saved locator Zuora no longer takes (it expired, or Zuora forgot it): read the window again from
            # its first page. Pages already queued are queued again and dropped by the sync as duplicates.
            if cursor.restarts >= MAX_RESTARTS:
                raise
            restarted = replace(cursor, query_locator=None, restarts=cursor.restarts + 1)
            return self._zuora.query(self._query(restarted)), restarted

    def _query(self, cursor: SweepCursor) -> str:
        return changes_query(self._mapping, cursor.object_type, cursor.since, cursor.until)

    def _changes(self, object_type: str, page: QueryPage) -> tuple[list[QueuedChange], list[Malformed]]:
        received_at = self._clock()
        changes: list[QueuedChange] = []
        malformed: list[Malformed] = []
        for record in page.records:
            try:
                changes.append(
                    change_from_record(self._mapping, object_type, record, received_at=received_at, source=self._source)
                )
            except (MappingError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                record_id = record.get("Id")
                malformed.append(Malformed(record_id if isinstance(record_id, str) else None, str(exc)[:300]))
        return changes, malformed
