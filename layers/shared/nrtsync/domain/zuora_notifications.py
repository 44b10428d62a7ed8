"""What Zuora must hold for callouts to reach a stack: per mapped object and change type, a custom event trigger
and a notification definition whose callout content is generated from the mapping.

The request shapes follow Zuora's API reference (developer.zuora.com, v1 API reference):
- "Custom Event Triggers" > "Create an event trigger" (``POST /events/event-triggers``): ``active``,
  ``baseObject``, ``condition`` (a JEXL expression on ``changeType``, ``INSERT``/``UPDATE``/``DELETE``),
  ``description``, ``eventType`` ``{name, displayName, description}``; "Update an event trigger"
  (``PUT /events/event-triggers/{id}``) takes the same fields but ``baseObject``.
- "Notifications" > "Create a notification definition" (``POST /notifications/notification-definitions``):
  ``name`` (unique per communication profile), ``eventTypeName``, ``active``, ``calloutActive`` and ``callout``,
  a callout template made with the definition ("Callout Templates" > "Create a callout template":
  ``calloutBaseurl``, which must start with ``https://``; ``httpMethod``; ``requiredAuth`` and ``calloutAuth``
  ``{username, password, domain, preemptive}`` for Basic; ``calloutRetry``; ``useCustomRequestBody`` and
  ``customRequestBody``, a JSON text with merge fields such as ``{{DataSource.Account.Id}}``).

One trigger per change type rather than one whose condition accepts all three: the change type is then written
into the callout body as a constant, which needs no merge field for it (the data source merge fields are the
record's, not the event's). Names carry the stack's name, so two stacks (staging, production) can share a
tenant, and ``zuora setup`` finds what it made by name alone, even after a run that stopped midway.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from nrtsync.domain.mapping import MappingConfig

ChangeType = Literal["INSERT", "UPDATE", "DELETE"]
CHANGE_TYPES: tuple[ChangeType, ...] = ("INSERT", "UPDATE", "DELETE")
EVENT_NAMESPACE = "user.notification"


class SetupError(ValueError):
    """Zuora cannot be set up as asked (a bad callout URL, a mapping naming what Zuora lacks...): the message
    names the thing and what to do. Raised before anything is created."""


@dataclass(frozen=True)
class CalloutTarget:
    """Where and how Zuora calls the stack: its ``CalloutUrl`` and the callout secret's Basic credentials."""

    stack: str
    url: str
    username: str
    password: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.netloc:
            # Zuora refuses any other callout URL ("Create a callout template": calloutBaseurl must start with
            # https://); saying so here means nothing is half-made.
            raise SetupError(
                f"the callout URL {self.url!r} is not https://: Zuora only calls https URLs; use the stack's "
                "CalloutUrl output (API Gateway serves https)"
            )

    def fingerprint(self, name: str) -> str:
        """A short digest of the credentials, kept in the callout's description: Zuora never returns the password,
        so this is how ``zuora check`` sees that the callout secret was rotated."""
        digest = hashlib.sha256(f"{name}\0{self.username}\0{self.password}".encode()).hexdigest()
        return digest[:16]


def event_type_name(stack: str, object_type: str, change: ChangeType) -> str:
    """Zuora's pattern for event type names is ``^[A-Za-z][\\w\\-]*$``; stack names fit it."""
    return f"nrtsync-{stack}-{object_type}-{change.lower()}"


def merge_field(object_type: str, field: str) -> str:
    return "{{DataSource.%s.%s}}" % (object_type, field)  # noqa: UP031 - braces are the content


def callout_content(mapping: MappingConfig, object_type: str, change: ChangeType, event_type: str) -> dict[str, Any]:
    """The callout body for one object and change type: the endpoint's canonical shape (docs/CALLOUTS.md) with
    every mapped field, every parent id and every inherited field (read from the parent, a joined object of the
    event's data source), so the template cannot disagree with the mapping."""
    obj = mapping.objects[object_type]
    fields = {name: merge_field(object_type, name) for name in obj.fields}
    fields |= {name: merge_field(object_type, name) for name in obj.parents}
    for name, inherited in obj.inherit.items():
        fields[name] = merge_field(obj.parents[inherited.via].object, name)
    return {
        "eventType": event_type,
        "objectType": object_type,
        "id": merge_field(object_type, "Id"),
        "updatedDate": merge_field(object_type, "UpdatedDate"),
        "changeType": change,
        "fields": dict(sorted(fields.items())),
    }


def queried_fields(mapping: MappingConfig, object_type: str) -> list[str]:
    """The fields of ``object_type`` Zuora must have: Id, UpdatedDate, the mapped fields and the parent ids."""
    obj = mapping.objects[object_type]
    return ["Id", "UpdatedDate", *obj.fields, *obj.parents]


@dataclass(frozen=True)
class DesiredNotification:
    """One event trigger and its notification definition, as ``zuora setup`` makes them."""

    object_type: str
    change: ChangeType
    event_type: str
    content: dict[str, Any]
    target: CalloutTarget

    @property
    def name(self) -> str:
        return self.event_type

    @property
    def condition(self) -> str:
        return f"changeType == '{self.change}'"

    @property
    def credentials_tag(self) -> str:
        return f"credentials {self.target.fingerprint(self.name)}"

    def trigger_body(self, *, with_base_object: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "active": True,
            "condition": self.condition,
            "description": f"nrtsync ({self.target.stack}): {self.object_type} {self.change.lower()}",
            "eventType": {
                "name": self.event_type,
                "displayName": f"nrtsync {self.target.stack} {self.object_type} {self.change.lower()}",
                "description": f"A {self.object_type} {self.change.lower()} for the nrtsync stack {self.target.stack}",
            },
        }
        if with_base_object:
            body["baseObject"] = self.object_type
        return body

    def callout_body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "eventTypeName": self.event_type,
            "eventTypeNamespace": EVENT_NAMESPACE,
            "description": f"nrtsync ({self.target.stack}); {self.credentials_tag}",
            "active": True,
            "calloutBaseurl": self.target.url,
            "httpMethod": "POST",
            "requiredAuth": True,
            # Not preemptive: Zuora sends the credentials after our endpoint's 401 challenge (API Gateway's
            # UNAUTHORIZED response), which works whatever the tenant's setting is.
            "calloutAuth": {
                "username": self.target.username,
                "password": self.target.password,
                "domain": None,
                "preemptive": False,
            },
            "calloutRetry": True,
            "useCustomRequestBody": True,
            "customRequestBody": json.dumps(self.content, separators=(",", ":")),
        }

    def definition_body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": f"nrtsync ({self.target.stack}): {self.object_type} {self.change.lower()} callout",
            "eventTypeName": self.event_type,
            "eventTypeNamespace": EVENT_NAMESPACE,
            "active": True,
            "calloutActive": True,
            "emailActive": False,
            "callout": self.callout_body(),
        }


def desired_notifications(mapping: MappingConfig, target: CalloutTarget) -> list[DesiredNotification]:
    """Everything ``zuora setup`` makes, parents first (the mapping's write order), then by change type."""
    desired = []
    for object_type in mapping.write_order():
        for change in CHANGE_TYPES:
            event_type = event_type_name(target.stack, object_type, change)
            desired.append(
                DesiredNotification(
                    object_type=object_type,
                    change=change,
                    event_type=event_type,
                    content=callout_content(mapping, object_type, change, event_type),
                    target=target,
                )
            )
    return desired


def idempotency_key(body: dict[str, Any]) -> str:
    """The same create sent twice (a retry after a lost answer) carries the same key, so Zuora makes it once
    ("Idempotent requests": at most 255 characters)."""
    return "nrtsync-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
