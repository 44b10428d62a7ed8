"""What the stand-in answers: Salesforce's error bodies, and the REST paths it serves."""

from __future__ import annotations

import re
from typing import Any

from nrtsync_local.standin.server import Answer

DATA_PATH = re.compile(r"^/services/data/v(?P<version>\d{2,3}\.\d)(?P<rest>/.*)?$")
COLLECTION_PATH = re.compile(r"^/composite/sobjects/(?P<sobject>[A-Za-z0-9_]+)/(?P<field>[A-Za-z0-9_]+)/?$")
# sObject Collections without an sObject: DELETE with ?ids= (the only method the stand-in serves there)
COLLECTIONS_ROOT_PATH = re.compile(r"^/composite/sobjects/?$")
# sObject Rows by External ID: /sobjects/{SObject}/{ExternalIdField}/{value}
ROW_BY_EXTERNAL_ID_PATH = re.compile(
    r"^/sobjects/(?P<sobject>[A-Za-z0-9_]+)/(?P<field>[A-Za-z0-9_]+)/(?P<value>[^/]+)/?$"
)
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


def error_list(error_code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """The body of a refused REST request: ``[{"message", "errorCode"[, "fields"]}]``."""
    error: dict[str, Any] = {"message": message, "errorCode": error_code}
    if fields is not None:
        error["fields"] = fields
    return [error]


def record_error(status_code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One refused record's entry in an sObject Collections answer."""
    return {"success": False, "errors": [{"statusCode": status_code, "message": message, "fields": fields or []}]}


def not_found() -> Answer:
    return Answer(404, error_list("NOT_FOUND", "The requested resource does not exist"))


def method_not_allowed(method: str, allowed: str) -> Answer:
    return Answer(405, error_list("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"))
