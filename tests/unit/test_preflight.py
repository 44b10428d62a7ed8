"""``nrtsync check``'s findings (the preflight service) on in-memory describes: a deliberately broken mapping shows
each problem, one finding each, and a mapping that fits shows none."""

from __future__ import annotations

from typing import Any

from nrtsync.domain.mapping import MappingConfig
from nrtsync.ports.salesforce_describe import SalesforceField
from nrtsync.ports.zuora_setup import ZuoraField
from nrtsync.services.preflight.service import blocking, check_salesforce, check_zuora

ORG = {
    "Thing__c": [
        SalesforceField("Id", "id", createable=False, updateable=False, nillable=False, defaulted_on_create=True),
        SalesforceField("Name", "string", nillable=False),
        SalesforceField("Key__c", "string", external_id=True, unique=True),
        SalesforceField("Old_Key__c", "string", external_id=True, unique=False, label="Old Key (Deprecated)"),
        SalesforceField("Plain__c", "string"),
        SalesforceField("Amount__c", "double"),
        SalesforceField("Total__c", "double", createable=False, updateable=False, calculated=True),
        SalesforceField("Locked__c", "string", updateable=False),
        SalesforceField("Parent__c", "reference", nillable=False, relationship_name="Parent__r"),
    ],
    "Parent__c": [
        SalesforceField("Key__c", "string", external_id=True, unique=True),
        SalesforceField("Name", "string"),
    ],
}
TENANT = {"Account": ["Id", "UpdatedDate", "Name", "Balance"], "Invoice": ["Id", "UpdatedDate", "AccountId", "Amount"]}


class FakeOrg:
    def describe(self, sobject: str) -> list[SalesforceField] | None:
        return ORG.get(sobject)


class FakeTenant:
    def describe(self, object_type: str) -> list[ZuoraField] | None:
        names = TENANT.get(object_type)
        return None if names is None else [ZuoraField(n, "text") for n in names]


def _mapping(objects: dict[str, Any]) -> MappingConfig:
    return MappingConfig.model_validate({"objects": objects})


GOOD = {
    "Account": {"sobject": "Parent__c", "externalIdField": "Key__c", "fields": {"Name": {"to": "Name"}}},
    "Invoice": {
        "sobject": "Thing__c",
        "externalIdField": "Key__c",
        "fields": {"Amount": {"to": "Amount__c", "type": "number"}},
        "parents": {"AccountId": {"relationship": "Parent__r", "object": "Account"}},
    },
}


def test_a_mapping_that_fits_has_no_findings() -> None:
    mapping = _mapping(GOOD)

    findings = check_salesforce(mapping, FakeOrg()) + check_zuora(mapping, FakeTenant())

    assert [f for f in findings if f.what != "Thing__c.Name"] == []
    # Name is required on Thing__c and GOOD does not fill it
    assert [(f.what, f.problem) for f in findings] == [
        ("Thing__c.Name", "required (a master-detail or required field) and not mapped")
    ]


def test_a_broken_mapping_shows_each_problem() -> None:
    mapping = _mapping(
        {
            "Account": {"sobject": "Parent__c", "externalIdField": "Key__c", "fields": {"Nmae": {"to": "Name"}}},
            "Invoice": {
                "sobject": "Thing__c",
                "externalIdField": "Old_Key__c",
                "fields": {
                    "Amount": {"to": "Plain__c", "type": "number"},
                    "Balance": {"to": "Missing__c"},
                    "Total": {"to": "Total__c", "type": "number"},
                    "Name": {"to": "Locked__c"},
                },
            },
            "Payment": {"sobject": "Nothing__c", "externalIdField": "Key__c"},
        }
    )

    salesforce = {(f.what, f.problem) for f in check_salesforce(mapping, FakeOrg())}
    zuora = {(f.what, f.problem) for f in check_zuora(mapping, FakeTenant())}

    assert salesforce == {
        ("Nothing__c", "the org has no sObject Nothing__c (mapped from Payment), or the user cannot see it"),
        ("Thing__c.Missing__c", "missing (or not visible to the integration user)"),
        ("Thing__c.Plain__c", "type string does not take the mapping's number"),
        ("Thing__c.Total__c", "the integration user cannot create or update it"),
        ("Thing__c.Locked__c", "the integration user cannot update it"),
        ("Thing__c.Old_Key__c", "deprecated"),
        ("Thing__c.Old_Key__c", "the external id field is not unique"),
        ("Thing__c.Name", "required (a master-detail or required field) and not mapped"),
        ("Thing__c.Parent__c", "required (a master-detail or required field) and not mapped"),
    }
    assert zuora == {
        ("Zuora Account.Nmae", "not in Zuora's describe"),
        ("Zuora Invoice.Balance", "not in Zuora's describe"),
        ("Zuora Invoice.Total", "not in Zuora's describe"),
        ("Zuora Invoice.Name", "not in Zuora's describe"),
        ("Zuora Payment", "the tenant has no such object"),
    }


def test_only_warnings_do_not_block() -> None:
    mapping = _mapping(
        {
            "Invoice": {
                "sobject": "Thing__c",
                "externalIdField": "Key__c",
                "fields": {
                    "Name": {"to": "Name"},
                    "Parent": {"to": "Parent__c", "type": "salesforceId"},
                    "Old": {"to": "Old_Key__c"},
                },
            }
        }
    )

    findings = check_salesforce(mapping, FakeOrg())

    assert [(f.severity, f.what) for f in findings] == [("warn", "Thing__c.Old_Key__c")]
    assert not blocking(findings)
