"""The mapping against what the org and the tenant actually have, one finding per problem with what to do.

Salesforce (``SalesforceSchemaPort``, "sObject Describe"): every mapped sObject exists; every field the mapping
writes exists, has a type its values fit, and the integration user can create and update it; the external id
field is an External ID and unique; every required field (not nillable, not defaulted, not calculated: a
master-detail, say) is filled by the mapping; a deprecated field is worth replacing. Zuora
(``ZuoraDescribePort``, ``GET /v1/describe/{object}``): every mapped object and field exists.
Blocking findings stop syncing (``nrtsync check`` exits 1); warnings do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nrtsync.domain.mapping import FieldType, MappingConfig, ObjectMapping
from nrtsync.domain.zuora_notifications import queried_fields
from nrtsync.ports.salesforce_describe import SalesforceField, SalesforceSchemaPort
from nrtsync.ports.zuora_setup import ZuoraDescribePort

Severity = Literal["block", "warn", "ok"]

# Salesforce field types (describe's ``type``) a mapping type's values fit.
COMPATIBLE: dict[FieldType, frozenset[str]] = {
    "string": frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone", "url", "combobox"}),
    "number": frozenset({"double", "currency", "percent", "int", "long"}),
    "integer": frozenset({"int", "long", "double", "currency", "percent"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "salesforceId": frozenset({"reference", "id", "string"}),
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    what: str
    problem: str
    fix: str


def _block(what: str, problem: str, fix: str) -> Finding:
    return Finding("block", what, problem, fix)


def written_fields(mapping: MappingConfig, object_type: str) -> dict[str, FieldType | None]:
    """Salesforce field -> the mapping type written to it (None: the Zuora Id, written as text)."""
    obj = mapping.objects[object_type]
    written: dict[str, FieldType | None] = {obj.external_id_field: None}
    written |= dict.fromkeys(obj.copy_id_to)
    written |= {spec.to: spec.type for spec in obj.fields.values()}
    written |= {inherited.to: mapping.inherited_spec(object_type, name).type for name, inherited in obj.inherit.items()}
    return written


def check_salesforce(mapping: MappingConfig, salesforce: SalesforceSchemaPort) -> list[Finding]:
    findings: list[Finding] = []
    for object_type, obj in mapping.objects.items():
        described = salesforce.describe(obj.sobject)
        if described is None:
            findings.append(
                _block(
                    obj.sobject,
                    f"the org has no sObject {obj.sobject} (mapped from {object_type}), or the user cannot see it",
                    "install the Zuora 360 package, or fix the mapping's sobject, or grant the permission set",
                )
            )
            continue
        fields = {f.name: f for f in described}
        findings += _fields(mapping, object_type, fields)
        findings += _lookups(obj, fields)
    return findings


def _fields(mapping: MappingConfig, object_type: str, fields: dict[str, SalesforceField]) -> list[Finding]:
    findings = []
    obj = mapping.objects[object_type]
    written = written_fields(mapping, object_type)
    for name, mapping_type in written.items():
        where = f"{obj.sobject}.{name}"
        field = fields.get(name)
        if field is None:
            findings.append(
                _block(
                    where,
                    "missing (or not visible to the integration user)",
                    "create it, grant field access (`nrtsync salesforce permissions`), or fix the mapping",
                )
            )
            continue
        if mapping_type is not None and field.type not in COMPATIBLE[mapping_type]:
            findings.append(
                _block(
                    where,
                    f"type {field.type} does not take the mapping's {mapping_type}",
                    f"change the mapping's type for {object_type} to one that fits {field.type}, or map another field",
                )
            )
        if not field.createable or not field.updateable:
            can = [verb for verb, ok in (("create", field.createable), ("update", field.updateable)) if not ok]
            findings.append(
                _block(
                    where,
                    f"the integration user cannot {' or '.join(can)} it",
                    "grant edit access to the field (`nrtsync salesforce permissions`), or unmap a calculated field",
                )
            )
        if field.deprecated or "deprecated" in field.label.lower():
            findings.append(
                Finding("warn", where, "deprecated", "map the field that replaces it (see the package's release notes)")
            )
    key = fields.get(obj.external_id_field)
    if key is not None and not (key.external_id and key.unique):
        missing = [word for word, ok in (("an External ID", key.external_id), ("unique", key.unique)) if not ok]
        findings.append(
            _block(
                f"{obj.sobject}.{obj.external_id_field}",
                f"the external id field is not {' and not '.join(missing)}",
                "use the sObject's unique External ID field as externalIdField (Zuora 360: Zuora__EXT_ID__c on "
                "payments), or mark the field External ID and Unique",
            )
        )
    filled = set(written) | {_lookup_field(p.relationship) for p in obj.parents.values()}
    for field in fields.values():
        required = not field.nillable and not field.defaulted_on_create and field.createable and not field.calculated
        if required and field.name not in filled:
            findings.append(
                _block(
                    f"{obj.sobject}.{field.name}",
                    "required (a master-detail or required field) and not mapped",
                    "map a Zuora field to it; without it Salesforce refuses every new record",
                )
            )
    return findings


def _lookup_field(relationship: str) -> str:
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def _lookups(obj: ObjectMapping, fields: dict[str, SalesforceField]) -> list[Finding]:
    by_relationship = {f.relationship_name: f for f in fields.values() if f.relationship_name}
    return [
        _block(
            f"{obj.sobject}.{parent.relationship}",
            "no lookup with this relationship name",
            "fix the mapping's relationship (the lookup field's relationshipName, ending in __r)",
        )
        for parent in obj.parents.values()
        if parent.relationship not in by_relationship and _lookup_field(parent.relationship) not in fields
    ]


def check_zuora(mapping: MappingConfig, zuora: ZuoraDescribePort) -> list[Finding]:
    findings = []
    for object_type in mapping.objects:
        described = zuora.describe(object_type)
        if described is None:
            findings.append(
                _block(f"Zuora {object_type}", "the tenant has no such object", "fix the mapping's object name")
            )
            continue
        have = {f.name for f in described}
        findings += [
            _block(
                f"Zuora {object_type}.{name}",
                "not in Zuora's describe",
                "fix the field name in the mapping, or create the custom field in Zuora",
            )
            for name in queried_fields(mapping, object_type)
            if name not in have
        ]
    return findings


def blocking(findings: list[Finding]) -> bool:
    return any(f.severity == "block" for f in findings)
