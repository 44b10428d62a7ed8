"""``GET /v1/describe/{object}`` as Zuora answers it (developer.zuora.com, v1 API reference, "Describe"): an XML
document listing the object's fields, read from ``zuora_fields.json`` (one list per object, each naming where it
came from), so the stand-in describes exactly the fields its tenant has."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

FIELDS_FILE = Path(__file__).with_name("zuora_fields.json")
# Fields the system sets: describe lists them as neither createable nor updateable.
_SYSTEM_FIELDS = frozenset({"Id", "CreatedDate", "UpdatedDate"})


@cache
def field_types() -> dict[str, dict[str, str]]:
    """Object name -> field name -> Zuora's describe type."""
    objects = json.loads(FIELDS_FILE.read_text(encoding="utf-8"))["objects"]
    return {name: dict(spec["fields"]) for name, spec in objects.items()}


def describe_xml(object_type: str) -> str | None:
    """The describe document, or None for an object the tenant does not have (answered 404)."""
    fields = field_types().get(object_type)
    if fields is None:
        return None
    rows = []
    for name, field_type in fields.items():
        writable = "false" if name in _SYSTEM_FIELDS else "true"
        rows.append(
            f"<field><name>{escape(name)}</name><label>{escape(name)}</label><selectable>true</selectable>"
            f"<createable>{writable}</createable><updateable>{writable}</updateable><filterable>true</filterable>"
            f"<custom>{'true' if name.endswith('__c') else 'false'}</custom><required>false</required>"
            f"<type>{escape(field_type)}</type><contexts><context>soap</context><context>export</context>"
            "</contexts></field>"
        )
    head = f"<?xml version='1.0' encoding='UTF-8'?><object><name>{escape(object_type)}</name>"
    return f"{head}<fields>{''.join(rows)}</fields></object>"
