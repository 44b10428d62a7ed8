"""Two different changes of a record with one ``UpdatedDate``: Zuora's dates have whole seconds, so two changes in
one second share it, and our receive time, which orders them, need not be Zuora's order.

When Zuora is configured (the sync function can read the Zuora secret), the record's current values are read from
Zuora by its Id (one ZOQL query) and written instead of either change. Otherwise, or when that read fails, the
later receive is written and the record is marked for the next reconcile run to read it again (``RecordLeases``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.mapping import MappingConfig, MappingError
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.zuora import ZuoraError
from nrtsync.domain.versions import VERSION_ID_FIELD
from nrtsync.domain.zoql import change_from_record, record_query
from nrtsync.observability import logger
from nrtsync.ports.secrets import SecretInvalidError, SecretUnavailableError
from nrtsync.ports.zuora import ZuoraPort
from nrtsync.services.sync.leases import RecordLeases


class SameSecondChanges:
    """Replaces a claimed change that ties with the written version by Zuora's current values, when it can."""

    def __init__(self, *, mapping: MappingConfig, leases: RecordLeases, zuora: ZuoraPort | None) -> None:
        self._mapping = mapping
        self._leases = leases
        self._zuora = zuora

    def resolve(self, claimed: Sequence[IncomingChange]) -> list[IncomingChange]:
        """``claimed``, each tie replaced by Zuora's current values where they could be read."""
        if self._zuora is None:
            return list(claimed)
        resolved: list[IncomingChange] = []
        for incoming in claimed:
            key = incoming.change.record_key
            current = self._current(self._zuora, incoming.change) if self._leases.ties_written(key) else None
            if current is None:
                resolved.append(incoming)
            else:
                self._leases.tie_settled(key)
                resolved.append(replace(incoming, change=current))
        return resolved

    def _current(self, zuora: ZuoraPort, change: QueuedChange) -> QueuedChange | None:
        try:
            # A subscription is keyed by its number; Zuora reads the version by its own Id (nrtsync.domain.versions).
            zuora_id = str(change.fields.get(VERSION_ID_FIELD) or change.record_id)
            page = zuora.query(record_query(self._mapping, change.object_type, zuora_id))
            record = next((r for r in page.records if r.get("Id") == zuora_id), None)
            if record is None:
                logger.warning("record not found in Zuora; marked for reconcile", extra={"record": change.record_key})
                return None
            current = change_from_record(self._mapping, change.object_type, record, received_at=change.received_at)
        except (ZuoraError, SecretUnavailableError, SecretInvalidError, MappingError, ValueError) as exc:
            # The fallback is safe: the later receive is written and the next reconcile run reads the record.
            logger.warning(
                "Zuora not read for a same-second change; marked for reconcile",
                extra={"record": change.record_key, "error": f"{type(exc).__name__}: {exc}"},
            )
            return None
        # Zuora's values and date, under the callout's identity (its notification id is what Zuora retries).
        return current.model_copy(update={"notification_id": change.notification_id, "request_id": change.request_id})
