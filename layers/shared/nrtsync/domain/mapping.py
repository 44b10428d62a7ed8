"""The mapping from Zuora objects and fields to Salesforce sObjects and fields, and the record builder.

The default mapping (Zuora 360's objects) ships in the layer as ``config/default_mapping.json``; a deployer
points ``SYNC_MAPPING_PATH`` at a file of the same shape to override it. The file is validated once, at cold
start, so a typo fails the deployment's first invocation loudly instead of corrupting records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nrtsync.domain.models.callout import ZUORA_NULL_TEXT, FieldValue, is_empty
from nrtsync.domain.zuora_dates import parse_zuora_date, parse_zuora_datetime

DEFAULT_MAPPING_PATH = Path(__file__).parents[1] / "config" / "default_mapping.json"

_SF_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_ZUORA_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"

FieldType = Literal["string", "number", "integer", "boolean", "date", "datetime", "salesforceId"]
NullText = Literal["empty", "keep"]


class MappingError(ValueError):
    """A change cannot be turned into a Salesforce record (a permanent problem: retrying will not help)."""


class FieldMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    to: str = Field(pattern=_SF_NAME)
    type: FieldType = "string"
    null_text: NullText = Field(default="empty", alias="nullText")
    """``keep``: the text ``null`` is written as the word (string fields only); JSON null and "" still clear."""

    @model_validator(mode="after")
    def _keep_only_for_text(self) -> FieldMapping:
        if self.null_text == "keep" and self.type != "string":
            raise ValueError('"nullText": "keep" applies to string fields only')
        return self


class InheritedField(BaseModel):
    """A field a child takes from its parent: the child's own callout field when it carries one, else the
    value the parent's last written change had (kept in the state table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to: str = Field(pattern=_SF_NAME)
    via: str = Field(pattern=_ZUORA_NAME)
    """The child's parent field (a key of ``parents``) that names the parent record."""


class ParentLookup(BaseModel):
    """A child's reference to its parent, written as ``{relationship: {externalIdField: parentZuoraId}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relationship: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*__r$|^[A-Za-z][A-Za-z0-9_]*$")
    object: str = Field(pattern=_ZUORA_NAME)


_CURRENT = re.compile(r"^(?P<field>[A-Za-z][A-Za-z0-9_]*) (?P<op>=|!=) '(?P<value>[A-Za-z ]+)'$")

Superseded = Literal["overwrite", "delete"]


class VersionedRecords(BaseModel):
    """How Zuora versions an object's records: each amendment of a subscription is a new record (a new Id) with the
    same ``Name`` (the subscription number: ZOQL's and the SOAP API's Subscription has no other) and the next
    ``Version``; the earlier versions become ``Expired``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=_ZUORA_NAME)
    """The Zuora field that names the record across its versions (with ``superseded`` ``overwrite``, the state
    table and the upsert use it)."""
    rank: str = Field(pattern=_ZUORA_NAME)
    """The Zuora field that orders versions (compared before ``UpdatedDate``)."""
    current: str = Field(pattern=_CURRENT.pattern)
    """The ZOQL condition that selects only the current version, e.g. ``Status != 'Expired'``."""
    superseded: Superseded = "overwrite"
    """What happens to a version's Salesforce record when a newer version is written. ``overwrite``: there is one
    record per ``key``, which the newer version overwrites (Zuora 360's "single subscription" option).
    ``delete``: each version is its own record, upserted on its own Zuora Id, and deleted when the version stops
    being current (Zuora 360's default)."""

    @property
    def per_version(self) -> bool:
        """Each version is its own Salesforce record (``superseded: delete``), keyed by its own Zuora Id."""
        return self.superseded == "delete"

    @property
    def current_field(self) -> str:
        """The Zuora field the ``current`` condition reads (``Status``)."""
        return _current_parts(self.current)[0]

    def is_current(self, fields: dict[str, FieldValue]) -> bool:
        """Whether a version with these field values passes the ``current`` condition, as ZOQL compares it (an
        empty value compares as the empty text)."""
        field, op, literal = _current_parts(self.current)
        value = fields.get(field)
        equal = ("" if is_empty(value) else str(value).strip()) == literal
        return equal if op == "=" else not equal


def _current_parts(condition: str) -> tuple[str, str, str]:
    match = _CURRENT.fullmatch(condition)
    if match is None:  # the field's pattern refused it already; kept for the type checker
        raise MappingError(f"not a version condition: {condition!r}")
    return match["field"], match["op"], match["value"]


class ObjectMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    sobject: str = Field(pattern=_SF_NAME)
    external_id_field: str = Field(alias="externalIdField", pattern=_SF_NAME)
    copy_id_to: tuple[str, ...] = Field(alias="copyIdTo", default=())
    fields: dict[str, FieldMapping] = Field(default_factory=dict)
    parents: dict[str, ParentLookup] = Field(default_factory=dict)
    inherit: dict[str, InheritedField] = Field(default_factory=dict)
    """Zuora field name (in the child's callout and in the parent's ``fields``) -> where it goes."""
    versions: VersionedRecords | None = None
    """Set for an object whose records Zuora keeps in versions: one Salesforce record per ``versions.key``, the
    version's own Id going to ``copyIdTo``; or, with ``versions.superseded`` ``delete``, one record per version."""
    master_detail: tuple[str, ...] = Field(alias="masterDetail", default=())
    """Zuora fields (of ``fields``) whose Salesforce field is a master-detail: required when the record is
    created and never cleared. A record without one is held, not sent (``nrtsync.services.sync.holds``)."""

    @model_validator(mode="after")
    def _master_detail_fields_are_mapped(self) -> ObjectMapping:
        unknown = [name for name in self.master_detail if name not in self.fields]
        if unknown:
            raise ValueError(f"masterDetail names fields that are not in fields: {unknown}")
        return self

    @model_validator(mode="after")
    def _versions_fit_the_external_id(self) -> ObjectMapping:
        # The two modes upsert on different values (the key, or the version's own Id); a mapping switched halfway
        # would write version Ids into the key's field, or the reverse, so each mode checks the other's leftovers.
        versions = self.versions
        if versions is None:
            return self
        ext, copies = self.external_id_field, list(self.copy_id_to)
        if versions.per_version:
            if ext not in copies:
                raise ValueError(
                    f'versions.superseded is "delete": each version is its own record, upserted on its own Zuora Id, '
                    f"so externalIdField ({ext}) must be one of the fields that hold that Id (copyIdTo: {copies}); "
                    f"Zuora 360: Zuora__External_Id__c"
                )
            if versions.current_field not in self.fields:
                raise ValueError(
                    f'versions.superseded is "delete": the callouts must carry {versions.current_field} (the field '
                    f"of versions.current) to tell an expired version, so it must be in fields"
                )
        elif ext in copies:
            raise ValueError(
                f'versions.superseded is "overwrite": one record per {versions.key}, upserted on it, so '
                f"externalIdField ({ext}) cannot also be in copyIdTo (those fields get the version's own Zuora Id)"
            )
        return self


class MappingConfig(BaseModel):
    """The whole mapping file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    objects: dict[str, ObjectMapping] = Field(min_length=1)

    @model_validator(mode="after")
    def _parents_are_mapped_and_acyclic(self) -> MappingConfig:
        for name, obj in self.objects.items():
            for field, parent in obj.parents.items():
                if parent.object not in self.objects:
                    raise ValueError(f"objects.{name}.parents.{field}: parent object {parent.object!r} is not mapped")
            for field, inherited in obj.inherit.items():
                where = f"objects.{name}.inherit.{field}"
                if field in obj.fields:
                    raise ValueError(f"{where}: {field!r} is also in fields; name it in one place")
                if inherited.via not in obj.parents:
                    raise ValueError(f"{where}: via {inherited.via!r} is not one of this object's parents")
                parent_type = obj.parents[inherited.via].object
                if parent_type in self.objects and field not in self.objects[parent_type].fields:
                    raise ValueError(f"{where}: the parent object {parent_type!r} does not map {field!r} in its fields")
        self.write_order()  # raises on a cycle
        return self

    def inherited_spec(self, object_type: str, field: str) -> FieldMapping:
        """How a child converts an inherited field: exactly as its parent does (type and ``nullText``)."""
        obj = self.objects[object_type]
        parent = self.objects[obj.parents[obj.inherit[field].via].object]
        return parent.fields[field].model_copy(update={"to": obj.inherit[field].to})

    def kept_fields(self, object_type: str) -> frozenset[str]:
        """The fields of ``object_type`` that some child inherits: kept in the state with each written change."""
        return frozenset(
            field
            for obj in self.objects.values()
            for field, inherited in obj.inherit.items()
            if obj.parents[inherited.via].object == object_type
        )

    def write_order(self) -> list[str]:
        """Zuora object names, parents before children, so a batch can write parents first."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ValueError(f"objects.{name}: parent lookups form a cycle")
            visiting.add(name)
            for parent in self.objects[name].parents.values():
                visit(parent.object)
            visiting.discard(name)
            order.append(name)

        for name in sorted(self.objects):
            visit(name)
        return order


