"""The default mapping against the field types of Zuora 360's sObjects (the stand-in's schema), so they cannot drift."""

from __future__ import annotations

import pytest

from nrtsync.domain.mapping import FieldType, build_record, load_mapping
from nrtsync_local.salesforce.schema import ZUORA_360_FIELDS, SalesforceType, deserialization_error

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


def test_a_payments_effective_date_is_mapped_as_the_datetime_it_is_in_zuora_360() -> None:
    # Given Zuora's payment callout, whose EffectiveDate is a date ("2024-03-05")
    mapping = load_mapping()
    record = build_record(mapping, "Payment", "P1", {"EffectiveDate": "2024-03-05", "Amount": "1250.00"})

    # Then the mapped value deserializes into Zuora 360's dateTime field, as Salesforce would parse it
    assert ZUORA_360_FIELDS["Zuora__Payment__c"]["Zuora__EffectiveDate__c"] == "datetime"
    assert deserialization_error(ZUORA_360_FIELDS["Zuora__Payment__c"], [record]) is None


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("Zuora__EffectiveDate__c", "2024-03-05", "instance of datetime from VALUE_STRING value 2024-03-05 "),
        ("Zuora__EffectiveDate__c", "2024-03-05T00:00:00.123456Z", "instance of datetime from VALUE_STRING"),
        ("Zuora__EffectiveDate__c", "2024-03-05T10:25:48", None),
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
        ("Zuora__DueDate__c", "2024-03-05Z", False),
        ("Zuora__DueDate__c", "05/03/2024", True),
    ],
)
def test_a_date_takes_only_salesforces_date_formats(field, value, refused) -> None:
    message = deserialization_error(ZUORA_360_FIELDS["Zuora__ZInvoice__c"], [{field: value}])
    assert (message is not None) is refused
