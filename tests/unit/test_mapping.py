"""The mapping file: validation, coercion of Zuora's string values, parent lookups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nrtsync.mapping import MappingError, build_record, coerce_value, load_mapping, parent_ids
from nrtsync.outcomes import ErrorKind, classify


@pytest.fixture(scope="module")
def mapping():
    return load_mapping()


def test_the_default_mapping_writes_parents_before_children(mapping) -> None:
    order = mapping.write_order()
    for child in ("Subscription", "Invoice", "Payment"):
        assert order.index("Account") < order.index(child)


def test_an_account_becomes_a_zuora_360_customer_account(mapping) -> None:
    record = build_record(
        mapping,
        "Account",
        "2c92a0f9",
        {"Name": "Acme", "AccountNumber": "A-1", "Balance": "12.50", "AutoPay": "true", "Unmapped": "x"},
    )
    assert record == {
        "Zuora__External_Id__c": "2c92a0f9",
        "Zuora__Zuora_Id__c": "2c92a0f9",
        "Name": "Acme",
        "Zuora__AccountNumber__c": "A-1",
        "Zuora__Balance__c": 12.5,
        "Zuora__AutoPay__c": True,
    }


def test_a_child_refers_to_its_parent_by_external_id(mapping) -> None:
    record = build_record(mapping, "Invoice", "inv1", {"InvoiceNumber": "INV-1", "AccountId": "acc1", "Amount": "10"})
    assert record["Zuora__BillingAccount__r"] == {"Zuora__External_Id__c": "acc1"}
    assert record["Zuora__TotalAmount__c"] == 10
    assert parent_ids(mapping, "Invoice", {"AccountId": "acc1"}) == [("Account", "acc1")]


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("12.50", "number", 12.5),
        ("7", "number", 7),
        ("-3", "integer", -3),
        ("TRUE", "boolean", True),
        ("0", "boolean", False),
        (False, "boolean", False),
        ("2026-01-31", "date", "2026-01-31"),
        ("2026-01-31T10:00:00-08:00", "date", "2026-01-31"),
        ("2026-01-31T10:00:00Z", "datetime", "2026-01-31T10:00:00+00:00"),
        ("", "number", None),
        (None, "string", None),
        (5, "string", "5"),
    ],
)
def test_zuora_values_are_coerced_to_salesforce_types(value, kind, expected) -> None:
    assert coerce_value(value, kind, field="F") == expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("abc", "number"),
        ("1.5", "integer"),
        ("maybe", "boolean"),
        ("31/01/2026", "date"),
        ("NaN", "number"),
        (True, "number"),
    ],
)
def test_a_value_that_cannot_be_coerced_is_a_mapping_error_naming_the_field(value, kind) -> None:
    with pytest.raises(MappingError, match="field 'F'"):
        coerce_value(value, kind, field="F")


def test_an_unknown_object_type_is_a_mapping_error(mapping) -> None:
    with pytest.raises(MappingError, match="Contact"):
        build_record(mapping, "Contact", "c1", {})


def test_a_mapping_with_a_missing_parent_or_a_cycle_is_refused(tmp_path: Path) -> None:
    base = {"sobject": "X__c", "externalIdField": "Ext__c"}
    missing = {"objects": {"A": base | {"parents": {"BId": {"relationship": "B__r", "object": "B"}}}}}
    cycle = {
        "objects": {
            "A": base | {"parents": {"BId": {"relationship": "B__r", "object": "B"}}},
            "B": base | {"parents": {"AId": {"relationship": "A__r", "object": "A"}}},
        }
    }
    for name, doc, message in (("missing", missing, "not mapped"), ("cycle", cycle, "cycle")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(MappingError, match=message):
            load_mapping(path)


@pytest.mark.parametrize(
    ("errors", "kind"),
    [
        ([("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")], ErrorKind.RETRYABLE),
        (
            [("INVALID_FIELD", "Foreign key external ID: A1 not found for field Zuora__External_Id__c in entity X")],
            ErrorKind.PARENT_MISSING,
        ),
        ([("INVALID_FIELD", "No such column 'Foo__c'")], ErrorKind.PERMANENT),
        ([("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no")], ErrorKind.PERMANENT),
        ([("UNABLE_TO_LOCK_ROW", "x"), ("DUPLICATE_VALUE", "y")], ErrorKind.PERMANENT),
        ([], ErrorKind.PERMANENT),
    ],
)
def test_salesforce_errors_are_classified(errors, kind) -> None:
    assert classify(errors) is kind
