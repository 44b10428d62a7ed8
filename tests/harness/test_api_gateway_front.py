"""The local API Gateway front over real HTTP on 127.0.0.1, configured from template.yaml's own CalloutApi.

The function behind it is a small stand-in that records its calls; the authorizer is the real authorizer
logic (``services.ingest.authorizer``) with the test credentials, or a stand-in where a test needs another answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from nrtsync.domain.basic_auth import CalloutCredentials
from nrtsync.services.ingest.authorizer import AuthorizerRequest, NotAuthenticatedError, authorize
from nrtsync_fakes.clock import FakeClock
from nrtsync_local.gateway.rules import (
    GatewayResponse,
    GatewayResponses,
    Handler,
    LambdaAuthorizer,
    ResourcePolicy,
    Route,
    remap_response_headers,
)
from nrtsync_local.gateway.server import MAX_PAYLOAD_BYTES, ApiGatewayFront
from nrtsync_local.poller import LAMBDA_SYNC_PAYLOAD_BYTES
from nrtsync_local.template import api_authorizer, gateway_responses, load_template, parameter_defaults
from tests.support.events import CALLOUT_PASSWORD, CALLOUT_USERNAME, callout_secret

pytestmark = pytest.mark.integration

TEMPLATE = load_template()
API = "CalloutApi"
TEMPLATE_RESPONSES = gateway_responses(TEMPLATE, API)
REALM = parameter_defaults(TEMPLATE)["CalloutAuthRealm"]
AUTH = (CALLOUT_USERNAME, CALLOUT_PASSWORD)


def template_body(response_type: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(TEMPLATE_RESPONSES[response_type]["Templates"]["application/json"])
    return body


@dataclass
class Function:
    """The integration: answers what it is told to, after ``delay`` seconds, and counts its invocations."""

    answer: dict[str, Any] = field(
        default_factory=lambda: {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"success": True}),
        }
    )
    delay: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        # Real time: the front under test (a real HTTP server) times the integration out on its own thread.
        time.sleep(self.delay)
        return self.answer


def real_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The authorizer function's logic with the test credentials (the handler adds only the secret read)."""
    try:
        return authorize(AuthorizerRequest.from_event(event), CalloutCredentials.from_secret(callout_secret()))
    except NotAuthenticatedError:
        raise Exception("Unauthorized") from None  # noqa: TRY002 - what the authorizer function raises


