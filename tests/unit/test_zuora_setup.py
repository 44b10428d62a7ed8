"""``zuora setup`` and ``zuora check`` (the service) on an in-memory Zuora: what is made, idempotence, drift,
and bad input refused before anything is made."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.callout import Callout
from nrtsync.domain.models.zuora import ZuoraRequestError
from nrtsync.domain.zuora_notifications import CalloutTarget, SetupError, callout_content
from nrtsync.ports.zuora_setup import ZuoraField
from nrtsync.services.zuora_setup.service import ZuoraSetup, require_target, require_zuora_credentials

MAPPING = load_mapping()
TARGET = CalloutTarget(stack="prod", url="https://api.example.com/callout", username="zuora", password="s3cret")
DESCRIBED = {
    "Account": ["Id", "UpdatedDate", *MAPPING.objects["Account"].fields],
    "Subscription": ["Id", "UpdatedDate", "AccountId", *MAPPING.objects["Subscription"].fields],
    "Invoice": ["Id", "UpdatedDate", "AccountId", *MAPPING.objects["Invoice"].fields],
    "Payment": ["Id", "UpdatedDate", "AccountId", *MAPPING.objects["Payment"].fields],
}


class InMemoryZuora:
    """``ZuoraNotificationsPort`` in memory: what the API stores and answers, the password left out as Zuora does."""

    def __init__(self, described: dict[str, list[str]] | None = None, *, custom_events: bool = True) -> None:
        self.described = DESCRIBED if described is None else described
        self.custom_events = custom_events
        self.triggers: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.keys: list[str] = []

    def _events_allowed(self) -> None:
        if not self.custom_events:
            raise ZuoraRequestError("forbidden", code="PERMISSION_DENIED", http_status=403)

    def event_triggers(self, event_type_name: str) -> list[dict[str, Any]]:
        self._events_allowed()
        return [json.loads(json.dumps(t)) for t in self.triggers.values() if t["eventType"]["name"] == event_type_name]

    def create_event_trigger(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        self._events_allowed()
        self.keys.append(idempotency_key)
        self.writes.append(f"create trigger {body['eventType']['name']}")
        item = {"id": secrets.token_hex(8), **body}
        self.triggers[item["id"]] = item
        return item

    def update_event_trigger(self, trigger_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(f"update trigger {body['eventType']['name']}")
        self.triggers[trigger_id] |= body
        return self.triggers[trigger_id]

    def notification_definitions(self, event_type_name: str) -> list[dict[str, Any]]:
        found = [d for d in self.definitions.values() if d["eventTypeName"] == event_type_name]
        answer: list[dict[str, Any]] = json.loads(json.dumps(found))
        for definition in answer:
            definition["callout"]["calloutAuth"].pop("password", None)
        return answer

    def create_notification_definition(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        self.keys.append(idempotency_key)
        self.writes.append(f"create definition {body['name']}")
        item = {"id": secrets.token_hex(8), **json.loads(json.dumps(body))}
        self.definitions[item["id"]] = item
        return item

    def update_notification_definition(self, definition_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(f"update definition {body['name']}")
        self.definitions[definition_id] = {"id": definition_id, **json.loads(json.dumps(body))}
        return self.definitions[definition_id]

    def describe(self, object_type: str) -> list[ZuoraField] | None:
        names = self.described.get(object_type)
        return None if names is None else [ZuoraField(name=n, type="text") for n in names]

    def definition(self, name: str) -> dict[str, Any]:
        return next(d for d in self.definitions.values() if d["name"] == name)


def test_setup_makes_a_trigger_and_a_callout_per_object_and_change_type() -> None:
    zuora = InMemoryZuora()

    ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert len(zuora.triggers) == len(zuora.definitions) == 4 * 3
    conditions = {(t["baseObject"], t["condition"]) for t in zuora.triggers.values()}
    assert ("Account", "changeType == 'DELETE'") in conditions
    assert ("Payment", "changeType == 'INSERT'") in conditions
    callout = zuora.definition("nrtsync-prod-Subscription-update")["callout"]
    assert callout["calloutBaseurl"] == TARGET.url
    assert callout["requiredAuth"] is True
    assert callout["calloutRetry"] is True
    assert callout["httpMethod"] == "POST"
    body = json.loads(callout["customRequestBody"])
    assert body["changeType"] == "UPDATE"
    assert body["id"] == "{{DataSource.Subscription.Id}}"
    # every mapped field and parent, and the inherited CrmId read from the joined Account
    assert set(body["fields"]) == {*MAPPING.objects["Subscription"].fields, "AccountId", "CrmId"}
    assert body["fields"]["CrmId"] == "{{DataSource.Account.CrmId}}"
    assert len(set(zuora.keys)) == len(zuora.keys) == 24


def test_a_second_run_changes_nothing() -> None:
    zuora = InMemoryZuora()
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    zuora.writes.clear()

    steps = ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert zuora.writes == []
    assert {s.action for s in steps} == {"unchanged"}
    assert ZuoraSetup(zuora, MAPPING, TARGET).check() == []


def test_dry_run_writes_nothing_and_says_what_it_would_create() -> None:
    zuora = InMemoryZuora()

    steps = ZuoraSetup(zuora, MAPPING, TARGET).plan()

    assert zuora.writes == []
    assert sum(s.action == "create" for s in steps) == 24
    assert steps[0].line() == "create event trigger nrtsync-prod-Account-insert"


def test_a_run_stopped_midway_is_completed_by_the_next() -> None:
    zuora = InMemoryZuora()
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    made = next(iter(zuora.definitions))
    del zuora.definitions[made]  # as if the run stopped after the trigger
    zuora.writes.clear()

    ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert len(zuora.writes) == 1
    assert zuora.writes[0].startswith("create definition")


def test_check_reports_each_drift_and_setup_repairs_it_in_place() -> None:
    zuora = InMemoryZuora()
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    account = zuora.definition("nrtsync-prod-Account-update")
    account["callout"]["calloutBaseurl"] = "https://old.example.com/callout"
    invoice = zuora.definition("nrtsync-prod-Invoice-insert")
    invoice["active"] = False
    payment = zuora.definition("nrtsync-prod-Payment-delete")
    content = json.loads(payment["callout"]["customRequestBody"])
    del content["fields"]["Amount"]
    payment["callout"]["customRequestBody"] = json.dumps(content)
    rotated = CalloutTarget(stack="prod", url=TARGET.url, username="zuora", password="new-password")

    problems = {(d.name, d.problem) for d in ZuoraSetup(zuora, MAPPING, TARGET).check()}
    rotations = ZuoraSetup(zuora, MAPPING, rotated).check()

    assert (
        "nrtsync-prod-Account-update",
        f"callout URL is 'https://old.example.com/callout', not '{TARGET.url}'",
    ) in problems
    assert ("nrtsync-prod-Invoice-insert", "inactive definition") in problems
    assert ("nrtsync-prod-Payment-delete", "mapped field Amount missing from the callout") in problems
    assert len(problems) == 3
    # every one of the 12 definitions holds the old password; the three above drift besides
    assert sum(d.problem.startswith("credentials rotated") for d in rotations) == 12
    assert len(rotations) == 12 + 3

    before = set(zuora.definitions)
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    assert ZuoraSetup(zuora, MAPPING, TARGET).check() == []
    assert set(zuora.definitions) == before  # updated in place, nothing added


def test_an_inactive_trigger_is_drift() -> None:
    zuora = InMemoryZuora()
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    next(iter(zuora.triggers.values()))["active"] = False

    drifts = ZuoraSetup(zuora, MAPPING, TARGET).check()

    assert [d.problem for d in drifts] == ["event trigger: inactive"]


def test_a_non_https_callout_url_is_refused_naming_it() -> None:
    with pytest.raises(SetupError, match=r"'http://api.example.com/callout' is not https://"):
        CalloutTarget(stack="prod", url="http://api.example.com/callout", username="u", password="p")


def test_a_mapping_naming_what_zuora_lacks_makes_nothing() -> None:
    mapping = MappingConfig.model_validate(
        {
            "objects": {
                "Account": {"sobject": "A__c", "externalIdField": "X__c", "fields": {"Nmae": {"to": "Name"}}},
                "Widget": {"sobject": "W__c", "externalIdField": "X__c"},
            }
        }
    )
    zuora = InMemoryZuora()

    with pytest.raises(SetupError) as raised:
        ZuoraSetup(zuora, mapping, TARGET).apply()

    assert "Account.Nmae" in str(raised.value)
    assert "'Widget'" in str(raised.value)
    assert zuora.writes == []


def test_a_tenant_without_custom_events_is_told_what_to_do() -> None:
    zuora = InMemoryZuora(custom_events=False)

    with pytest.raises(SetupError, match="custom events are not enabled"):
        ZuoraSetup(zuora, MAPPING, TARGET).apply()
    assert zuora.writes == []


def test_placeholder_secrets_are_refused() -> None:
    with pytest.raises(SetupError, match="placeholders"):
        require_zuora_credentials(
            {"base_url": "https://rest.zuora.com", "client_id": "REPLACE_ME", "client_secret": "REPLACE_ME"}
        )
    with pytest.raises(SetupError, match="password is missing or a placeholder"):
        require_target("prod", TARGET.url, {"username": "zuora"})


def test_callout_content_is_the_endpoints_shape() -> None:
    content = callout_content(MAPPING, "Invoice", "DELETE", "nrtsync-prod-Invoice-delete")
    text = json.dumps(content).replace("{{DataSource.Invoice.UpdatedDate}}", "2026-12-07T10:00:00Z")
    rendered = json.loads(text.replace("{{DataSource.Invoice.Id}}", "8a8aa1b2"))

    callout = Callout.model_validate(rendered, context={"object_types": set(MAPPING.objects)})

    assert callout.changeType == "DELETE"
    assert callout.objectType == "Invoice"
