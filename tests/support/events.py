"""The API Gateway events in ``events/``, loaded and adjusted for one test.

The events carry test credentials only: user ``zuora-callout``, password ``local-test-only-password``. Tests and
the demo create the callout secret with the same values (``callout_secret()``).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"

CALLOUT_USERNAME = "zuora-callout"
CALLOUT_PASSWORD = "local-test-only-password"

_DROP = object()


def callout_event_names() -> list[str]:
    """Every callout event file, e.g. ``callout_account.json``."""
    return sorted(path.name for path in EVENTS_DIR.glob("callout_*.json"))


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>`` (``.json`` may be left off)."""
    file = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    event: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return event


def callout_secret(*, hmac_key: str | None = None) -> dict[str, str]:
    """The callout secret that matches the events' credentials."""
    secret = {"username": CALLOUT_USERNAME, "password": CALLOUT_PASSWORD}
    if hmac_key is not None:
        secret["hmac_key"] = hmac_key
    return secret


def basic_authorization(username: str = CALLOUT_USERNAME, password: str = CALLOUT_PASSWORD) -> str:
    """The Authorization header value Zuora sends for these credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def event_body(event: dict[str, Any]) -> bytes:
    """The raw body API Gateway would hand to the function."""
    raw = event.get("body") or ""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode("utf-8")


def json_body(event: dict[str, Any]) -> dict[str, Any]:
    """The event's body parsed as JSON."""
    document: dict[str, Any] = json.loads(event_body(event))
    return document


def header(event: dict[str, Any], name: str) -> str | None:
    """A header of the event, looked up case-insensitively."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def with_headers(event: dict[str, Any], **changes: str | None) -> dict[str, Any]:
    """A copy with headers set (``None`` removes one); ``headers`` and ``multiValueHeaders`` stay in step.

    Keyword names use ``_`` for ``-``: ``with_headers(event, Zuora_Notification_Id=None)``.
    """
    result = copy.deepcopy(event)
    for raw_name, value in changes.items():
        _set_header(result, raw_name.replace("_", "-"), value)
    return result


def with_body(
    event: dict[str, Any],
    body: str | bytes | dict[str, Any] | list[Any] | None = None,
    *,
    content_type: object = _DROP,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A copy with another body: a dict/list is sent as JSON, bytes/str as they are; Content-Length follows.

    ``content_type`` replaces the Content-Type header when given (``None`` removes it).
    """
    result = copy.deepcopy(event)
    if isinstance(body, dict | list):
        raw = json.dumps(body).encode("utf-8")
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raw = body or b""
    if base64_encoded:
        result["body"] = base64.b64encode(raw).decode("ascii")
    else:
        result["body"] = raw.decode("utf-8")
    result["isBase64Encoded"] = base64_encoded
    _set_header(result, "Content-Length", str(len(raw)))
    if content_type is not _DROP:
        _set_header(result, "Content-Type", content_type if isinstance(content_type, str) else None)
    return result


def with_fields(event: dict[str, Any], **top_level: Any) -> dict[str, Any]:
    """A copy of a JSON callout with top-level keys replaced (a value of ``None`` removes the key)."""
    document = json_body(event)
    for key, value in top_level.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return with_body(event, document)


def with_credentials(event: dict[str, Any], username: str, password: str) -> dict[str, Any]:
    """A copy whose Authorization header carries other credentials."""
    return with_headers(event, Authorization=basic_authorization(username, password))


def with_query(event: dict[str, Any], params: dict[str, list[str]] | None) -> dict[str, Any]:
    """A copy with other query parameters (both the single- and the multi-value maps)."""
    result = copy.deepcopy(event)
    result["multiValueQueryStringParameters"] = params or None
    result["queryStringParameters"] = {key: values[-1] for key, values in params.items()} if params else None
    return result


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for mapping_key in ("headers", "multiValueHeaders"):
        mapping = event.get(mapping_key) or {}
        for existing in [key for key in mapping if key.lower() == name.lower()]:
            del mapping[existing]
        if value is not None:
            mapping[name] = value if mapping_key == "headers" else [value]
        event[mapping_key] = mapping
