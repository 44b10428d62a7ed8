"""The stand-in's OAuth token endpoint rules for the JWT bearer grant, as Salesforce applies them.

From Salesforce Help, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration"
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm&type=5):

* the assertion is signed with RS256 by the key whose certificate was uploaded to the connected app
  ("Use digital signatures");
* ``iss`` is the connected app's consumer key (``client_id``);
* ``sub`` is the username of a user the app is pre-authorised for;
* ``aud`` is ``https://login.salesforce.com``, ``https://test.salesforce.com`` (sandboxes) or an Experience Cloud
  site URL, whichever token endpoint receives the assertion: a My Domain URL is not an audience, even when the
  assertion is posted to that My Domain;
* ``exp`` is within 3 minutes, in seconds since the epoch (UTC).

A refusal is a 400 with ``{"error", "error_description"}`` (Salesforce Help, "OAuth 2.0 Authorization Errors",
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flow_errors.htm&type=5, after RFC 7523).
The docs show that shape but not every description; these are the ones Salesforce's token endpoint is seen to
answer (its Help article 001121341 for the unapproved user; integrators' reports for the others):
``invalid_client_id`` / "client identifier invalid" for an unknown consumer key; ``invalid_grant`` with
"audience is invalid", "expired authorization code" (an ``exp`` in the past), "user hasn't approved this
consumer" (``sub`` not a pre-authorised user), and "invalid assertion" for anything else (bad signature, wrong
algorithm, missing claim, unparsable token). No source gives the answer to an ``exp`` more than 3 minutes
ahead or to a missing ``aud``: "invalid assertion" and "audience is invalid" here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "JWT_BEARER_GRANT",
    "MAX_ASSERTION_LIFETIME_SECONDS",
    "PRODUCTION_AUDIENCE",
    "SANDBOX_AUDIENCE",
    "ConnectedApp",
    "OAuthRefusalError",
    "load_verification_key",
    "verify_jwt_bearer_assertion",
]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"
MAX_ASSERTION_LIFETIME_SECONDS = 180  # "exp ... within 3 minutes"


class OAuthRefusalError(Exception):
    """The token endpoint refuses: ``error`` and ``error_description`` as Salesforce answers them."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ConnectedApp:
    """What the org knows of the connected app and its org, for verifying an assertion.

    ``certificate_pem`` is the certificate uploaded to the app (a bare PEM public key is accepted too);
    ``username`` the one pre-authorised user; ``sandbox`` whether the org is a sandbox, so its audience is
    https://test.salesforce.com rather than https://login.salesforce.com; ``experience_site_urls`` the org's
    Experience Cloud sites, each also a valid audience.
    """

    consumer_key: str
    certificate_pem: str | None = None
    username: str | None = None
    sandbox: bool = False
    experience_site_urls: tuple[str, ...] = field(default_factory=tuple)

    def audiences(self) -> frozenset[str]:
        """The ``aud`` values this org accepts (compared as strings, without a trailing slash on sites)."""
        login = SANDBOX_AUDIENCE if self.sandbox else PRODUCTION_AUDIENCE
        return frozenset({login, *(url.rstrip("/") for url in self.experience_site_urls)})


def load_verification_key(pem: str) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM certificate (what Salesforce stores) or of a PEM public key.

    Raises ValueError for anything else, so a bad configuration is refused when it is set, not at the first grant.
    """
    data = pem.encode()
    try:
        key: Any = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"-----BEGIN CERTIFICATE-----" in data
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise ValueError("the JWT certificate is not a PEM certificate or public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the JWT certificate must hold an RSA key (assertions are RS256)")  # noqa: TRY004
    return key


def verify_jwt_bearer_assertion(assertion: str, app: ConnectedApp, *, now: float) -> dict[str, Any]:
    """The assertion's claims if Salesforce would issue a token for it; else raises ``OAuthRefusalError``.

    Checked in the order Salesforce needs them: the consumer key first (it finds the app, hence the certificate),
    then the signature, the audience, the expiry, and the user.
    """
    invalid = OAuthRefusalError("invalid_grant", "invalid assertion")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise invalid from exc
    if unverified.get("iss") != app.consumer_key:
        raise OAuthRefusalError("invalid_client_id", "client identifier invalid")
    if not app.certificate_pem:
        raise invalid  # the app has no certificate: it cannot take part in this flow
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            load_verification_key(app.certificate_pem),
            algorithms=["RS256"],
            # Audience and expiry are checked below, against Salesforce's rules and their own error answers.
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise invalid from exc
    if not _audience_accepted(claims.get("aud"), app.audiences()):
        raise OAuthRefusalError("invalid_grant", "audience is invalid")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise invalid
    if exp <= now:
        raise OAuthRefusalError("invalid_grant", "expired authorization code")
    if exp > now + MAX_ASSERTION_LIFETIME_SECONDS:
        raise invalid
    if app.username is None or claims.get("sub") != app.username:
        raise OAuthRefusalError("invalid_grant", "user hasn't approved this consumer")
    return claims


def _audience_accepted(aud: Any, accepted: Iterable[str]) -> bool:
    # JWT allows one audience or a list (RFC 7519 4.1.3); one accepted value is enough.
    values = aud if isinstance(aud, list) else [aud]
    allowed = set(accepted)
    return any(isinstance(value, str) and value in allowed for value in values)
