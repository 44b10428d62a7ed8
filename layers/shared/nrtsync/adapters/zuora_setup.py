"""Zuora's set-up APIs over the query client's session, token and retries (``ZuoraNotificationsPort``).

Zuora's docs this follows (developer.zuora.com, v1 API reference):
- "Custom Event Triggers": ``GET /events/event-triggers`` (query ``eventTypeName``; answers ``{data, next}``),
  ``POST /events/event-triggers``, ``PUT /events/event-triggers/{id}``;
- "Notifications": ``GET /notifications/notification-definitions`` (query ``eventTypeName``; ``{data, next}``),
  ``POST /notifications/notification-definitions``, ``PUT /notifications/notification-definitions/{id}``;
- "Idempotent requests": an ``Idempotency-Key`` header (at most 255 characters) on a POST;
- "Describe" (``GET /v1/describe/{object}``): an XML document, ``<object><name/><fields><field><name/><type/>
  <createable/><updateable/><required/>...</field></fields></object>``.
"""

from __future__ import annotations

# The tenant's own answer over https; Python's expat expands no external entities.
import xml.etree.ElementTree as ET
from typing import Any

from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.domain.models.zuora import ZuoraError, ZuoraRequestError
from nrtsync.ports.zuora_setup import ZuoraField

MAX_PAGES = 50
"""A list call follows ``next`` at most this often; nrtsync's names select a handful of items."""


class ZuoraSetupClient(ZuoraClient):
    """Implements ``ZuoraNotificationsPort`` (and still ``ZuoraPort``)."""

    def event_triggers(self, event_type_name: str) -> list[dict[str, Any]]:
        return self._list("/events/event-triggers", {"eventTypeName": event_type_name})

    def create_event_trigger(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._json("POST", "/events/event-triggers", body, {"Idempotency-Key": idempotency_key})

    def update_event_trigger(self, trigger_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("PUT", f"/events/event-triggers/{trigger_id}", body)

    def notification_definitions(self, event_type_name: str) -> list[dict[str, Any]]:
        return self._list("/notifications/notification-definitions", {"eventTypeName": event_type_name})

    def create_notification_definition(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._json("POST", "/notifications/notification-definitions", body, {"Idempotency-Key": idempotency_key})

    def update_notification_definition(self, definition_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("PUT", f"/notifications/notification-definitions/{definition_id}", body)

    def describe(self, object_type: str) -> list[ZuoraField] | None:
        try:
            response = self._call("GET", f"/v1/describe/{object_type}", headers={"Accept": "application/xml"})
        except ZuoraRequestError as exc:
            if exc.http_status in (400, 404):
                return None
            raise
        return parse_describe(response.text)

    def _json(
        self, method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        answer = self._call(method, path, json=body, headers=headers).json()
        if not isinstance(answer, dict):
            raise ZuoraError(f"Zuora answered {method} {path} with something other than a JSON object")
        return answer

    def _list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = 0
        for _ in range(MAX_PAGES):
            answer = self._call("GET", path, params={**params, "start": str(start), "limit": "100"}).json()
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise ZuoraError(f"Zuora's answer to GET {path} has no data list")
            items += [item for item in data if isinstance(item, dict)]
            if not answer.get("next") or not data:
                return items
            start += len(data)
        return items


def parse_describe(text: str) -> list[ZuoraField]:
    """The fields of a describe document; a field without a name is skipped."""
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise ZuoraError(f"Zuora's describe answer is not XML: {exc}") from exc

    def flag(element: ET.Element, name: str) -> bool:
        return (element.findtext(name) or "").strip().lower() == "true"

    return [
        ZuoraField(
            name=(element.findtext("name") or "").strip(),
            type=(element.findtext("type") or "").strip(),
            createable=flag(element, "createable"),
            updateable=flag(element, "updateable"),
            required=flag(element, "required"),
        )
        for element in root.iter("field")
        if (element.findtext("name") or "").strip()
    ]
