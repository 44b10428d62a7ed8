"""Zuora 360's sObject fields, generated from the package metadata file, and Salesforce's deserialization of a
JSON value into a field's type.

Where the fields come from: ``zuora360_package.json`` beside this module lists, per field, its type, whether it is
required, a master-detail or lookup (with its delete constraint), an External ID, unique, or labelled deprecated,
and the sources each fact was read from (Zuora's field-mapping documentation, an Enterprise WSDL of an org with
Zuora 360, the reference notes); what no source confirmed is written there as an assumption. Nothing here is
typed by hand: change the data file, and the stand-in, the mapping test and the docs' field table follow.

How Salesforce deserializes a record: the REST API reads the request body with a typed JSON parser before any
record is processed, so a value that does not fit its field's type refuses the whole request with
``400 [{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize instance of date from VALUE_STRING
value X or request may be missing a required field at [line:1, column:N]"}]`` (the message text as Salesforce
answers it; Status Codes and Error Responses, REST API Developer Guide). Accepted formats follow "Valid Date
and DateTime Formats": a date is ``yyyy-MM-dd`` and "specifying an offset for date is not supported"; a
dateTime is ``yyyy-MM-ddTHH:mm:ss`` with an optional ``.SSS`` (at most 3 digits) and ``Z`` or an offset, which
the stand-in requires, because a dateTime without one names no instant. Assumed: numeric text ("12.50") is
accepted for a number, ``"true"``/``"false"`` for a checkbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

SalesforceType = Literal["string", "double", "boolean", "date", "datetime", "reference"]
Relationship = Literal["masterDetail", "lookup"]
DeleteConstraint = Literal["Cascade", "SetNull", "Restrict"]

PACKAGE_METADATA_PATH = Path(__file__).with_name("zuora360_package.json")


@dataclass(frozen=True)
class PackageField:
    """One field of the package's metadata, as ``zuora360_package.json`` describes it."""

    type: SalesforceType
    required: bool = False
    relationship: Relationship | None = None
    reference_to: str | None = None
    relationship_name: str | None = None
    delete_constraint: DeleteConstraint | None = None
    external_id: bool = False
    unique: bool = False
    deprecated: bool = False
    sources: tuple[str, ...] = ()
    assumption: str | None = None

    @property
    def master_detail(self) -> bool:
        return self.relationship == "masterDetail"


def _package_field(raw: dict[str, Any]) -> PackageField:
    return PackageField(
        type=raw["type"],
        required=bool(raw.get("required", False)),
        relationship=raw.get("relationship"),
        reference_to=raw.get("referenceTo"),
        relationship_name=raw.get("relationshipName"),
        delete_constraint=raw.get("deleteConstraint"),
        external_id=bool(raw.get("externalId", False)),
        unique=bool(raw.get("unique", False)),
        deprecated=bool(raw.get("deprecated", False)),
        sources=tuple(raw.get("sources", ())),
        assumption=raw.get("assumption"),
    )


