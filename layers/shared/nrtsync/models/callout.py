"""The Zuora callout as our endpoint accepts it, and the change message it becomes on the queue."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
)

FieldValue = str | bool | int | float | None
"""A callout field value: Zuora renders merge fields as strings; JSON scalars are accepted too."""

MAX_VALUE_CHARS = 32_768


def _scalar(value: Any) -> FieldValue:
    # One validator instead of a pydantic union, so a bad value yields one error named after its field.
    if value is None or isinstance(value, bool | int):
        return value  # type: ignore[no-any-return]
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"must be at most {MAX_VALUE_CHARS} characters")
        return value
    raise ValueError("must be a string, number, boolean or null")


CalloutValue = Annotated[Any, AfterValidator(_scalar)]

ZuoraId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]

MAX_FIELDS = 500


def _as_utc(value: datetime) -> datetime:
    # Zuora's merge fields can render without an offset; we read those as UTC (documented in the README).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Callout(BaseModel):
    """The canonical callout body that the Zuora callout template produces.

    Validate with ``Callout.model_validate(data, context={"object_types": {...}})`` so that an objectType the
    mapping does not know is rejected at the door, not parked later.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    eventType: Annotated[str, StringConstraints(max_length=100)] | None = None  # noqa: N815 - Zuora's key
    objectType: Annotated[str, StringConstraints(min_length=1, max_length=80)]  # noqa: N815 - Zuora's key
    id: ZuoraId
    updatedDate: datetime  # noqa: N815 - Zuora's key
    fields: dict[FieldName, CalloutValue] = Field(default_factory=dict, max_length=MAX_FIELDS)

    @field_validator("objectType")
    @classmethod
    def _object_type_is_mapped(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("object_types")
        if known is not None and value not in known:
            raise ValueError(f"unknown objectType; expected one of: {', '.join(sorted(known))}")
        return value

    @field_validator("updatedDate", mode="before")
    @classmethod
    def _date_is_text(cls, value: Any) -> Any:
        # pydantic would read a bare number as a Unix time; Zuora never sends one, so it is a template mistake.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("must be an ISO-8601 date-time string")
        return value

    @field_validator("updatedDate")
    @classmethod
    def _date_in_utc(cls, value: datetime) -> datetime:
        return _as_utc(value)


class QueuedChange(BaseModel):
    """One accepted callout as it travels on the callout queue (the SQS message body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    object_type: str
    record_id: ZuoraId
    updated_date: datetime
    event_type: str | None = None
    fields: dict[FieldName, CalloutValue] = Field(default_factory=dict)
    notification_id: str = Field(min_length=1, max_length=200)
    request_id: str | None = Field(default=None, max_length=200)
    received_at: datetime

    @field_validator("updated_date", "received_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @field_serializer("updated_date", "received_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat(timespec="microseconds")

    @classmethod
    def from_callout(
        cls, callout: Callout, *, notification_id: str, request_id: str | None, received_at: datetime
    ) -> QueuedChange:
        return cls(
            object_type=callout.objectType,
            record_id=callout.id,
            updated_date=callout.updatedDate,
            event_type=callout.eventType,
            fields=dict(callout.fields),
            notification_id=notification_id,
            request_id=request_id,
            received_at=received_at,
        )

    @property
    def record_key(self) -> str:
        """The record this change is about, unique across object types."""
        return f"{self.object_type}#{self.record_id}"

    @property
    def content_hash(self) -> str:
        """Identifies the change itself: a re-delivery of it has the same hash, a different change does not."""
        canonical = json.dumps(
            [self.object_type, self.record_id, self.updated_date.isoformat(), self.fields],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def version(self) -> str:
        """A sortable version: Zuora's updatedDate first, our receive time to order changes that share one."""
        return f"{_micros(self.updated_date):017d}.{_micros(self.received_at):017d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    # Integer arithmetic: a float timestamp can be a microsecond off, and versions must compare exactly.
    return (value - _EPOCH) // timedelta(microseconds=1)
