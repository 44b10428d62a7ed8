"""The stand-in's record store: Salesforce-style Ids, upsert by external ID, parent lookups, field checks."""

from __future__ import annotations

import copy
import random
import string
import zlib
from typing import Any

from nrtsync_local.salesforce.answers import error_list, record_error
from nrtsync_local.salesforce.config import StandinConfig
from nrtsync_local.salesforce.faults import Faults
from nrtsync_local.salesforce.schema import deserialization_error, master_detail_error, record_field_error
from nrtsync_local.standin.server import Answer

_KNOWN_KEY_PREFIXES = {"Account": "001", "Contact": "003", "User": "005", "Organization": "00D"}
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_COLLECTION_BODY_PREFIX = '{"allOrNone":false,"records":['

Records = dict[str, dict[str, Any]]  # record Id -> fields, for one sObject


def salesforce_id(key_prefix: str, number: int) -> str:
    """An 18-character Salesforce-style Id: key prefix, padded base62 number, case-safe checksum suffix."""
    digits = ""
    while True:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
        if number == 0:
            break
    id15 = (key_prefix + "5g" + digits.rjust(10, "0"))[:15]
    suffix = ""
    for chunk_start in range(0, 15, 5):
        chunk = id15[chunk_start : chunk_start + 5]
        flags = sum(1 << position for position, char in enumerate(chunk) if char.isupper())
        suffix += _ID_SUFFIX_ALPHABET[flags]
    return id15 + suffix


