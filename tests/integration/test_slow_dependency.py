"""A slow dependency, not a dead one: the ingest function still answers its documented 503 in time.

SQS here is a server on 127.0.0.1 that accepts connections and reads requests but never answers, so every
attempt waits for its read timeout. On AWS, Lambda stops the function at its timeout and API Gateway answers its
own 5xx; the endpoint's ``503 queue_unavailable`` with ``Retry-After`` reaches Zuora only if the SQS client gives
up first. The secret still comes from moto's server. Through the local API Gateway front, which enforces the
function's timeout as Lambda does, the same 503 reaches the caller.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

import functions.ingest.app as ingest_app
from nrtsync.app.ingest import INGEST_RESERVE_SECONDS, INGEST_SHARES, ingest_settings
from nrtsync.domain.time_budget import split_remaining
from nrtsync_local.gateway.rules import Route
from nrtsync_local.gateway.server import ApiGatewayFront
from tests.support.events import callout_secret, load_event
from tests.support.lambda_context import FakeLambdaContext

pytestmark = pytest.mark.integration

SECRET_ID = "nrtsync/callout"
# The invocation's time left; short so the test is quick (the function's own 10 s works the same way).
REMAINING_SECONDS = 4.0


class _Silent(socketserver.BaseRequestHandler):
    """Reads what the client sends and never answers, until the server shuts down."""

    def handle(self) -> None:
        self.request.settimeout(0.2)
        server: _SilentServer = self.server  # type: ignore[assignment]
        while not server.closing.is_set():
            try:
                if not self.request.recv(65536):
                    return
            except TimeoutError:
                continue


class _SilentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Silent)
        self.closing = threading.Event()
        self.connections = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True


@pytest.fixture
def silent_sqs() -> Iterator[_SilentServer]:
    server = _SilentServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def callout_secret_on_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{host}:{port}")
        secrets = boto3.client("secretsmanager")
        try:
            secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps(callout_secret()))
        except secrets.exceptions.ResourceExistsException:  # moto keeps its state per process, across servers
            secrets.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(callout_secret()))
        yield
    finally:
        server.stop()


@dataclass
class _Context(FakeLambdaContext):
    remaining_ms: int = int(REMAINING_SECONDS * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_silent_queue_is_answered_503_before_the_function_runs_out_of_time(
    silent_sqs: _SilentServer, callout_secret_on_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SQS that takes connections and never answers, and an invocation with REMAINING_SECONDS left
    host, port = silent_sqs.server_address[:2]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://{host!s}:{port}")
    monkeypatch.setenv("CALLOUT_QUEUE_URL", f"http://{host!s}:{port}/000000000000/nrtsync-callouts")
    monkeypatch.setenv("CALLOUT_SECRET_ID", SECRET_ID)
    ingest_settings.cache_clear()
    ingest_app.endpoint.use(None)
    try:
        # When a callout arrives
        started = time.monotonic()
        response: dict[str, Any] = ingest_app.lambda_handler(load_event("callout_account"), _Context())
        elapsed = time.monotonic() - started
    finally:
        ingest_app.endpoint.use(None)
        ingest_settings.cache_clear()

    # Then the endpoint answers its own 503 with Retry-After, with time to spare for the answer
    assert response["statusCode"] == 503, response["body"]
    assert json.loads(response["body"])["error"] == "queue_unavailable"
    assert response["multiValueHeaders"]["Retry-After"] == ["60"]
    assert elapsed < REMAINING_SECONDS - INGEST_RESERVE_SECONDS / 2
    # And the SQS client tried what its limits allow, each attempt waiting for its read timeout
    queue = split_remaining(REMAINING_SECONDS, INGEST_SHARES, reserve_seconds=INGEST_RESERVE_SECONDS)["queue"]
    assert silent_sqs.connections == queue.max_attempts
    assert elapsed >= queue.max_attempts * queue.read_timeout


def test_through_the_local_front_the_503_arrives_before_the_function_timeout(
    silent_sqs: _SilentServer, callout_secret_on_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same silent SQS, and the ingest function behind the local API Gateway front, which abandons an
    # invocation still running at the function's timeout (here REMAINING_SECONDS) and answers 502 for it
    host, port = silent_sqs.server_address[:2]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://{host!s}:{port}")
    monkeypatch.setenv("CALLOUT_QUEUE_URL", f"http://{host!s}:{port}/000000000000/nrtsync-callouts")
    monkeypatch.setenv("CALLOUT_SECRET_ID", SECRET_ID)
    ingest_settings.cache_clear()
    ingest_app.endpoint.use(None)
    event = load_event("callout_account")
    headers = {
        name: value
        for name, value in event["headers"].items()
        if name in ("Authorization", "Content-Type", "Zuora-Notification-Id", "Zuora-Request-Id")
    }
    front = ApiGatewayFront(
        ingest_app.lambda_handler,
        routes=[Route("/callouts", "POST")],
        stage="prod",
        function_name="IngestFunction",
        timeout_seconds=REMAINING_SECONDS,
    ).start()
    try:
        with requests.Session() as http:
            http.trust_env = False
            # When a callout arrives through the front
            started = time.monotonic()
            answer = http.post(front.base_url + "/callouts", data=event["body"], headers=headers, timeout=30)
            elapsed = time.monotonic() - started
    finally:
        front.stop()
        ingest_app.endpoint.use(None)
        ingest_settings.cache_clear()

    # Then Zuora gets the endpoint's own 503 with Retry-After (which it retries), not the gateway's 502
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "queue_unavailable"
    assert answer.headers["Retry-After"] == "60"
    assert elapsed < REMAINING_SECONDS
