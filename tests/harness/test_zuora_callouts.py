"""The Zuora stand-in sends callouts by itself, as Zuora does, to an HTTPS receiver: rendered content,
non-preemptive Basic, notification and request ids, which answers it retries, and https only."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from nrtsync.adapters.zuora_setup import ZuoraSetupClient
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import Callout
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync.domain.zuora_notifications import CalloutTarget
from nrtsync.services.zuora_setup.service import ZuoraSetup
from nrtsync_local.standin.process import trusting_session
from nrtsync_local.standin.tls import serve_tls
from nrtsync_local.zuora import ZuoraStandin
from nrtsync_local.zuora.callouts import condition_holds, retried

pytestmark = pytest.mark.integration

MAPPING = load_mapping()
USER, PASSWORD = "zuora", "pw-123"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Receiver:
    """An HTTPS endpoint that records every request and answers from ``script`` (then 200); it challenges a request
    without credentials with a 401, as the stack's API Gateway does."""

    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, headers: dict[str, str], body: str) -> tuple[int, dict[str, str]]:
        with self.arrived:
            self.requests.append({"headers": headers, "body": body})
            self.arrived.notify_all()
            if headers.get("authorization") != BASIC:
                return 401, {"WWW-Authenticate": 'Basic realm="callouts"'}
            return (self.script.pop(0) if self.script else 200), {}

    def wait_for(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, str, str]]:
    ca = trustme.CA()
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            status, extra = state.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_tls(server, ca)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "receiver-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield state, f"https://127.0.0.1:{server.server_address[1]}/prod/callouts", str(ca_file)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def zuora(tmp_path: Path, receiver: tuple[Receiver, str, str]) -> Iterator[ZuoraStandin]:
    _, url, ca_file = receiver
    with ZuoraStandin() as running:
        running.callouts.control("POST", {"ca_file": ca_file, "retry_interval_seconds": 0.05})
        session: requests.Session = trusting_session(str(running.write_ca(tmp_path / "zuora-ca.pem")))
        credentials = ZuoraCredentials.model_validate(
            {
                "base_url": running.url,
                "client_id": running.state.client_id,
                "client_secret": running.state.client_secret,
            }
        )
        target = CalloutTarget(stack="prod", url=url, username=USER, password=PASSWORD)
        ZuoraSetup(ZuoraSetupClient(credentials, session=session), MAPPING, target).apply()
        yield running


def _seed(zuora: ZuoraStandin, object_type: str, record: dict[str, Any]) -> None:
    answer = zuora.state.control("POST", f"records/{object_type}", {"records": [record]})
    assert answer.status == 200


def _delivered(zuora: ZuoraStandin) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = zuora.callouts.control("GET", {})["history"]
    return history


