"""Deletes whose callout was lost: found by comparing Zuora's Ids with what the state table says was written.

ZOQL returns no deleted records, so neither reconciliation nor the backfill sees a delete whose callout Zuora gave
up on, and the Salesforce record would stay for ever. This sweep, on a slower schedule than reconciliation, reads
what this product wrote of each mapped object (the state table) and then every Id Zuora still has
(``select Id from <Object>``, paged); each written record Zuora no longer has becomes a DELETE change on the
callout queue, through the same sync path as a delete callout (tombstone, newest wins). Zuora's Ids are those of
current versions only, so with ``versions.superseded`` ``delete`` a version whose ``Expired`` callout was lost is one
Zuora no longer has, and its record goes the same way. The state is read first:
a record created in Zuora while the Ids are paged is then not yet among the written ones, so it is never taken
for deleted. A record written to Salesforce by someone else is not in the state table and is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.zoql import ID_FIELD, RECONCILE_SOURCE, ids_query
from nrtsync.ports.sweep import ChangeSink
from nrtsync.ports.written import WrittenRecords
from nrtsync.ports.zuora import ZuoraPort


@dataclass
class LostDeletesReport:
    object_type: str
    written: int = 0
    in_zuora: int = 0
    queued: int = 0
    finished: bool = False


class LostDeletes:
    """The lost-deletes sweep of every mapped object."""

    def __init__(
        self,
        *,
        zuora: ZuoraPort,
        written: WrittenRecords,
        sink: ChangeSink,
        mapping: MappingConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._zuora = zuora
        self._written = written
        self._sink = sink
        self._mapping = mapping
        self._clock = clock
        self._monotonic = monotonic

    def run(self, *, deadline: float) -> list[LostDeletesReport]:
        """Children first (a child's delete before its parent's, as the sync orders deletes); stops at
        ``deadline`` (monotonic) before an object it could not finish. Raises the Zuora client's errors."""
        reports = []
        for object_type in reversed(self._mapping.write_order()):
            if self._monotonic() >= deadline:
                break
            reports.append(self._sweep(object_type, deadline))
        return reports

    def _sweep(self, object_type: str, deadline: float) -> LostDeletesReport:
        report = LostDeletesReport(object_type)
        written = self._written.written_record_ids(object_type)
        report.written = len(written)
        if not written:
            report.finished = True
            return report
        listed = self._zuora_keys(object_type, deadline)
        if listed is None:
            return report  # out of time: an unfinished list of Ids must never delete anything
        present, report.in_zuora = listed
        now = self._clock()
        gone = sorted(written - present)
        changes = [self._delete(object_type, record_id, now) for record_id in gone]
        if changes:
            self._sink.send_batch(changes)
        report.queued, report.finished = len(changes), True
        return report

    def _by_key(self, object_type: str) -> str | None:
        """The field naming a versioned object's one record across versions; None when records go by Id."""
        versions = self._mapping.objects[object_type].versions
        return versions.key if versions is not None and not versions.per_version else None

    def _names(self, object_type: str) -> tuple[str, ...]:
        """The fields of Zuora's records that name a written record."""
        versions = self._mapping.objects[object_type].versions
        if versions is None:
            return (ID_FIELD,)
        # A record per version is named by its Id; a record written before a switch to that mode is named by the
        # subscription number, and stays while the subscription has a current version (its record carries the
        # current version's Id, which the per-version upsert finds).
        return (ID_FIELD, versions.key) if versions.per_version else (versions.key,)

    def _zuora_keys(self, object_type: str, deadline: float) -> tuple[set[str], int] | None:
        """The names of the records Zuora has, and how many records it listed."""
        names = self._names(object_type)
        keys: set[str] = set()
        listed = 0
        page = self._zuora.query(ids_query(self._mapping, object_type))
        while True:
            listed += len(page.records)
            keys.update(str(record[name]) for record in page.records for name in names if record.get(name))
            if page.done or not page.query_locator:
                return keys, listed
            if self._monotonic() >= deadline:
                return None
            page = self._zuora.query_more(page.query_locator)

    def _delete(self, object_type: str, record_id: str, now: datetime) -> QueuedChange:
        key = self._by_key(object_type)
        # A subscription kept as one record is named by its number: its delete carries it, as a delete callout would.
        fields = {key: record_id} if key is not None else {}
        return QueuedChange(
            object_type=object_type,
            record_id=record_id,
            updated_date=now,
            change_type="DELETE",
            fields=fields,
            notification_id=f"{RECONCILE_SOURCE}:{object_type}:{record_id}:deleted:{now.isoformat()}",
            received_at=now,
        )
