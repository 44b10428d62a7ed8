"""What the Zuora stand-in does, written from Zuora's docs (developer.zuora.com and docs.zuora.com):

- "Create an OAuth token": ``POST /oauth/token``, form ``client_id``, ``client_secret``,
  ``grant_type=client_credentials``; answers ``{access_token, token_type: "bearer", expires_in, scope, jti}``.
- "Actions" > "Query" / "QueryMore": ``POST /v1/action/query {"queryString"}`` and
  ``POST /v1/action/queryMore {"queryLocator"}`` answer ``{records, size, done, queryLocator}``, at most 2,000
  records a page; ``size`` is the whole result's count; fields with a null value are left out of a record.
- "ZOQL": lower-case keywords, no ``*``, no ORDER BY and no guaranteed order (so the stand-in answers in an
  order that is not ``UpdatedDate`` order, and a client cannot come to rely on one).
- "Rate limits" / "Error handling": 429 with ``Retry-After`` when a tenant is over its limit.
- "queryMore()" (docs.zuora.com, SOAP API calls > queryMore): "Zuora will now expire queryMore() cursors after
  15 minutes"; the REST ``action/queryMore`` is the same action. A locator used after that, or one never issued,
  is refused as "Faults" (docs.zuora.com, SOAP API > Error handling > Faults) names it: InvalidQueryLocatorFault,
  code ``INVALID_QUERY_LOCATOR``. The page says "after 15 minutes of activity": read here as 15 minutes after the
  locator was issued (each queryMore issues a new one), the stricter reading. ``locator_seconds`` (control API
  ``config``) shortens it for tests; 0 turns expiry off.
- A deleted record is no longer returned by a query (Zuora's data objects are deleted, not flagged).

Only the ZOQL subset the product emits (``nrtsync.domain.zoql.changes_query``) is understood; anything else is
refused with Zuora's action error shape (``{"faultcode": "fns:MALFORMED_QUERY", "faultstring"}``), so a query
the product starts emitting that the stand-in cannot answer fails the tests instead of being half-answered.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nrtsync.domain.zuora_dates import parse_zuora_datetime
from nrtsync_local.standin.server import Answer
from nrtsync_local.zuora.describe import field_types

if TYPE_CHECKING:
    from nrtsync_local.zuora.callouts import CalloutSender
    from nrtsync_local.zuora.notifications import Notifications

DEFAULT_PAGE_SIZE = 2000
DEFAULT_TOKEN_SECONDS = 3599
DEFAULT_LOCATOR_SECONDS = 15 * 60

_QUERY = re.compile(
    r"select (?P<fields>[A-Za-z][A-Za-z0-9_]*(?:, ?[A-Za-z][A-Za-z0-9_]*)*) from (?P<object>[A-Za-z][A-Za-z0-9_]*)"
    r" where UpdatedDate >= '(?P<since>[^']+)'(?: and UpdatedDate < '(?P<until>[^']+)')?"
    r"(?: and (?P<field>[A-Za-z][A-Za-z0-9_]*) (?P<op>=|!=) '(?P<value>[^']*)')?"
)


# Zuora's standard objects that ZOQL queries (docs.zuora.com, "ZOQL" > "Objects you can query"; the ones a
# mapping is likely to name). A tenant has them whether or not it holds a record of them: a query of one with
# no records answers an empty page, not an error.
ZOQL_OBJECTS = frozenset(
    {
        "Account",
        "Amendment",
        "Contact",
        "CreditBalanceAdjustment",
        "Invoice",
        "InvoiceAdjustment",
        "InvoiceItem",
        "InvoiceItemAdjustment",
        "Payment",
        "PaymentMethod",
        "Product",
        "ProductRatePlan",
        "ProductRatePlanCharge",
        "RatePlan",
        "RatePlanCharge",
        "Refund",
        "Subscription",
        "Usage",
    }
)


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
    locator_seconds: float = DEFAULT_LOCATOR_SECONDS
    # locator -> (monotonic time it expires, or None: never; the rows still to read)
    locators: dict[str, tuple[float | None, list[dict[str, Any]]]] = field(default_factory=dict)
    fail_next: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_change: list[Callable[[str, str, dict[str, Any]], None]] = field(default_factory=list)
    notifications: Notifications | None = None
    """The tenant's event triggers and notification definitions, and the sender of their callouts: set by the
    ``ZuoraStandin`` that serves this state."""
    callouts: CalloutSender | None = None
    """Called, under the lock, with (object, INSERT/UPDATE/DELETE, the record) for every stored change: how the
    stand-in's event triggers see changes (``nrtsync_local.zuora.callouts``). A listener must not block."""

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
            if (fault := self._next_fault(body)) is not None:
                if "code" in fault:  # a refusal of the query itself (e.g. INVALID_FIELD), in Zuora's fault shape
                    return _fault(str(fault["code"]), str(fault.get("message", fault["code"])), int(fault["status"]))
                status = int(fault.get("status", 503))
                headers = rate_limit_headers(fault) if status == 429 else {}
                if "retry_after" in fault:
                    headers["Retry-After"] = str(fault["retry_after"])
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

    def authorized(self, authorization: str) -> bool:
        """Whether ``authorization`` carries a bearer token this tenant issued."""
        with self.lock:
            return authorization.removeprefix("Bearer ").strip() in self.tokens

    def _next_fault(self, body: Any) -> dict[str, Any] | None:
        """The first queued fault for this request: one with ``query_contains`` waits for a query naming it."""
        query = body.get("queryString") if isinstance(body, dict) else None
        for index, fault in enumerate(self.fail_next):
            wanted = fault.get("query_contains")
            if wanted is None or (isinstance(query, str) and wanted in query):
                return self.fail_next.pop(index)
        return None

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
        if object_type not in self.records and object_type not in ZOQL_OBJECTS:
            return _fault("INVALID_TYPE", f"invalid object type: {object_type}")
        fields = [name.strip() for name in match["fields"].split(",")]
        if (
            unknown := _unknown_field(object_type, [*fields, *([match["field"]] if match["field"] else [])])
        ) is not None:
            return unknown
        try:
            since = _bound(match["since"])
            until = _bound(match["until"]) if match["until"] else None
        except ValueError as exc:
            return _fault("INVALID_VALUE", f"invalid dateTime value: {exc}")
        rows = []
        for record in self.records.get(object_type, {}).values():
            updated = _bound(str(record["UpdatedDate"]))
            if updated >= since and (until is None or updated < until) and _matches(record, match):
                # Zuora leaves fields with a null value out of a query record.
                rows.append({name: record[name] for name in fields if record.get(name) is not None})
        rows.reverse()  # no guaranteed order (ZOQL): never the order a client might expect
        return self._first_page(rows)

    def _first_page(self, rows: list[dict[str, Any]]) -> Answer:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        answer: dict[str, Any] = {"records": page, "size": len(rows), "done": not rest}
        if rest:
            answer["queryLocator"] = self._open_locator(rest)
        return Answer(200, answer)

    def _open_locator(self, rows: list[dict[str, Any]]) -> str:
        now = time.monotonic()
        # Expired locators are forgotten here too, so a client that abandons its paging does not leak memory.
        for stale in [key for key, (expires, _) in self.locators.items() if expires is not None and expires <= now]:
            del self.locators[stale]
        locator = secrets.token_hex(16)
        self.locators[locator] = (now + self.locator_seconds if self.locator_seconds > 0 else None, rows)
        return locator

    def _query_more(self, locator: object) -> Answer:
        opened = self.locators.pop(locator, None) if isinstance(locator, str) else None
        if opened is None or (opened[0] is not None and opened[0] <= time.monotonic()):
            return _fault("INVALID_QUERY_LOCATOR", "The query locator expired or was otherwise invalid.")
        rows = opened[1]
        page, rest = rows[: self.page_size], rows[self.page_size :]
        answer: dict[str, Any] = {"records": page, "size": len(page), "done": not rest}
        if rest:
            answer["queryLocator"] = self._open_locator(rest)
        return Answer(200, answer)

    def control(self, method: str, what: str, body: Any) -> Answer:  # noqa: PLR0911 - one return per route
        """The control API (``/__standin/<what>``): seed, update and delete records, set faults, revoke tokens,
        read counters."""
        with self.lock:
            if method == "GET" and what == "stats":
                return Answer(200, {"counts": dict(self.counts), "open_locators": len(self.locators)})
            if method != "POST":
                return Answer(405, {"message": "Method not allowed"})
            if what.startswith("records/"):
                return self._seed(what.removeprefix("records/"), body.get("records", []))
            if what.startswith("update/"):
                return self._update(what.removeprefix("update/"), body)
            if what.startswith("delete/"):
                return self._delete(what.removeprefix("delete/"), body.get("ids"))
            if what == "faults":
                self.fail_next.extend(body.get("fail_next", []))
                return Answer(200, {"fail_next": len(self.fail_next)})
            if what == "config":
                self.page_size = int(body.get("page_size", self.page_size))
                self.token_seconds = int(body.get("token_seconds", self.token_seconds))
                self.locator_seconds = float(body.get("locator_seconds", self.locator_seconds))
                return Answer(
                    200,
                    {
                        "page_size": self.page_size,
                        "token_seconds": self.token_seconds,
                        "locator_seconds": self.locator_seconds,
                    },
                )
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

    def _seed(self, object_type: str, records: list[dict[str, Any]]) -> Answer:
        # Checked before any is stored: a bad batch changes nothing.
        missing = [i for i, record in enumerate(records) if "Id" not in record or "UpdatedDate" not in record]
        if missing:
            return Answer(400, {"message": f"every record needs Id and UpdatedDate (records {missing[:10]})"})
        table = self.records.setdefault(object_type, {})
        for record in records:
            change = "UPDATE" if str(record["Id"]) in table else "INSERT"
            table[str(record["Id"])] = dict(record)
            self._changed(object_type, change, table[str(record["Id"])])
        return Answer(200, {"count": len(table)})

    def _changed(self, object_type: str, change: str, record: dict[str, Any]) -> None:
        for listener in self.on_change:
            listener(object_type, change, record)

    def _update(self, object_type: str, body: dict[str, Any]) -> Answer:
        """Sets fields of stored records and moves their ``UpdatedDate`` (to ``updated_date``, else now), as an
        edit in Zuora does."""
        table = self.records.get(object_type, {})
        changes = body.get("records")
        if not isinstance(changes, list) or not all(isinstance(c, dict) and "Id" in c for c in changes):
            return Answer(400, {"message": "records: a list of objects, each with Id"})
        unknown = [str(c["Id"]) for c in changes if str(c["Id"]) not in table]
        if unknown:
            return Answer(404, {"message": f"no {object_type} with Id {unknown[:10]}"})
        updated = body.get("updated_date") or datetime.now(UTC).isoformat(timespec="milliseconds")
        try:
            _bound(str(updated))
        except ValueError as exc:
            return Answer(400, {"message": f"updated_date: {exc}"})
        for change in changes:
            table[str(change["Id"])] |= {**change, "UpdatedDate": updated}
            self._changed(object_type, "UPDATE", table[str(change["Id"])])
        return Answer(200, {"updated": len(changes), "UpdatedDate": updated})

    def _delete(self, object_type: str, ids: object) -> Answer:
        if not isinstance(ids, list):
            return Answer(400, {"message": "ids: a list of record ids"})
        table = self.records.get(object_type, {})
        deleted = []
        for record_id in map(str, ids):
            record = table.pop(record_id, None)
            if record is not None:
                deleted.append(record_id)
                # Zuora's event carries the record as it was; UpdatedDate moves to the deletion.
                self._changed(object_type, "DELETE", record | {"UpdatedDate": datetime.now(UTC).isoformat()})
        return Answer(200, {"deleted": deleted, "count": len(table)})


