"""The source IP allow-list (ALLOWED_SOURCE_CIDRS): checked before authentication, IPv4 and IPv6."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import functions.ingest.app as ingest_app
from nrtsync.domain.settings import SettingsError
from nrtsync.services.ingest.endpoint import CalloutEndpoint, CalloutRequest, source_allowed
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from nrtsync_local.template import function_environment, load_template
from tests.support.events import callout_secret, load_event, with_headers
from tests.support.lambda_context import FakeLambdaContext

ZUORA_LIKE = "52.8.224.0/24, 2001:db8:1234::/48"
BASE_ENV = {"CALLOUT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/q", "CALLOUT_SECRET_ID": "s"}


def settings(cidrs: str | None) -> IngestSettings:
    env = dict(BASE_ENV)
    if cidrs is not None:
        env["ALLOWED_SOURCE_CIDRS"] = cidrs
    return IngestSettings.from_env(env)


def from_source(event: dict[str, Any], source_ip: str | None) -> dict[str, Any]:
    result = copy.deepcopy(event)
    identity = result.setdefault("requestContext", {}).setdefault("identity", {})
    if source_ip is None:
        identity.pop("sourceIp", None)
    else:
        identity["sourceIp"] = source_ip
    return result


def invoke(event: dict[str, Any], cidrs: str | None) -> tuple[dict[str, Any], MemoryQueue, MemorySecrets]:
    queue, secrets = MemoryQueue(), MemorySecrets(default=callout_secret())
    ingest_app.endpoint.use(CalloutEndpoint(settings(cidrs), queue=queue, secrets=secrets))
    try:
        response: dict[str, Any] = ingest_app.lambda_handler(event, FakeLambdaContext())
    finally:
        ingest_app.endpoint.use(None)
    return response, queue, secrets


# --- settings ----------------------------------------------------------------------------------------------


def test_no_allow_list_by_default() -> None:
    assert settings(None).allowed_source_cidrs == ()
    assert settings("").allowed_source_cidrs == ()


def test_the_allow_list_is_read_as_networks_of_both_families() -> None:
    networks = settings(" 52.8.224.0/24,2001:db8:1234::/48 , 198.51.100.7 ,").allowed_source_cidrs

    assert [str(n) for n in networks] == ["52.8.224.0/24", "2001:db8:1234::/48", "198.51.100.7/32"]


@pytest.mark.parametrize("bad", ["52.8.224.0/33", "not-an-ip", "10.0.0.1/8", "2001:db8::/129", "52.8.224.0/24;x"])
def test_a_bad_cidr_fails_the_cold_start_naming_the_variable(bad: str) -> None:
    with pytest.raises(SettingsError, match="ALLOWED_SOURCE_CIDRS"):
        settings(f"192.0.2.0/24,{bad}")


def test_the_template_passes_the_parameter_to_the_ingest_function() -> None:
    template = load_template()
    parameter = template["Parameters"]["AllowedSourceCidrs"]
    environment = function_environment(template, "IngestFunction", refs={"CalloutQueue": "q", "CalloutSecret": "s"})

    assert parameter["Default"] == ""
    assert template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"][
        "ALLOWED_SOURCE_CIDRS"
    ] == {"Ref": "AllowedSourceCidrs"}
    assert environment["ALLOWED_SOURCE_CIDRS"] == ""


# --- the check itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("52.8.224.102", True),
        ("52.8.225.1", False),
        ("2001:db8:1234::1", True),
        ("2001:db8:1235::1", False),
        ("::ffff:52.8.224.9", True),  # an IPv4 client seen through an IPv6 socket
        ("::ffff:10.0.0.1", False),
        (" 52.8.224.102 ", True),
        ("", False),
        (None, False),
        ("52.8.224.102, 10.0.0.1", False),  # an X-Forwarded-For style list is not an address
        ("garbage", False),
    ],
)
def test_source_allowed(source: str | None, allowed: bool) -> None:
    assert source_allowed(source, settings(ZUORA_LIKE).allowed_source_cidrs) is allowed


@pytest.mark.parametrize("source", [None, "", "garbage", "10.0.0.1", "2001:db8::1"])
def test_without_an_allow_list_every_source_is_allowed(source: str | None) -> None:
    assert source_allowed(source, ())


# --- through the handler -----------------------------------------------------------------------------------


def test_a_callout_from_an_allowed_source_is_queued() -> None:
    response, queue, _ = invoke(from_source(load_event("callout_account"), "52.8.224.102"), ZUORA_LIKE)

    assert response["statusCode"] == 200, response["body"]
    assert len(queue.sent) == 1


@pytest.mark.parametrize("source", ["203.0.113.5", "2001:db8:ffff::1", None, "not-an-ip"])
def test_a_callout_from_elsewhere_is_refused_with_403_naming_source_ip(source: str | None) -> None:
    response, queue, secrets = invoke(from_source(load_event("callout_account"), source), ZUORA_LIKE)

    assert response["statusCode"] == 403
    body = json.loads(response["body"])
    assert body["error"] == "source_not_allowed"
    assert [e["field"] for e in body["errors"]] == ["sourceIp"]
    assert not queue.sent
    assert secrets.reads == 0
    if source:
        assert source not in response["body"]


def test_the_allow_list_comes_before_authentication() -> None:
    # Given a request without credentials from a refused source
    event = with_headers(from_source(load_event("callout_account"), "203.0.113.5"), Authorization=None)

    # When
    response, _, secrets = invoke(event, ZUORA_LIKE)

    # Then no Basic challenge: nothing tells a stranger how to authenticate
    assert response["statusCode"] == 403
    assert "WWW-Authenticate" not in (response.get("headers") or {})
    assert "www-authenticate" not in {k.lower() for k in (response.get("multiValueHeaders") or {})}
    assert secrets.reads == 0


def test_an_allowed_source_still_needs_credentials() -> None:
    event = with_headers(from_source(load_event("callout_account"), "52.8.224.102"), Authorization=None)

    response, queue, _ = invoke(event, ZUORA_LIKE)

    assert response["statusCode"] == 401
    assert not queue.sent


def test_a_forwarded_for_header_does_not_open_the_allow_list() -> None:
    event = with_headers(from_source(load_event("callout_account"), "203.0.113.5"), X_Forwarded_For="52.8.224.102")

    response, queue, _ = invoke(event, ZUORA_LIKE)

    assert response["statusCode"] == 403
    assert not queue.sent


def test_an_event_without_request_context_is_refused_not_a_500() -> None:
    event = copy.deepcopy(load_event("callout_account"))
    event.pop("requestContext", None)
    event["requestContext"] = {"stage": "prod"}  # the resolver needs a context; no identity in it

    response, queue, _ = invoke(event, ZUORA_LIKE)

    assert response["statusCode"] == 403
    assert not queue.sent


def test_the_request_carries_the_source_ip_from_the_request_context() -> None:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent  # noqa: PLC0415

    event = from_source(load_event("callout_account"), "2001:db8:1234::7")

    assert CalloutRequest.from_api_gateway(APIGatewayProxyEvent(event)).source_ip == "2001:db8:1234::7"
