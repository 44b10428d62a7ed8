"""``zuora setup`` and ``zuora check`` over HTTPS against the Zuora stand-in's event-trigger, notification and
describe routes, through the real adapter."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nrtsync.adapters.zuora_setup import ZuoraSetupClient
from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.zuora import ZuoraCredentials, ZuoraRequestError
from nrtsync.domain.zuora_notifications import CalloutTarget, SetupError
from nrtsync.services.zuora_setup.service import ZuoraSetup
from nrtsync_cli.cli import build_parser
from nrtsync_cli.zuora_setup import StackSide, run_zuora
from nrtsync_local.standin.process import trusting_session
from nrtsync_local.zuora import ZuoraStandin
from nrtsync_local.zuora.describe import FIELDS_FILE

pytestmark = pytest.mark.integration

MAPPING = load_mapping()
TARGET = CalloutTarget(stack="local", url="https://127.0.0.1:9/callout", username="zuora", password="pw")


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[ZuoraStandin, requests.Session]]:
    with ZuoraStandin() as running:
        yield running, trusting_session(str(running.write_ca(tmp_path / "ca.pem")))


def _client(standin: ZuoraStandin, session: requests.Session) -> ZuoraSetupClient:
    credentials = ZuoraCredentials.model_validate(
        {"base_url": standin.url, "client_id": standin.state.client_id, "client_secret": standin.state.client_secret}
    )
    return ZuoraSetupClient(credentials, session=session)


def test_setup_twice_makes_everything_once_and_check_passes(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)

    first = ZuoraSetup(zuora, MAPPING, TARGET).apply()
    second = ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert sum(s.action == "create" for s in first) == 24
    assert {s.action for s in second} == {"unchanged"}
    assert running.notifications.creates == 24
    assert ZuoraSetup(zuora, MAPPING, TARGET).check() == []
    # Zuora never answers the password back
    listed = zuora.notification_definitions("nrtsync-local-Account-update")
    assert "password" not in listed[0]["callout"]["calloutAuth"]


def test_check_sees_an_admins_edits_and_setup_repairs_them(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)
    ZuoraSetup(zuora, MAPPING, TARGET).apply()
    running.notifications.control(
        {
            "definition_edits": {
                "nrtsync-local-Account-update": {"callout": {"calloutBaseurl": "https://elsewhere.example.com/x"}},
                "nrtsync-local-Invoice-delete": {"active": False},
            }
        }
    )

    drifts = ZuoraSetup(zuora, MAPPING, TARGET).check()
    ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert [(d.name, d.problem.split(" is ")[0]) for d in drifts] == [
        ("nrtsync-local-Account-update", "callout URL"),
        ("nrtsync-local-Invoice-delete", "inactive definition"),
    ]
    assert ZuoraSetup(zuora, MAPPING, TARGET).check() == []
    assert running.notifications.creates == 24


def test_the_standin_refuses_a_non_https_callout_url(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)
    want = ZuoraSetup(zuora, MAPPING, TARGET).desired[0]
    zuora.create_event_trigger(want.trigger_body(), "k1")
    body = want.definition_body()
    body["callout"]["calloutBaseurl"] = "http://127.0.0.1:9/callout"

    with pytest.raises(ZuoraRequestError, match="https://"):
        zuora.create_notification_definition(body, "k2")


def test_idempotency_key_makes_a_repeated_create_once(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)
    body = ZuoraSetup(zuora, MAPPING, TARGET).desired[0].trigger_body()

    first = zuora.create_event_trigger(body, "same-key")
    again = zuora.create_event_trigger(body, "same-key")

    assert first["id"] == again["id"]
    assert len(zuora.event_triggers(body["eventType"]["name"])) == 1


def test_describe_lists_the_fields_file(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)
    fields = json.loads(FIELDS_FILE.read_text())["objects"]["Invoice"]["fields"]

    described = zuora.describe("Invoice")

    assert described is not None
    assert {f.name: f.type for f in described} == fields
    assert zuora.describe("Widget") is None


def test_bad_mapping_and_disabled_custom_events_make_nothing(standin: tuple[ZuoraStandin, requests.Session]) -> None:
    running, session = standin
    zuora = _client(running, session)
    broken = MappingConfig.model_validate(
        {"objects": {"Account": {"sobject": "A__c", "externalIdField": "X__c", "fields": {"Nmae": {"to": "Name"}}}}}
    )
    with pytest.raises(SetupError, match=r"Account\.Nmae"):
        ZuoraSetup(zuora, broken, TARGET).apply()

    running.notifications.control({"custom_events": False})
    with pytest.raises(SetupError, match="custom events are not enabled"):
        ZuoraSetup(zuora, MAPPING, TARGET).apply()

    assert running.notifications.creates == 0


def test_the_command_line_dry_run_setup_and_check(
    standin: tuple[ZuoraStandin, requests.Session], tmp_path: Path
) -> None:
    running, _ = standin
    side = StackSide(
        stack="local",
        callout_url=TARGET.url,
        callout_secret={"username": TARGET.username, "password": TARGET.password},
        zuora_secret={
            "base_url": running.url,
            "client_id": running.state.client_id,
            "client_secret": running.state.client_secret,
        },
        ca_file=str(running.write_ca(tmp_path / "cli-ca.pem")),
    )

    def command(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = run_zuora(build_parser().parse_args(["--local", "zuora", *argv]), out, side, err)
        return code, out.getvalue(), err.getvalue()

    drifting, report, _ = command("check")
    dry, planned, _ = command("setup", "--dry-run")
    done, _, _ = command("setup")
    again, said, _ = command("setup")
    clean, _, _ = command("check")
    placeholder = StackSide(**{**side.__dict__, "zuora_secret": {**side.zuora_secret, "client_id": "REPLACE_ME"}})
    refused = run_zuora(
        build_parser().parse_args(["--local", "zuora", "setup"]), io.StringIO(), placeholder, err := io.StringIO()
    )

    assert (drifting, dry, done, again, clean, refused) == (1, 0, 0, 0, 0, 1)
    assert "no event trigger" in report
    assert "would create event trigger nrtsync-local-Account-insert" in planned
    assert "nothing to change: 12 event triggers" in said
    assert "placeholders" in err.getvalue()
