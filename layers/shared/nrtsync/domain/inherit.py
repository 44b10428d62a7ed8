"""Fields a child takes from its parent (the mapping's ``inherit``), e.g. Zuora 360's ``Zuora__Account__c``.

Zuora 360 links subscriptions, invoices and payments to the Salesforce Account of their billing account, so
they appear in the Account's related lists. That Account is the billing account's ``CrmId``. A child's
callout can carry it (``{{DataSource.Account.CrmId}}`` in the child's template); when it does not, the child
takes the value the parent's last written change had, which the sync keeps in the state table with the
parent's version. When neither is known the field is left out of the record, so Salesforce keeps what it has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import FieldValue, QueuedChange, is_empty, record_key_of

KnownValues = Mapping[str, Mapping[str, str | None]]
"""Parent record key -> {inherited field: the parent's value (None: it had it empty)}."""


def kept_of(mapping: MappingConfig, change: QueuedChange) -> dict[str, str | None]:
    """The values of a change that children inherit, to keep with its version once it is written.

    Only fields the change carries: a callout without the field leaves what is kept as it was. The value is
    kept as the callout had it; a child converts it with the parent's field spec, so both write the same.
    """
    names = mapping.kept_fields(change.object_type)
    return {name: _as_text(change.fields[name]) for name in names if name in change.fields}


def parents_to_read(mapping: MappingConfig, changes: Iterable[QueuedChange]) -> set[str]:
    """The parents' record keys whose kept values the changes need (their callouts lack the field)."""
    return {key for change in changes for key, _ in _missing(mapping, change)}


def known_values(mapping: MappingConfig, writing: Iterable[QueuedChange], stored: KnownValues) -> KnownValues:
    """What is known of each parent: the stored values, overridden by a parent change being written in this
    batch (it is newer than what is stored, or it would not have been claimed)."""
    known = {key: dict(values) for key, values in stored.items()}
    for change in writing:
        kept = kept_of(mapping, change)
        if kept:
            known.setdefault(change.record_key, {}).update(kept)
    return known


def with_inherited(mapping: MappingConfig, change: QueuedChange, known: KnownValues) -> dict[str, FieldValue]:
    """The change's fields plus each inherited field its callout lacks and its parent's values know."""
    fields: dict[str, FieldValue] = dict(change.fields)
    for key, name in _missing(mapping, change):
        values = known.get(key, {})
        if name in values:
            fields[name] = values[name]
    return fields


def _missing(mapping: MappingConfig, change: QueuedChange) -> list[tuple[str, str]]:
    """(parent record key, field) for each inherited field the change's callout does not carry."""
    obj = mapping.objects.get(change.object_type)
    if obj is None:
        return []
    missing = []
    for name, inherited in obj.inherit.items():
        parent_id = change.fields.get(inherited.via)
        if name in change.fields or is_empty(parent_id):
            continue
        missing.append((record_key_of(obj.parents[inherited.via].object, str(parent_id)), name))
    return missing


def _as_text(value: FieldValue) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)
