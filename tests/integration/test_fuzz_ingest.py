"""Property-based bad input over the callout endpoint: API Gateway event -> handler -> moto SQS and Secrets Manager.

The properties, for any body, encoding, size, content type, credentials and signature:

- a bad request is never answered 5xx (5xx only when the queue or the secret is unavailable);
- 200 only with exactly one message on the queue, whose body is a valid QueuedChange of a mapped object type;
- nothing is queued for any other answer, and nothing gets past wrong credentials or a wrong signature;
- every 4xx body is JSON that names at least one field.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

import functions.ingest.app as ingest_app
from nrtsync.adapters.aws.secrets import CachedSecretSource
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.secrets import SecretUnavailableError
from nrtsync.services.ingest.endpoint import CalloutEndpoint
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from tests.support.events import CALLOUT_PASSWORD, CALLOUT_USERNAME, basic_authorization, callout_secret, load_event
from tests.support.lambda_context import FakeLambdaContext

MAX_BYTES = 65_536  # the default MAX_CALLOUT_BYTES
HMAC_KEY = "fuzz-hmac-key-0123456789abcdef"
OBJECT_TYPES = frozenset(load_mapping().objects)
CLIENT_ERRORS = {400, 401, 403, 413, 415, 422}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BASE_EVENT = load_event("callout_account")
BASE_DOCUMENT: dict[str, Any] = json.loads(BASE_EVENT["body"])


# --- strategies ----------------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
field_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True) | st.text(max_size=12)
dates = st.sampled_from(
    [
        "2024-03-05T10:22:39.000-08:00",
        "2024-03-05T18:22:39Z",
        "2024-03-05 18:22:39",
        "2024-03-05",
        "1709662961",
        "03/05/2024 10:22",
        "",
        "2024-13-45T99:99:99Z",
        # The calendar's ends and the far future: 422, never an OverflowError (a 502 Zuora would retry).
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "2999-01-01T00:00:00Z",
    ]
) | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
fuzzed_values: dict[str, st.SearchStrategy[Any]] = {
    "objectType": st.sampled_from([*sorted(OBJECT_TYPES), "Nope", "", " Account "]) | json_values,
    "id": st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True) | st.text(max_size=70) | json_values,
    "updatedDate": dates | json_values,
    "eventType": st.text(max_size=120) | json_values,
    "fields": st.dictionaries(field_names, scalars | json_values, max_size=6) | json_values,
    "extra": json_values,
}


@st.composite
def callout_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The sample callout with each key kept (mostly), dropped or replaced by anything."""
    document: dict[str, Any] = {}
    for key, fuzzed in fuzzed_values.items():
        choice = draw(st.integers(min_value=0, max_value=9))
        if choice < 7 and key in BASE_DOCUMENT:
            document[key] = copy.deepcopy(BASE_DOCUMENT[key])
        elif choice < 8 or key == "extra":
            continue
        else:
            document[key] = draw(fuzzed)
    return document


def weighted[T](
    common: st.SearchStrategy[T], rare: st.SearchStrategy[T], percent_common: int = 70
) -> st.SearchStrategy[T]:
    """``common`` about ``percent_common`` % of the time, else ``rare``: keeps most examples past the first check."""
    return st.integers(min_value=1, max_value=100).flatmap(lambda n: common if n <= percent_common else rare)


