"""``GET /services/data/vXX.X/sobjects/{SObject}/describe`` (REST API Developer Guide, "sObject Describe"), answered
from the same schema the stand-in's writes check (``schema.ZUORA_360_FIELDS``), with the attributes ``nrtsync
check`` reads: ``name``, ``type``, ``label``, ``createable``, ``updateable``, ``nillable``, ``defaultedOnCreate``,
``externalId``, ``unique``, ``calculated``, ``deprecatedAndHidden``, ``relationshipName``.

The attributes beyond the type are Zuora 360's field metadata (the package's ``objects/*/fields/*.field-meta.xml``
as public Salesforce projects that include it show them): ``Zuora__External_Id__c`` is the External ID and unique,
except on ``Zuora__Payment__c``, where it is labelled deprecated and not unique (``Zuora__EXT_ID__c`` replaces
it); ``Zuora__CustomerAccount__c.Zuora__Account__c`` and ``Zuora__Payment__c.Zuora__BillingAccount__c`` are
master-detail (required); the other references are lookups. A custom object's ``Name`` is required.
"""

from __future__ import annotations

import re
from typing import Any

from nrtsync_local.salesforce.answers import error_list
from nrtsync_local.salesforce.schema import ZUORA_360_FIELDS
from nrtsync_local.standin.server import Answer

DESCRIBE_PATH = re.compile(r"^/sobjects/(?P<sobject>[A-Za-z0-9_]+)/describe/?$")
_MASTER_DETAIL = {("Zuora__CustomerAccount__c", "Zuora__Account__c"), ("Zuora__Payment__c", "Zuora__BillingAccount__c")}
_NOT_UNIQUE_EXTERNAL_ID = {("Zuora__Payment__c", "Zuora__External_Id__c")}


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
    if name == "Zuora__External_Id__c":
        unique = (sobject, name) not in _NOT_UNIQUE_EXTERNAL_ID
        attributes |= {"externalId": True, "unique": unique}
        if not unique:
            attributes["label"] = "External Id (Deprecated)"
    if kind == "reference":
        attributes["relationshipName"] = name.removesuffix("__c") + "__r"
        attributes["nillable"] = (sobject, name) not in _MASTER_DETAIL
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
