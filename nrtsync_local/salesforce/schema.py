"""Field types of Zuora 360's sObjects, and Salesforce's deserialization of a JSON value into a field's type.

Where the types come from: an Enterprise WSDL of an org with Zuora 360 installed, as generated into Java by
Apache Axis (``com.sforce.soap.enterprise.sobject.Zuora__CustomerAccount__c`` and its siblings, public on
GitHub). Axis maps Salesforce's ``xsd:dateTime`` to ``java.util.Calendar``, ``xsd:date`` to ``java.util.Date``,
``xsd:double`` (number, currency, percent) to ``java.lang.Double``, ``xsd:boolean`` to ``java.lang.Boolean``, and
text, picklists, Ids and lookups to ``java.lang.String``; the types below are read from those classes. For
example ``Zuora__Payment__c.Zuora__EffectiveDate__c`` is a ``java.util.Calendar``: a dateTime.
Assumed (not in that WSDL, which predates the field): ``Zuora__Subscription__c.Zuora__CancelledDate__c`` is a
date, like the subscription's other dates and Zuora's own ``Subscription.CancelledDate`` (WSDL 69+).

How Salesforce deserializes a record: the REST API reads the request body with a typed JSON parser before any
record is processed, so a value that does not fit its field's type refuses the whole request with
``400 [{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize instance of date from VALUE_STRING
value X or request may be missing a required field at [line:1, column:N]"}]`` (the message text as Salesforce
answers it; Status Codes and Error Responses, REST API Developer Guide). Accepted formats follow "Valid Date
and DateTime Formats" (SOAP API Developer Guide, the formats the REST API takes too): a date is
``yyyy-MM-dd`` optionally with ``Z`` or an offset; a dateTime is ``yyyy-MM-ddTHH:mm:ss`` with an optional
``.SSS`` (at most 3 digits) and ``Z`` or an offset. Assumed: a dateTime without an offset is accepted (read as
UTC), and numeric text ("12.50") is accepted for a number, ``"true"``/``"false"`` for a checkbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

SalesforceType = Literal["string", "double", "boolean", "date", "datetime", "reference"]

_COMMON: dict[str, SalesforceType] = {
    "Name": "string",
    "Zuora__External_Id__c": "string",
    "Zuora__Zuora_Id__c": "string",
    "Zuora__Account__c": "reference",  # lookup to Account: an Id, text on the wire
}

ZUORA_360_FIELDS: dict[str, dict[str, SalesforceType]] = {
    "Zuora__CustomerAccount__c": {
        **_COMMON,
        "Zuora__AccountNumber__c": "string",
        "Zuora__AutoPay__c": "boolean",
        "Zuora__Balance__c": "double",
        "Zuora__Batch__c": "string",
        "Zuora__BillCycleDay__c": "string",
        "Zuora__CreditBalance__c": "double",
        "Zuora__Credit_Balance__c": "double",
        "Zuora__Currency__c": "string",
        "Zuora__LastInvoiceDate__c": "date",
        "Zuora__MRR__c": "double",
        "Zuora__PaymentTerm__c": "string",
        "Zuora__Status__c": "string",
    },
    "Zuora__Subscription__c": {
        **_COMMON,
        "Zuora__AutoRenew__c": "boolean",
        "Zuora__CancelledDate__c": "date",  # assumed, see the module docstring
        "Zuora__ContractAcceptanceDate__c": "date",
        "Zuora__ContractEffectiveDate__c": "date",
        "Zuora__CustomerAccount__c": "reference",
        "Zuora__MRR__c": "double",
        "Zuora__ServiceActivationDate__c": "date",
        "Zuora__Status__c": "string",
        "Zuora__SubscriptionEndDate__c": "date",
        "Zuora__SubscriptionStartDate__c": "date",
        "Zuora__TCV__c": "double",
        "Zuora__TermEndDate__c": "date",
        "Zuora__TermSettingType__c": "string",
        "Zuora__TermStartDate__c": "date",
        "Zuora__Version__c": "double",
    },
    "Zuora__ZInvoice__c": {
        **_COMMON,
        "Zuora__Balance2__c": "double",
        "Zuora__Balance__c": "double",
        "Zuora__BillingAccount__c": "reference",
        "Zuora__Description__c": "string",
        "Zuora__DueDate__c": "date",
        "Zuora__InvoiceDate__c": "date",
        "Zuora__PaymentAmount__c": "double",
        "Zuora__PostedDate__c": "date",
        "Zuora__Status__c": "string",
        "Zuora__TargetDate__c": "date",
        "Zuora__TaxAmount__c": "double",
        "Zuora__TotalAmount__c": "double",
    },
    "Zuora__Payment__c": {
        **_COMMON,
        "Zuora__Amount__c": "double",
        "Zuora__BillingAccount__c": "reference",
        "Zuora__CancelledOn__c": "datetime",
        "Zuora__EffectiveDate__c": "datetime",
        "Zuora__ReferenceId__c": "string",
        "Zuora__SettledOn__c": "datetime",
        "Zuora__Status__c": "string",
        "Zuora__SubmittedOn__c": "datetime",
        "Zuora__Type__c": "string",
    },
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:Z|[+-]\d{2}:?\d{2})?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})?$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _token(value: Any) -> str:
    """The JSON parser's token name for a value, as Salesforce's message spells it."""
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    tokens = ((int, "VALUE_NUMBER_INT"), (float, "VALUE_NUMBER_FLOAT"), (list, "START_ARRAY"), (dict, "START_OBJECT"))
    return next((token for kind, token in tokens if isinstance(value, kind)), "VALUE_STRING")


def _fits_boolean(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))


def _fits_double(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and bool(_NUMBER.match(value.strip())))


def _fits_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def _fits_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])
    except ValueError:
        return False
    return True


_FITS: dict[SalesforceType, Callable[[Any], bool]] = {
    "string": lambda value: True,  # a scalar is taken as its text
    "reference": lambda value: True,  # parsed as text; a malformed Id fails the record, not the request
    "boolean": _fits_boolean,
    "double": _fits_double,
    "date": _fits_date,
    "datetime": _fits_datetime,
}


def _fits(value: Any, field_type: SalesforceType) -> bool:
    if value is None:
        return True  # null clears the field
    return not isinstance(value, list | dict) and _FITS[field_type](value)


def deserialization_error(
    fields: dict[str, SalesforceType], records: list[dict[str, Any]], body_prefix: int = 0
) -> str | None:
    """Salesforce's JSON_PARSER_ERROR message for the first value in ``records`` that does not fit its field's type,
    or None if every value fits. Fields not in ``fields`` are not checked. The column is where the value ends in
    the records' compact JSON, after ``body_prefix`` characters of the body before the records (approximate)."""
    column = body_prefix
    for record in records:
        column += 1  # "{" or ","
        for name, value in record.items():
            encoded = json.dumps(value, separators=(",", ":"))
            column += len(json.dumps(name)) + 1 + len(encoded) + 1
            field_type = fields.get(name)
            if field_type is None or _fits(value, field_type):
                continue
            shown = value if isinstance(value, str) else encoded
            return (
                f"Cannot deserialize instance of {field_type} from {_token(value)} value {shown} "
                f"or request may be missing a required field at [line:1, column:{column}]"
            )
    return None