def key_prefix_for(sobject: str) -> str:
    """Standard objects keep their real prefix; custom objects get a stable ``a..`` prefix."""
    if sobject in _KNOWN_KEY_PREFIXES:
        return _KNOWN_KEY_PREFIXES[sobject]
    crc = zlib.crc32(sobject.encode())
    return "a" + _BASE62[crc % 62] + _BASE62[(crc // 62) % 62]


def lookup_field_for(relationship: str) -> str:
    """The lookup field behind a relationship name: ``Foo__r`` -> ``Foo__c``, ``Account`` -> ``AccountId``."""
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def find_id(records: Records, field_name: str, value: Any) -> str | None:
    for record_id, fields in records.items():
        if fields.get(field_name) == value:
            return record_id
    return None


def find_ids(records: Records, field_name: str, value: Any) -> list[str]:
    """Every record whose ``field_name`` holds ``value``: more than one only for a non-unique external id."""
    return [record_id for record_id, fields in records.items() if fields.get(field_name) == value]


def _matching_record(staged: Records, ext_field: str, ext_value: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The record an upsert updates (None: it inserts), or the refusal when a non-unique External ID matches
    several: Salesforce cannot tell which one to update."""
    matches = find_ids(staged, ext_field, ext_value)
    if len(matches) > 1:
        message = f"{ext_field}: more than one record found for external id field: [{', '.join(matches)}]"
        return None, record_error("DUPLICATE_EXTERNAL_ID", message, [ext_field])
    return (matches[0] if matches else None), None


class RecordStore:
    """Records in memory, per sObject. Not locked: the stand-in's state calls it under its own lock."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.by_sobject: dict[str, Records] = {}
        self.recycle_bin: set[str] = set()  # Ids deleted: a second delete answers ENTITY_IS_DELETED
        self._id_counter = 0

    def listing(self, sobject: str) -> dict[str, Any]:
        stored = list(copy.deepcopy(self.by_sobject.get(sobject, {})).values())
        return {"sobject": sobject, "totalSize": len(stored), "records": stored}

    def clear(self) -> None:
        """Forgets every record; Ids keep counting, so an Id is never given twice."""
        self.by_sobject.clear()

    def check_records(self, sobject: str, records: list[dict[str, Any]]) -> Answer | None:
        """The refusal of a whole request whose records Salesforce would not deserialize, or None."""
        for record in records:
            attributes = record.get("attributes")
            if not isinstance(attributes, dict) or not attributes.get("type"):
                return Answer(400, error_list("INVALID_TYPE", "Must send a concrete entity type in the attributes map"))
            if attributes["type"] != sobject:
                return Answer(
                    400,
                    error_list("INVALID_TYPE", f"Entity type {attributes['type']} does not match {sobject} in the URI"),
                )
            for name, value in record.items():
                if isinstance(value, dict) and name != "attributes" and name not in self.config.relationships:
                    return Answer(
                        400,
                        error_list(
                            "INVALID_FIELD",
                            f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom "
                            "relationship, be sure to append the '__r' after the custom relationship name.",
                        ),
                    )
        # Salesforce deserializes the whole body into typed records before it processes any: one value that does
        # not fit its field refuses the request (a Composite subrequest alone), not the record. REST API Developer
        # Guide, "Status Codes and Error Responses" (400, JSON_PARSER_ERROR); nrtsync_local/salesforce/schema.py.
        message = deserialization_error(self.config.fields.get(sobject, {}), records, len(_COLLECTION_BODY_PREFIX))
        if message is not None:
            return Answer(400, error_list("JSON_PARSER_ERROR", message))
        return None

    def upsert_one(
        self,
        sobject: str,
        ext_field: str,
        record: dict[str, Any],
        staged: Records,
        duplicates: set[Any],
        *,
        faults: Faults,
        rng: random.Random,
    ) -> dict[str, Any]:
        """Upserts ``record`` into ``staged`` (the sObject's records, or a copy of them); its result entry."""
        ext_value = record.get(ext_field)
        if ext_value is None or ext_value == "":
            return record_error("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
        if ext_value in duplicates:
            return record_error("DUPLICATE_VALUE", f"Duplicate external id specified: {ext_value}", [ext_field])
        existing_id, refusal = _matching_record(staged, ext_field, ext_value)
        refusal = refusal or faults.record_refusal(sobject, str(ext_value), existing_id, record, rng)
        if refusal is not None:
            return refusal
        fields = self._record_fields(sobject, record, staged, existing_id=existing_id)
        if "success" in fields:  # a parent lookup, a field or a master-detail failed: that is the record's result
            return fields
        if existing_id is not None:
            staged[existing_id].update(fields)
            return {"id": existing_id, "success": True, "errors": [], "created": False}
        self._id_counter += 1
        new_id = salesforce_id(key_prefix_for(sobject), self._id_counter)
        staged[new_id] = {"Id": new_id, **fields}
        return {"id": new_id, "success": True, "errors": [], "created": True}

    def _record_fields(
        self,
        sobject: str,
        record: dict[str, Any],
        staged: Records,
        *,
        existing_id: str | None = None,
    ) -> dict[str, Any]:
        """The fields to store, parent references resolved to lookup Ids; or the record's error result."""
        fields: dict[str, Any] = {}
        for name, value in record.items():
            if name == "attributes":
                continue
            if isinstance(value, dict):
                resolved = self._resolve_parent(name, value, sobject, staged)
                if isinstance(resolved, dict):
                    return resolved
                fields[lookup_field_for(name)] = resolved
            else:
                fields[name] = value
        schema_error = record_field_error(self.config.fields.get(sobject, {}), fields)
        if schema_error is None and self.config.enforce_master_detail:
            package_fields = self.config.package.get(sobject, {})
            schema_error = master_detail_error(package_fields, fields, inserting=existing_id is None)
        return fields if schema_error is None else record_error(*schema_error)

    def _resolve_parent(
        self, relationship: str, reference: dict[str, Any], sobject: str, staged: Records
    ) -> str | dict[str, Any]:
        """The parent's Id for ``Rel__r: {ExtField: value}``, or the per-record error Salesforce gives."""
        parent_sobject = self.config.relationships[relationship]
        keys = [key for key in reference if key != "attributes"]
        if len(keys) != 1:
            return record_error(
                "INVALID_FIELD", f"Foreign key reference {relationship} must name exactly one external ID field", []
            )
        ref_field, ref_value = keys[0], reference[keys[0]]
        parents = staged if parent_sobject == sobject else self.by_sobject.get(parent_sobject, {})
        parent_id = find_id(parents, ref_field, ref_value)
        if parent_id is None:
            return record_error(
                "INVALID_FIELD",
                f"Foreign key external ID: {ref_value} not found for field {ref_field} in entity {parent_sobject}",
                [],
            )
        return parent_id