RATE_LIMIT = 40
"""The stand-in's quota per window, reported in ``RateLimit-Limit`` (an example figure: Zuora's limits depend on
the tenant's edition and the endpoint)."""


def rate_limit_headers(fault: dict[str, Any]) -> dict[str, str]:
    """The headers Zuora's 429 carries ("Rate limits", Zuora developer docs): ``RateLimit-Limit``,
    ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds until the quota resets; the fault's ``reset``)."""
    return {
        "RateLimit-Limit": str(RATE_LIMIT),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(fault.get("reset", fault.get("retry_after", 1))),
    }


def _unknown_field(object_type: str, names: list[str]) -> Answer | None:
    """Zuora refuses a query that names a field the object lacks (``INVALID_FIELD``; the message as Zuora's query
    action words it, assumed from its error examples). The object's fields are Zuora's own lists
    (``zuora_fields.json``, as describe answers them); an object without a list is not checked."""
    known = field_types().get(object_type)
    if known is None:
        return None
    missing = next((name for name in names if name not in known), None)
    if missing is None:
        return None
    return _fault("INVALID_FIELD", f"invalid field for query: {object_type}.{missing}")


def _matches(record: dict[str, Any], match: re.Match[str]) -> bool:
    """The query's one field condition (``Status != 'Expired'``: a subscription's current version), if any."""
    if match["field"] is None:
        return True
    equal = str(record.get(match["field"], "")) == match["value"]
    return equal if match["op"] == "=" else not equal


def _bound(text: str) -> datetime:
    value = parse_zuora_datetime(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