def load_package(path: Path = PACKAGE_METADATA_PATH) -> dict[str, dict[str, PackageField]]:
    """sObject -> field -> its metadata, read from the package metadata file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        sobject: {name: _package_field(spec) for name, spec in fields.items()}
        for sobject, fields in raw["objects"].items()
    }


ZUORA_360_PACKAGE = load_package()
ZUORA_360_FIELDS: dict[str, dict[str, SalesforceType]] = {
    sobject: {name: spec.type for name, spec in fields.items()} for sobject, fields in ZUORA_360_PACKAGE.items()
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _token(value: Any) -> str:
    """The JSON parser's token name for a value, as Salesforce's message spells it."""
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    tokens = ((int, "VALUE_NUMBER_INT"), (float, "VALUE_NUMBER_FLOAT"), (list, "START_ARRAY"), (dict, "START_OBJECT"))
    return next((token for kind, token in tokens if isinstance(value, kind)), "VALUE_STRING")


def _fits_boolean(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))


def _fits_double(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and bool(_NUMBER.match(value.strip())))


def _fits_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def _fits_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])
    except ValueError:
        return False
    return True


_FITS: dict[SalesforceType, Callable[[Any], bool]] = {
    "string": lambda value: True,  # a scalar is taken as its text
    "reference": lambda value: True,  # parsed as text; a malformed Id fails the record, not the request
    "boolean": _fits_boolean,
    "double": _fits_double,
    "date": _fits_date,
    "datetime": _fits_datetime,
}


def _fits(value: Any, field_type: SalesforceType) -> bool:
    if value is None:
        return True  # null clears the field
    return not isinstance(value, list | dict) and _FITS[field_type](value)


def deserialization_error(
    fields: dict[str, SalesforceType], records: list[dict[str, Any]], body_prefix: int = 0
) -> str | None:
    """Salesforce's JSON_PARSER_ERROR message for the first value in ``records`` that does not fit its field's type,
    or None if every value fits. Fields not in ``fields`` are not checked. The column is where the value ends in
    the records' compact JSON, after ``body_prefix`` characters of the body before the records (approximate)."""
    column = body_prefix
    for record in records:
        column += 1  # "{" or ","
        for name, value in record.items():
            encoded = json.dumps(value, separators=(",", ":"))
            column += len(json.dumps(name)) + 1 + len(encoded) + 1
            field_type = fields.get(name)
            if field_type is None or _fits(value, field_type):
                continue
            shown = value if isinstance(value, str) else encoded
            return (
                f"Cannot deserialize instance of {field_type} from {_token(value)} value {shown} "
                f"or request may be missing a required field at [line:1, column:{column}]"
            )
    return None


# A record Id: 15 case-sensitive characters, or 18 with the case-safe suffix (Salesforce Help, "What is a
# Salesforce ID").
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
# Every custom object has a Name, and a text Name is required (Salesforce Help, "Custom Object Record Name").
REQUIRED_FIELDS = ("Name",)


def record_field_error(fields: dict[str, SalesforceType], record: dict[str, Any]) -> tuple[str, str, list[str]] | None:
    """The per-record error Salesforce gives once a request has parsed: a lookup holding something that is not a
    record Id (``MALFORMED_ID``, as for ``"null"`` written into an Id field), or a required field cleared with
    null (``REQUIRED_FIELD_MISSING``); None if the record is fine. REST API Developer Guide, "Status Codes and
    Error Responses", and SOAP API Developer Guide, "StatusCode", for the codes.

    Kinder than Salesforce, on purpose: a new record without a ``Name`` at all is accepted (Salesforce refuses
    it), because the tests seed and upsert bare records; the sync never sends a Name-less insert of its own
    accord, only a Name cleared by an empty merge field, which is refused here as there."""
    for name, value in record.items():
        if fields.get(name) == "reference" and value is not None and not _RECORD_ID.match(str(value)):
            return "MALFORMED_ID", f"{name}: id value of incorrect type: {value}", [name]
    cleared = [name for name in REQUIRED_FIELDS if name in fields and name in record and record[name] in (None, "")]
    if cleared:
        return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared
    return None


def master_detail_error(
    package_fields: dict[str, PackageField], record: dict[str, Any], *, inserting: bool
) -> tuple[str, str, list[str]] | None:
    """``REQUIRED_FIELD_MISSING`` for a master-detail field left out of a new record or cleared with null on any
    write (a master-detail is required and cannot be cleared: Salesforce Help, "Object Relationships Overview");
    None if the record keeps its masters. ``record`` holds the resolved lookup fields (``Foo__c``, not ``Foo__r``)."""
    masters = [name for name, spec in package_fields.items() if spec.master_detail]
    missing = [name for name in masters if (inserting and name not in record) or record.get(name, "-") in (None, "")]
    if missing:
        return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
    return None


def not_an_external_id(package_fields: dict[str, PackageField], sobject: str, field: str) -> str | None:
    """The message Salesforce refuses an upsert with when ``field`` is not an External ID of ``sobject``, or None.
    Only fields the package metadata knows are judged: an sObject it does not describe is not checked."""
    if not package_fields or (field in package_fields and package_fields[field].external_id):
        return None
    return f"Field name provided, {field} is not an External ID or indexed field for {sobject}"
