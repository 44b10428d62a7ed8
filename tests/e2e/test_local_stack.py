"""The whole local pipeline over HTTP: callout URL -> ingest -> SQS -> sync -> Salesforce stand-in.

Most tests share one in-process ``LocalDeployment`` (the module's fixture); the last one runs
``python -m nrtsync_local.stack`` as a process, as ``make local`` does, and stops it with SIGTERM.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from nrtsync_cli.cli import run
from nrtsync_local.gateway.server import MAX_PAYLOAD_BYTES
from nrtsync_local.stack import LocalDeployment, LocalDeploymentError, schedule_seconds
from nrtsync_local.standin.process import StandinClient, trusting_session
from nrtsync_local.template import gateway_responses, load_template, parameter_defaults
from tests.support.events import event_body, load_event

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
INVOICES = "Zuora__ZInvoice__c"
ACCOUNT_ID = "8ad09be48db5aa2a018dc0b0c41a7d2e"  # the account the sample subscription and invoice belong to


# Headers of the sample events that a client does not choose: requests sets them, or Basic auth replaces them.
_TRANSPORT_HEADERS = {"authorization", "host", "content-length", "accept-encoding"}
_stacks = itertools.count()


@dataclass
class Callout:
    """What an HTTP client (Zuora, curl) sends to the callout URL."""

    body: bytes
    headers: dict[str, str]

    @classmethod
    def from_event(cls, name: str, **changes: Any) -> Callout:
        """The body and headers of ``events/<name>``; ``changes`` replace top-level body keys or ``fields``."""
        event = load_event(name)
        body = event_body(event)
        if changes:
            document = json.loads(body)
            fields = changes.pop("fields", None)
            document |= changes
            if fields is not None:
                document["fields"] = {**document.get("fields", {}), **fields}
            body = json.dumps(document).encode("utf-8")
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in _TRANSPORT_HEADERS}
        return cls(body=body, headers=headers)


@dataclass
class Client:
    stack: LocalDeployment
    http: requests.Session

    @property
    def standin(self) -> StandinClient:
        assert self.stack.standin is not None
        return self.stack.standin

    def send(
        self, callout: Callout, *, auth: tuple[str, str] | None = None, anonymous: bool = False
    ) -> requests.Response:
        return self.http.post(
            self.stack.callout_url,
            data=callout.body,
            headers=callout.headers,
            auth=None if anonymous else (auth or self.stack.callout_auth),
            timeout=10,
        )


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalDeployment]:
    before = {name: os.environ.get(name) for name in ("AWS_ENDPOINT_URL", "REQUESTS_CA_BUNDLE", "CALLOUT_QUEUE_URL")}
    stack = LocalDeployment(
        stack_name=f"e2e{os.getpid()}x{next(_stacks)}",  # moto's state is per process: one name per stack
        sync_batch_window_seconds=0.5,
        # Metrics on, but on the template's 1-minute schedule: only run_metrics_now runs them in this module.
        with_metrics=True,
        environment_overrides={"RETRY_DELAY_SECONDS": "1"},
    )
    with stack:
        yield stack
    # The stack gives the process its environment back.
    assert {name: os.environ.get(name) for name in before} == before


@pytest.fixture
def client(local_stack: LocalDeployment) -> Iterator[Client]:
    assert local_stack.standin is not None
    local_stack.wait_until_drained(timeout=15)
    local_stack.standin.reset()
    with requests.Session() as http:
        http.trust_env = False  # no proxy for 127.0.0.1, whatever the shell says
        yield Client(local_stack, http)
    local_stack.standin.set_faults(validation_rules=[], latency_ms=0)


def failures(stack: LocalDeployment) -> list[dict[str, Any]]:
    """The failure list as the operator CLI prints it (``nrtsync --json failures``)."""
    out = io.StringIO()
    assert run(["--json", "failures"], operations=stack.operations(), out=out) == 0
    listed: list[dict[str, Any]] = json.loads(out.getvalue())
    return listed


def test_account_subscription_and_invoice_reach_salesforce_linked_to_the_account(client: Client) -> None:
    # Given the sample account, subscription and invoice callouts, children first (delivery order is not promised)
    callouts = [Callout.from_event(name) for name in ("callout_subscription", "callout_invoice", "callout_account")]

    # When Zuora posts them to the callout URL
    answers = [client.send(callout) for callout in callouts]

    # Then each is queued, and once the queue drains all three are in Salesforce, the children linked to the account
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert all(a.json()["status"] == "queued" for a in answers)
    client.stack.wait_until_drained(timeout=20)
    account = client.standin.record(ACCOUNTS, ACCOUNT_ID)
    subscription = client.standin.record(SUBSCRIPTIONS, "8ad0887e8db5aa2a018dc0b2f3a1094c")
    invoice = client.standin.record(INVOICES, "8ad09b7d8db5aa2a018dc0b3a5e21b77")
    assert account is not None
    assert account["Name"] == "Acme Widgets Ltd"
    assert subscription is not None
    assert subscription["Zuora__CustomerAccount__c"] == account["Id"]
    assert invoice is not None
    assert invoice["Zuora__BillingAccount__c"] == account["Id"]
    assert invoice["Zuora__Description__c"] == "March 2024 \u2014 annual plan, first instalment"
    # The children carry the billing account's CrmId as Zuora 360's link to the Salesforce Account, and the
    # subscription's empty dates (rendered as null, Zuora's "send empty strings as null") are cleared
    assert subscription["Zuora__Account__c"] == invoice["Zuora__Account__c"] == account["Zuora__Account__c"]
    assert account["Zuora__Account__c"] == "0015g00000XyZ12AAB"
    assert subscription["Zuora__SubscriptionEndDate__c"] is None
    assert subscription["Zuora__CancelledDate__c"] is None


def test_a_delete_callout_removes_the_record_and_an_older_update_does_not_bring_it_back(client: Client) -> None:
    # Given an account of its own in Salesforce (the module's stack shares its state table between tests)
    own = "8ad09be48db5aa2a018dc0b0deleted1"
    assert client.send(Callout.from_event("callout_account", id=own)).status_code == 200
    client.stack.wait_until_drained(timeout=20)
    assert client.standin.record(ACCOUNTS, own) is not None

    # When Zuora's delete custom event calls out (changeType DELETE), then its older update arrives again
    deleted = client.send(Callout.from_event("callout_delete", id=own))
    client.stack.wait_until_drained(timeout=20)
    late = client.send(Callout.from_event("callout_account", id=own, updatedDate="2024-03-05T11:00:00.000-08:00"))
    client.stack.wait_until_drained(timeout=20)

    # Then the record is gone from Salesforce and stays gone; nothing is on the failure list
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "queued"
    assert late.status_code == 200
    assert client.standin.record(ACCOUNTS, own) is None
    assert failures(client.stack) == []


def unauthorized_body() -> dict[str, Any]:
    """The body of the template's UNAUTHORIZED gateway response."""
    spec = gateway_responses(load_template(), "CalloutApi")["UNAUTHORIZED"]
    body: dict[str, Any] = json.loads(spec["Templates"]["application/json"])
    return body


