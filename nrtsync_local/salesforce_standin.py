"""A local HTTPS Salesforce stand-in: OAuth token, sObject Collections upsert, Composite, limits, fault injection.

It answers the way Salesforce's REST API documents it (response shapes, error codes, the
``Sforce-Limit-Info`` header), closely enough for the adapter and the sync logic to be tested over real
HTTPS. Records live in memory, per sObject; the sObject must be known, relationships (``Rel__r: {ExtField:
value}``) must be configured, and values of the fields in ``StandinConfig.fields`` (Zuora 360's, by default)
must fit their types or the whole request is refused with 400 ``JSON_PARSER_ERROR``; other fields are not
checked. Known approximations: the messages of rarely seen errors, the column in a JSON_PARSER_ERROR
message, and the API allocation counts every authenticated request (not refused or fault-injected ones).

Control API (plain JSON, no auth) under ``/__standin/``: ``faults``, ``config``, ``records/{SObject}``,
``stats``, ``reset``, ``health``; see docs/SALESFORCE.md.

Run as a process::

    python -m nrtsync_local.salesforce_standin --port 0 --ready-file ready.json --ca-file ca.pem
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import ssl
import string
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote

import trustme

from nrtsync_local.salesforce_oauth import (
    JWT_BEARER_GRANT,
    ConnectedApp,
    load_verification_key,
    verify_jwt_bearer_assertion,
)
from nrtsync_local.salesforce_oauth import OAuthRefusalError as _OAuthRefusalError
from nrtsync_local.salesforce_schema import (
    ZUORA_360_FIELDS,
    SalesforceType,
    deserialization_error,
    record_field_error,
)

MAX_COLLECTION_RECORDS = 200
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_COLLECTIONS = 5  # sObject Collections (or query) subrequests per Composite request
DEFAULT_API_LIMIT = 15_000
DEFAULT_SESSION_TTL_SECONDS = 7_200.0

ZUORA_360_SOBJECTS = (
    "Zuora__CustomerAccount__c",
    "Zuora__Subscription__c",
    "Zuora__ZInvoice__c",
    "Zuora__Payment__c",
    "Zuora__SubscriptionProductCharge__c",
    "Zuora__PaymentMethod__c",
)
DEFAULT_SOBJECTS = ("Account", "Contact", *ZUORA_360_SOBJECTS)
# Relationship name -> the sObject it points to (Zuora 360's lookups to the billing account).
DEFAULT_RELATIONSHIPS = {
    "Zuora__CustomerAccount__r": "Zuora__CustomerAccount__c",
    "Zuora__BillingAccount__r": "Zuora__CustomerAccount__c",
    "Account": "Account",
    "Zuora__Account__r": "Account",
}
_KNOWN_KEY_PREFIXES = {"Account": "001", "Contact": "003", "User": "005", "Organization": "00D"}
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_DATA_PATH = re.compile(r"^/services/data/v(?P<version>\d{2,3}\.\d)(?P<rest>/.*)?$")
_COLLECTION_PATH = re.compile(r"^/composite/sobjects/(?P<sobject>[A-Za-z0-9_]+)/(?P<field>[A-Za-z0-9_]+)/?$")
# sObject Rows by External ID: /sobjects/{SObject}/{ExternalIdField}/{value}
_ROW_BY_EXTERNAL_ID_PATH = re.compile(
    r"^/sobjects/(?P<sobject>[A-Za-z0-9_]+)/(?P<field>[A-Za-z0-9_]+)/(?P<value>[^/]+)/?$"
)
# From API version 46.0 an upsert that updates answers 200 with a body (``created: false``); before, 204.
_UPSERT_UPDATE_BODY_SINCE = 46.0
_JSON = "application/json;charset=UTF-8"
_COLLECTION_BODY_PREFIX = '{"allOrNone":false,"records":['


def salesforce_id(key_prefix: str, number: int) -> str:
    """An 18-character Salesforce-style Id: key prefix, padded base62 number, case-safe checksum suffix."""
    digits = ""
    while True:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
        if number == 0:
            break
    id15 = (key_prefix + "5g" + digits.rjust(10, "0"))[:15]
    suffix = ""
    for chunk_start in range(0, 15, 5):
        chunk = id15[chunk_start : chunk_start + 5]
        flags = sum(1 << position for position, char in enumerate(chunk) if char.isupper())
        suffix += _ID_SUFFIX_ALPHABET[flags]
    return id15 + suffix


def key_prefix_for(sobject: str) -> str:
    """Standard objects keep their real prefix; custom objects get a stable ``a..`` prefix."""
    if sobject in _KNOWN_KEY_PREFIXES:
        return _KNOWN_KEY_PREFIXES[sobject]
    crc = zlib.crc32(sobject.encode())
    return "a" + _BASE62[crc % 62] + _BASE62[(crc // 62) % 62]


def lookup_field_for(relationship: str) -> str:
    """The lookup field behind a relationship name: ``Foo__r`` -> ``Foo__c``, ``Account`` -> ``AccountId``."""
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def _error_list(error_code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    error: dict[str, Any] = {"message": message, "errorCode": error_code}
    if fields is not None:
        error["fields"] = fields
    return [error]


def _record_error(status_code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": status_code, "message": message, "fields": fields or []}]}


@dataclass
class StandinConfig:
    """What the stand-in accepts: credentials, the sObjects it knows, relationships, the API allocation.

    JWT bearer (``nrtsync_local.salesforce_oauth``): ``jwt_certificate_pem`` is the connected app's certificate
    (or a PEM public key), ``jwt_username`` the one pre-authorised user (None: nobody), ``sandbox`` makes the
    org a sandbox (audience https://test.salesforce.com), ``experience_site_urls`` are further audiences.
    """

    client_id: str = field(default_factory=lambda: "3MVG9standin" + secrets.token_hex(8))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt_certificate_pem: str | None = None
    jwt_username: str | None = None
    sandbox: bool = False
    experience_site_urls: list[str] = field(default_factory=list)
    sobjects: set[str] = field(default_factory=lambda: set(DEFAULT_SOBJECTS))
    relationships: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RELATIONSHIPS))
    # sObject -> field -> type: values of these fields are type-checked as Salesforce deserializes them.
    fields: dict[str, dict[str, SalesforceType]] = field(
        default_factory=lambda: {sobject: dict(types) for sobject, types in ZUORA_360_FIELDS.items()}
    )
    api_limit: int = DEFAULT_API_LIMIT
    session_ttl_seconds: float = DEFAULT_SESSION_TTL_SECONDS


@dataclass
class Answer:
    """One HTTP answer: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Faults:
    latency_ms: int = 0
    fail_next: list[dict[str, Any]] = field(default_factory=list)
    row_lock: dict[str, Any] | None = None
    validation_rules: list[dict[str, Any]] = field(default_factory=list)
    approval_locks: set[str] = field(default_factory=set)  # external ids of records locked by an approval process

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "fail_next": self.fail_next,
            "row_lock": self.row_lock,
            "validation_rules": self.validation_rules,
            "approval_locks": sorted(self.approval_locks),
        }


