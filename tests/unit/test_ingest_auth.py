"""Basic auth and the optional HMAC signature of a callout."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from nrtsync.domain.basic_auth import CalloutCredentials, check_basic_auth
from nrtsync.services.ingest.endpoint import CalloutRequest, check_signature, receive_callout
from nrtsync_fakes.queue import MemoryQueue

CREDENTIALS = CalloutCredentials(username="zuora-callout", password="s3cret:with:colons")
KEY = "hmac-test-key"
BODY = b'{"objectType":"Account","id":"A1","updatedDate":"2024-03-05T10:22:39Z"}'


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def sign(data: bytes, key: str = KEY) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha256).digest()


# Basic


def test_right_credentials_pass() -> None:
    assert check_basic_auth(basic(b"zuora-callout:s3cret:with:colons"), CREDENTIALS) is True


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "  Basic"])
def test_the_scheme_is_case_insensitive(scheme: str) -> None:
    token = base64.b64encode(b"zuora-callout:s3cret:with:colons").decode()

    assert check_basic_auth(f"{scheme} {token}", CREDENTIALS) is True


@pytest.mark.parametrize(
    "raw",
    [
        b"zuora-callout:wrong",
        b"someone:s3cret:with:colons",
        b"zuora-callout:",
        b":s3cret:with:colons",
        b"zuora-callout",
    ],
)
def test_wrong_credentials_fail(raw: bytes) -> None:
    assert check_basic_auth(basic(raw), CREDENTIALS) is False


@pytest.mark.parametrize("header", [None, ""])
def test_absent_credentials_are_none(header: str | None) -> None:
    assert check_basic_auth(header, CREDENTIALS) is None


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic ",
        "Bearer abc.def.ghi",
        "Basic not base64!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xfa").decode(),  # not UTF-8 once decoded
        "Basic zürich",  # non-ASCII in the token itself
        "Basic " + base64.b64encode(b"zuora-callout:s3cret:with:colons").decode()[:-2],  # bad padding
    ],
)
def test_malformed_credentials_fail_without_raising(header: str) -> None:
    assert check_basic_auth(header, CREDENTIALS) is False


def test_non_ascii_credentials_work_in_utf8() -> None:
    credentials = CalloutCredentials(username="zuöra", password="pässwörd€")

    assert check_basic_auth(basic("zuöra:pässwörd€".encode()), credentials) is True
    assert check_basic_auth(basic("zuöra:passwörd€".encode()), credentials) is False


def test_secret_without_username_or_password_is_refused() -> None:
    with pytest.raises(ValueError, match="username"):
        CalloutCredentials.from_secret({"username": "u", "password": ""})
    with pytest.raises(ValueError, match="hmac_key"):
        CalloutCredentials.from_secret({"username": "u", "password": "p", "hmac_key": 12})


def test_secret_with_empty_hmac_key_means_no_signature() -> None:
    assert CalloutCredentials.from_secret({"username": "u", "password": "p", "hmac_key": ""}).hmac_key is None


# HMAC


def test_hex_signature_passes_in_either_case() -> None:
    digest = sign(BODY).hex()

    assert check_signature(digest, BODY, KEY)
    assert check_signature(digest.upper(), BODY, KEY)
    assert check_signature(f"sha256={digest}", BODY, KEY)


def test_base64_signature_passes() -> None:
    assert check_signature(base64.b64encode(sign(BODY)).decode(), BODY, KEY)


def test_signature_over_the_body_with_a_trailing_line_feed_passes() -> None:
    # Zuora's HMAC data template ends every item with LF.
    assert check_signature(sign(BODY + b"\n").hex(), BODY, KEY)
    assert check_signature(base64.b64encode(sign(BODY + b"\n")).decode(), BODY, KEY)


@pytest.mark.parametrize(
    "signature",
    [
        sign(BODY, "other-key").hex(),
        sign(BODY + b" ").hex(),
        base64.b64encode(sign(BODY)).decode().lower(),  # base64 is case-sensitive
        "sha256=",
        "ünïcode",
    ],
)
def test_wrong_signature_fails(signature: str) -> None:
    assert not check_signature(signature, BODY, KEY)


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_absent_signature_fails(signature: str | None) -> None:
    assert not check_signature(signature, BODY, KEY)


def _receive(headers: dict[str, str], *, hmac_key: str | None = KEY) -> tuple[int, MemoryQueue, dict[str, str], object]:
    queue = MemoryQueue()
    credentials = CalloutCredentials(username="zuora-callout", password="s3cret:with:colons", hmac_key=hmac_key)
    outcome = receive_callout(
        CalloutRequest.of(BODY, {"Content-Type": "application/json", **headers}),
        credentials=credentials,
        queue=queue,
        object_types=frozenset({"Account"}),
        max_body_bytes=65_536,
        hmac_header="X-Zuora-Signature",
        realm="nrtsync",
        clock=lambda: datetime(2024, 3, 5, 10, 23, tzinfo=UTC),
    )
    return outcome.status_code, queue, outcome.headers, outcome.body


def test_receive_challenges_a_request_without_credentials() -> None:
    status, queue, headers, body = _receive({})

    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Basic realm="nrtsync"')
    assert body == {
        "success": False,
        "error": "unauthenticated",
        "message": "credentials are required",
        "errors": [{"field": "Authorization", "message": "credentials are required"}],
    }
    assert queue.sent == []


def test_receive_refuses_wrong_credentials_with_a_challenge() -> None:
    status, queue, headers, _ = _receive({"Authorization": basic(b"zuora-callout:nope")})

    assert status == 401
    assert "WWW-Authenticate" in headers
    assert queue.sent == []


def test_receive_needs_the_signature_when_the_secret_has_a_key() -> None:
    auth = basic(b"zuora-callout:s3cret:with:colons")

    unsigned, queue, _, body = _receive({"Authorization": auth})
    signed, signed_queue, _, _ = _receive({"Authorization": auth, "x-zuora-signature": sign(BODY).hex()})
    unkeyed, unkeyed_queue, _, _ = _receive({"Authorization": auth}, hmac_key=None)

    assert unsigned == 403
    assert body["errors"] == [{"field": "X-Zuora-Signature", "message": "missing or does not match the body"}]  # type: ignore[index]
    assert queue.sent == []
    assert (signed, len(signed_queue.sent)) == (200, 1)
    assert (unkeyed, len(unkeyed_queue.sent)) == (200, 1)


def test_receive_checks_credentials_before_the_signature() -> None:
    status, _, _, _ = _receive({"Authorization": basic(b"x:y"), "X-Zuora-Signature": sign(BODY).hex()})

    assert status == 401
