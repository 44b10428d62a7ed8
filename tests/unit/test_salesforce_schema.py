"""The default mapping against the field types of Zuora 360's sObjects (the stand-in's schema), so they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nrtsync.domain.mapping import FieldType, build_record, load_mapping
from nrtsync_local.salesforce.schema import (
    PACKAGE_METADATA_PATH,
    ZUORA_360_FIELDS,
    ZUORA_360_PACKAGE,
    SalesforceType,
    deserialization_error,
    master_detail_error,
    not_an_external_id,
)

# The Salesforce field types a mapping type's converted value deserializes into.
COMPATIBLE: dict[FieldType, set[SalesforceType]] = {
    "string": {"string"},
    "number": {"double"},
    "integer": {"double"},
    "boolean": {"boolean"},
    "date": {"date"},
    "datetime": {"datetime"},
    "salesforceId": {"reference"},
}


def mapped_fields() -> list[tuple[str, str, str, FieldType]]:
    mapping = load_mapping()
    rows = []
    for object_type, obj in mapping.objects.items():
        rows += [(object_type, obj.sobject, field.to, field.type) for field in obj.fields.values()]
        rows += [
            (object_type, obj.sobject, inherited.to, mapping.inherited_spec(object_type, name).type)
            for name, inherited in obj.inherit.items()
        ]
        rows += [(object_type, obj.sobject, name, "string") for name in (obj.external_id_field, *obj.copy_id_to)]
    return rows


@pytest.mark.parametrize(("object_type", "sobject", "field", "kind"), mapped_fields())
def test_every_mapped_field_exists_in_zuora_360_with_a_compatible_type(object_type, sobject, field, kind) -> None:
    types = ZUORA_360_FIELDS.get(sobject)
    assert types is not None, f"{object_type}: {sobject} is not a Zuora 360 object the stand-in knows"
    assert field in types, f"{object_type}: {sobject}.{field} is not a Zuora 360 field"
    assert types[field] in COMPATIBLE[kind], f"{sobject}.{field} is a {types[field]} in Zuora 360, mapped as {kind}"


def test_a_payments_effective_date_is_mapped_to_the_current_date_field() -> None:
    # Given Zuora's payment callout, whose EffectiveDate is a date ("2024-03-05")
    mapping = load_mapping()
    record = build_record(mapping, "Payment", "P1", {"EffectiveDate": "2024-03-05", "Amount": "1250.00"})

    # Then it goes to the package's current date field, not the deprecated dateTime, and deserializes there
    assert record["Zuora__Effective_Date__c"] == "2024-03-05"
    assert "Zuora__EffectiveDate__c" not in record
    assert ZUORA_360_PACKAGE["Zuora__Payment__c"]["Zuora__EffectiveDate__c"].deprecated
    assert deserialization_error(ZUORA_360_FIELDS["Zuora__Payment__c"], [record]) is None


@pytest.mark.parametrize(("object_type", "sobject", "field", "kind"), mapped_fields())
def test_the_default_mapping_writes_no_deprecated_field(object_type, sobject, field, kind) -> None:
    spec = ZUORA_360_PACKAGE[sobject][field]
    assert not spec.deprecated, f"{object_type}: {sobject}.{field} is labelled deprecated in the package"


def test_every_object_upserts_on_a_unique_external_id_of_the_package() -> None:
    mapping = load_mapping()
    for object_type, obj in mapping.objects.items():
        spec = ZUORA_360_PACKAGE[obj.sobject][obj.external_id_field]
        assert spec.external_id, f"{object_type}: {obj.external_id_field} is not an External ID"
        assert spec.unique, f"{object_type}: {obj.external_id_field} is not unique, so an upsert may match two records"
    assert mapping.objects["Payment"].external_id_field == "Zuora__EXT_ID__c"


def test_every_parent_lookup_names_a_relationship_field_of_the_package() -> None:
    mapping = load_mapping()
    for obj in mapping.objects.values():
        for parent in obj.parents.values():
            spec = ZUORA_360_PACKAGE[obj.sobject][parent.relationship[:-3] + "__c"]
            assert spec.relationship is not None
            assert spec.reference_to == mapping.objects[parent.object].sobject


def test_every_field_of_the_package_file_names_sources_it_defines() -> None:
    raw = json.loads(PACKAGE_METADATA_PATH.read_text(encoding="utf-8"))
    for sobject, fields in ZUORA_360_PACKAGE.items():
        for name, spec in fields.items():
            assert spec.sources, f"{sobject}.{name} names no source"
            assert set(spec.sources) <= raw["sources"].keys(), f"{sobject}.{name} names an undefined source"
            assert not spec.master_detail or spec.required, f"{sobject}.{name}: a master-detail is always required"


def test_a_master_detail_is_required_on_insert_and_never_cleared() -> None:
    payments = ZUORA_360_PACKAGE["Zuora__Payment__c"]
    accounts = ZUORA_360_PACKAGE["Zuora__CustomerAccount__c"]
    master = {"Zuora__BillingAccount__c": "a0B5g00000XyZ12AAB"}

    assert master_detail_error(payments, {"Name": "P-1"}, inserting=True) == (
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [Zuora__BillingAccount__c]",
        ["Zuora__BillingAccount__c"],
    )
    assert master_detail_error(payments, {"Name": "P-1", **master}, inserting=True) is None
    assert master_detail_error(payments, {"Name": "P-1"}, inserting=False) is None  # an update keeps its master
    assert master_detail_error(accounts, {"Zuora__Account__c": None}, inserting=False) is not None
    assert master_detail_error(accounts, {"Zuora__Account__c": ""}, inserting=False) is not None


def test_an_upsert_must_match_on_an_external_id_of_the_package() -> None:
    payments = ZUORA_360_PACKAGE["Zuora__Payment__c"]
    assert not_an_external_id(payments, "Zuora__Payment__c", "Zuora__EXT_ID__c") is None
    assert not_an_external_id(payments, "Zuora__Payment__c", "Zuora__External_Id__c") is None  # deprecated, still one
    assert not_an_external_id(payments, "Zuora__Payment__c", "Name") == (
        "Field name provided, Name is not an External ID or indexed field for Zuora__Payment__c"
    )
    assert not_an_external_id({}, "Contact", "Email") is None  # an sObject the package does not describe


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("Zuora__EffectiveDate__c", "2024-03-05", "instance of datetime from VALUE_STRING value 2024-03-05 "),
        ("Zuora__EffectiveDate__c", "2024-03-05T00:00:00.123456Z", "instance of datetime from VALUE_STRING"),
        ("Zuora__EffectiveDate__c", "2024-03-05T10:25:48", "instance of datetime from VALUE_STRING"),  # no offset
        ("Zuora__EffectiveDate__c", "2024-03-05T10:25:48.000-08:00", None),
        ("Zuora__Amount__c", "n/a", "instance of double from VALUE_STRING value n/a "),
        ("Zuora__Amount__c", True, "instance of double from VALUE_TRUE value true "),
        ("Zuora__Amount__c", 12.5, None),
        ("Zuora__Amount__c", None, None),
        ("Zuora__Status__c", 7, None),
        ("Zuora__Status__c", ["a"], "instance of string from START_ARRAY"),
        ("Unknown__c", "anything", None),  # only the schema's fields are checked
    ],
)
def test_values_are_checked_as_salesforce_deserializes_them(field, value, refused) -> None:
    message = deserialization_error(ZUORA_360_FIELDS["Zuora__Payment__c"], [{"Name": "P-1", field: value}])
    if refused is None:
        assert message is None
    else:
        assert message is not None
        assert message.startswith("Cannot deserialize ")
        assert refused in message
        assert message.endswith("]")
        assert "or request may be missing a required field at [line:1, column:" in message


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("Zuora__DueDate__c", "2024-02-30", True),
        ("Zuora__DueDate__c", "2024-03-05Z", True),  # "Specifying an offset for date is not supported"
        ("Zuora__DueDate__c", "2024-03-05+09:00", True),
        ("Zuora__DueDate__c", "2024-03-05", False),
        ("Zuora__DueDate__c", "05/03/2024", True),
    ],
)
def test_a_date_takes_only_salesforces_date_formats(field, value, refused) -> None:
    message = deserialization_error(ZUORA_360_FIELDS["Zuora__ZInvoice__c"], [{field: value}])
    assert (message is not None) is refused


TABLE_START = "<!-- zuora360-field-table:start -->"
TABLE_END = "<!-- zuora360-field-table:end -->"
DOC = Path(__file__).parents[2] / "docs" / "SALESFORCE.md"


def field_table() -> str:
    """The docs' table of every field the default mapping writes, from the package metadata file."""
    raw = json.loads(PACKAGE_METADATA_PATH.read_text(encoding="utf-8"))
    mapping = load_mapping()
    rows = ["| sObject | Field | Type | Required | External ID | Unique | Relationship | Deprecated | Sources |"]
    rows.append("|---|---|---|---|---|---|---|---|---|")
    seen: set[tuple[str, str]] = set()
    for obj in mapping.objects.values():
        names = [obj.external_id_field, *obj.copy_id_to, *(f.to for f in obj.fields.values())]
        names += [inherited.to for inherited in obj.inherit.values()]
        names += [parent.relationship[:-3] + "__c" for parent in obj.parents.values()]
        for name in names:
            if (obj.sobject, name) in seen:
                continue
            seen.add((obj.sobject, name))
            spec = ZUORA_360_PACKAGE[obj.sobject][name]
            relationship = (
                f"{spec.relationship} to `{spec.reference_to}`, on delete {spec.delete_constraint}"
                if spec.relationship
                else ""
            )
            yes = {True: "yes", False: ""}
            sources = ", ".join(f"[{key}]" for key in spec.sources) + (" (assumption)" if spec.assumption else "")
            rows.append(
                f"| `{obj.sobject}` | `{name}` | {spec.type} | {yes[spec.required]} | {yes[spec.external_id]} | "
                f"{yes[spec.unique]} | {relationship} | {yes[spec.deprecated]} | {sources} |"
            )
    notes = [f"[{key}]: {source['url']}" for key, source in raw["sources"].items()]
    return "\n".join([TABLE_START, "", *rows, "", *notes, "", TABLE_END])


def test_the_docs_field_table_is_the_one_the_package_file_gives() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    assert text[start:end] == field_table(), (
        "docs/SALESFORCE.md's field table is out of date: "
        "replace it with tests.unit.test_salesforce_schema.field_table()"
    )
