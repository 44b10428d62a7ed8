"""The stand-in's deletes and reads by external ID: sObject Collections delete and sObject Rows by External ID GET.

Written from the REST API Developer Guide: "Delete Records Using sObject Collections"
(``DELETE /composite/sobjects?ids=id1,id2&allOrNone=false``: up to 200 Ids of any sObjects, one DeleteResult per
Id in the order given, 200 OK when the request is well formed, 400 when it is not) and "Get Records Using sObject
Rows by External ID" (``GET /sobjects/{SObject}/{ExternalIdField}/{value}``: the record, or 404 NOT_FOUND).
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import parse_qs

from nrtsync_local.salesforce.answers import error_list, not_found, record_error
from nrtsync_local.salesforce.records import RecordStore, find_id
from nrtsync_local.standin.server import Answer

MAX_DELETE_IDS = 200
_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def delete_collection(store: RecordStore, query: str, records_per_call: list[int]) -> Answer:
    """``DELETE /composite/sobjects?ids=...``, standalone or as a Composite subrequest.

    Per Id: ``{"id", "success": true, "errors": []}``; an Id in the recycle bin (deleted before) answers
    ENTITY_IS_DELETED, an Id the org never had INVALID_CROSS_REFERENCE_KEY, a malformed one MALFORMED_ID.
    Deleting a parent deletes the children whose field to it cascades (a master-detail, or a lookup with cascade
    delete, as the package metadata says: ``zuora360_package.json``, ``deleteConstraint``), which land in the
    recycle bin too, and clears every other field that names it ("Clear the value of this field", a lookup's
    default: Salesforce Help, "Object Relationships Overview"). A lookup set to "Don't allow deletion" would
    answer DELETE_FAILED: not modelled.
    """
    params = parse_qs(query, keep_blank_values=True)
    ids = [value for raw in params.get("ids", []) for value in raw.split(",") if value]
    if not ids:
        return Answer(400, error_list("MISSING_ARGUMENT", "ids parameter is required"))
    if len(ids) > MAX_DELETE_IDS:
        message = "record limit reached. cannot submit more than 200 records into this call"
        return Answer(400, error_list("EXCEEDED_ID_LIMIT", message))
    all_or_none = params.get("allOrNone", ["false"])[-1].lower() == "true"
    snapshot = copy.deepcopy(store.by_sobject) if all_or_none else None
    records_per_call.append(len(ids))
    results = [_delete_one(store, record_id) for record_id in ids]
    if snapshot is not None and not all(result["success"] for result in results):
        store.by_sobject = snapshot
        results = [
            result
            if not result["success"]
            else record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )
            for result in results
        ]
    else:
        store.recycle_bin.update(result["id"] for result in results if result["success"])
    return Answer(200, results)


def _delete_one(store: RecordStore, record_id: str) -> dict[str, Any]:
    if not _SALESFORCE_ID.match(record_id):
        return record_error("MALFORMED_ID", f"malformed id {record_id}")
    for records in store.by_sobject.values():
        if record_id in records:
            del records[record_id]
            _cascade(store, record_id)
            return {"id": record_id, "success": True, "errors": []}
    if record_id in store.recycle_bin:
        return record_error("ENTITY_IS_DELETED", "entity is deleted")
    return record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")


def _cascade(store: RecordStore, parent_id: str) -> None:
    """Deletes the children whose relationship to ``parent_id`` cascades; clears the other fields naming it."""
    doomed: list[str] = []
    for sobject, records in store.by_sobject.items():
        package = store.config.package.get(sobject, {})
        for child_id, fields in records.items():
            for name, value in fields.items():
                if name == "Id" or value != parent_id:
                    continue
                spec = package.get(name)
                if spec is not None and spec.delete_constraint == "Cascade":
                    doomed.append(child_id)
                else:
                    fields[name] = None
    for child_id in doomed:
        for records in store.by_sobject.values():
            if records.pop(child_id, None) is not None:
                store.recycle_bin.add(child_id)
                _cascade(store, child_id)


def get_by_external_id(store: RecordStore, sobject: str, ext_field: str, value: str) -> Answer:
    """``GET /sobjects/{SObject}/{ExternalIdField}/{value}``: the record with its ``attributes``, or 404."""
    if sobject not in store.config.sobjects:
        return not_found()
    records = store.by_sobject.get(sobject, {})
    record_id = find_id(records, ext_field, value)
    if record_id is None:
        return not_found()
    return Answer(200, {"attributes": {"type": sobject}, **copy.deepcopy(records[record_id])})
