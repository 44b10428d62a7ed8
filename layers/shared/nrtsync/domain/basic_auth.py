"""HTTP Basic credentials of the callout endpoint, checked in constant time.

Shared by the API Gateway authorizer and the ingest function (which checks again, as defence in depth). It
imports nothing beyond the standard library so that the authorizer's cold start stays small.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CalloutCredentials:
    """What a callout must present; read from the callout secret."""

    username: str
    password: str
    hmac_key: str | None = None

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> CalloutCredentials:
        username, password = secret.get("username"), secret.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise ValueError("the callout secret needs non-empty 'username' and 'password' strings")
        hmac_key = secret.get("hmac_key") or None
        if hmac_key is not None and not isinstance(hmac_key, str):
            raise ValueError("the callout secret's 'hmac_key' must be a string")
        return cls(username=username, password=password, hmac_key=hmac_key)


def check_basic_auth(authorization: str | None, credentials: CalloutCredentials) -> bool | None:
    """True if the header carries the right user and password, False if wrong, None if there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        # ValueError, not only binascii.Error: b64decode refuses a str with non-ASCII characters that way.
        return False
    username, sep, password = decoded.partition(":")
    if not sep:
        return False
    # Compare both, always: the time taken must not tell which one was wrong.
    user_ok = hmac.compare_digest(username.encode(), credentials.username.encode())
    password_ok = hmac.compare_digest(password.encode(), credentials.password.encode())
    return user_ok and password_ok


def basic_challenge(realm: str) -> str:
    """The ``WWW-Authenticate`` value of a Basic challenge (RFC 7617), the one Zuora waits for."""
    return f'Basic realm="{realm}", charset="UTF-8"'