@st.composite
def padded_callouts(draw: st.DrawFn) -> bytes:
    """A valid callout padded to within a few bytes of the size limit (either side of it)."""
    delta = draw(st.integers(min_value=-40, max_value=40))
    document = copy.deepcopy(BASE_DOCUMENT)
    document["fields"]["Name"] = ""
    empty = len(json.dumps(document).encode())
    filler = draw(st.sampled_from(["x", "é"]))
    needed = MAX_BYTES + delta - empty
    document["fields"]["Name"] = filler * (needed // len(filler.encode()))
    return json.dumps(document, ensure_ascii=False).encode()


def _json_bytes(value: Any, ensure_ascii: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii).encode()


bodies = st.one_of(
    st.builds(_json_bytes, callout_documents(), st.booleans()),
    st.builds(_json_bytes, callout_documents(), st.booleans()),
    st.builds(_json_bytes, json_values, st.booleans()),
    st.just(json.dumps(BASE_DOCUMENT).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=6).map(lambda p: urlencode(p).encode()),
    padded_callouts(),
    padded_callouts(),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"id": 1, "id": 2}', b"1" * 5000, b"[" * 3000 + b"]" * 3000]),
)
content_types = weighted(
    st.sampled_from(["application/json", "application/json; charset=UTF-8"]),
    st.sampled_from(
        [
            None,
            "application/json",
            "application/json; charset=UTF-8",
            "APPLICATION/JSON",
            "application/vnd.zuora+json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]
    )
    | st.text(max_size=30),
)


@dataclass(frozen=True)
class Auth:
    header: str | None
    valid: bool


auths = weighted(
    st.sampled_from(
        [Auth(basic_authorization(), valid=True), Auth("basic " + basic_authorization().split(" ", 1)[1], valid=True)]
    ),
    st.one_of(
        st.sampled_from(
            [
                Auth(None, valid=False),
                Auth(basic_authorization(password="wrong"), valid=False),
                Auth(basic_authorization(username="someone"), valid=False),
                Auth(basic_authorization(password=CALLOUT_PASSWORD + " "), valid=False),
                Auth("Basic", valid=False),
                Auth("Bearer " + CALLOUT_PASSWORD, valid=False),
                Auth(f"Basic {CALLOUT_USERNAME}:{CALLOUT_PASSWORD}", valid=False),  # not base64
            ]
        ),
        st.binary(max_size=40).map(lambda b: Auth("Basic " + base64.b64encode(b).decode(), valid=False)),
        st.text(max_size=40).map(lambda t: Auth(t, valid=False)),
    ),
)


@dataclass(frozen=True)
class Request:
    event: dict[str, Any]
    body: bytes
    auth_valid: bool
    signed: str  # "right", "wrong" or "none"


@st.composite
def requests(draw: st.DrawFn) -> Request:
    body = draw(bodies)
    event = copy.deepcopy(BASE_EVENT)
    event.pop("multiValueHeaders", None)
    headers: dict[str, str] = {k: v for k, v in event["headers"].items() if k.lower() not in {"authorization"}}
    headers.pop("Content-Type", None)
    content_type = draw(content_types)
    if content_type is not None:
        headers["Content-Type"] = content_type
    auth = draw(auths)
    if auth.header is not None:
        headers[draw(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]))] = auth.header
    signed = draw(weighted(st.sampled_from(["right", "right-lf", "right-b64"]), st.sampled_from(["wrong", "none"])))
    if signed != "none":
        data = body + b"\n" if signed == "right-lf" else body
        digest = hmac.new(HMAC_KEY.encode(), data, hashlib.sha256).digest()
        signature = base64.b64encode(digest).decode() if signed == "right-b64" else digest.hex().upper()
        if signed == "wrong":
            signature = draw(st.text(max_size=70))
        headers["X-Zuora-Signature"] = signature
    for name in ("Zuora-Notification-Id", "Zuora-Request-Id"):
        choice = draw(st.sampled_from(["keep", "drop", "fuzz"]))
        if choice == "drop":
            headers.pop(name, None)
        elif choice == "fuzz":
            # Hypothesis' text leaves out surrogates; SQS refuses U+FFFE and U+FFFF: both are drawn on purpose.
            headers[name] = draw(
                st.text(max_size=300) | st.sampled_from(["\ud800", "n-\udfff", "\ufffe", "\uffff", "a\x00b", "x" * 201])
            )
    encoding = draw(weighted(st.sampled_from(["text", "base64"]), st.just("broken-base64"), 90))
    if encoding == "base64":
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    elif encoding == "broken-base64":
        event["body"], event["isBase64Encoded"] = draw(st.text(min_size=1, max_size=30)), True
    else:
        # Bytes that are not UTF-8 reach the event as lone surrogates, the only way a str can carry them.
        event["body"], event["isBase64Encoded"] = body.decode("utf-8", "surrogateescape"), False
    query = draw(
        st.none()
        | st.dictionaries(st.text(max_size=10), st.lists(st.text(max_size=20), max_size=2))
        # A signed body replayed with a parameter the endpoint would read.
        | st.just({"changeType": ["DELETE"]})
    )
    event["multiValueQueryStringParameters"] = query or None
    event["queryStringParameters"] = {k: v[-1] for k, v in query.items() if v} if query else None
    headers["Content-Length"] = str(len(body))
    event["headers"] = headers
    return Request(
        event=event, body=body, auth_valid=auth.valid, signed="none" if signed == "none" else signed.split("-")[0]
    )


# --- the world -----------------------------------------------------------------------------------------------


