"""What the Zuora stand-in does, written from Zuora's docs (developer.zuora.com and docs.zuora.com):

- "Create an OAuth token": ``POST /oauth/token``, form ``client_id``, ``client_secret``,
  ``grant_type=client_credentials``; answers ``{access_token, token_type: "bearer", expires_in, scope, jti}``.
- "Actions" > "Query" / "QueryMore": ``POST /v1/action/query {"queryString"}`` and
  ``POST /v1/action/queryMore {"queryLocator"}`` answer ``{records, size, done, queryLocator}``, at most 2,000
  records a page; ``size`` is the whole result's count; fields with a null value are left out of a record.
- "ZOQL": lower-case keywords, no ``*``, no ORDER BY and no guaranteed order (so the stand-in answers in an
  order that is not ``UpdatedDate`` order, and a client cannot come to rely on one).
- "Rate limits" / "Error handling": 429 with ``Retry-After`` when a tenant is over its limit.

Only the ZOQL subset the product emits (``nrtsync.zoql.changes_query``) is understood; anything else is
refused with Zuora's action error shape (``{"faultcode": "fns:MALFORMED_QUERY", "faultstring"}``), so a query
the product starts emitting that the stand-in cannot answer fails the tests instead of being half-answered.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nrtsync.zuora_dates import parse_zuora_datetime

DEFAULT_PAGE_SIZE = 2000
DEFAULT_TOKEN_SECONDS = 3599

_QUERY = re.compile(
    r"select (?P<fields>[A-Za-z][A-Za-z0-9_]*(?:, ?[A-Za-z][A-Za-z0-9_]*)*) from (?P<object>[A-Za-z][A-Za-z0-9_]*)"
    r" where UpdatedDate >= '(?P<since>[^']+)'(?: and UpdatedDate < '(?P<until>[^']+)')?"
)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _fault(code: str, message: str, status: int = 400) -> Answer:
    return Answer(status, {"faultcode": f"fns:{code}", "faultstring": message})


def _unauthorized() -> Answer:
    # What Zuora's gateway answers for a missing, expired or revoked bearer token.
    return Answer(401, {"message": "Authentication error"})


@dataclass
class ZuoraState:
    """The tenant: records per object, tokens, open query locators, faults and counters. Thread-safe."""

    client_id: str = "nrtsync-local-zuora"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    page_size: int = DEFAULT_PAGE_SIZE
    token_seconds: int = DEFAULT_TOKEN_SECONDS
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    locators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(  # noqa: PLR0911 - one return per documented answer
        self, method: str, path: str, form: dict[str, str], body: Any, authorization: str
    ) -> Answer:
        with self.lock:
            endpoint = {"/oauth/token": "token", "/v1/action/query": "query", "/v1/action/queryMore": "queryMore"}.get(
                path, "unknown"
            )
            self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
            if endpoint == "unknown":
                return Answer(404, {"message": "no Route matched with those values"})
            if method != "POST":
                return Answer(405, {"message": "Method not allowed"})
            if self.fail_next:
                fault = self.fail_next.pop(0)
                headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
                status = int(fault.get("status", 503))
                message = "You have exceeded the limit" if status == 429 else "Service unavailable"
                return Answer(status, {"message": message}, headers)
            if endpoint == "token":
                return self._token(form)
            if authorization.removeprefix("Bearer ").strip() not in self.tokens:
                return _unauthorized()
            if not isinstance(body, dict):
                return _fault("MALFORMED_QUERY", "the request body must be a JSON object")
            if endpoint == "query":
                return self._query(body.get("queryString"))
            return self._query_more(body.get("queryLocator"))

    def _token(self, form: dict[str, str]) -> Answer:
        if form.get("grant_type") != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Answer(401, {"error": "invalid_client", "error_description": "Invalid client credentials"})
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return Answer(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_seconds,
                "scope": "entity.local user.local service.query.read",
                "jti": secrets.token_hex(8),
            },
        )

    def _query(self, query_string: object) -> Answer:
        if not isinstance(query_string, str):
            return _fault("MALFORMED_QUERY", "queryString is required")
        match = _QUERY.fullmatch(query_string.strip())
        if match is None:
            return _fault("MALFORMED_QUERY", f"You have an error in your ZOQL syntax: {query_string[:200]}")
        object_type = match["object"]
        if object_type not in self.records:
            return _fault("INVALID_TYPE", f"invalid object type: {object_type}")
        fields = [name.strip() for name in match["fields"].split(",")]
        try:
            since = _bound(match["since"])
            until = _bound(match["until"]) if match["until"] else None
        except ValueError as exc:
            return _fault("INVALID_VALUE", f"invalid dateTime value: {exc}")
        rows = []
        for record in self.records[object_type].values():
            updated = _bound(str(record["UpdatedDate"]))
            if updated >= since and (until is None or updated < until):
                # Zuora leaves fields with a null value out of a query record.
                rows.append({name: record[name] for name in fields if record.get(name) is not None})
        rows.reverse()  # no guaranteed order (ZOQL): never the order a client might expect
        return self._first_page(rows)

    def _first_page(self, rows: list[dict[str, Any]]) -> Answer:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        answer: dict[str, Any] = {"records": page, "size": len(rows), "done": not rest}
        if rest:
            locator = secrets.token_hex(16)
            self.locators[locator] = rest
            answer["queryLocator"] = locator
        return Answer(200, answer)

    def _query_more(self, locator: object) -> Answer:
        if not isinstance(locator, str) or locator not in self.locators:
            return _fault("INVALID_VALUE", "invalid queryLocator")
        rows = self.locators.pop(locator)
        page, rest = rows[: self.page_size], rows[self.page_size :]
        answer: dict[str, Any] = {"records": page, "size": len(page), "done": not rest}
        if rest:
            next_locator = secrets.token_hex(16)
            self.locators[next_locator] = rest
            answer["queryLocator"] = next_locator
        return Answer(200, answer)

    def control(self, method: str, what: str, body: Any) -> Answer:  # noqa: PLR0911 - one return per route
        """The control API (``/__standin/<what>``): seed records, set faults, revoke tokens, read counters."""
        with self.lock:
            if method == "GET" and what == "stats":
                return Answer(200, {"counts": dict(self.counts), "open_locators": len(self.locators)})
            if method != "POST":
                return Answer(405, {"message": "Method not allowed"})
            if what.startswith("records/"):
                object_type = what.removeprefix("records/")
                table = self.records.setdefault(object_type, {})
                for record in body.get("records", []):
                    if "Id" not in record or "UpdatedDate" not in record:
                        return Answer(400, {"message": "every record needs Id and UpdatedDate"})
                    table[str(record["Id"])] = dict(record)
                return Answer(200, {"count": len(table)})
            if what == "faults":
                self.fail_next.extend(body.get("fail_next", []))
                return Answer(200, {"fail_next": len(self.fail_next)})
            if what == "config":
                self.page_size = int(body.get("page_size", self.page_size))
                self.token_seconds = int(body.get("token_seconds", self.token_seconds))
                return Answer(200, {"page_size": self.page_size, "token_seconds": self.token_seconds})
            if what == "revoke-tokens":
                self.tokens.clear()
                return Answer(200, {})
            if what == "reset":
                self.records.clear()
                self.locators.clear()
                self.fail_next.clear()
                self.counts.clear()
                return Answer(200, {})
            return Answer(404, {"message": f"unknown control path {what}"})


def _bound(text: str) -> datetime:
    value = parse_zuora_datetime(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
