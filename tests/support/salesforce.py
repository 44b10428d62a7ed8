"""The HTTPS Salesforce stand-in as a subprocess for tests (the local stack starts it the same way), and the raw
REST requests tests send it.

``REQUESTS_CA_BUNDLE`` is exported on the build machines and wins over ``session.verify`` whenever a
session trusts the environment; ``trusting_session`` sets ``trust_env = False`` and ``verify = ca_file``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from nrtsync_local.standin.process import StandinClient, StandinProcess, trusting_session

__all__ = [
    "ACCOUNTS",
    "API",
    "EXT",
    "SUBSCRIPTIONS",
    "ConnectedAppKeys",
    "StandinClient",
    "collection_sub",
    "composite",
    "make_connected_app_keys",
    "routed_session",
    "running_salesforce_standin",
    "token_for",
    "trusting_session",
    "upsert",
]

API = "/services/data/v62.0"
ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
EXT = "Zuora__External_Id__c"


@contextmanager
def running_salesforce_standin(extra_args: Sequence[str] = ()) -> Iterator[StandinClient]:
    """Starts ``python -m nrtsync_local.salesforce`` on a free 127.0.0.1 port; stops it by its pid."""
    with tempfile.TemporaryDirectory(prefix="sf-standin-") as workdir:
        process = StandinProcess(Path(workdir), extra_args=tuple(extra_args))
        try:
            yield process.start()
        finally:
            process.stop()


@dataclass(frozen=True)
class ConnectedAppKeys:
    """A key pair as a JWT bearer integration has it: the private key (the secret's ``private_key``) and the
    self-signed certificate uploaded to the connected app (the stand-in's ``jwt_certificate_pem``)."""

    key: rsa.RSAPrivateKey
    private_pem: str
    certificate_pem: str


def make_connected_app_keys(common_name: str = "nrtsync-integration") -> ConnectedAppKeys:
    """A fresh 2048-bit RSA key and a self-signed certificate for it (``openssl req -x509`` in the docs' set-up)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ConnectedAppKeys(key, private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode())


class _RouteToStandin(HTTPAdapter):
    """Sends requests for one origin to the stand-in instead: a hosts-file entry, nothing more."""

    def __init__(self, origin: str, standin_url: str) -> None:
        super().__init__()
        self._origin = origin
        self._standin_url = standin_url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url is not None and request.url.startswith(self._origin):
            request.url = self._standin_url + request.url[len(self._origin) :]
        return super().send(request, *args, **kwargs)


def routed_session(standin: StandinClient, *origins: str) -> requests.Session:
    """A session trusting the stand-in in which each origin (``https://acme.my.salesforce.com``) reaches the
    stand-in, so a real org's login URL can be configured while the token request still goes over HTTPS to it."""
    session = standin.session()
    for origin in origins:
        session.mount(origin.rstrip("/"), _RouteToStandin(origin.rstrip("/"), standin.url))
    return session


def token_for(standin: StandinClient, http: requests.Session) -> str:
    form = {"grant_type": "client_credentials", "client_id": standin.client_id, "client_secret": standin.client_secret}
    response = http.post(f"{standin.url}/services/oauth2/token", data=form, timeout=5)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def upsert(
    standin: StandinClient,
    http: requests.Session,
    records: list[dict[str, Any]],
    *,
    sobject: str = ACCOUNTS,
    all_or_none: bool = False,
    token: str | None = None,
) -> requests.Response:
    body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": sobject}, **r} for r in records]}
    return http.patch(
        f"{standin.url}{API}/composite/sobjects/{sobject}/{EXT}",
        json=body,
        headers={"Authorization": f"Bearer {token or token_for(standin, http)}"},
        timeout=5,
    )


def composite(
    standin: StandinClient,
    http: requests.Session,
    subrequests: list[dict[str, Any]],
    *,
    token: str | None = None,
    all_or_none: bool = False,
) -> requests.Response:
    body = {"allOrNone": all_or_none, "collateSubrequests": False, "compositeRequest": subrequests}
    return http.post(
        f"{standin.url}{API}/composite",
        json=body,
        headers={"Authorization": f"Bearer {token or token_for(standin, http)}"},
        timeout=5,
    )


def collection_sub(reference: str, sobject: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "method": "PATCH",
        "url": f"{API}/composite/sobjects/{sobject}/{EXT}",
        "referenceId": reference,
        "body": {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in records]},
    }