# A record Id: 15 case-sensitive characters, or 18 with the case-safe suffix (Salesforce Help, "What is a
# Salesforce ID").
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
# Every custom object has a Name, and a text Name is required (Salesforce Help, "Custom Object Record Name").
REQUIRED_FIELDS = ("Name",)


def record_field_error(fields: dict[str, SalesforceType], record: dict[str, Any]) -> tuple[str, str, list[str]] | None:
    """The per-record error Salesforce gives once a request has parsed: a lookup holding something that is not a
    record Id (``MALFORMED_ID``, as for ``"null"`` written into an Id field), or a required field cleared with
    null (``REQUIRED_FIELD_MISSING``); None if the record is fine. REST API Developer Guide, "Status Codes and
    Error Responses", and SOAP API Developer Guide, "StatusCode", for the codes.

    Kinder than Salesforce, on purpose: a new record without a ``Name`` at all is accepted (Salesforce refuses
    it), because the tests seed and upsert bare records; the sync never sends a Name-less insert of its own
    accord, only a Name cleared by an empty merge field, which is refused here as there."""
    for name, value in record.items():
        if fields.get(name) == "reference" and value is not None and not _RECORD_ID.match(str(value)):
            return "MALFORMED_ID", f"{name}: id value of incorrect type: {value}", [name]
    cleared = [name for name in REQUIRED_FIELDS if name in fields and name in record and record[name] in (None, "")]
    if cleared:
        return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared
    return None