@dataclass
class Front:
    front: ApiGatewayFront
    function: Function
    clock: FakeClock
    http: requests.Session

    @property
    def url(self) -> str:
        return self.front.base_url + "/callouts"

    def post(self, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.post(self.url, data=b'{"objectType": "Account"}', **kwargs)


def start_front(
    *,
    authorizer_handler: Handler = real_authorizer,
    routes: list[Route] | None = None,
    integration_timeout: float = 29.0,
    function: Function | None = None,
    function_timeout: float = 10,
    resource_policy: ResourcePolicy | None = None,
    responses: GatewayResponses | None = None,
) -> tuple[ApiGatewayFront, Function, FakeClock]:
    function = function or Function()
    clock = FakeClock()
    authorizer = LambdaAuthorizer.from_template(TEMPLATE, API, authorizer_handler)
    front = ApiGatewayFront(
        function,
        routes=routes or [Route("/callouts", "POST")],
        stage="prod",
        function_name="IngestFunction",
        timeout_seconds=function_timeout,
        gateway_responses=responses or GatewayResponses.from_template(TEMPLATE, API),
        authorizer=authorizer,
        resource_policy=resource_policy,
        integration_timeout_seconds=integration_timeout,
        region="eu-west-1",
        clock=clock.monotonic,
    ).start()
    return front, function, clock


@pytest.fixture
def running() -> Iterator[Front]:
    front, function, clock = start_front()
    with requests.Session() as http:
        http.trust_env = False  # no proxy for 127.0.0.1
        try:
            yield Front(front, function, clock, http)
        finally:
            front.stop()


def test_the_front_uses_the_templates_authorizer_and_cache() -> None:
    spec = api_authorizer(TEMPLATE, API)
    assert spec is not None
    assert spec["IdentityHeaders"] == ["Authorization"]
    assert spec["ReauthorizeEvery"] > 0


def test_without_credentials_the_gateway_challenges_without_invoking_the_authorizer(running: Front) -> None:
    # When a callout arrives without an Authorization header (Zuora's first, non-preemptive attempt)
    answer = running.post()

    # Then API Gateway itself answers the UNAUTHORIZED gateway response: 401 with the Basic challenge, the
    # template's body with "success": false; neither the authorizer nor the function ran
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == f'Basic realm="{REALM}", charset="UTF-8"'
    assert answer.json() == template_body("UNAUTHORIZED")
    assert answer.json()["success"] is False
    assert running.front.authorizer_invocations == 0
    assert running.function.events == []


def test_an_empty_authorization_header_is_missing_too(running: Front) -> None:
    answer = running.post(headers={"Authorization": ""})

    assert answer.status_code == 401
    assert running.front.authorizer_invocations == 0


def test_bad_credentials_get_the_401_gateway_response(running: Front) -> None:
    answer = running.post(auth=(CALLOUT_USERNAME, "not-it"))

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith(f'Basic realm="{REALM}"')
    assert answer.json() == template_body("UNAUTHORIZED")
    assert running.front.authorizer_invocations == 1
    assert running.function.events == []


def test_good_credentials_reach_the_function_and_the_allow_is_cached_for_the_ttl(running: Front) -> None:
    ttl = int(api_authorizer(TEMPLATE, API)["ReauthorizeEvery"])  # type: ignore[index]

    # When the same caller sends three callouts, the last one after the authorizer's TTL
    first = running.post(auth=AUTH)
    second = running.post(auth=AUTH)
    running.clock.advance(ttl + 1)
    third = running.post(auth=AUTH)

    # Then all reach the function; the authorizer ran for the first and again once the cached Allow expired
    assert [a.status_code for a in (first, second, third)] == [200, 200, 200]
    assert len(running.function.events) == 3
    assert running.front.authorizer_invocations == 2
    # and the function sees who was authorized, as in requestContext.authorizer
    assert running.function.events[0]["requestContext"]["authorizer"]["principalId"] == CALLOUT_USERNAME


def test_a_cached_allow_for_one_method_only_would_deny_the_next_method() -> None:
    # The documented pitfall the stage-wide policy avoids: API Gateway applies a cached policy to later methods
    def narrow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        policy = real_authorizer(event, context)
        policy["policyDocument"]["Statement"][0]["Resource"] = event["methodArn"]
        return policy

    routes = [Route("/callouts", "POST"), Route("/other", "POST")]
    for handler, expected in ((narrow, 403), (real_authorizer, 200)):
        front, _, _ = start_front(authorizer_handler=handler, routes=routes)
        try:
            with requests.Session() as http:
                http.trust_env = False
                assert http.post(front.base_url + "/callouts", auth=AUTH, timeout=10).status_code == 200
                other = http.post(front.base_url + "/other", auth=AUTH, timeout=10)
            assert front.authorizer_invocations == 1  # the second request used the cached policy
            assert other.status_code == expected
            if expected == 403:
                assert other.json() == template_body("ACCESS_DENIED")
        finally:
            front.stop()


def test_an_authorizer_that_fails_is_a_500_zuora_retries() -> None:
    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("secret unavailable")

    front, function, _ = start_front(authorizer_handler=broken)
    try:
        with requests.Session() as http:
            http.trust_env = False
            answer = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
    finally:
        front.stop()
    assert answer.status_code == 500
    assert answer.json() == template_body("AUTHORIZER_CONFIGURATION_ERROR")
    assert answer.json()["success"] is False
    assert function.events == []


def test_an_authorizer_that_raises_is_a_configuration_error_not_a_failure() -> None:
    # Given gateway responses that tell the two authorizer error types apart (the template's say the same)
    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("secret unavailable")

    responses = GatewayResponses(
        {
            name: GatewayResponse(500, {}, {"application/json": json.dumps({"type": name})})
            for name in ("AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR")
        }
    )
    front, function, _ = start_front(authorizer_handler=broken, responses=responses)
    try:
        with requests.Session() as http:
            http.trust_env = False
            answer = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
    finally:
        front.stop()

    # Then API Gateway answers as for any Lambda authorizer error: AUTHORIZER_CONFIGURATION_ERROR
    assert (answer.status_code, answer.json()) == (500, {"type": "AUTHORIZER_CONFIGURATION_ERROR"})
    assert function.events == []


def allow_list(cidrs: str) -> ResourcePolicy:
    """The template's resource policy with AllowedSourceCidrs set as a deployment would set it."""
    return ResourcePolicy.from_template(TEMPLATE, API, refs={"AllowedSourceCidrs": cidrs})


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (allow_list("203.0.113.0/24, 2001:db8::/32"), 403),  # the test client (127.0.0.1) is outside
        (allow_list("203.0.113.0/24,127.0.0.0/8"), 200),
        (ResourcePolicy.from_template(TEMPLATE, API), 200),  # the default: AllowedSourceCidrs empty, no Deny
    ],
)
def test_the_resource_policy_denies_a_source_outside_the_allow_list_before_the_authorizer(
    policy: ResourcePolicy, expected: int
) -> None:
    front, function, _ = start_front(resource_policy=policy)
    try:
        with requests.Session() as http:
            http.trust_env = False
            # Right credentials and wrong ones alike: an outsider learns nothing about the password
            right = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
            wrong = http.post(front.base_url + "/callouts", auth=(CALLOUT_USERNAME, "wrong"), timeout=10)
    finally:
        front.stop()

    if expected == 403:
        assert (right.status_code, wrong.status_code) == (403, 403)
        assert right.json() == wrong.json() == template_body("ACCESS_DENIED")
        assert right.json()["error"] == "source_not_allowed"
        assert front.authorizer_invocations == 0
        assert function.events == []
    else:
        assert (right.status_code, wrong.status_code) == (200, 401)
        assert front.authorizer_invocations == 2
        assert len(function.events) == 1


