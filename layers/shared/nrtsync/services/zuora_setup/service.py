"""Make Zuora's custom event triggers and notification definitions match the mapping and the stack, and say where
they drifted.

Idempotent: what it made is found by name (``nrtsync.domain.zuora_notifications``), what drifted is updated in
place (``PUT``), and a create carries an ``Idempotency-Key`` derived from its body, so a retried create is made
once. Everything is checked before the first write (the callout URL, every mapped object and field against
Zuora's describe, custom events being available), so bad input leaves nothing half-made; a run stopped midway
leaves what it made findable by name, and the next run completes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.zuora import ZuoraCredentials, ZuoraRequestError
from nrtsync.domain.zuora_notifications import (
    CalloutTarget,
    DesiredNotification,
    SetupError,
    desired_notifications,
    idempotency_key,
    queried_fields,
)
from nrtsync.ports.zuora_setup import ZuoraNotificationsPort

Action = Literal["create", "update", "unchanged"]
Kind = Literal["event trigger", "notification definition"]

# The callout settings the endpoint relies on. Preemptive authentication is a callout's (``calloutAuth``), which
# ``setup`` writes; the other two are the tenant's, set in Zuora's UI ("Configure callout settings"), not exposed.
TENANT_SETTINGS = (
    (
        "preemptive authentication",
        "off in every callout setup makes: Zuora sends the credentials after the endpoint's 401 challenge (on "
        "would work too, one round trip fewer)",
    ),
    (
        "empty strings as null",
        "Settings > Notifications > callout settings: switch on 'For custom event triggered callouts, send empty "
        "strings as null' (recommended; the endpoint reads both)",
    ),
    (
        "success parsing",
        "Settings > Notifications > callout settings: 'Confirm success by parsing response content' may stay off "
        "(the endpoint answers 200 only once the change is queued); if on, the endpoint's body carries "
        '"success": true',
    ),
)


@dataclass(frozen=True)
class Step:
    """One thing ``setup`` does (or would do, with ``--dry-run``)."""

    action: Action
    kind: Kind
    name: str
    reasons: tuple[str, ...] = ()

    def line(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.action} {self.kind} {self.name}{why}"


@dataclass(frozen=True)
class Drift:
    """One difference between Zuora and what ``setup`` would make, with what to do about it."""

    name: str
    problem: str
    fix: str = "run `nrtsync zuora setup`"


@dataclass
class _Found:
    trigger: dict[str, Any] | None
    definition: dict[str, Any] | None


@dataclass
class ZuoraSetup:
    """``plan`` (dry run), ``apply`` and ``check`` for one stack's callout target and mapping."""

    zuora: ZuoraNotificationsPort
    mapping: MappingConfig
    target: CalloutTarget
    desired: list[DesiredNotification] = field(init=False)

    def __post_init__(self) -> None:
        self.desired = desired_notifications(self.mapping, self.target)

    def preflight(self) -> None:
        """Raises ``SetupError`` naming every mapped object or field the tenant lacks (``GET /v1/describe``)."""
        problems = []
        for object_type in self.mapping.objects:
            described = self.zuora.describe(object_type)
            if described is None:
                problems.append(
                    f"the mapping names the Zuora object {object_type!r}, which this tenant does not have: "
                    "fix the mapping's object name (Zuora's names: Account, Subscription, Invoice, Payment...)"
                )
                continue
            have = {f.name for f in described}
            problems += [
                f"the mapping names {object_type}.{name}, which Zuora's describe does not list: fix the field name "
                "in the mapping, or create the custom field in Zuora (custom fields end in __c)"
                for name in queried_fields(self.mapping, object_type)
                if name not in have
            ]
        if problems:
            raise SetupError("\n".join(problems))

    def plan(self) -> list[Step]:
        """What ``apply`` would do, nothing written."""
        self.preflight()
        steps = []
        for want in self.desired:
            found = self._find(want)
            steps += [_trigger_step(want, found.trigger), _definition_step(want, found.definition)]
        return steps

    def apply(self) -> list[Step]:
        """Creates or updates what differs; returns the steps taken (``unchanged`` ones included)."""
        steps = self.plan()  # every check passes before the first write
        for want in self.desired:
            found = self._find(want)
            trigger_step = _trigger_step(want, found.trigger)
            if trigger_step.action == "create":
                body = want.trigger_body()
                self.zuora.create_event_trigger(body, idempotency_key(body))
            elif trigger_step.action == "update" and found.trigger is not None:
                self.zuora.update_event_trigger(str(found.trigger["id"]), want.trigger_body(with_base_object=False))
            definition_step = _definition_step(want, found.definition)
            if definition_step.action == "create":
                body = want.definition_body()
                self.zuora.create_notification_definition(body, idempotency_key(body))
            elif definition_step.action == "update" and found.definition is not None:
                self.zuora.update_notification_definition(str(found.definition["id"]), want.definition_body())
        return steps

    def check(self) -> list[Drift]:
        """Every difference; an empty list means Zuora calls this stack as the mapping says."""
        drifts = []
        for want in self.desired:
            found = self._find(want)
            if found.trigger is None:
                drifts.append(Drift(want.name, "no event trigger"))
            else:
                drifts += [Drift(want.name, f"event trigger: {r}") for r in trigger_drift(want, found.trigger)]
            if found.definition is None:
                drifts.append(Drift(want.name, "no notification definition"))
            else:
                drifts += [
                    Drift(want.name, reason, _fix(reason)) for reason in definition_drift(want, found.definition)
                ]
        return drifts

    def _find(self, want: DesiredNotification) -> _Found:
        try:
            triggers = [t for t in self.zuora.event_triggers(want.event_type) if _event_name(t) == want.event_type]
        except ZuoraRequestError as exc:
            if exc.http_status in (403, 404):
                raise SetupError(
                    f"Zuora refused the custom event triggers API ({exc}): custom events are not enabled in this "
                    "tenant; ask Zuora Global Support to enable Custom Events, then run `nrtsync zuora setup` again"
                ) from exc
            raise
        definitions = [d for d in self.zuora.notification_definitions(want.event_type) if d.get("name") == want.name]
        return _Found(triggers[0] if triggers else None, definitions[0] if definitions else None)


