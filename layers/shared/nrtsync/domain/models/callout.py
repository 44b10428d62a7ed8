"""The Zuora callout as our endpoint accepts it, and the change message it becomes on the queue."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
)

from nrtsync.domain.zuora_dates import parse_zuora_datetime

FieldValue = str | bool | int | float | None
"""A callout field value: Zuora renders merge fields as strings; JSON scalars are accepted too."""

MAX_VALUE_CHARS = 32_768

ZUORA_NULL_TEXT = "null"
"""What an empty merge field renders as inside a quoted template with Zuora's callout setting "For custom event
triggered callouts, send empty strings as null" on (Zuora recommends it; Configure callout settings)."""


def is_empty(value: object) -> bool:
    """Whether a callout value means "no value": JSON null, ``""`` (or only whitespace), or the text ``null``.

    The one rule for every place that reads a callout value (field coercion, parent ids, the record id), so
    that Zuora's "send empty strings as null" setting is safe. Only lowercase ``null`` counts: that is what
    Zuora renders, and ``NULL`` or ``Null`` in a text field is more likely a real value.
    """
    return value is None or (isinstance(value, str) and value.strip() in ("", ZUORA_NULL_TEXT))


def _not_empty(value: Any) -> Any:
    if is_empty(value):
        raise ValueError('must not be empty (Zuora renders an empty merge field as "" or null)')
    return value


# Lone surrogates (JSON's "\ud800" escapes) cannot be encoded at all, and SQS refuses U+FFFE and U+FFFF: a
# change holding one could never be queued, so it is refused at the door (422), not retried for hours (503).
_NOT_TEXT = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    if _NOT_TEXT.search(value):
        raise ValueError("contains a character that is not text (a lone surrogate, U+FFFE or U+FFFF)")
    return value


def _scalar(value: Any) -> FieldValue:
    # One validator instead of a pydantic union, so a bad value yields one error named after its field.
    # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"must be at most {MAX_VALUE_CHARS} characters")
        return _text(value)
    raise ValueError("must be a string, number, boolean or null")


CalloutValue = Annotated[Any, AfterValidator(_scalar)]

ZuoraId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]

EventType = Annotated[str, StringConstraints(max_length=100), AfterValidator(_text)]

MAX_FIELDS = 500

ChangeType = Literal["INSERT", "UPDATE", "DELETE"]
"""Zuora's custom-event ``changeType`` values (Custom Events, "Trigger condition"): INSERT and UPDATE are both
upserts here (by external ID, so the order of an insert and its first update does not matter); DELETE deletes."""


TENANT_TIME_ZONE = "tenant_time_zone"
"""The validation context key of the Zuora tenant's time zone (a ``tzinfo``): Zuora renders dateTimes in the
tenant's time zone (Pacific by default), so an ``updatedDate`` without an offset is local time there."""


def _as_utc(value: datetime, zone: tzinfo = UTC) -> datetime:
    # A value with an offset is taken as given; one without is the tenant's local time (docs/CALLOUTS.md).
    return value.replace(tzinfo=zone).astimezone(UTC) if value.tzinfo is None else value.astimezone(UTC)


