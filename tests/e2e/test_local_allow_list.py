"""The local stack with ``AllowedSourceCidrs`` set: its API Gateway front applies the template's resource policy,
so a source outside the list gets the gateway's ``403 source_not_allowed`` before the authorizer, whatever its
credentials, as on AWS (and not the function's own second-line check, which comes after the authorizer)."""

from __future__ import annotations

import itertools
import os

import pytest
import requests

from nrtsync_local.stack import LocalDeployment
from tests.support.events import event_body, load_event

pytestmark = pytest.mark.e2e

_stacks = itertools.count()


def test_a_source_outside_the_allow_list_is_denied_by_the_gateway_whatever_its_credentials() -> None:
    # Given a local stack whose allow-list leaves out the test client (127.0.0.1)
    stack = LocalDeployment(
        stack_name=f"allow{os.getpid()}x{next(_stacks)}",  # moto's state is per process: one name per stack
        with_metrics=False,
        environment_overrides={"ALLOWED_SOURCE_CIDRS": "203.0.113.0/24, 2001:db8::/32"},
    )
    event = load_event("callout_account")
    headers = {"Content-Type": "application/json", "Zuora-Notification-Id": event["headers"]["Zuora-Notification-Id"]}
    with stack, requests.Session() as http:
        http.trust_env = False
        # When it sends a callout with the right credentials and one with wrong ones
        body = event_body(event)
        right = http.post(stack.callout_url, data=body, headers=headers, auth=stack.callout_auth, timeout=10)
        wrong = http.post(stack.callout_url, data=body, headers=headers, auth=(stack.callout_username, "x"), timeout=10)
        depth = stack.queue_depth()

    # Then both get the gateway's ACCESS_DENIED answer (field "source"; the function's own check says "sourceIp")
    assert (right.status_code, wrong.status_code) == (403, 403)
    assert right.json() == wrong.json()
    assert right.json()["error"] == "source_not_allowed"
    assert [error["field"] for error in right.json()["errors"]] == ["source"]
    assert not any(depth.values())