def _event_name(trigger: dict[str, Any]) -> str | None:
    event_type = trigger.get("eventType")
    return str(event_type.get("name")) if isinstance(event_type, dict) else None


def trigger_drift(want: DesiredNotification, trigger: dict[str, Any]) -> list[str]:
    reasons = []
    if trigger.get("active") is not True:
        reasons.append("inactive")
    if trigger.get("baseObject") != want.object_type:
        reasons.append(f"base object is {trigger.get('baseObject')!r}, not {want.object_type!r}")
    if str(trigger.get("condition", "")).strip() != want.condition:
        reasons.append(f"condition is {trigger.get('condition')!r}, not {want.condition!r}")
    return reasons


def definition_drift(want: DesiredNotification, definition: dict[str, Any]) -> list[str]:
    reasons = []
    callout = definition.get("callout")
    if definition.get("active") is not True or definition.get("calloutActive") is not True:
        reasons.append("inactive definition")
    if not isinstance(callout, dict):
        return [*reasons, "no callout"]
    if callout.get("active") is False:
        reasons.append("inactive callout")
    if callout.get("calloutBaseurl") != want.target.url:
        reasons.append(f"callout URL is {callout.get('calloutBaseurl')!r}, not {want.target.url!r}")
    if str(callout.get("httpMethod", "")).upper() != "POST":
        reasons.append(f"method is {callout.get('httpMethod')!r}, not POST")
    auth = callout.get("calloutAuth")
    auth = auth if isinstance(auth, dict) else {}
    if callout.get("requiredAuth") is not True or auth.get("username") != want.target.username:
        reasons.append("credentials: not the callout secret's username")
    elif want.credentials_tag not in str(callout.get("description", "")):
        reasons.append("credentials rotated: the callout secret changed since the last setup")
    if callout.get("calloutRetry") is not True:
        reasons.append("retries off")
    reasons += _content_drift(want, callout)
    return reasons


def _content_drift(want: DesiredNotification, callout: dict[str, Any]) -> list[str]:
    try:
        content = json.loads(str(callout.get("customRequestBody") or "")) if callout.get("useCustomRequestBody") else {}
    except ValueError:
        content = {}
    if not isinstance(content, dict):
        content = {}
    fields = content.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    reasons = [f"mapped field {name} missing from the callout" for name in want.content["fields"] if name not in fields]
    if not reasons and content != want.content:
        reasons.append("callout content differs from the mapping")
    return reasons


def _trigger_step(want: DesiredNotification, trigger: dict[str, Any] | None) -> Step:
    if trigger is None:
        return Step("create", "event trigger", want.name)
    reasons = tuple(trigger_drift(want, trigger))
    return Step("update" if reasons else "unchanged", "event trigger", want.name, reasons)


def _definition_step(want: DesiredNotification, definition: dict[str, Any] | None) -> Step:
    if definition is None:
        return Step("create", "notification definition", want.name)
    reasons = tuple(definition_drift(want, definition))
    return Step("update" if reasons else "unchanged", "notification definition", want.name, reasons)


def _fix(reason: str) -> str:
    if reason.startswith("credentials rotated"):
        return "run `nrtsync zuora setup` so Zuora sends the callout secret's new password"
    return "run `nrtsync zuora setup`"


def require_target(stack: str, url: str | None, credentials: dict[str, Any]) -> CalloutTarget:
    """The callout target from a stack's ``CalloutUrl`` and the callout secret's JSON; ``SetupError`` naming what
    is missing or still a placeholder."""
    username, password = credentials.get("username"), credentials.get("password")
    if not url:
        raise SetupError(f"the stack {stack} has no CalloutUrl output: deploy it first (docs/DEPLOY.md)")
    for key, value in (("username", username), ("password", password)):
        if not isinstance(value, str) or not value or "REPLACE_ME" in value:
            raise SetupError(f"the callout secret's {key} is missing or a placeholder: put the real value in it")
    return CalloutTarget(stack=stack, url=url, username=str(username), password=str(password))


def require_zuora_credentials(secret: dict[str, Any]) -> ZuoraCredentials:
    """The Zuora secret's credentials; ``SetupError`` when it still holds the template's placeholders."""
    if any("REPLACE_ME" in str(secret.get(key, "")) for key in ("client_id", "client_secret")):
        raise SetupError(
            "the Zuora secret still holds its placeholders: put the OAuth client's client_id and client_secret in "
            "it (docs/ZUORA.md, 'The secret')"
        )
    try:
        return ZuoraCredentials.model_validate(secret)
    except ValueError as exc:
        raise SetupError(f"the Zuora secret is not valid: {exc}") from exc