def test_a_function_still_running_at_its_timeout_is_a_502_before_the_integration_timeout() -> None:
    # Given a function slower than its own timeout, which is shorter than the integration timeout
    function = Function(delay=1.0)
    front, _, _ = start_front(function=function, function_timeout=0.2, integration_timeout=29.0)
    try:
        with requests.Session() as http:
            http.trust_env = False
            started = time.monotonic()
            answer = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
            elapsed = time.monotonic() - started
    finally:
        front.stop()

    # Then Lambda ends the invocation at its timeout and API Gateway answers a function error's 502
    assert answer.status_code == 502
    assert answer.json() == {"message": "Internal server error"}
    assert elapsed < 0.9
    assert len(function.events) == 1


def test_an_authorizer_still_running_at_its_timeout_is_a_configuration_error() -> None:
    released = threading.Event()

    def stuck(event: dict[str, Any], context: Any) -> dict[str, Any]:
        released.wait(5)  # a real wait: the front times the authorizer out on its own thread
        return real_authorizer(event, context)

    function = Function()
    authorizer = LambdaAuthorizer.from_template(TEMPLATE, API, stuck, timeout_seconds=0.2)
    front = ApiGatewayFront(
        function,
        routes=[Route("/callouts", "POST")],
        stage="prod",
        function_name="IngestFunction",
        timeout_seconds=10,
        gateway_responses=GatewayResponses.from_template(TEMPLATE, API),
        authorizer=authorizer,
    ).start()
    try:
        with requests.Session() as http:
            http.trust_env = False
            started = time.monotonic()
            answer = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
            elapsed = time.monotonic() - started
    finally:
        released.set()
        front.stop()

    assert answer.status_code == 500
    assert answer.json() == template_body("AUTHORIZER_CONFIGURATION_ERROR")
    assert elapsed < 2
    assert function.events == []


def test_a_body_over_lambdas_6_mb_is_the_500_of_a_refused_invocation(running: Front) -> None:
    # Given a body API Gateway accepts (under 10 MB) whose proxy event is over Lambda's 6 MB
    body = b"x" * (LAMBDA_SYNC_PAYLOAD_BYTES + 1)
    assert len(body) < MAX_PAYLOAD_BYTES

    answer = running.http.post(running.url, data=body, auth=AUTH, timeout=30)

    # Then Lambda refuses the invocation and API Gateway answers 500, after the authorizer, before the function
    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal server error"}
    assert running.front.authorizer_invocations == 1
    assert running.function.events == []


def test_a_body_whose_event_fits_in_6_mb_reaches_the_function(running: Front) -> None:
    body = b"x" * (LAMBDA_SYNC_PAYLOAD_BYTES - 64 * 1024)  # room for the event's headers and request context

    answer = running.http.post(running.url, data=body, auth=AUTH, timeout=30)

    assert answer.status_code == 200
    assert len(running.function.events) == 1


def test_a_challenge_the_function_returns_reaches_the_caller_only_remapped(running: Front) -> None:
    # Given a function answering 401 with its own challenge and other headers API Gateway treats specially
    running.function.answer = {
        "statusCode": 401,
        "headers": {
            "Content-Type": "application/json",
            "WWW-Authenticate": 'Basic realm="function"',
            "Server": "function",
            "Via": "1.1 function",
            "X-Custom": "kept",
        },
        "body": json.dumps({"success": False, "error": "unauthenticated"}),
    }

    # When the caller gets past the authorizer
    answer = running.post(auth=AUTH)

    # Then the function's challenge arrives renamed, useless to Zuora: only a gateway response can carry it
    assert answer.status_code == 401
    assert "WWW-Authenticate" not in answer.headers
    assert answer.headers["x-amzn-Remapped-WWW-Authenticate"] == 'Basic realm="function"'
    assert answer.headers["x-amzn-Remapped-Server"] == "function"
    assert answer.headers["Server"] != "function"
    assert "Via" not in answer.headers
    assert answer.headers["X-Custom"] == "kept"


