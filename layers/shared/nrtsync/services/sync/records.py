"""What a claimed change sends to Salesforce: an upsert's record (with the fields it inherits from its parent),
or the Salesforce Id a delete removes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.inherit import known_values, parents_to_read, with_inherited
from nrtsync.domain.mapping import MappingConfig, MappingError, build_record
from nrtsync.domain.models.salesforce import RecordResult, SalesforceError
from nrtsync.domain.outcomes import ParkReason, RetryReason
from nrtsync.ports.salesforce import SalesforcePort
from nrtsync.ports.state import StateUnavailableError, VersionStore
from nrtsync.services.sync.call_outcomes import CallOutcomes
from nrtsync.services.sync.leases import RecordLeases
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings
from nrtsync.services.sync.settle import Settler

type Pair = tuple[IncomingChange, dict[str, Any]]
"""A claimed change and what goes to Salesforce for it (an upsert's record, or ``{"Id": ...}`` for a delete)."""


class RecordBuilder:
    """The Salesforce record of each claimed upsert."""

    def __init__(
        self, settings: SyncSettings, *, mapping: MappingConfig, state: VersionStore, leases: RecordLeases
    ) -> None:
        self._retry_delay_seconds = settings.retry_delay_seconds
        self._mapping = mapping
        self._state = state
        self._leases = leases
        # Where a dateTime merge field without an offset is local time (the Zuora tenant's zone).
        self._tenant_zone = ZoneInfo(settings.tenant_time_zone)

    def build(self, ledger: SessionLedger, claimed: list[IncomingChange]) -> list[Pair]:
        """The record of each claimed change, with the fields it inherits from its parent; a change that cannot
        be mapped is parked, one whose inherited fields cannot be read waits."""
        wanted = parents_to_read(self._mapping, (i.change for i in claimed))
        try:
            stored = self._state.kept_values(wanted) if wanted else {}
        except StateUnavailableError:
            # Writing without the inherited field would lose it for this change: those wait instead.
            blocked = [i for i in claimed if parents_to_read(self._mapping, [i.change])]
            for incoming in blocked:
                ledger.schedule_retry(incoming, self._retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
            self._leases.release(blocked, owner=ledger.session_id)
            blocked_ids = {i.message_id for i in blocked}
            claimed, stored = [i for i in claimed if i.message_id not in blocked_ids], {}
        known = known_values(self._mapping, (i.change for i in claimed), stored)
        built: list[Pair] = []
        for incoming in claimed:
            change = incoming.change
            try:
                fields = with_inherited(self._mapping, change, known)
                record = build_record(
                    self._mapping, change.object_type, change.record_id, fields, zone=self._tenant_zone
                )
            except MappingError as exc:
                ledger.park(incoming, ParkReason.MAPPING_ERROR, str(exc))
                self._leases.release([incoming], owner=ledger.session_id)
                continue
            built.append((incoming, record))
        return built


class DeleteTargets:
    """The Salesforce Id each claimed delete removes: the one the state table kept, else found by external ID
    (one API call per record, only for records this product never wrote). A record Salesforce does not have is
    done at once: its tombstone is committed without a call."""

    def __init__(
        self,
        settings: SyncSettings,
        *,
        mapping: MappingConfig,
        state: VersionStore,
        salesforce: SalesforcePort,
        leases: RecordLeases,
        calls: CallOutcomes,
        settler: Settler,
        clock: Callable[[], datetime],
    ) -> None:
        self._retry_delay_seconds = settings.retry_delay_seconds
        self._mapping = mapping
        self._state = state
        self._salesforce = salesforce
        self._leases = leases
        self._calls = calls
        self._settler = settler
        self._clock = clock

    def find(self, ledger: SessionLedger, deletes: list[IncomingChange], deadline: float) -> list[Pair]:
        if not deletes:
            return []
        owner = ledger.session_id
        try:
            kept = self._state.salesforce_ids([i.change.record_key for i in deletes])
        except StateUnavailableError:
            for incoming in deletes:
                ledger.schedule_retry(incoming, self._retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
            self._leases.release(deletes, owner=owner)
            return []
        targets: list[Pair] = []
        for incoming in deletes:
            change = incoming.change
            salesforce_id = kept.get(change.record_key)
            if salesforce_id is None:
                if self._calls.stopped(ledger):
                    self._calls.not_sent(ledger, [incoming])
                    self._leases.release([incoming], owner=owner)
                    continue
                obj = self._mapping.objects[change.object_type]
                try:
                    salesforce_id = self._salesforce.find_id(
                        obj.sobject, obj.external_id_field, change.record_id, deadline=deadline
                    )
                except SalesforceError as exc:
                    self._calls.failed(ledger, [incoming], exc)
                    self._leases.release([incoming], owner=owner)
                    continue
                self._calls.answered(ledger)
                if salesforce_id is None:
                    self._settler.settle(ledger, [(incoming, RecordResult(success=True))], self._clock())
                    continue
            targets.append((incoming, {"Id": salesforce_id}))
        return targets