def load_mapping(path: str | Path | None = None) -> MappingConfig:
    """Read and validate a mapping file (the shipped default when ``path`` is None)."""
    source = Path(path) if path else DEFAULT_MAPPING_PATH
    try:
        return MappingConfig.model_validate(json.loads(source.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise MappingError(f"mapping file {source} is invalid: {exc}") from exc


@cache
def cached_mapping(path: str | None = None) -> MappingConfig:
    """The mapping, loaded once per container."""
    return load_mapping(path)


def _as_string(value: FieldValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _as_decimal(value: FieldValue) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")  # noqa: TRY004 - reported as a MappingError
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


def _as_number(value: FieldValue) -> int | float:
    number = _as_decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


def _as_integer(value: FieldValue) -> int:
    number = _as_decimal(value)
    if number != number.to_integral_value():
        raise ValueError("not a whole number")
    return int(number)


_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def _as_boolean(value: FieldValue) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError("not a boolean")
    return text in _TRUE


def _as_date(value: FieldValue) -> str:
    return parse_zuora_date(str(value)).isoformat()


def _as_datetime(value: FieldValue, zone: tzinfo = UTC) -> str:
    moment = parse_zuora_datetime(str(value), require_time=False)
    if moment.tzinfo is None:
        # Zuora renders a dateTime in the tenant's time zone; Salesforce needs "Z" or an offset on every dateTime
        # ("Valid Date and DateTime Formats"), or it reads a different instant.
        moment = moment.replace(tzinfo=zone)
    # Salesforce keeps milliseconds and reads at most three fraction digits ("Valid Date and DateTime Formats");
    # isoformat() would print six for any time with a fraction.
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


# A Salesforce record Id: 15 case-sensitive characters, or 18 with the case-safe suffix (Salesforce Help,
# "What is a Salesforce ID"). Zuora's CrmId is free text (up to 100 characters), so a typo there would
# otherwise reach Salesforce as a MALFORMED_ID on a lookup field.
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def _as_salesforce_id(value: FieldValue) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not _SALESFORCE_ID.fullmatch(text):
        raise ValueError("not a Salesforce Id (15 or 18 letters and digits)")
    return text


_COERCIONS: dict[FieldType, Callable[[FieldValue], Any]] = {
    "string": _as_string,
    "number": _as_number,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "date": _as_date,
    "datetime": _as_datetime,
    "salesforceId": _as_salesforce_id,
}


def coerce_value(
    value: FieldValue, field_type: FieldType, *, field: str, null_text: NullText = "empty", zone: tzinfo = UTC
) -> Any:
    """Turn a callout value (Zuora renders merge fields as strings) into the JSON Salesforce expects.

    An empty value (``is_empty``: JSON null, "", the text ``null``) means "no value" and becomes JSON null,
    which clears the Salesforce field, as Zuora's own sync does. With ``null_text="keep"`` a string field
    takes the text ``null`` as the word.
    """
    if null_text == "keep" and field_type == "string" and isinstance(value, str) and value.strip() == ZUORA_NULL_TEXT:
        return value
    if is_empty(value):
        return None
    try:
        if field_type == "datetime":
            return _as_datetime(value, zone)
        return _COERCIONS[field_type](value)
    except (ValueError, InvalidOperation) as exc:
        raise MappingError(f"field {field!r}: {value!r} is not a valid {field_type}: {exc}") from exc


def build_record(
    mapping: MappingConfig,
    object_type: str,
    record_id: str,
    fields: dict[str, FieldValue],
    *,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """The sObject Collections record for one Zuora change (without the ``attributes`` wrapper).

    Zuora fields the mapping does not name are ignored on purpose: a callout template may carry more than
    the org has fields for, and that must not block the record. ``fields`` holds the inherited fields too
    (``nrtsync.domain.inherit`` resolves them from the parent's state when the callout does not carry them).
    """
    try:
        obj = mapping.objects[object_type]
    except KeyError:
        raise MappingError(f"objectType {object_type!r} is not in the mapping") from None
    if is_empty(record_id):
        # Ingest refuses such a callout (422); this guards changes queued before it did.
        raise MappingError(f"the record id {record_id!r} is empty")
    record: dict[str, Any] = {obj.external_id_field: record_id}
    # A record of all versions is named by its key (a subscription number); the version's own Zuora Id is in "Id".
    one_record = obj.versions is not None and not obj.versions.per_version
    version_id = str(fields.get("Id") or record_id) if one_record else record_id
    for target in obj.copy_id_to:
        record[target] = version_id
    for name, spec in obj.fields.items():
        if name in fields:
            record[spec.to] = coerce_value(fields[name], spec.type, field=name, null_text=spec.null_text, zone=zone)
    for name in obj.inherit:
        # Absent (neither the callout nor the parent's state knows it): left out, so Salesforce keeps its value.
        if name in fields:
            spec = mapping.inherited_spec(object_type, name)
            record[spec.to] = coerce_value(fields[name], spec.type, field=name, null_text=spec.null_text, zone=zone)
    for name, parent in obj.parents.items():
        parent_id = fields.get(name)
        if is_empty(parent_id):
            continue  # no parent named: no lookup at all, never a lookup to a record called "null"
        parent_obj = mapping.objects[parent.object]
        record[parent.relationship] = {parent_obj.external_id_field: str(parent_id)}
    return record
