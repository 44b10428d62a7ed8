"""The contract of Salesforce's describe (REST API Developer Guide, "sObject Describe":
``GET /services/data/vXX.X/sobjects/{SObject}/describe``, whose ``fields[]`` carry ``name``, ``type``,
``createable``, ``updateable``, ``nillable``, ``defaultedOnCreate``, ``externalId``, ``unique``, ``calculated``,
``deprecatedAndHidden``, ``label`` and, for a lookup, ``relationshipName``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SalesforceField:
    name: str
    type: str
    label: str = ""
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    external_id: bool = False
    unique: bool = False
    calculated: bool = False
    deprecated: bool = False
    relationship_name: str | None = None

    @classmethod
    def from_describe(cls, item: dict[str, Any]) -> SalesforceField:
        return cls(
            name=str(item.get("name", "")),
            type=str(item.get("type", "")),
            label=str(item.get("label") or ""),
            createable=bool(item.get("createable")),
            updateable=bool(item.get("updateable")),
            nillable=bool(item.get("nillable", True)),
            defaulted_on_create=bool(item.get("defaultedOnCreate")),
            external_id=bool(item.get("externalId")),
            unique=bool(item.get("unique")),
            calculated=bool(item.get("calculated")),
            deprecated=bool(item.get("deprecatedAndHidden")),
            relationship_name=item.get("relationshipName"),
        )


class SalesforceSchemaPort(Protocol):
    def describe(self, sobject: str) -> list[SalesforceField] | None:
        """The sObject's fields as the integration user sees them, or None when the org has no such sObject."""
        ...
