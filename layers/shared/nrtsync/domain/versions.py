"""Records Zuora keeps in versions (subscriptions): one record per subscription number, newest version winning.

Zuora gives every version of a subscription a new Id: an amendment creates version N+1, and the earlier versions
become ``Expired``; an INSERT or UPDATE event fires for each. Zuora 360's "single subscription" option upserts on
``Zuora__SubscriptionNumber__c``, an External ID that does not change across versions, and so does the default
mapping (in Zuora's objects the number is the subscription's ``Name``). A change is therefore rekeyed before
anything else happens to it: its ``record_id`` becomes the subscription number (the state table, the coalescing
and the upsert all use it), the version's own Id moves to the field ``Id`` (written to ``copyIdTo``), and its
``rank`` is the ``Version``, which orders versions before ``UpdatedDate`` does. So version 1's ``Expired``
update arriving after version 2 is stale, whatever its date.

With ``versions.superseded`` ``delete`` (Zuora 360's default sync) each version is its own record instead, keyed by
its own Id, and a version's change that fails the ``current`` condition (version 1's ``Expired`` update on
amendment) becomes that version's delete: the same path as a delete callout, so its tombstone keeps a late callout
of version 1's earlier, current state from bringing the record back.
"""

from __future__ import annotations

from nrtsync.domain.mapping import MappingConfig, MappingError, VersionedRecords
from nrtsync.domain.models.callout import QueuedChange, is_empty

VERSION_ID_FIELD = "Id"
_DELETE_RANK = 10**9 - 1


def rekey(mapping: MappingConfig, change: QueuedChange) -> QueuedChange:
    """The change keyed by its record's version key and ranked by its version; unchanged for other objects, for
    a change already rekeyed, and for a delete that does not name the key (Salesforce has no record under the
    version's Id, so it settles as already gone). With ``superseded`` ``delete``: keyed by its own Id as it came,
    and a delete when the version is no longer current."""
    obj = mapping.objects.get(change.object_type)
    if obj is None or obj.versions is None or change.rank is not None:
        return change
    if obj.versions.per_version:
        return _superseded_as_delete(obj.versions, change)
    key = change.fields.get(obj.versions.key)
    if is_empty(key):
        if change.is_delete:
            return change
        raise MappingError(
            f"{change.object_type} {change.record_id}: no {obj.versions.key} (the callout template must carry it)"
        )
    rank_value = change.fields.get(obj.versions.rank)
    try:
        rank = 0 if is_empty(rank_value) or change.is_delete else int(float(str(rank_value)))
    except ValueError as exc:
        raise MappingError(f"{change.object_type} {change.record_id}: {obj.versions.rank} {rank_value!r}") from exc
    return change.model_copy(
        update={
            "record_id": str(key),
            "fields": {**change.fields, VERSION_ID_FIELD: change.record_id},
            # Deleting the subscription removes its record whichever version the delete names.
            "rank": _DELETE_RANK if change.is_delete else max(rank, 0),
        }
    )


def _superseded_as_delete(versions: VersionedRecords, change: QueuedChange) -> QueuedChange:
    """A version that is no longer current, as the delete of its own record (``superseded`` ``delete``)."""
    if not change.is_delete:
        if versions.current_field not in change.fields:
            # Without it an expired version could not be told from a current one, and its record would stay.
            raise MappingError(
                f"{change.object_type} {change.record_id}: no {versions.current_field} "
                "(the callout template must carry it)"
            )
        if versions.is_current(change.fields):
            return change
    # Ranked as a delete is in the other mode: it then also ends a record written, before a switch of mode, as the
    # subscription's one record (with ranked versions), and a version once deleted is never current again.
    return change.model_copy(update={"change_type": "DELETE", "rank": _DELETE_RANK})