@dataclass
class World:
    sqs: Any
    queue_url: str
    plain: CalloutEndpoint
    signed: CalloutEndpoint

    def drain(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            messages.extend(batch)
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages


def ingest_settings_for(secret_id: str) -> IngestSettings:
    return IngestSettings.from_env(
        {"CALLOUT_QUEUE_URL": "unused", "CALLOUT_SECRET_ID": secret_id, "MAX_CALLOUT_BYTES": str(MAX_BYTES)}
    )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with mock_aws():
        sqs = boto3.client("sqs")
        # The template's queue: 256 KiB messages, so the queue refuses what SQS would refuse.
        queue_url = sqs.create_queue(QueueName="fuzz-callouts", Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name="plain", SecretString=json.dumps(callout_secret()))
        secrets.create_secret(Name="signed", SecretString=json.dumps(callout_secret(hmac_key=HMAC_KEY)))

        def endpoint(secret_id: str) -> CalloutEndpoint:
            return CalloutEndpoint(
                ingest_settings_for(secret_id),
                queue=SqsChangeQueue(queue_url, client=sqs),
                secrets=CachedSecretSource(max_age=300, client=secrets),
                object_types=OBJECT_TYPES,
            )

        yield World(sqs=sqs, queue_url=queue_url, plain=endpoint("plain"), signed=endpoint("signed"))
    ingest_app.endpoint.use(None)


# Answers of the main property by class (2 = 2xx, 4 = 4xx, 5 = 5xx), reported when the module's tests end.
ANSWERS: dict[int, int] = {}


@pytest.fixture(scope="module", autouse=True)
def answer_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and ANSWERS:
        cases = sum(ANSWERS.values())
        reporter.write_line(f"fuzz ingest: {cases} cases, {ANSWERS.get(5, 0)} answered 5xx, by class {ANSWERS}")


def invoke(endpoint: CalloutEndpoint, event: dict[str, Any]) -> dict[str, Any]:
    ingest_app.endpoint.use(endpoint)
    response: dict[str, Any] = ingest_app.lambda_handler(copy.deepcopy(event), FakeLambdaContext())
    return response


def assert_names_a_field(response: dict[str, Any]) -> None:
    body = json.loads(response["body"])
    assert isinstance(body, dict), response
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    assert isinstance(body.get("message"), str), body
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert isinstance(error.get("field"), str), body
        assert error["field"], body
        assert isinstance(error.get("message"), str), body


# --- properties ----------------------------------------------------------------------------------------------


@FUZZ
@given(request=requests(), with_hmac=st.booleans())
def test_bad_input_is_a_4xx_naming_a_field_and_only_a_200_queues(
    world: World, request: Request, with_hmac: bool
) -> None:
    # When
    response = invoke(world.signed if with_hmac else world.plain, request.event)
    messages = world.drain()

    # Then
    status = response["statusCode"]
    ANSWERS[status // 100] = ANSWERS.get(status // 100, 0) + 1
    event(f"{status} {json.loads(response['body']).get('error', 'queued')}")
    assert status == 200 or status in CLIENT_ERRORS, (status, response["body"])
    if not request.auth_valid:
        assert status == 401, response["body"]
        assert "WWW-Authenticate" in (response.get("multiValueHeaders") or response.get("headers") or {})
    if with_hmac and request.signed != "right" and status == 200:
        pytest.fail("a callout without the right signature was queued")
    if with_hmac and status == 200:
        # The signature covers the body only: nothing unsigned may have been read beside it.
        assert not request.event["multiValueQueryStringParameters"], request.event["multiValueQueryStringParameters"]
        assert request.body
    if status != 200:
        assert messages == []
        assert_names_a_field(response)
        return
    assert request.auth_valid
    assert len(request.body) <= MAX_BYTES
    [message] = messages
    answer = json.loads(response["body"])
    assert answer["status"] == "queued"
    assert answer["messageId"] == message["MessageId"]
    change = QueuedChange.model_validate_json(message["Body"])
    assert change.object_type in OBJECT_TYPES
    assert change.notification_id == answer["notificationId"]


@settings(FUZZ, max_examples=60)
@given(request=requests(), outage=st.sampled_from(["queue", "secret"]))
def test_5xx_only_when_the_queue_or_the_secret_is_down(request: Request, outage: str) -> None:
    # Given the answer of a working endpoint
    def endpoint(*, queue_down: bool, secret_down: bool) -> tuple[CalloutEndpoint, MemoryQueue]:
        queue = MemoryQueue(failing=queue_down)
        built = CalloutEndpoint(
            ingest_settings_for("plain"),
            queue=queue,
            secrets=MemorySecrets(default=SecretUnavailableError("injected") if secret_down else callout_secret()),
            object_types=OBJECT_TYPES,
        )
        return built, queue

    working, working_queue = endpoint(queue_down=False, secret_down=False)
    healthy = invoke(working, request.event)["statusCode"]

    # When the same request meets an outage
    broken, broken_queue = endpoint(queue_down=outage == "queue", secret_down=outage == "secret")
    response = invoke(broken, request.event)

    # Then it is a 503 exactly when the healthy answer needed what is down; otherwise the same answer
    status = response["statusCode"]
    assert broken_queue.sent == []
    if outage == "secret" or healthy == 200:
        assert status == 503, response["body"]
    else:
        assert status == healthy
    assert len(working_queue.sent) == (1 if healthy == 200 else 0)