class _Exchange(urllib.request.BaseHandler):
    """Records each request (with or without credentials) and each answer, before urllib acts on a 401."""

    handler_order = 100  # before HTTPErrorProcessor, which hands a 401 to the Basic auth handler

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        self.seen.append(("request with credentials", request.get_header("Authorization") is not None))
        return request

    def http_response(self, request: urllib.request.Request, response: Any) -> Any:
        self.seen.append((f"answer {response.status}", response.headers.get("WWW-Authenticate")))
        return response


def test_zuoras_non_preemptive_basic_auth_is_challenged_then_accepted(client: Client) -> None:
    # Given a client that sends credentials only after a 401 whose WWW-Authenticate challenge names the realm it
    # has them for, as Zuora does with preemptive authentication off (urllib's Basic auth handler works so)
    realm = parameter_defaults(load_template())["CalloutAuthRealm"]
    passwords = urllib.request.HTTPPasswordMgr()
    passwords.add_password(realm, client.stack.callout_url, *client.stack.callout_auth)
    exchange = _Exchange()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPBasicAuthHandler(passwords), exchange
    )
    callout = Callout.from_event("callout_account", id="NONPREEMPTIVE-1")
    request = urllib.request.Request(client.stack.callout_url, data=callout.body, headers=callout.headers)

    # When it posts a callout
    with opener.open(request, timeout=10) as answer:
        status, body = answer.status, json.loads(answer.read())

    # Then: no credentials -> 401 with the Basic challenge -> the same request with credentials -> 200, success
    assert exchange.seen == [
        ("request with credentials", False),
        ("answer 401", f'Basic realm="{realm}", charset="UTF-8"'),
        ("request with credentials", True),
        ("answer 200", None),
    ]
    assert status == 200
    assert body["success"] is True
    assert body["status"] == "queued"
    client.stack.wait_until_drained(timeout=20)
    assert client.standin.record(ACCOUNTS, "NONPREEMPTIVE-1") is not None