@dataclass
class _Stats:
    api_calls: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    records_per_call: list[int] = field(default_factory=list)
    injected_faults: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "records_per_call": self.records_per_call,
            "injected_faults": self.injected_faults,
        }


class SalesforceState:
    """Everything the stand-in knows, behind one lock: sessions, records, faults, counters."""

    def __init__(self, config: StandinConfig, base_url: Callable[[], str]) -> None:
        self.config = config
        self._base_url = base_url
        self._lock = threading.RLock()
        self._sessions: dict[str, float] = {}
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._id_counter = 0
        self._org_id = salesforce_id("00D", 1)
        self._user_id = salesforce_id("005", 1)
        self._api_used = 0
        self._faults = _Faults()
        self._stats = _Stats()
        self._rng = random.Random()  # noqa: S311 - fault injection, not security
        self.stop_event = threading.Event()

    # --- headers, latency, counters ----------------------------------------------------------

    def limit_info(self) -> str:
        with self._lock:
            return f"api-usage={self._api_used}/{self.config.api_limit}"

    def latency_seconds(self) -> float:
        with self._lock:
            return self._faults.latency_ms / 1000.0

    def count_status(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._stats.by_endpoint[endpoint] += 1
            self._stats.by_status[str(status)] += 1

    # --- OAuth -------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> Answer:
        """``POST /services/oauth2/token`` for the client credentials and JWT bearer flows."""
        with self._lock:
            self._stats.token_requests += 1
            injected = self._pop_fault("token")
            if injected is not None:
                return injected
            grant_type = form.get("grant_type", "")
            try:
                self._check_grant(grant_type, form)
            except _OAuthRefusalError as refusal:
                return Answer(400, {"error": refusal.error, "error_description": refusal.description})
            return Answer(200, self._issue_token(grant_type))

    def _check_grant(self, grant_type: str, form: dict[str, str]) -> None:
        if grant_type == "client_credentials":
            self._check_client_credentials(form)
        elif grant_type == JWT_BEARER_GRANT:
            self._check_jwt_assertion(form.get("assertion", ""))
        else:
            raise _OAuthRefusalError("unsupported_grant_type", "grant type not supported")

    def _check_client_credentials(self, form: dict[str, str]) -> None:
        if form.get("client_id") != self.config.client_id:
            raise _OAuthRefusalError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(form.get("client_secret", ""), self.config.client_secret):
            raise _OAuthRefusalError("invalid_client", "invalid client credentials")

    def _check_jwt_assertion(self, assertion: str) -> None:
        # The URL the assertion was posted to plays no part: Salesforce checks aud against fixed values.
        app = ConnectedApp(
            consumer_key=self.config.client_id,
            certificate_pem=self.config.jwt_certificate_pem,
            username=self.config.jwt_username,
            sandbox=self.config.sandbox,
            experience_site_urls=tuple(self.config.experience_site_urls),
        )
        verify_jwt_bearer_assertion(assertion, app, now=time.time())

    def _issue_token(self, grant_type: str) -> dict[str, Any]:
        access_token = f"{self._org_id[:15]}!{secrets.token_urlsafe(48)}"
        self._sessions[access_token] = time.monotonic() + self.config.session_ttl_seconds
        self._stats.tokens_issued += 1
        base = self._base_url()
        identity = f"{base}/id/{self._org_id}/{self._user_id}"
        issued_at = str(int(time.time() * 1000))
        digest = hmac.new(self.config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        answer: dict[str, Any] = {
            "access_token": access_token,
            "signature": base64.b64encode(digest.digest()).decode(),
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if grant_type == "client_credentials":
            answer["scope"] = "api"
        return answer

    # --- the authenticated API ---------------------------------------------------------------

    def api(self, method: str, rest: str, authorization: str, body: bytes, version: str = "62.0") -> Answer:
        """Every request under ``/services/data/vNN.N``: session, injected faults, allocation, routing."""
        with self._lock:
            if not self._session_valid(authorization):
                return Answer(401, _error_list("INVALID_SESSION_ID", "Session expired or invalid"))
            injected = self._pop_fault("api")
            if injected is not None:
                return injected
            if self._api_used >= self.config.api_limit:
                return Answer(403, _error_list("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            self._api_used += 1
            self._stats.api_calls += 1
            return self._route(method, rest, body, version)

    def _session_valid(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return False
        expires = self._sessions.get(token.strip())
        return expires is not None and expires > time.monotonic()

    def _route(self, method: str, rest: str, body: bytes, version: str = "62.0") -> Answer:
        if rest.rstrip("/") == "/limits":
            return Answer(200, self._limits()) if method == "GET" else _method_not_allowed(method, "GET")
        is_composite = rest.rstrip("/") == "/composite"
        if not is_composite and not _ROW_BY_EXTERNAL_ID_PATH.match(rest) and not _COLLECTION_PATH.match(rest):
            return Answer(404, _error_list("NOT_FOUND", "The requested resource does not exist"))
        if method != ("POST" if is_composite else "PATCH"):
            return _method_not_allowed(method, "POST" if is_composite else "PATCH")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return Answer(400, _error_list("JSON_PARSER_ERROR", "The request body is not valid JSON"))
        if is_composite:
            return self._composite(payload)
        answer = self._upsert(rest, payload, version)
        return (
            answer
            if answer is not None
            else Answer(404, _error_list("NOT_FOUND", "The requested resource does not exist"))
        )

    def _upsert(self, rest: str, payload: Any, version: str) -> Answer | None:
        """A PATCH upsert (sObject Collections or sObject Rows by External ID), standalone or as a Composite
        subrequest; ``None`` if ``rest`` is neither."""
        row = _ROW_BY_EXTERNAL_ID_PATH.match(rest)
        if row is not None:
            return self._upsert_row(row["sobject"], row["field"], unquote(row["value"]), payload, version)
        collection = _COLLECTION_PATH.match(rest)
        if collection is not None:
            return self._upsert_collection(collection["sobject"], collection["field"], payload)
        return None

    # --- Composite -----------------------------------------------------------------------------

    def _composite(self, payload: Any) -> Answer:
        """``POST /composite``: the subrequests run in order (``collateSubrequests`` is not modelled), each
        through the same code as its standalone resource, as one API call. Supported subrequests: PATCH upserts
        by sObject Collections and by sObject Rows by External ID; others get a 400 of their own. ``@{ref}``
        references are not resolved. An outer ``allOrNone: true`` rolls everything back if any subrequest or
        record fails (the others answer 400 ``PROCESSING_HALTED``)."""
        subrequests = payload.get("compositeRequest") if isinstance(payload, dict) else None
        if not isinstance(subrequests, list) or not subrequests or not all(isinstance(s, dict) for s in subrequests):
            return Answer(
                400, _error_list("JSON_PARSER_ERROR", "compositeRequest must be a non-empty array of objects")
            )
        if len(subrequests) > MAX_COMPOSITE_SUBREQUESTS:
            return _composite_refusal(
                f"The request can\u2019t contain more than {MAX_COMPOSITE_SUBREQUESTS} operations."
            )
        collections = sum(1 for s in subrequests if _COLLECTION_PATH.match(_subrequest_rest(s.get("url")) or ""))
        if collections > MAX_COMPOSITE_COLLECTIONS:
            return _composite_refusal(
                f"The request can\u2019t contain more than {MAX_COMPOSITE_COLLECTIONS} sObject Collections or query "
                "operations."
            )
        all_or_none = bool(payload.get("allOrNone", False))
        snapshot = copy.deepcopy(self._records) if all_or_none else None
        records_mark = len(self._stats.records_per_call)
        results = [self._subrequest(sub, all_or_none) for sub in subrequests]
        # One API call: the records of all its subrequests make one entry of records_per_call.
        counted = self._stats.records_per_call[records_mark:]
        if counted:
            del self._stats.records_per_call[records_mark:]
            self._stats.records_per_call.append(sum(counted))
        if snapshot is not None and any(not _subresult_succeeded(result) for result in results):
            self._records = snapshot
            results = [_halted(result) for result in results]
        return Answer(200, {"compositeResponse": results})

    def _subrequest(self, sub: dict[str, Any], all_or_none: bool) -> dict[str, Any]:
        method, url = str(sub.get("method", "")).upper(), sub.get("url")
        target = _DATA_PATH.match(url.split("?", 1)[0]) if isinstance(url, str) else None
        rest = (target["rest"] or "/") if target else ""
        body = sub.get("body")
        if all_or_none and _COLLECTION_PATH.match(rest) and isinstance(body, dict):
            body = {**body, "allOrNone": True}  # the outer allOrNone overrides the collections' own
        answer = self._upsert(rest, body, target["version"]) if target and method == "PATCH" else None
        if answer is None and target and (_COLLECTION_PATH.match(rest) or _ROW_BY_EXTERNAL_ID_PATH.match(rest)):
            answer = _method_not_allowed(method, "PATCH")
        if answer is None:
            message = (
                f"The stand-in's Composite runs PATCH upserts (sObject Collections, external ID) only: {method} {url}"
            )
            answer = Answer(400, _error_list("INVALID_INPUT", message))
        return {
            "body": answer.body,
            "httpHeaders": dict(answer.headers),
            "httpStatusCode": answer.status,
            "referenceId": sub.get("referenceId"),
        }

    def _limits(self) -> dict[str, Any]:
        limit = self.config.api_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - self._api_used)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }

    # --- sObject Collections upsert --------------------------------------------------------

    def _upsert_collection(self, sobject: str, ext_field: str, payload: Any) -> Answer:
        if sobject not in self.config.sobjects:
            return Answer(404, _error_list("NOT_FOUND", "The requested resource does not exist"))
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return Answer(400, _error_list("JSON_PARSER_ERROR", "Expected a JSON object with a records array"))
        if len(records) > MAX_COLLECTION_RECORDS:
            return Answer(
                400,
                _error_list(
                    "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
                ),
            )
        refusal = self._check_collection(sobject, records)
        if refusal is not None:
            return refusal
        self._stats.records_per_call.append(len(records))
        all_or_none = bool(payload.get("allOrNone", False))
        staged = copy.deepcopy(self._records.get(sobject, {}))
        ext_values = [record.get(ext_field) for record in records]
        duplicates = {value for value, seen in Counter(v for v in ext_values if v is not None).items() if seen > 1}
        results = [self._upsert_one(sobject, ext_field, record, staged, duplicates) for record in records]
        if all_or_none and not all(result["success"] for result in results):
            results = [_rolled_back(result) for result in results]
        else:
            self._records[sobject] = staged
        return Answer(200, results)

    # --- sObject Rows by External ID upsert (one record per call) ----------------------------

    def _upsert_row(self, sobject: str, ext_field: str, ext_value: str, payload: Any, version: str) -> Answer:
        """``PATCH /sobjects/{SObject}/{ExternalIdField}/{value}``: 201 on create; on update 200 with
        ``created: false`` (API 46.0 and later) or 204 without a body (earlier versions).

        A refused record is the whole answer here: HTTP 400 with Salesforce's error list.
        """
        if sobject not in self.config.sobjects:
            return Answer(404, _error_list("NOT_FOUND", "The requested resource does not exist"))
        if not isinstance(payload, dict):
            return Answer(400, _error_list("JSON_PARSER_ERROR", "Expected a JSON object for the record"))
        record = {**payload, "attributes": {"type": sobject}, ext_field: ext_value}
        refusal = self._check_collection(sobject, [record])
        if refusal is not None:
            return refusal
        self._stats.records_per_call.append(1)
        result = self._upsert_one(sobject, ext_field, record, self._records.setdefault(sobject, {}), set())
        if not result["success"]:
            errors = [
                {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in result["errors"]
            ]
            return Answer(400, errors)
        if result["created"]:
            return Answer(201, result, {"Location": f"/services/data/v{version}/sobjects/{sobject}/{result['id']}"})
        return Answer(200, result) if float(version) >= _UPSERT_UPDATE_BODY_SINCE else Answer(204, None)

    def _check_collection(self, sobject: str, records: list[dict[str, Any]]) -> Answer | None:
        for record in records:
            attributes = record.get("attributes")
            if not isinstance(attributes, dict) or not attributes.get("type"):
                return Answer(
                    400, _error_list("INVALID_TYPE", "Must send a concrete entity type in the attributes map")
                )
            if attributes["type"] != sobject:
                return Answer(
                    400,
                    _error_list(
                        "INVALID_TYPE", f"Entity type {attributes['type']} does not match {sobject} in the URI"
                    ),
                )
            for name, value in record.items():
                if isinstance(value, dict) and name != "attributes" and name not in self.config.relationships:
                    return Answer(
                        400,
                        _error_list(
                            "INVALID_FIELD",
                            f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom "
                            "relationship, be sure to append the '__r' after the custom relationship name.",
                        ),
                    )
        # Salesforce deserializes the whole body into typed records before it processes any: one value that does
        # not fit its field refuses the request (a Composite subrequest alone), not the record. REST API Developer
        # Guide, "Status Codes and Error Responses" (400, JSON_PARSER_ERROR); nrtsync_local/salesforce_schema.py.
        message = deserialization_error(self.config.fields.get(sobject, {}), records, len(_COLLECTION_BODY_PREFIX))
        if message is not None:
            return Answer(400, _error_list("JSON_PARSER_ERROR", message))
        return None

    def _upsert_one(
        self,
        sobject: str,
        ext_field: str,
        record: dict[str, Any],
        staged: dict[str, dict[str, Any]],
        duplicates: set[Any],
    ) -> dict[str, Any]:
        ext_value = record.get(ext_field)
        if ext_value is None or ext_value == "":
            return _record_error("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
        if ext_value in duplicates:
            return _record_error("DUPLICATE_VALUE", f"Duplicate external id specified: {ext_value}", [ext_field])
        existing_id = _find_id(staged, ext_field, ext_value)
        refusal = (
            self._row_lock_error(str(ext_value), existing_id)
            or self._approval_lock_error(str(ext_value), existing_id)
            or self._validation_error(sobject, record)
        )
        if refusal is not None:
            return refusal
        fields = self._record_fields(sobject, record, staged)
        if "success" in fields:  # a parent lookup or a field failed: that is the record's result
            return fields
        if existing_id is not None:
            staged[existing_id].update(fields)
            return {"id": existing_id, "success": True, "errors": [], "created": False}
        self._id_counter += 1
        new_id = salesforce_id(key_prefix_for(sobject), self._id_counter)
        staged[new_id] = {"Id": new_id, **fields}
        return {"id": new_id, "success": True, "errors": [], "created": True}

    def _record_fields(self, sobject: str, record: dict[str, Any], staged: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The fields to store, parent references resolved to lookup Ids; or the record's error result."""
        fields: dict[str, Any] = {}
        for name, value in record.items():
            if name == "attributes":
                continue
            if isinstance(value, dict):
                resolved = self._resolve_parent(name, value, sobject, staged)
                if isinstance(resolved, dict):
                    return resolved
                fields[lookup_field_for(name)] = resolved
            else:
                fields[name] = value
        schema_error = record_field_error(self.config.fields.get(sobject, {}), fields)
        return fields if schema_error is None else _record_error(*schema_error)

    def _resolve_parent(
        self, relationship: str, reference: dict[str, Any], sobject: str, staged: dict[str, dict[str, Any]]
    ) -> str | dict[str, Any]:
        """The parent's Id for ``Rel__r: {ExtField: value}``, or the per-record error Salesforce gives."""
        parent_sobject = self.config.relationships[relationship]
        keys = [key for key in reference if key != "attributes"]
        if len(keys) != 1:
            return _record_error(
                "INVALID_FIELD", f"Foreign key reference {relationship} must name exactly one external ID field", []
            )
        ref_field, ref_value = keys[0], reference[keys[0]]
        parents = staged if parent_sobject == sobject else self._records.get(parent_sobject, {})
        parent_id = _find_id(parents, ref_field, ref_value)
        if parent_id is None:
            return _record_error(
                "INVALID_FIELD",
                f"Foreign key external ID: {ref_value} not found for field {ref_field} in entity {parent_sobject}",
                [],
            )
        return parent_id

    def _row_lock_error(self, ext_value: str, record_id: str | None) -> dict[str, Any] | None:
        lock = self._faults.row_lock
        if not lock:
            return None
        locked = ext_value in set(lock.get("external_ids") or []) or (
            float(lock.get("rate", 0.0)) > 0 and self._rng.random() < float(lock["rate"])
        )
        if not locked:
            return None
        if "count" in lock:
            lock["count"] = int(lock["count"]) - 1
            if lock["count"] <= 0:
                self._faults.row_lock = None
        target = record_id or ext_value
        return _record_error(
            "UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {target}", []
        )

    def _approval_lock_error(self, ext_value: str, record_id: str | None) -> dict[str, Any] | None:
        # A record submitted for approval is locked until it is approved or rejected: every update of it fails with
        # ENTITY_IS_LOCKED (StatusCode list, SOAP API Developer Guide; the Approval class, Apex Reference) for as long
        # as a person takes. Only an existing record can be locked; the lock lasts until the fault is cleared.
        if record_id is None or ext_value not in self._faults.approval_locks:
            return None
        return _record_error("ENTITY_IS_LOCKED", "the entity is locked for editing", [])

    def _validation_error(self, sobject: str, record: dict[str, Any]) -> dict[str, Any] | None:
        for rule in self._faults.validation_rules:
            if rule.get("sobject") not in (None, sobject):
                continue
            name = str(rule.get("field", "Name"))
            if name in record and record[name] == rule.get("equals"):
                message = str(rule.get("message") or f"{name} value is not allowed")
                return _record_error("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, [])
        return None

    # --- faults ------------------------------------------------------------------------------

    def _pop_fault(self, endpoint: str) -> Answer | None:
        for position, fault in enumerate(self._faults.fail_next):
            if fault.get("endpoint", "api") == endpoint:
                del self._faults.fail_next[position]
                self._stats.injected_faults += 1
                return _injected_answer(fault)
        return None

    # --- control API -------------------------------------------------------------------------

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merges the keys given; ``expire_sessions``, ``api_limit`` and ``api_used`` act at once."""
        with self._lock:
            if "latency_ms" in changes:
                self._faults.latency_ms = max(0, int(changes["latency_ms"]))
            if "fail_next" in changes:
                unknown = {f.get("kind") for f in changes["fail_next"] or []} - {None, *_FAULT_KINDS}
                if unknown:
                    raise ValueError(f"fail_next kind must be one of {sorted(_FAULT_KINDS)}, not {sorted(unknown)}")
                self._faults.fail_next = [dict(fault) for fault in changes["fail_next"] or []]
            if "row_lock" in changes:
                self._faults.row_lock = dict(changes["row_lock"]) if changes["row_lock"] else None
                if self._faults.row_lock and "seed" in self._faults.row_lock:
                    self._rng.seed(self._faults.row_lock["seed"])
            if "validation_rules" in changes:
                self._faults.validation_rules = [dict(rule) for rule in changes["validation_rules"] or []]
            if "approval_locks" in changes:
                self._faults.approval_locks = {str(ext) for ext in changes["approval_locks"] or []}
            if changes.get("expire_sessions"):
                self._sessions.clear()
            if "api_limit" in changes:
                self.config.api_limit = int(changes["api_limit"])
            if "api_used" in changes:
                self._api_used = int(changes["api_used"])
            return self.faults()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {**self._faults.as_json(), "api_limit": self.config.api_limit, "api_used": self._api_used}

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Changes credentials, the JWT bearer settings, known sObjects (added) and relationships (merged)."""
        with self._lock:
            # ``jwt_public_key_pem`` is the older name of the certificate setting; both take either PEM.
            certificate = changes.get("jwt_certificate_pem", changes.get("jwt_public_key_pem"))
            if certificate is not None:
                load_verification_key(str(certificate))  # a bad PEM is refused now (400), not at the first grant
            for name in ("client_id", "client_secret", "jwt_username"):
                if name in changes:
                    setattr(self.config, name, changes[name])
            if "jwt_certificate_pem" in changes or "jwt_public_key_pem" in changes:
                self.config.jwt_certificate_pem = certificate
            if "sandbox" in changes:
                self.config.sandbox = bool(changes["sandbox"])
            if "experience_site_urls" in changes:
                self.config.experience_site_urls = [str(url) for url in changes["experience_site_urls"] or []]
            self.config.sobjects.update(changes.get("sobjects") or [])
            self.config.relationships.update(changes.get("relationships") or {})
            for sobject, types in (changes.get("fields") or {}).items():
                self.config.fields.setdefault(sobject, {}).update(types)
            return self.config_json()

    def config_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "client_id": self.config.client_id,
                "jwt_username": self.config.jwt_username,
                "jwt_certificate_configured": self.config.jwt_certificate_pem is not None,
                "sandbox": self.config.sandbox,
                "experience_site_urls": list(self.config.experience_site_urls),
                "sobjects": sorted(self.config.sobjects),
                "relationships": dict(self.config.relationships),
                "fields": {sobject: dict(types) for sobject, types in self.config.fields.items()},
                "api_limit": self.config.api_limit,
            }

    def records(self, sobject: str) -> dict[str, Any]:
        with self._lock:
            stored = list(copy.deepcopy(self._records.get(sobject, {})).values())
            return {"sobject": sobject, "totalSize": len(stored), "records": stored}

    def seed_records(self, sobject: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Stores records directly (no API call counted): ``{"external_id_field": ..., "records": [...]}``."""
        with self._lock:
            self.config.sobjects.add(sobject)
            staged = self._records.setdefault(sobject, {})
            ext_field = str(payload.get("external_id_field", "Zuora__External_Id__c"))
            results = [
                self._upsert_one(sobject, ext_field, dict(record), staged, set())
                for record in payload.get("records") or []
            ]
            return {"results": results}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._stats.as_json(), "api_used": self._api_used, "api_limit": self.config.api_limit}

    def reset(self) -> None:
        """Forgets records, faults, counters and API usage; keeps sessions and configuration."""
        with self._lock:
            self._records.clear()
            self._faults = _Faults()
            self._stats = _Stats()
            self._api_used = 0


def _find_id(records: dict[str, dict[str, Any]], field_name: str, value: Any) -> str | None:
    for record_id, fields in records.items():
        if fields.get(field_name) == value:
            return record_id
    return None


def _rolled_back(result: dict[str, Any]) -> dict[str, Any]:
    if not result["success"]:
        return result
    return _record_error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        [],
    )


def _subrequest_rest(url: Any) -> str | None:
    match = _DATA_PATH.match(url.split("?", 1)[0]) if isinstance(url, str) else None
    return (match["rest"] or "/") if match else None


def _composite_refusal(message: str) -> Answer:
    """A Composite request refused whole, as Salesforce answers it: one entry without a referenceId."""
    entry = {"body": _error_list("LIMIT_EXCEEDED", message), "httpHeaders": {}, "httpStatusCode": 400}
    return Answer(400, {"compositeResponse": [{**entry, "referenceId": None}]})


def _subresult_succeeded(result: dict[str, Any]) -> bool:
    if not 200 <= int(result["httpStatusCode"]) < 300:
        return False
    body = result["body"]
    return not isinstance(body, list) or all(item.get("success", True) for item in body if isinstance(item, dict))


def _halted(result: dict[str, Any]) -> dict[str, Any]:
    if not _subresult_succeeded(result):
        return result
    body = _error_list(
        "PROCESSING_HALTED", "The transaction was rolled back since another operation in the same transaction failed."
    )
    return {**result, "body": body, "httpHeaders": {}, "httpStatusCode": 400}


def _method_not_allowed(method: str, allowed: str) -> Answer:
    return Answer(405, _error_list("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"))


# Named faults: what Salesforce answers in that situation.
_FAULT_KINDS: dict[str, tuple[int, str, str]] = {
    # The org's concurrent long-running request limit (25 requests running over 20 s in production), not the daily
    # allocation: Salesforce answers 403 REQUEST_LIMIT_EXCEEDED with this message ("API Request Limits and
    # Allocations", Salesforce Developer Limits and Allocations Quick Reference; help article 000389067).
    "concurrent_long_txn": (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    # The daily allocation used up, as the stand-in answers it when api_used reaches api_limit.
    "total_requests": (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
}


def _injected_answer(fault: dict[str, Any]) -> Answer:
    kind = fault.get("kind")
    if kind is not None:
        status, code, message = _FAULT_KINDS[kind]
        return Answer(status, _error_list(code, message))
    status = int(fault.get("status", 503))
    default_codes = {500: "UNKNOWN_EXCEPTION", 502: "BAD_GATEWAY", 503: "SERVER_UNAVAILABLE"}
    body = fault.get("body")
    if body is None:
        code = default_codes.get(status, "INJECTED_FAULT")
        body = _error_list(code, f"Injected fault: HTTP {status}")
    return Answer(status, body, {str(k): str(v) for k, v in (fault.get("headers") or {}).items()})


class _Handler(BaseHTTPRequestHandler):
    """Routes HTTP to ``SalesforceState``; the state is reached through the server."""

    server: _StandinHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection does not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: access logs would carry nothing the stats endpoint does not.
        if os.environ.get("SALESFORCE_STANDIN_ACCESS_LOG"):
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            endpoint, answer = self._answer(state, method, path, body)
        except (ValueError, TypeError, KeyError) as exc:
            endpoint, answer = "bad-request", Answer(400, _error_list("INVALID_INPUT", str(exc)))
        state.count_status(endpoint, answer.status)
        self._send(answer, state.limit_info())

    def _answer(self, state: SalesforceState, method: str, path: str, body: bytes) -> tuple[str, Answer]:
        if path.startswith("/__standin/"):
            return "control", _control(state, method, path.removeprefix("/__standin/"), body)
        latency = state.latency_seconds()
        if latency > 0:
            state.stop_event.wait(latency)
        if path == "/services/oauth2/token":
            if method != "POST":
                return "token", _method_not_allowed(method, "POST")
            form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
            return "token", state.token(form)
        match = _DATA_PATH.match(path)
        if match is None:
            return "unknown", Answer(404, _error_list("NOT_FOUND", "The requested resource does not exist"))
        rest = match["rest"] or "/"
        endpoint = f"{method} {_endpoint_name(rest)}"
        return endpoint, state.api(method, rest, self.headers.get("Authorization", ""), body, match["version"])

    def _send(self, answer: Answer, limit_info: str) -> None:
        payload = b"" if answer.status == 204 else json.dumps(answer.body).encode()  # 204 carries no body
        self.send_response(answer.status)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Sforce-Limit-Info", limit_info)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _endpoint_name(rest: str) -> str:
    if _COLLECTION_PATH.match(rest):
        return "composite/sobjects"
    if _ROW_BY_EXTERNAL_ID_PATH.match(rest):
        return "sobjects/external-id"
    if rest.rstrip("/") == "/composite":
        return "composite"
    return rest.strip("/") or "/"


def _reset(state: SalesforceState) -> dict[str, Any]:
    state.reset()
    return {"ok": True}


def _control(state: SalesforceState, method: str, path: str, body: bytes) -> Answer:
    payload = json.loads(body) if body else {}
    route = (method, path.rstrip("/"))
    simple: dict[tuple[str, str], Callable[[], Any]] = {
        ("GET", "health"): lambda: {"ok": True},
        ("GET", "faults"): state.faults,
        ("POST", "faults"): lambda: state.set_faults(payload),
        ("GET", "config"): state.config_json,
        ("POST", "config"): lambda: state.configure(payload),
        ("GET", "stats"): state.stats,
        ("POST", "reset"): lambda: _reset(state),
    }
    if route in simple:
        return Answer(200, simple[route]())
    if path.startswith("records/"):
        sobject = unquote(path.removeprefix("records/")).strip("/")
        if method == "GET":
            return Answer(200, state.records(sobject))
        if method == "POST":
            return Answer(200, state.seed_records(sobject, payload))
    return Answer(404, {"error": f"no control endpoint {method} /__standin/{path}"})


class _StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections

    def __init__(self, address: tuple[str, int], state: SalesforceState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class SalesforceStandin:
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    def __init__(
        self, config: StandinConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, ca: Any = None
    ) -> None:
        self.config = config or StandinConfig()
        self._host = host
        self._port = port
        self._ca = ca if ca is not None else trustme.CA()
        self.state = SalesforceState(self.config, lambda: self.url)
        self._server: _StandinHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"https://{self._host}:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA that signed the server certificate (what a client must trust)."""
        return bytes(self._ca.cert_pem.bytes())

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def start(self) -> SalesforceStandin:
        server = _StandinHTTPServer((self._host, self._port), self.state)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
        # The TLS handshake happens in the request thread, so a slow client cannot stall accept().
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="salesforce-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.state.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> SalesforceStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _write_atomically(path: Path, content: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(content)
    Path(handle.name).replace(path)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.salesforce_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, required=True, help="JSON written once listening")
    parser.add_argument("--ca-file", type=Path, help="where to write the CA PEM (default: next to the ready-file)")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument(
        "--jwt-certificate-file",
        "--jwt-public-key-file",
        type=Path,
        help="the connected app's certificate (or PEM public key) that verifies JWT bearer assertions",
    )
    parser.add_argument("--jwt-username", help="the pre-authorised user (JWT sub); without it no JWT grant succeeds")
    parser.add_argument("--sandbox", action="store_true", help="a sandbox org: JWT aud must be test.salesforce.com")
    parser.add_argument(
        "--experience-site-url", action="append", default=[], help="an Experience Cloud site URL (another JWT aud)"
    )
    parser.add_argument("--api-limit", type=int, default=DEFAULT_API_LIMIT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT; writes ``{"url","ca_file","pid","client_id","client_secret"}``."""
    args = _parse_args(argv)
    config = StandinConfig(
        api_limit=args.api_limit,
        jwt_username=args.jwt_username,
        sandbox=args.sandbox,
        experience_site_urls=list(args.experience_site_url),
    )
    if args.client_id:
        config.client_id = args.client_id
    if args.client_secret:
        config.client_secret = args.client_secret
    if args.jwt_certificate_file:
        config.jwt_certificate_pem = args.jwt_certificate_file.read_text()
        load_verification_key(config.jwt_certificate_pem)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin = SalesforceStandin(config, host=args.host, port=args.port).start()
    try:
        ca_file = standin.write_ca(args.ca_file or args.ready_file.with_suffix(".ca.pem"))
        ready = {
            "url": standin.url,
            "ca_file": str(ca_file.resolve()),
            "pid": os.getpid(),
            "client_id": config.client_id,
            "client_secret": config.client_secret,
        }
        _write_atomically(args.ready_file, json.dumps(ready))
        while not stop.wait(0.2):
            pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
