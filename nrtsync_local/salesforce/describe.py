"""``GET /services/data/vXX.X/sobjects/{SObject}/describe`` (REST API Developer Guide, "sObject Describe"), answered
from the same schema the stand-in's writes check (``schema.ZUORA_360_FIELDS``), with the attributes ``nrtsync
check`` reads: ``name``, ``type``, ``label``, ``createable``, ``updateable``, ``nillable``, ``defaultedOnCreate``,
``externalId``, ``unique``, ``calculated``, ``deprecatedAndHidden``, ``relationshipName``.

The attributes beyond the type are Zuora 360's field metadata, from the package metadata file the stand-in's
schema is generated from (``zuora360_package.json``, each fact with its source): ``externalId`` and ``unique`` as
it says (``Zuora__Payment__c``'s ``Zuora__External_Id__c`` is labelled deprecated and not unique,
``Zuora__EXT_ID__c`` replaces it), a deprecated field's label says so, and a master-detail (required) is not
nillable; the other references are lookups. A custom object's ``Name`` is required.
"""

from __future__ import annotations

import re
from typing import Any

from nrtsync_local.salesforce.answers import error_list
from nrtsync_local.salesforce.schema import ZUORA_360_FIELDS, ZUORA_360_PACKAGE
from nrtsync_local.standin.server import Answer

DESCRIBE_PATH = re.compile(r"^/sobjects/(?P<sobject>[A-Za-z0-9_]+)/describe/?$")


def describe_answer(method: str, rest: str) -> Answer | None:
    """The describe answer for ``rest`` (the path under ``/services/data/vXX.X``), or None for another path."""
    match = DESCRIBE_PATH.match(rest)
    if match is None or method != "GET":
        return None
    sobject = match["sobject"]
    types = ZUORA_360_FIELDS.get(sobject)
    if types is None:
        return Answer(404, error_list("NOT_FOUND", "The requested resource does not exist"))
    fields = [_id_field()] + [_field(sobject, name, kind) for name, kind in types.items()]
    return Answer(200, {"name": sobject, "custom": True, "createable": True, "updateable": True, "fields": fields})


def _id_field() -> dict[str, Any]:
    return _attributes("Id", "id", createable=False, nillable=False, defaulted=True)


def _field(sobject: str, name: str, kind: str) -> dict[str, Any]:
    attributes = _attributes(name, kind, createable=True, nillable=True, defaulted=False)
    if name == "Name":
        attributes["nillable"] = False
    spec = ZUORA_360_PACKAGE.get(sobject, {}).get(name)
    if spec is not None:
        attributes |= {"externalId": spec.external_id, "unique": spec.unique}
        if spec.deprecated:
            attributes["label"] += " (Deprecated)"
    if kind == "reference":
        attributes["relationshipName"] = (
            spec.relationship_name if spec is not None and spec.relationship_name else name.removesuffix("__c") + "__r"
        )
        attributes["nillable"] = not (spec is not None and spec.master_detail)
    return attributes


def _attributes(name: str, kind: str, *, createable: bool, nillable: bool, defaulted: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.removeprefix("Zuora__").removesuffix("__c").replace("_", " "),
        "type": kind,
        "createable": createable,
        "updateable": createable,
        "nillable": nillable,
        "defaultedOnCreate": defaulted,
        "externalId": False,
        "unique": False,
        "calculated": False,
        "deprecatedAndHidden": False,
        "relationshipName": None,
    }