def test_a_callout_without_credentials_is_challenged(client: Client) -> None:
    # When a callout arrives without an Authorization header
    answer = client.send(Callout.from_event("callout_account"), anonymous=True)

    # Then it gets the 401 challenge Zuora's Basic auth expects, and nothing is queued
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert answer.headers["x-amzn-RequestId"]
    assert answer.json() == unauthorized_body()  # API Gateway's UNAUTHORIZED gateway response, "success": false
    assert client.stack.queue_depth() == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_wrong_password_is_challenged_too(client: Client) -> None:
    answer = client.send(Callout.from_event("callout_account"), auth=(client.stack.callout_username, "not-it"))

    assert answer.status_code == 401
    assert "WWW-Authenticate" in answer.headers
    assert answer.json() == unauthorized_body()
    assert answer.json()["success"] is False


def test_an_invalid_callout_is_refused_and_nothing_reaches_salesforce(client: Client) -> None:
    # Given a callout for an object the mapping does not know, and one without a record id
    unmapped = Callout.from_event("callout_unmapped_object")
    no_id = Callout.from_event("callout_account", id="")

    # When they are posted
    answers = [client.send(unmapped), client.send(no_id)]

    # Then both get 422 with the field at fault, and Salesforce sees no call at all
    assert [a.status_code for a in answers] == [422, 422]
    assert all(a.json()["error"] == "invalid_callout" for a in answers)
    client.stack.wait_until_drained(timeout=10)
    assert client.standin.stats()["api_calls"] == 0
    assert client.standin.records(ACCOUNTS) == []


