"""ZOQL from the mapping, Zuora's query records as the canonical changes a callout produces, and paging.

Pure: no HTTP here (the client is ``adapters/zuora.py`` behind ``ports.zuora.ZuoraPort``).

ZOQL has no ORDER BY ("ZOQL does not support sorting results in ascending or descending order", and "the query
responses returned by ZOQL do not have a guaranteed sort order": docs.zuora.com, Legacy query methods > ZOQL).
So a page is not in ``UpdatedDate`` order and a caller must not advance a watermark record by record: it may
advance it to ``until`` only once every page of the window is read. The sync orders changes by version anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nrtsync.domain.mapping import MappingConfig, MappingError
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.zuora import ZuoraRecord
from nrtsync.domain.versions import rekey
from nrtsync.domain.zuora_dates import ZuoraDateError, parse_zuora_datetime

RECONCILE_SOURCE = "reconcile"
BACKFILL_SOURCE = "backfill"
CALLOUT_SOURCE = "callout"
SWEEP_SOURCES = (RECONCILE_SOURCE, BACKFILL_SOURCE)
RECONCILE_NOTIFICATION_PREFIX = f"{RECONCILE_SOURCE}:"
"""A change read from Zuora's API, not received as a callout, has a ``notification_id`` that starts with its
source (``reconcile:`` or ``backfill:``): the mark travels with the change on the queue and into its trail, and
needs no new field in the queue message (a sync function of the previous version reads it unchanged)."""

ID_FIELD = "Id"
UPDATED_FIELD = "UpdatedDate"


def queried_fields(mapping: MappingConfig, object_type: str) -> list[str]:
    """``Id``, ``UpdatedDate``, then the object's mapped fields and parent id fields, in mapping order.

    Inherited fields are not the child's own Zuora fields (they come from the parent), so they are not queried.
    """
    obj = mapping.objects[object_type]
    fields = [ID_FIELD, UPDATED_FIELD]
    versioned = [obj.versions.key, obj.versions.rank] if obj.versions else []
    for name in [*obj.fields, *obj.parents, *versioned]:
        if name not in fields:
            fields.append(name)
    return fields


def zoql_datetime(value: datetime) -> str:
    """A ZOQL dateTime literal in UTC with an explicit offset, so the tenant's time zone cannot shift it; whole
    seconds, as Zuora's ZOQL examples write them (``'2024-03-05T10:22:39+00:00'``). A bound is rounded down, so a
    window never skips a record: the sync's versions make a record read twice harmless."""
    if value.tzinfo is None:
        raise ValueError("a ZOQL bound must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="seconds")


def changes_query(mapping: MappingConfig, object_type: str, since: datetime, until: datetime | None = None) -> str:
    """``select <fields> from <Object> where UpdatedDate >= '<since>' [and UpdatedDate < '<until>']``.

    Lower-case keywords, as ZOQL asks ("Use lower case for all keywords", ZOQL syntax). No ORDER BY: see the
    module docstring.
    """
    if object_type not in mapping.objects:
        raise MappingError(f"objectType {object_type!r} is not mapped")
    where = f"{UPDATED_FIELD} >= '{zoql_datetime(since)}'"
    if until is not None:
        if until <= since:
            raise ValueError("until must be after since")
        where += f" and {UPDATED_FIELD} < '{zoql_datetime(until)}'"
    versions = mapping.objects[object_type].versions
    if versions is not None:
        # Only the current version: ZOQL returns every version, and the expired ones are older by definition.
        where += f" and {versions.current}"
    # Names come from the validated mapping (identifier patterns), bounds from zoql_datetime: nothing to quote.
    return f"select {', '.join(queried_fields(mapping, object_type))} from {object_type} where {where}"  # noqa: S608


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ids_query(mapping: MappingConfig, object_type: str) -> str:
    """``select Id from <Object> where UpdatedDate >= '1970-01-01T00:00:00+00:00'``: every Id Zuora still has
    (a versioned object's key too, current versions only), for the lost-deletes sweep. With ``superseded``
    ``delete`` a version that is no longer current is thus one Zuora no longer has: its record goes."""
    obj = mapping.objects.get(object_type)
    if obj is None:
        raise MappingError(f"objectType {object_type!r} is not mapped")
    fields = [ID_FIELD, obj.versions.key] if obj.versions else [ID_FIELD]
    where = f"{UPDATED_FIELD} >= '{zoql_datetime(_EPOCH)}'"
    if obj.versions is not None:
        where += f" and {obj.versions.current}"
    return f"select {', '.join(fields)} from {object_type} where {where}"  # noqa: S608 - names from the mapping


def change_from_record(
    mapping: MappingConfig,
    object_type: str,
    record: ZuoraRecord,
    *,
    received_at: datetime,
    source: str = RECONCILE_SOURCE,
) -> QueuedChange:
    """The canonical change for one query record, as the callout path would queue it.

    Zuora leaves a field whose value is null out of a query record; a callout renders it as null. So every
    queried field missing from the record becomes None, which clears it in Salesforce exactly as a callout would.
    ``notification_id`` (``<source>:<object>:<id>:<updated>``, source ``reconcile`` or ``backfill``) marks the
    change as read from the API: the same record at the same ``UpdatedDate`` read twice gives the same id.
    """
    if source not in SWEEP_SOURCES:
        raise ValueError(f"source must be one of {SWEEP_SOURCES}, not {source!r}")
    record_id = record.get(ID_FIELD)
    updated = record.get(UPDATED_FIELD)
    if not isinstance(record_id, str) or not record_id:
        raise MappingError(f"{object_type} query record has no Id")
    if not isinstance(updated, str):
        raise MappingError(f"{object_type} {record_id}: query record has no UpdatedDate")
    try:
        updated_date = parse_zuora_datetime(updated)
    except ZuoraDateError as exc:
        raise MappingError(f"{object_type} {record_id}: UpdatedDate {exc}") from exc
    if updated_date.tzinfo is None:
        raise MappingError(f"{object_type} {record_id}: UpdatedDate {updated!r} has no offset")
    fields = {name: record.get(name) for name in queried_fields(mapping, object_type)[2:]}
    change = QueuedChange(
        object_type=object_type,
        record_id=record_id,
        updated_date=updated_date,
        fields=fields,
        notification_id=f"{source}:{object_type}:{record_id}:{updated_date.astimezone(UTC).isoformat()}",
        received_at=received_at,
    )
    return rekey(mapping, change)


def change_source(change: QueuedChange) -> str:
    """``callout``, or the sweep that read the change from Zuora's API (``reconcile`` or ``backfill``)."""
    prefix = change.notification_id.split(":", 1)[0]
    return prefix if prefix in SWEEP_SOURCES and ":" in change.notification_id else CALLOUT_SOURCE


def record_query(mapping: MappingConfig, object_type: str, record_id: str) -> str:
    """The ZOQL query that reads one record's current values by its Id (``select <mapped fields> from <Object> where
    Id = '<id>'``). Raises ``MappingError`` for an object the mapping lacks."""
    if object_type not in mapping.objects:
        raise MappingError(f"objectType {object_type!r} is not mapped")
    if not record_id or not record_id.replace("-", "").replace("_", "").isalnum() or not record_id.isascii():
        # A QueuedChange's Id has this shape already (ZuoraId); checked again because it goes inside quotes.
        raise ValueError(f"not a Zuora Id: {record_id!r}")
    fields = ", ".join(queried_fields(mapping, object_type))
    return f"select {fields} from {object_type} where {ID_FIELD} = '{record_id}'"  # noqa: S608 - Id checked above