def test_remapping_follows_the_documented_table() -> None:
    remapped = remap_response_headers(
        {
            "Authorization": "a",
            "Connection": "close",
            "Content-MD5": "m",
            "Date": "d",
            "Max-Forwards": "1",
            "Server": "s",
            "User-Agent": "u",
            "WWW-Authenticate": "w",
            "Expect": "e",
            "Host": "h",
            "Proxy-Authenticate": "p",
            "TE": "t",
            "Trailer": "t",
            "Transfer-Encoding": "chunked",
            "Upgrade": "u",
            "Via": "v",
            "Content-Type": "application/json",
            "Retry-After": "60",
        }
    )
    assert remapped == {
        "x-amzn-Remapped-Authorization": "a",
        "x-amzn-Remapped-Connection": "close",
        "x-amzn-Remapped-Content-MD5": "m",
        "x-amzn-Remapped-Date": "d",
        "x-amzn-Remapped-Max-Forwards": "1",
        "x-amzn-Remapped-Server": "s",
        "x-amzn-Remapped-User-Agent": "u",
        "x-amzn-Remapped-WWW-Authenticate": "w",
        "Content-Type": "application/json",
        "Retry-After": "60",
    }


def test_a_body_over_10_mb_is_413_before_anything_runs(running: Front) -> None:
    answer = running.http.post(running.url, data=b"x" * (MAX_PAYLOAD_BYTES + 1), auth=AUTH, timeout=30)

    assert answer.status_code == 413
    # API Gateway does not let REQUEST_TOO_LARGE be customized: its own body, whatever the template says
    assert answer.json() == {"message": "Request Too Long"}
    assert running.front.authorizer_invocations == 0
    assert running.function.events == []


def test_a_function_slower_than_the_integration_timeout_gets_504() -> None:
    # Given a function that takes longer than the (here shortened) integration timeout
    function = Function(delay=1.0)
    front, _, _ = start_front(function=function, integration_timeout=0.2)
    try:
        with requests.Session() as http:
            http.trust_env = False
            started = time.monotonic()
            answer = http.post(front.base_url + "/callouts", auth=AUTH, timeout=10)
            elapsed = time.monotonic() - started
    finally:
        front.stop()

    # Then API Gateway gives up at the timeout with the INTEGRATION_TIMEOUT gateway response
    assert answer.status_code == 504
    assert answer.json() == template_body("INTEGRATION_TIMEOUT")
    assert answer.json()["success"] is False
    assert elapsed < 0.9
    assert len(function.events) == 1


def test_the_default_integration_timeout_is_29_seconds() -> None:
    front = ApiGatewayFront(Function(), routes=[], stage="prod", function_name="f", timeout_seconds=10)
    assert front.integration_timeout_seconds == 29.0


def test_an_unknown_route_gets_the_missing_token_gateway_response(running: Front) -> None:
    answer = running.http.get(running.url, auth=AUTH, timeout=10)

    assert answer.status_code == 403
    assert answer.json() == template_body("MISSING_AUTHENTICATION_TOKEN")
    assert running.front.authorizer_invocations == 0


def test_uncustomized_types_fall_back_to_default_4xx_and_5xx() -> None:
    responses = GatewayResponses(
        {
            "DEFAULT_4XX": GatewayResponse(templates={"application/json": '{"success": false, "error": "4xx"}'}),
            "DEFAULT_5XX": GatewayResponse(templates={"application/json": '{"success": false, "error": "5xx"}'}),
            "REQUEST_TOO_LARGE": GatewayResponse(status_code=400, templates={"application/json": "{}"}),
        }
    )

    assert responses.answer("ACCESS_DENIED") == (
        403,
        {"Content-Type": "application/json"},
        b'{"success": false, "error": "4xx"}',
    )
    assert responses.answer("INTEGRATION_TIMEOUT")[0:3:2] == (504, b'{"success": false, "error": "5xx"}')
    assert responses.answer("REQUEST_TOO_LARGE")[0:3:2] == (413, b'{"message": "Request Too Long"}')
    assert GatewayResponses().answer("UNAUTHORIZED")[0:3:2] == (401, b'{"message": "Unauthorized"}')