class Callout(BaseModel):
    """The canonical callout body that the Zuora callout template produces.

    Validate with ``Callout.model_validate(data, context={"object_types": {...}})`` so that an objectType the
    mapping does not know is rejected at the door, not parked later.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    eventType: EventType | None = None  # noqa: N815 - Zuora's key
    objectType: Annotated[str, StringConstraints(min_length=1, max_length=80)]  # noqa: N815 - Zuora's key
    id: ZuoraId
    updatedDate: datetime  # noqa: N815 - Zuora's key
    changeType: ChangeType | None = None  # noqa: N815 - Zuora's key; absent: an upsert, as before it existed
    fields: dict[FieldName, CalloutValue] = Field(default_factory=dict, max_length=MAX_FIELDS)

    @field_validator("objectType", "id", "updatedDate", mode="before")
    @classmethod
    def _required_keys_are_not_empty(cls, value: Any) -> Any:
        # Without this, an id rendered as the text null would become a record called "null".
        return _not_empty(value)

    @field_validator("eventType", "changeType", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if is_empty(value) else value

    @field_validator("objectType")
    @classmethod
    def _object_type_is_mapped(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("object_types")
        if known is not None and value not in known:
            raise ValueError(f"unknown objectType; expected one of: {', '.join(sorted(known))}")
        return value

    @field_validator("updatedDate", mode="before")
    @classmethod
    def _date_is_a_date_time(cls, value: Any) -> Any:
        # pydantic would read a number, or a string of digits, as a Unix time, and a bare date as midnight. Zuora
        # sends neither for UpdatedDate, so either is a template mistake that would misorder changes silently.
        # pydantic runs the later "before" validator first: the emptiness check must come before the parsing.
        value = _not_empty(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("must be an ISO-8601 date-time string, not a number")  # noqa: TRY004 - pydantic
        if isinstance(value, str):
            # Zuora's other locale layouts are read where unambiguous; MM/DD vs DD/MM is refused (zuora_dates).
            return parse_zuora_datetime(value)
        return value

    @field_validator("updatedDate")
    @classmethod
    def _date_in_utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        zone = (info.context or {}).get(TENANT_TIME_ZONE, UTC)
        try:
            in_utc = _as_utc(value, zone)
        except OverflowError:
            # 9999-12-31T23:59:59-14:00 is past the calendar's end in UTC: a 422, not a crash (API Gateway's 502,
            # which Zuora would retry for hours).
            raise ValueError("is outside the range of dates (years 1970 to 9999 in UTC)") from None
        if in_utc < _EPOCH:
            # Versions count microseconds from 1970; Zuora's records are all younger.
            raise ValueError("is before 1970: not a Zuora UpdatedDate")
        return in_utc


class QueuedChange(BaseModel):
    """One accepted callout as it travels on the callout queue (the SQS message body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    object_type: str
    record_id: ZuoraId
    updated_date: datetime
    event_type: str | None = None
    change_type: ChangeType | None = None
    fields: dict[FieldName, CalloutValue] = Field(default_factory=dict)
    notification_id: str = Field(min_length=1, max_length=200)
    request_id: str | None = Field(default=None, max_length=200)
    received_at: datetime
    rank: int | None = Field(default=None, ge=0)
    """For a record Zuora keeps in versions (a subscription): its ``Version``, compared before ``updated_date``
    (``nrtsync.domain.versions``; with a record per version, only a delete has one). None for every other record."""

    @field_validator("object_type", "record_id", mode="before")
    @classmethod
    def _keys_are_not_empty(cls, value: Any) -> Any:
        return _not_empty(value)

    @field_validator("updated_date", "received_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @field_serializer("updated_date", "received_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat(timespec="microseconds")

    @model_serializer(mode="wrap")
    def _upserts_as_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An upsert's message keeps the shape it had before change_type existed, so a sync function still on the
        # previous version (during a deployment) reads it rather than parking it as unreadable.
        data: dict[str, Any] = handler(self)
        if data.get("change_type") is None:
            data.pop("change_type", None)
        if data.get("rank") is None:
            data.pop("rank", None)
        return data

    @classmethod
    def from_callout(
        cls, callout: Callout, *, notification_id: str, request_id: str | None, received_at: datetime
    ) -> QueuedChange:
        return cls(
            object_type=callout.objectType,
            record_id=callout.id,
            updated_date=callout.updatedDate,
            event_type=callout.eventType,
            change_type=callout.changeType,
            # A delete's fields are never written (Salesforce gets only the record's Id) nor kept; they travel so
            # a versioned record's delete can name its record across versions (a subscription's number).
            fields=dict(callout.fields),
            notification_id=notification_id,
            request_id=request_id,
            received_at=received_at,
        )

    @property
    def record_key(self) -> str:
        """The record this change is about, unique across object types."""
        return record_key_of(self.object_type, self.record_id)

    @property
    def is_delete(self) -> bool:
        """Zuora deleted the record: the sync deletes it in Salesforce and keeps a tombstone (docs/CALLOUTS.md)."""
        return self.change_type == "DELETE"

    @property
    def content_hash(self) -> str:
        """Identifies the change itself: a re-delivery of it has the same hash, a different change does not."""
        # A delete is marked in the hash (an upsert's hash stays as it was, so no stored hash changes meaning).
        parts: list[Any] = [self.object_type, self.record_id, self.updated_date.isoformat(), self.fields]
        canonical = json.dumps(
            [*parts, "DELETE"] if self.is_delete else parts,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def version(self) -> str:
        """A sortable version: Zuora's updatedDate first, our receive time to order changes that share one.

        A delete outranks every change with the same updatedDate, whenever it was received: the record's last
        update and its delete can carry the same UpdatedDate (the deleted record's merge field), and that update
        arriving late (a Zuora retry) must not bring the record back.
        """
        received = _DELETE_RANK if self.is_delete else _micros(self.received_at)
        version = f"{_micros(self.updated_date):017d}.{received:017d}"
        # A versioned record's Version comes first: version 1's late update never outranks version 2, whatever
        # its UpdatedDate. The "r" sorts after every digit, so a ranked version outranks an unranked one.
        return version if self.rank is None else f"r{self.rank:09d}-{version}"


def record_key_of(object_type: str, record_id: str) -> str:
    """The state table's key of a record (``QueuedChange.record_key``), also for a parent named by a child."""
    return f"{object_type}#{record_id}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DELETE_RANK = 10**17 - 1  # above every receive time a version can hold (17 digits of microseconds)


def _micros(value: datetime) -> int:
    # Integer arithmetic: a float timestamp can be a microsecond off, and versions must compare exactly.
    return (value - _EPOCH) // timedelta(microseconds=1)
