"""The callout body as the endpoint accepts it, and the queued change it becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import MAX_VALUE_CHARS, Callout, QueuedChange

OBJECT_TYPES = frozenset(load_mapping().objects)


def body(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "eventType": "AccountUpdated",
        "objectType": "Account",
        "id": "8ad09be48db5aa2a018dc0b0c41a7d2e",
        "updatedDate": "2024-03-05T10:22:39.000-08:00",
        "fields": {"Name": "Acme", "Balance": "1250.00", "AutoPay": "false", "LastInvoiceDate": "2024-03-01"},
    }
    for key, value in overrides.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def validate(document: dict[str, Any]) -> Callout:
    return Callout.model_validate(document, context={"object_types": OBJECT_TYPES})


def error_locs(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate(document)
    return {".".join(str(p) for p in err["loc"]): err["msg"] for err in caught.value.errors()}


def test_default_mapping_knows_the_four_objects() -> None:
    assert {"Account", "Subscription", "Invoice", "Payment"} <= OBJECT_TYPES


def test_strings_for_numbers_dates_and_booleans_are_kept_as_zuora_rendered_them() -> None:
    callout = validate(body())

    assert callout.fields == {"Name": "Acme", "Balance": "1250.00", "AutoPay": "false", "LastInvoiceDate": "2024-03-01"}
    assert callout.updatedDate == datetime(2024, 3, 5, 18, 22, 39, tzinfo=UTC)


def test_json_scalars_are_accepted_too() -> None:
    callout = validate(body(fields={"Balance": 12.5, "BillCycleDay": 1, "AutoPay": True, "CrmId": None}))

    assert callout.fields == {"Balance": 12.5, "BillCycleDay": 1, "AutoPay": True, "CrmId": None}


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("2024-03-05T10:22:39", datetime(2024, 3, 5, 10, 22, 39, tzinfo=UTC)),
        ("2024-03-05 10:22:39", datetime(2024, 3, 5, 10, 22, 39, tzinfo=UTC)),
        ("2024-03-05T10:22:39Z", datetime(2024, 3, 5, 10, 22, 39, tzinfo=UTC)),
        ("  2024-03-05T10:22:39+01:00 ", datetime(2024, 3, 5, 9, 22, 39, tzinfo=UTC)),
    ],
)
def test_updated_date_is_read_in_utc_and_a_naive_one_as_utc(rendered: str, expected: datetime) -> None:
    callout = validate(body(updatedDate=rendered))

    assert callout.updatedDate == expected
    assert callout.updatedDate.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [1709662959, 1709662959.5, "1709662959", "1709662959.000"])
def test_a_number_as_updated_date_is_rejected_not_read_as_unix_time(value: Any) -> None:
    assert "not a number" in error_locs(body(updatedDate=value))["updatedDate"]


def test_a_bare_date_as_updated_date_is_rejected() -> None:
    assert "time of day" in error_locs(body(updatedDate="2024-03-05"))["updatedDate"]


@pytest.mark.parametrize("value", ["05/03/2024 10:22", "yesterday", "", True])
def test_an_unreadable_updated_date_is_rejected(value: Any) -> None:
    assert "updatedDate" in error_locs(body(updatedDate=value))


def test_an_object_type_the_mapping_does_not_know_is_rejected_with_the_known_ones() -> None:
    message = error_locs(body(objectType="Contact"))["objectType"]

    assert "unknown objectType" in message
    assert "Account, Invoice, Payment, Subscription" in message


def test_without_context_any_object_type_is_accepted() -> None:
    assert Callout.model_validate(body(objectType="Contact")).objectType == "Contact"


def test_an_extra_top_level_field_is_named() -> None:
    locs = error_locs(body(Name="Acme"))

    assert list(locs) == ["Name"]


@pytest.mark.parametrize("missing", ["objectType", "id", "updatedDate"])
def test_a_missing_required_field_is_named(missing: str) -> None:
    assert missing in error_locs(body(**{missing: None}))


@pytest.mark.parametrize("key", ["objectType", "id", "updatedDate"])
@pytest.mark.parametrize("empty", ["null", "", " null "], ids=["null-text", "empty", "padded-null"])
def test_an_empty_required_key_is_named_as_empty(key: str, empty: str) -> None:
    # Zuora's "send empty strings as null" renders an empty merge field as null inside the quotes.
    locs = error_locs(body(**{key: empty}))

    assert list(locs) == [key]
    assert "must not be empty" in locs[key]


def test_an_empty_required_key_is_refused_without_a_mapping_context_too() -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        Callout.model_validate(body(objectType="null"))


def test_an_event_type_rendered_as_null_is_none() -> None:
    assert validate(body(eventType="null")).eventType is None


def test_field_values_rendered_as_null_are_carried_as_zuora_sent_them() -> None:
    # The mapping decides what null means for each field (it clears it, or keeps the word: nullText).
    assert validate(body(fields={"Name": "null", "CrmId": None})).fields == {"Name": "null", "CrmId": None}


@pytest.mark.parametrize("empty", ["null", ""])
def test_a_queued_change_with_an_empty_record_id_is_refused(empty: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        QueuedChange(
            object_type="Account",
            record_id=empty,
            updated_date=datetime(2024, 3, 5, tzinfo=UTC),
            notification_id="n",
            received_at=datetime(2024, 3, 5, tzinfo=UTC),
        )


def test_event_type_and_fields_are_optional() -> None:
    callout = validate(body(eventType=None, fields=None))

    assert callout.eventType is None
    assert callout.fields == {}


@pytest.mark.parametrize("name", ["1Name", "Bad-Name", "Na me", "", "x" * 81, "Name.Sub"])
def test_a_bad_field_name_is_named(name: str) -> None:
    locs = error_locs(body(fields={name: "v"}))

    assert list(locs) == [f"fields.{name}.[key]"]


@pytest.mark.parametrize("zuora_id", ["", "has space", "a/b", "x" * 65])
def test_a_bad_id_is_rejected(zuora_id: str) -> None:
    assert "id" in error_locs(body(id=zuora_id))


def test_a_value_too_long_is_named() -> None:
    locs = error_locs(body(fields={"Name": "x" * (MAX_VALUE_CHARS + 1)}))

    assert locs == {"fields.Name": f"Value error, must be at most {MAX_VALUE_CHARS} characters"}


def test_a_value_at_the_limit_is_accepted() -> None:
    assert len(str(validate(body(fields={"Name": "x" * MAX_VALUE_CHARS})).fields["Name"])) == MAX_VALUE_CHARS


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], float("nan"), float("inf")])
def test_a_non_scalar_or_non_finite_value_is_named(value: Any) -> None:
    locs = error_locs(body(fields={"Balance": value}))

    assert list(locs) == ["fields.Balance"]
    assert "string, number, boolean or null" in locs["fields.Balance"]


@pytest.mark.parametrize("text", ["\ud800", "ok\udfffok", "\ufffe", "x\uffff"])
def test_text_that_sqs_cannot_carry_is_rejected_at_the_door(text: str) -> None:
    assert "not text" in error_locs(body(fields={"Name": text}))["fields.Name"]
    assert "eventType" in error_locs(body(eventType=text))


def test_too_many_fields_are_rejected() -> None:
    assert "fields" in error_locs(body(fields={f"F{i}": "v" for i in range(501)}))


def test_queued_change_keeps_the_callout_and_the_delivery_ids() -> None:
    # Given
    callout = validate(body())
    received = datetime(2024, 3, 5, 18, 22, 40, 123456, tzinfo=UTC)

    # When
    change = QueuedChange.from_callout(callout, notification_id="n-1", request_id="r-1", received_at=received)

    # Then
    assert change.object_type == "Account"
    assert change.record_id == callout.id
    assert change.record_key == f"Account#{callout.id}"
    assert change.notification_id == "n-1"
    assert change.request_id == "r-1"
    assert change.received_at == received
    assert QueuedChange.model_validate_json(change.model_dump_json()) == change


def test_queued_change_serialises_dates_in_utc_with_microseconds() -> None:
    change = QueuedChange.from_callout(
        validate(body()),
        notification_id="n",
        request_id=None,
        received_at=datetime(2024, 3, 5, 19, 22, 40, tzinfo=timezone(timedelta(hours=1))),
    )

    dumped = change.model_dump(mode="json")

    assert dumped["updated_date"] == "2024-03-05T18:22:39.000000+00:00"
    assert dumped["received_at"] == "2024-03-05T18:22:40.000000+00:00"


def test_content_hash_ignores_delivery_but_not_content() -> None:
    callout = validate(body())
    now = datetime.now(UTC)
    first = QueuedChange.from_callout(callout, notification_id="n", request_id="r1", received_at=now)
    retry = QueuedChange.from_callout(callout, notification_id="n", request_id="r2", received_at=now + timedelta(1))
    other = QueuedChange.from_callout(
        validate(body(fields={"Name": "Other"})), notification_id="m", request_id=None, received_at=now
    )

    assert first.content_hash == retry.content_hash
    assert first.content_hash != other.content_hash


def test_version_orders_by_updated_date_then_receive_time() -> None:
    now = datetime(2024, 3, 5, tzinfo=UTC)

    def version(updated: str, received: datetime) -> str:
        callout = validate(body(updatedDate=updated))
        return QueuedChange.from_callout(callout, notification_id="n", request_id=None, received_at=received).version

    early = version("2024-03-05T10:00:00Z", now + timedelta(hours=5))
    later = version("2024-03-05T10:00:00.000001Z", now)
    same_date_later_receipt = version("2024-03-05T10:00:00.000001Z", now + timedelta(microseconds=1))

    assert early < later < same_date_later_receipt
