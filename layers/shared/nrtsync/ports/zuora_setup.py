"""The contract of Zuora's set-up APIs: custom event triggers, notification definitions, and describe.

Raises the Zuora client's errors (``nrtsync.domain.models.zuora``): ``ZuoraRequestError`` for a refusal,
``ZuoraAuthError`` and ``ZuoraRetryableError`` as the query client does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ZuoraField:
    """One field of ``GET /v1/describe/{object}``."""

    name: str
    type: str
    createable: bool = False
    updateable: bool = False
    required: bool = False


class ZuoraDescribePort(Protocol):
    def describe(self, object_type: str) -> list[ZuoraField] | None:
        """``GET /v1/describe/{object}``: the object's fields, or None when the tenant has no such object."""
        ...


class ZuoraNotificationsPort(ZuoraDescribePort, Protocol):
    def event_triggers(self, event_type_name: str) -> list[dict[str, Any]]:
        """``GET /events/event-triggers?eventTypeName=...``: the triggers of that event type."""
        ...

    def create_event_trigger(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def update_event_trigger(self, trigger_id: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def notification_definitions(self, event_type_name: str) -> list[dict[str, Any]]:
        """``GET /notifications/notification-definitions?eventTypeName=...``."""
        ...

    def create_notification_definition(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def update_notification_definition(self, definition_id: str, body: dict[str, Any]) -> dict[str, Any]: ...