def test_a_new_record_is_called_out_with_the_mappings_content_after_a_challenge(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    _seed(zuora, "Account", {"Id": "A1", "UpdatedDate": "2026-12-07T10:00:00.000+00:00", "Name": "Acme", "CrmId": ""})
    _seed(zuora, "Subscription", {"Id": "S1", "UpdatedDate": "2026-12-07T10:01:00Z", "AccountId": "A1"})
    zuora.state.control("POST", "update/Account", {"records": [{"Id": "A1", "CrmId": "001000000000001AAA"}]})
    _seed(zuora, "Subscription", {"Id": "S1", "UpdatedDate": "2026-12-07T10:02:00Z", "AccountId": "A1"})

    seen = inbox.wait_for(8)

    # each callout: first without credentials (401 challenge), then with them
    by_notification: dict[str, list[bool]] = {}
    for r in seen:
        by_notification.setdefault(r["headers"]["zuora-notification-id"], []).append("authorization" in r["headers"])
    assert list(by_notification.values()) == [[False, True]] * 4
    bodies = [json.loads(r["body"]) for r in seen if "authorization" in r["headers"]]
    callouts = [Callout.model_validate(b, context={"object_types": set(MAPPING.objects)}) for b in bodies]
    account = next(c for c in callouts if c.objectType == "Account" and c.changeType == "INSERT")
    assert account.fields["Name"] == "Acme"
    assert account.fields["CrmId"] == "null"  # empty strings as null, Zuora's recommended setting
    inserted = next(b for b in bodies if b["objectType"] == "Account" and b["changeType"] == "INSERT")
    assert inserted["updatedDate"] == "2026-12-07T02:00:00.000-08:00"  # the tenant's time zone (Pacific)
    subscription = sorted((c.changeType or "", c.fields["CrmId"]) for c in callouts if c.objectType == "Subscription")
    assert subscription == [("INSERT", "null"), ("UPDATE", "001000000000001AAA")]  # the joined Account's, then


def test_a_retried_answer_keeps_the_notification_id_and_changes_the_request_id(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    inbox.script = [503, 429]

    _seed(zuora, "Account", {"Id": "A2", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Beta"})
    seen = inbox.wait_for(6)

    authorised = [r["headers"] for r in seen if "authorization" in r["headers"]]
    assert len(authorised) == 3
    assert len({h["zuora-notification-id"] for h in authorised}) == 1
    assert len({h["zuora-request-id"] for h in authorised}) == 3
    assert [(h["status"], h["attempt"]) for h in _wait_history(zuora, 3)] == [(503, 1), (429, 2), (200, 3)]


def test_an_answer_zuora_does_not_retry_is_given_up_at_once(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    inbox.script = [422]

    zuora.callouts.control("POST", {"empty_as_null": False})
    _seed(zuora, "Account", {"Id": "A3", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": ""})

    history = _wait_history(zuora, 1)
    assert [(h["status"], h["delivered"]) for h in history] == [(422, False)]
    assert json.loads(inbox.wait_for(2)[1]["body"])["fields"]["Name"] == ""
    assert zuora.callouts.control("GET", {})["pending"] == 0


def test_retried_answers_are_zuoras() -> None:
    assert [s for s in (100, 200, 400, 401, 403, 404, 408, 413, 415, 422, 429, 500, 503) if retried(s)] == [
        100,
        403,
        408,
        429,
        500,
        503,
    ]
    assert retried(None)
    assert condition_holds("changeType == 'DELETE'", "DELETE")
    assert not condition_holds("changeType == 'DELETE'", "UPDATE")
    assert condition_holds("changeType == 'INSERT' || changeType == 'UPDATE'", "UPDATE")
    assert not condition_holds("Account.Status == 'Active'", "UPDATE")


def _wait_history(zuora: ZuoraStandin, count: int) -> list[dict[str, Any]]:
    done = threading.Event()
    for _ in range(300):
        history = _delivered(zuora)
        if len(history) >= count and zuora.callouts.control("GET", {})["pending"] == 0:
            return history
        done.wait(0.05)
    return _delivered(zuora)


def test_success_parsing_wants_success_true_and_preemptive_sends_credentials_first(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    zuora.callouts.control("POST", {"success_parsing": True, "preemptive": True, "retries": 1})

    _seed(zuora, "Account", {"Id": "A4", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Delta"})
    history = _wait_history(zuora, 2)

    # the receiver answers 200 with an empty body: not a success when Zuora parses the answer, so retried once
    assert [(h["status"], h["delivered"], h["attempt"]) for h in history] == [(200, False, 1), (200, False, 2)]
    assert all("authorization" in r["headers"] for r in inbox.wait_for(2))


def _history_of(zuora: ZuoraStandin, record_id: str, count: int, *, settled: bool = True) -> list[dict[str, Any]]:
    """The record's attempts once at least ``count`` are in and (``settled``) nothing is pending."""
    done = threading.Event()
    for _ in range(300):
        rows = [h for h in _delivered(zuora) if h["record_id"] == record_id]
        if len(rows) >= count and (not settled or zuora.callouts.control("GET", {})["pending"] == 0):
            return rows
        done.wait(0.05)
    return [h for h in _delivered(zuora) if h["record_id"] == record_id]


def test_a_parent_whose_first_attempt_gets_no_answer_arrives_after_its_child(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    # Given the next change of account P1 armed: its callout's first attempt gets no answer
    inbox, _, _ = receiver
    zuora.callouts.control(
        "POST", {"retry_interval_seconds": 2.0, "faults": [{"record_id": "P1", "fault": "no_answer"}]}
    )

    # When the account is created, then (once that attempt failed) its subscription
    _seed(zuora, "Account", {"Id": "P1", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Parent"})
    [first] = _history_of(zuora, "P1", 1, settled=False)
    _seed(zuora, "Subscription", {"Id": "C1", "UpdatedDate": "2026-12-07T10:00:01Z", "AccountId": "P1"})
    parent = _history_of(zuora, "P1", 2)

    # Then the endpoint got the child first; the parent's retry is the same notification, a new request id
    assert (first["status"], first["fault"], first["delivered"], first["final"]) == (None, "no_answer", False, False)
    assert [(h["attempt"], h["status"], h["delivered"]) for h in parent] == [(1, None, False), (2, 200, True)]
    assert parent[0]["notification_id"] == parent[1]["notification_id"]
    assert parent[0]["request_id"] != parent[1]["request_id"]
    arrived = [json.loads(r["body"])["id"] for r in inbox.requests if "authorization" in r["headers"]]
    assert arrived == ["C1", "P1"]
    assert zuora.callouts.control("GET", {})["armed"] == {}


def test_a_lost_answer_makes_zuora_send_the_delivered_notification_again(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    zuora.callouts.control("POST", {"faults": [{"record_id": "D1", "fault": "answer_lost"}]})

    _seed(zuora, "Account", {"Id": "D1", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Twice"})
    rows = _history_of(zuora, "D1", 2)

    # The endpoint answered 200 both times; Zuora saw no answer the first time, so it tried again
    assert [(h["status"], h["endpoint_status"], h["delivered"]) for h in rows] == [
        (None, 200, False),
        (200, None, True),
    ]
    authorised = [r for r in inbox.requests if "authorization" in r["headers"]]
    assert len({r["headers"]["zuora-notification-id"] for r in authorised}) == 1
    assert len({r["headers"]["zuora-request-id"] for r in authorised}) == 2
    assert authorised[0]["body"] == authorised[1]["body"]


def test_every_attempt_unanswered_is_a_callout_zuora_gives_up_on(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    inbox, _, _ = receiver
    zuora.callouts.control("POST", {"retries": 2, "faults": [{"record_id": "G1", "fault": "no_answer", "attempts": 3}]})

    _seed(zuora, "Account", {"Id": "G1", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Lost"})
    rows = _history_of(zuora, "G1", 3)

    assert [(h["attempt"], h["attempt_limit"], h["status"], h["final"]) for h in rows] == [
        (1, 3, None, False),
        (2, 3, None, False),
        (3, 3, None, True),
    ]
    assert not any(h["delivered"] for h in rows)
    assert inbox.requests == []  # not one attempt reached the endpoint
    # The fault was the next change's only: the record's following change is delivered
    zuora.state.control("POST", "update/Account", {"records": [{"Id": "G1", "Name": "Found"}]})
    assert [h["delivered"] for h in _history_of(zuora, "G1", 4)][-1] is True


def test_setup_writes_non_preemptive_basic_so_every_callout_is_challenged_first(
    zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]
) -> None:
    with zuora.notifications.lock:
        auths = [d["callout"]["calloutAuth"] for d in zuora.notifications.definitions.values()]
    assert auths
    assert {a["preemptive"] for a in auths} == {False}

    _seed(zuora, "Account", {"Id": "B1", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Basic"})
    [row] = _history_of(zuora, "B1", 1)

    assert (row["challenged"], row["status"], row["delivered"]) == (True, 200, True)


def test_a_deleted_record_sends_its_delete_callout(zuora: ZuoraStandin, receiver: tuple[Receiver, str, str]) -> None:
    inbox, _, _ = receiver
    _seed(zuora, "Account", {"Id": "X1", "UpdatedDate": "2026-12-07T10:00:00Z", "Name": "Gone"})
    _history_of(zuora, "X1", 1)

    answer = zuora.state.control("POST", "delete/Account", {"ids": ["X1"]})
    rows = _history_of(zuora, "X1", 2)

    assert answer.status == 200
    assert [(h["change"], h["delivered"]) for h in rows] == [("INSERT", True), ("DELETE", True)]
    delete = json.loads([r for r in inbox.requests if "authorization" in r["headers"]][-1]["body"])
    assert (delete["objectType"], delete["id"], delete["changeType"]) == ("Account", "X1", "DELETE")


@pytest.mark.parametrize(
    "fault",
    [
        {"fault": "no_answer"},
        {"record_id": "A1", "fault": "slow"},
        {"record_id": "A1", "fault": "no_answer", "attempts": 0},
    ],
)
def test_a_fault_the_stand_in_does_not_model_is_refused(zuora: ZuoraStandin, fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fault"):
        zuora.callouts.control("POST", {"faults": [fault]})
    assert zuora.callouts.control("GET", {})["armed"] == {}
