"""The Zuora client on answers the stand-in does not give: a 200 that is not JSON (a proxy's or a maintenance
page) or a token answer without a token. Both are worth a later retry, never a crash or a made-up token."""

from __future__ import annotations

import pytest
import requests
import responses

from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.domain.models.zuora import ZuoraCredentials, ZuoraRetryableError

BASE = "https://rest.test.zuora.example"


def client() -> ZuoraClient:
    credentials = ZuoraCredentials.model_validate({"base_url": BASE, "client_id": "id", "client_secret": "secret"})
    return ZuoraClient(credentials, session=requests.Session(), deadline_seconds=1, sleep=lambda _: None)


@responses.activate
def test_a_query_answered_200_with_html_is_retryable() -> None:
    responses.post(f"{BASE}/oauth/token", json={"access_token": "t", "expires_in": 3600})
    responses.post(f"{BASE}/v1/action/query", body="<html>maintenance</html>", status=200)

    with pytest.raises(ZuoraRetryableError, match="no JSON"):
        client().query("select Id from Account")


@responses.activate
def test_a_token_answer_without_a_token_is_retryable() -> None:
    responses.post(f"{BASE}/oauth/token", json={"token_type": "bearer"})

    with pytest.raises(ZuoraRetryableError, match="without an access_token"):
        client().query("select Id from Account")
