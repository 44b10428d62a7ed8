"""The mapping file: validation, coercion of Zuora's string values, parent lookups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nrtsync.domain.mapping import MappingConfig, MappingError, build_record, coerce_value, load_mapping
from nrtsync.domain.models.callout import FieldValue
from nrtsync.domain.outcomes import ErrorKind, classify


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
        # Salesforce reads at most three fraction digits: Zuora's milliseconds stay three, never six.
        ("2026-01-31T10:00:00.120-08:00", "datetime", "2026-01-31T10:00:00.120-08:00"),
        ("2026-01-31T10:00:00.123456Z", "datetime", "2026-01-31T10:00:00.123+00:00"),
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


# -- Zuora's "send empty strings as null": JSON null, "" and the text null are all "no value" -------------

ALL_TYPES = ["string", "number", "integer", "boolean", "date", "datetime", "salesforceId"]


@pytest.mark.parametrize("kind", ALL_TYPES)
@pytest.mark.parametrize(
    "empty", ["null", " null ", None, "", "  "], ids=["null-text", "padded", "json-null", "", "blank"]
)
def test_an_empty_value_of_every_type_clears_the_field(kind, empty) -> None:
    # JSON null in the record is what clears a field in Salesforce's REST API.
    assert coerce_value(empty, kind, field="F") is None


@pytest.mark.parametrize("text", ["NULL", "Null", "nullable", "null value"])
def test_only_the_lowercase_word_alone_counts_as_empty(text) -> None:
    assert coerce_value(text, "string", field="F") == text


def test_every_mapped_field_of_every_object_clears_on_null_text(mapping) -> None:
    for object_type, obj in mapping.objects.items():
        fields: dict[str, FieldValue] = dict.fromkeys(obj.fields, "null")
        record = build_record(mapping, object_type, "Z1", fields)
        assert {spec.to: record[spec.to] for spec in obj.fields.values()} == dict.fromkeys(
            (spec.to for spec in obj.fields.values()), None
        ), object_type


def test_a_parent_id_rendered_as_null_means_no_lookup(mapping) -> None:
    for empty in ("null", "", None):
        record = build_record(mapping, "Invoice", "inv1", {"InvoiceNumber": "INV-1", "AccountId": empty})
        assert "Zuora__BillingAccount__r" not in record


@pytest.mark.parametrize("record_id", ["null", "", " "])
def test_an_empty_record_id_is_a_mapping_error_not_a_record_called_null(mapping, record_id) -> None:
    with pytest.raises(MappingError, match="record id"):
        build_record(mapping, "Account", record_id, {"Name": "Acme"})


def _mapping_with(tmp_path: Path, account_fields: dict[str, Any], **child: object) -> MappingConfig:
    doc = {
        "objects": {
            "Account": {"sobject": "Acc__c", "externalIdField": "Ext__c", "fields": account_fields},
            "Invoice": {
                "sobject": "Inv__c",
                "externalIdField": "Ext__c",
                "parents": {"AccountId": {"relationship": "Acc__r", "object": "Account"}},
            }
            | child,
        }
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    return load_mapping(path)


def test_null_text_keep_writes_the_word_but_json_null_and_empty_still_clear(tmp_path: Path) -> None:
    mapping = _mapping_with(tmp_path, {"Code": {"to": "Code__c", "type": "string", "nullText": "keep"}})

    assert build_record(mapping, "Account", "A1", {"Code": "null"})["Code__c"] == "null"
    assert build_record(mapping, "Account", "A1", {"Code": None})["Code__c"] is None
    assert build_record(mapping, "Account", "A1", {"Code": ""})["Code__c"] is None


def test_null_text_keep_is_refused_on_a_typed_field(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="string fields only"):
        _mapping_with(tmp_path, {"Amount": {"to": "Amount__c", "type": "number", "nullText": "keep"}})


# -- Salesforce Ids and Zuora 360's Zuora__Account__c on the children -------------------------------------


@pytest.mark.parametrize("crm_id", ["0015g00000XyZ12", "0015g00000XyZ12AAB", " 0015g00000XyZ12AAB "])
def test_a_salesforce_id_of_15_or_18_characters_is_accepted(crm_id) -> None:
    assert coerce_value(crm_id, "salesforceId", field="CrmId") == crm_id.strip()


@pytest.mark.parametrize("crm_id", ["0015g00000XyZ1", "0015g00000XyZ12AA", "0015g00000XyZ12-AB", "acme", True, 1])
def test_anything_else_as_a_salesforce_id_is_a_mapping_error(crm_id) -> None:
    with pytest.raises(MappingError, match="field 'CrmId'"):
        coerce_value(crm_id, "salesforceId", field="CrmId")


def test_the_account_crm_id_is_validated_as_a_salesforce_id(mapping) -> None:
    assert build_record(mapping, "Account", "A1", {"CrmId": "0015g00000XyZ12AAB"})["Zuora__Account__c"] == (
        "0015g00000XyZ12AAB"
    )
    with pytest.raises(MappingError, match="CrmId"):
        build_record(mapping, "Account", "A1", {"CrmId": "not an id"})


@pytest.mark.parametrize("object_type", ["Subscription", "Invoice", "Payment"])
def test_the_children_carry_the_billing_accounts_crm_id_to_zuora_account(mapping, object_type) -> None:
    assert mapping.objects[object_type].inherit["CrmId"].to == "Zuora__Account__c"
    with_id = build_record(mapping, object_type, "C1", {"AccountId": "A1", "CrmId": "0015g00000XyZ12AAB"})
    cleared = build_record(mapping, object_type, "C1", {"AccountId": "A1", "CrmId": "null"})
    unknown = build_record(mapping, object_type, "C1", {"AccountId": "A1"})

    assert with_id["Zuora__Account__c"] == "0015g00000XyZ12AAB"
    assert cleared["Zuora__Account__c"] is None
    assert "Zuora__Account__c" not in unknown  # unknown: left out, so Salesforce keeps what it has
    with pytest.raises(MappingError, match="CrmId"):
        build_record(mapping, object_type, "C1", {"AccountId": "A1", "CrmId": "Acme Corp"})
    assert mapping.kept_fields("Account") == frozenset({"CrmId"})


@pytest.mark.parametrize(
    ("inherit", "message"),
    [
        ({"CrmId": {"to": "Acc_Link__c", "via": "ParentId"}}, "not one of this object's parents"),
        ({"Other": {"to": "Acc_Link__c", "via": "AccountId"}}, "does not map 'Other'"),
    ],
)
def test_an_inherited_field_must_name_a_parent_that_maps_it(tmp_path: Path, inherit, message) -> None:
    with pytest.raises(MappingError, match=message):
        _mapping_with(tmp_path, {"CrmId": {"to": "Link__c", "type": "salesforceId"}}, inherit=inherit)


def test_an_inherited_field_may_not_also_be_a_plain_field(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="also in fields"):
        _mapping_with(
            tmp_path,
            {"CrmId": {"to": "Link__c", "type": "salesforceId"}},
            fields={"CrmId": {"to": "Link__c"}},
            inherit={"CrmId": {"to": "Link__c", "via": "AccountId"}},
        )