def test_a_record_salesforce_refuses_ends_on_the_failure_list_and_the_queue_drains(client: Client) -> None:
    # Given an org whose validation rule refuses one account name
    client.standin.set_faults(validation_rules=[{"field": "Name", "equals": "Forbidden Ltd"}])
    refused = Callout.from_event("callout_account", id="REFUSED-1", fields={"Name": "Forbidden Ltd"})
    accepted = Callout.from_event("callout_account", id="ACCEPTED-1", fields={"Name": "Fine Ltd"})

    # When both are posted and synced
    assert client.send(refused).status_code == 200
    assert client.send(accepted).status_code == 200
    client.stack.wait_until_drained(timeout=20)

    # Then the good one is in Salesforce, the refused one is on the failure list (not retried, not in the DLQ)
    assert client.standin.record(ACCOUNTS, "ACCEPTED-1") is not None
    assert client.standin.record(ACCOUNTS, "REFUSED-1") is None
    [failure] = [f for f in failures(client.stack) if f["record_id"] == "REFUSED-1"]
    assert failure["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert failure["object_type"] == "Account"
    dlq = client.stack.client("sqs").get_queue_attributes(
        QueueUrl=client.stack.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_the_front_answers_like_api_gateway_for_what_never_reaches_the_function(client: Client) -> None:
    base = client.stack.callout_url.removesuffix("/callouts")
    auth = client.stack.callout_auth

    # An unknown path, a method the API does not have, and a path outside the stage: REST API's 403, with the
    # body of the template's MISSING_AUTHENTICATION_TOKEN gateway response
    missing_token = json.loads(
        gateway_responses(load_template(), "CalloutApi")["MISSING_AUTHENTICATION_TOKEN"]["Templates"][
            "application/json"
        ]
    )
    assert missing_token["success"] is False
    for method, url in (("POST", f"{base}/other"), ("GET", client.stack.callout_url), ("POST", base + "x/callouts")):
        answer = client.http.request(method, url, auth=auth, timeout=5)
        assert answer.status_code == 403, (method, url)
        assert answer.json() == missing_token

    # A body over API Gateway's 10 MB payload limit
    too_big = client.http.post(client.stack.callout_url, data=b"x" * (MAX_PAYLOAD_BYTES + 1), auth=auth, timeout=10)
    assert too_big.status_code == 413


def test_bodies_and_query_strings_reach_the_function_as_api_gateway_passes_them(client: Client) -> None:
    # A body that is not UTF-8 arrives base64-encoded and is refused by the function as such
    latin1 = client.send(
        Callout(body='{"name": "Müller"}'.encode("latin-1"), headers={"Content-Type": "application/json"})
    )
    assert latin1.status_code == 400
    assert latin1.json()["error"] == "malformed_body"

    # An old-style notification callout: every value a URL parameter, no body
    answer = client.http.post(
        client.stack.callout_url,
        params={
            "eventType": "AccountUpdated",
            "objectType": "Account",
            "id": "PARAMS-1",
            "updatedDate": "2024-03-05T10:22:39.000-08:00",
            "Name": "Params Ltd",
            "CrmId": "0015g00000XyZ12AAB",
        },
        auth=client.stack.callout_auth,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    client.stack.wait_until_drained(timeout=20)
    record = client.standin.record(ACCOUNTS, "PARAMS-1")
    assert record is not None
    assert record["Name"] == "Params Ltd"


def test_the_metrics_function_runs_on_the_stack_history(client: Client) -> None:
    # Given one record synced
    assert client.send(Callout.from_event("callout_account", id="METRICS-1")).status_code == 200
    client.stack.wait_until_drained(timeout=20)

    # When the schedule fires
    assert client.stack.metrics_error is None, client.stack.metrics_error
    result = client.stack.run_metrics_now()

    # Then the metrics function ran against the local history and published to (moto's) CloudWatch
    assert isinstance(result, dict)
    assert client.stack.metrics_runs >= 1


def test_one_local_stack_per_process(local_stack: LocalDeployment) -> None:
    with pytest.raises(LocalDeploymentError, match="already running"):
        LocalDeployment(stack_name="second").start()
    assert local_stack.queue_depth() is not None  # the running one is untouched


def test_rate_expressions_become_intervals() -> None:
    assert schedule_seconds("rate(1 minute)") == 60
    assert schedule_seconds("rate(5 minutes)") == 300
    assert schedule_seconds("rate(10 seconds)") == 10
    assert schedule_seconds("cron(0/5 * * * ? *)") is None


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], log: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            info: dict[str, Any] = json.loads(path.read_text())
            return info
        if process.poll() is not None:
            pytest.fail(f"the stack exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.05)  # polls the stack's subprocess until it writes its state file
    pytest.fail(f"no {path} after {timeout}s: {log.read_text()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_local_serves_until_sigterm_then_exits_cleanly(tmp_path: Path) -> None:
    # Given `python -m nrtsync_local.stack` started in a fresh working directory
    log = tmp_path / "stack.log"
    state_file = tmp_path / "state" / "stack.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "layers" / "shared")])}
    for name in (
        "SALESFORCE_LOGIN_URL",
        "AWS_ENDPOINT_URL",
        "ZUORA_BASE_URL",
        "ZUORA_CLIENT_ID",
        "ZUORA_CLIENT_SECRET",
    ):
        env.pop(name, None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "nrtsync_local.stack", "--state-dir", str(state_file.parent), "--batch-window", "1"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        info = _wait_for_file(state_file, process, log, timeout=30)
        assert state_file.stat().st_mode & 0o777 == 0o600
        assert info["pid"] == process.pid

        # When a callout is sent with curl's equivalent, Basic auth included, over the front's HTTPS (the URL
        # Zuora is set up to call)
        body = Callout.from_event("callout_account", id="SUBPROCESS-1").body
        assert info["callout_url"].startswith("https://")
        with requests.Session() as http:
            http.trust_env = False
            http.verify = info["callout_ca_file"]
            answer = http.post(
                info["callout_url"],
                data=body,
                headers={"Content-Type": "application/json"},
                auth=(info["callout_username"], info["callout_password"]),
                timeout=10,
            )
        assert answer.status_code == 200, answer.text

        # Then the record reaches the stand-in (asked through its control API)
        with trusting_session(info["salesforce_ca_file"]) as control:
            deadline = time.monotonic() + 20
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                records = control.get(f"{info['salesforce_url']}/__standin/records/{ACCOUNTS}", timeout=5).json()
                found = [r for r in records["records"] if r["Zuora__External_Id__c"] == "SUBPROCESS-1"]
                time.sleep(0.2)  # polls the stand-in process until the record lands or the deadline passes
        assert found, log.read_text()

        # And SIGTERM stops it: exit 0 within a few seconds, stack.json removed, the stand-in gone
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, log.read_text()
        assert time.monotonic() - started < 10
        assert not state_file.exists()
        assert not _alive(int(info["standin_pid"]))
        assert not _alive(int(info["zuora_standin_pid"]))  # the Zuora stand-in too, by its pid
        assert f"{info['zuora_url']}/__standin/records/Account" in log.read_text()  # the banner's seeding example
        assert "stopped" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_status_through_the_local_deployment_reads_the_state_table(client: Client) -> None:
    # Given the running local deployment, which the demo and the drill query through LocalDeployment.operations()
    # When status is read through it
    status = client.stack.operations().status()

    # Then the breaker and the API usage come from the state table, not "unknown" for want of its name
    assert status["breaker"] is None or status["breaker"].get("state") != "unknown"
    assert "error" not in (status["api_usage"] or {})
