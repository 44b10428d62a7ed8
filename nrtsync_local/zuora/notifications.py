"""The stand-in's custom event triggers and notification definitions, made through Zuora's API as ``nrtsync zuora
setup`` makes them (developer.zuora.com, v1 API reference):

- "Custom Event Triggers": ``GET/POST /events/event-triggers``, ``GET/PUT /events/event-triggers/{id}``; list
  answers ``{data, next}``; an event type name matches ``^[A-Za-z][\\w\\-]*$`` and is unique.
- "Notifications": ``GET/POST /notifications/notification-definitions``, ``GET/PUT .../{id}``; a definition
  names an existing event type (``eventTypeName``) and carries its ``callout`` (a callout template, "Callout
  Templates" > "Create a callout template"), whose ``calloutBaseurl`` must start with ``https://``.
- "Idempotent requests": a POST repeated with the same ``Idempotency-Key`` answers the first answer again and
  creates nothing.
- A callout's password is never answered back (the stand-in answers ``calloutAuth`` without it).
- A tenant without custom events (control ``config`` ``custom_events: false``) refuses the triggers API with 403;
  the answer's code is the stand-in's choice, as Zuora's docs do not show one.

Errors use the shape of Zuora's newer APIs: ``{"success": false, "reasons": [{"code", "message"}]}``.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nrtsync_local.standin.server import Answer
from nrtsync_local.zuora.describe import field_types
from nrtsync_local.zuora.state import ZOQL_OBJECTS

_EVENT_NAME = re.compile(r"^[A-Za-z][\w\-]*$")
_TRIGGERS = "/events/event-triggers"
_DEFINITIONS = "/notifications/notification-definitions"


def _refused(message: str, code: str = "INVALID_VALUE", status: int = 400) -> Answer:
    return Answer(status, {"success": False, "reasons": [{"code": code, "message": message}]})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000 UTC")


@dataclass
class Notifications:
    """Triggers and definitions by id; ``authorized`` says whether a bearer token is one the tenant issued."""

    authorized: Callable[[str], bool]
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_events: bool = True
    idempotent: dict[tuple[str, str], Answer] = field(default_factory=dict)
    creates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def serves(path: str) -> bool:
        return path.startswith((_TRIGGERS, _DEFINITIONS))

    def handle(  # noqa: PLR0911 - one return per route
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Answer:
        if not self.authorized(headers.get("authorization", "")):
            return Answer(401, {"message": "Authentication error"})
        with self.lock:
            if path.startswith(_TRIGGERS) and not self.custom_events:
                return _refused("Custom events are not enabled for this tenant", "PERMISSION_DENIED", 403)
            key = headers.get("idempotency-key")
            if method == "POST" and key and (path, key) in self.idempotent:
                return self.idempotent[(path, key)]
            store, build = (
                (self.triggers, self._trigger) if path.startswith(_TRIGGERS) else (self.definitions, self._definition)
            )
            base = _TRIGGERS if path.startswith(_TRIGGERS) else _DEFINITIONS
            item_id = path.removeprefix(base).strip("/")
            if not item_id and method == "GET":
                return self._list(store, query, base)
            if not item_id and method == "POST":
                answer = build(body, None)
                if key and answer.status == 200:
                    self.idempotent[(path, key)] = answer
                return answer
            if item_id and item_id not in store:
                return _refused(f"no item with id {item_id}", "NOT_FOUND", 404)
            if item_id and method == "GET":
                return Answer(200, _public(store[item_id]))
            if item_id and method == "PUT":
                return build(body, store[item_id])
            return Answer(405, {"message": "Method not allowed"})

    def _list(self, store: dict[str, dict[str, Any]], query: dict[str, str], base: str) -> Answer:
        wanted = query.get("eventTypeName")
        items = [_public(item) for item in store.values() if wanted is None or _event_name(item) == wanted]
        start, limit = int(query.get("start", "0")), int(query.get("limit", "20"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return Answer(200, {"data": page, "next": f"{base}?start={start + limit}&limit={limit}" if more else None})

    def _trigger(self, body: Any, existing: dict[str, Any] | None) -> Answer:
        if not isinstance(body, dict):
            return _refused("the request body must be a JSON object")
        event_type = body.get("eventType", existing["eventType"] if existing else None)
        if not isinstance(event_type, dict) or not _EVENT_NAME.match(str(event_type.get("name", ""))):
            return _refused("eventType.name must match ^[A-Za-z][\\w\\-]*$")
        base_object = existing["baseObject"] if existing else body.get("baseObject")
        if base_object not in ZOQL_OBJECTS and base_object not in field_types():
            return _refused(f"invalid baseObject {base_object!r}")
        condition = body.get("condition", existing["condition"] if existing else None)
        if not isinstance(condition, str) or not condition.strip():
            return _refused("condition is required")
        name = str(event_type["name"])
        if any(_event_name(t) == name and t is not existing for t in self.triggers.values()):
            return _refused(f"the event type {name} already exists", "DUPLICATE_VALUE")
        item = existing if existing is not None else {"id": secrets.token_hex(16), "createdOn": _now()}
        item |= {
            "baseObject": base_object,
            "condition": condition,
            "active": bool(body.get("active", existing["active"] if existing else True)),
            "description": body.get("description", existing.get("description") if existing else None),
            "eventType": dict(event_type),
            "updatedOn": _now(),
        }
        self.triggers[item["id"]] = item
        self.creates += existing is None
        return Answer(200, _public(item))

    def _definition(self, body: Any, existing: dict[str, Any] | None) -> Answer:  # noqa: PLR0911 - one per refusal
        if not isinstance(body, dict):
            return _refused("the request body must be a JSON object")
        name = body.get("name", existing["name"] if existing else None)
        event_name = body.get("eventTypeName", existing["eventTypeName"] if existing else None)
        if not isinstance(name, str) or not name:
            return _refused("name is required")
        if not any(_event_name(t) == event_name for t in self.triggers.values()):
            return _refused(f"the event type {event_name!r} does not exist", "NOT_FOUND")
        if any(d["name"] == name and d is not existing for d in self.definitions.values()):
            return _refused(f"a notification definition named {name} exists", "DUPLICATE_VALUE")
        callout = body.get("callout", existing.get("callout") if existing else None)
        if callout is not None:
            if not isinstance(callout, dict) or not str(callout.get("calloutBaseurl", "")).startswith("https://"):
                return _refused("calloutBaseurl must start with https://")
            if str(callout.get("httpMethod", "")) not in ("POST", "GET", "PUT", "PATCH", "DELETE"):
                return _refused("httpMethod must be one of POST, GET, PUT, PATCH, DELETE")
            callout = {"active": True, "calloutRetry": True, **copy.deepcopy(callout)}
        item = existing if existing is not None else {"id": secrets.token_hex(16), "createdOn": _now()}
        item |= {
            "name": name,
            "description": body.get("description"),
            "eventTypeName": event_name,
            "eventTypeNamespace": body.get("eventTypeNamespace", "user.notification"),
            "active": bool(body.get("active", True)),
            "calloutActive": bool(body.get("calloutActive", False)),
            "emailActive": bool(body.get("emailActive", False)),
            "callout": callout,
            "updatedOn": _now(),
        }
        self.definitions[item["id"]] = item
        self.creates += existing is None
        return Answer(200, _public(item))

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        """The control API's part (``config``: ``custom_events``; edits a definition as an admin would in the UI:
        ``definition_edits``: name -> fields of the definition or, under ``callout``, of its callout)."""
        with self.lock:
            if "custom_events" in body:
                self.custom_events = bool(body["custom_events"])
            for name, edit in dict(body.get("definition_edits", {})).items():
                for definition in self.definitions.values():
                    if definition["name"] == name:
                        callout_edit = edit.pop("callout", {})
                        definition.update(edit)
                        if definition.get("callout") is not None:
                            definition["callout"].update(callout_edit)
            return {
                "custom_events": self.custom_events,
                "triggers": len(self.triggers),
                "definitions": len(self.definitions),
            }


def _event_name(item: dict[str, Any]) -> str | None:
    event_type = item.get("eventType")
    if isinstance(event_type, dict):
        return str(event_type.get("name"))
    return item.get("eventTypeName")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """What the API answers: a copy, without the callout's password."""
    answer = copy.deepcopy(item)
    callout = answer.get("callout")
    if isinstance(callout, dict) and isinstance(callout.get("calloutAuth"), dict):
        callout["calloutAuth"].pop("password", None)
    return answer
