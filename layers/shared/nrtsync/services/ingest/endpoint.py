"""Receiving a Zuora callout: authenticate, validate, queue, and say exactly what happened.

The rule that matters: answer 200 only once the change is on the queue. Zuora treats anything else as a
failed delivery and retries later, so a 5xx delays a change; a 200 for a change we did not store loses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from nrtsync.domain.basic_auth import CalloutCredentials, basic_challenge, check_basic_auth
from nrtsync.domain.mapping import cached_mapping
from nrtsync.domain.models.callout import TENANT_TIME_ZONE, Callout, QueuedChange
from nrtsync.domain.settings import IpNetwork
from nrtsync.ports.queue import MAX_MESSAGE_BYTES, ChangeQueue, QueueUnavailableError
from nrtsync.ports.secrets import SecretInvalidError, SecretSource, SecretUnavailableError
from nrtsync.services.ingest.settings import IngestSettings

NOTIFICATION_ID_HEADER = "zuora-notification-id"
REQUEST_ID_HEADER = "zuora-request-id"
# Zuora's delivery ids are UUID-like; anything else printable up to this length is kept as sent (the id is the key
# of duplicate detection, so it is refused rather than truncated: two long ids sharing a prefix are different).
MAX_DELIVERY_ID_CHARS = 200
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=10)
_TOP_LEVEL_KEYS = frozenset({"eventType", "objectType", "id", "updatedDate", "changeType"})
_FIELD_PREFIX = "fields."


@dataclass(frozen=True)
class CalloutRequest:
    """The parts of an HTTP request that ingest looks at; header names are lower-case.

    ``source_ip`` is the address API Gateway saw the request come from (``requestContext.identity.sourceIp``),
    never a header the caller could set such as ``X-Forwarded-For``.
    """

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, list[str]] = field(default_factory=dict)
    source_ip: str | None = None
    # Why the body API Gateway handed over could not be turned into bytes (None: it could).
    unreadable: str | None = None

    @classmethod
    def of(
        cls,
        body: bytes,
        headers: Mapping[str, str],
        query: Mapping[str, list[str]] | None = None,
        *,
        source_ip: str | None = None,
        unreadable: str | None = None,
    ) -> CalloutRequest:
        return cls(
            body=body,
            headers={k.lower(): v for k, v in headers.items()},
            query=dict(query or {}),
            source_ip=source_ip,
            unreadable=unreadable,
        )

    @classmethod
    def from_api_gateway(cls, event: APIGatewayProxyEvent) -> CalloutRequest:
        """The request as API Gateway's proxy integration hands it over."""
        raw = event.body or ""
        # "surrogatepass": a lone surrogate (a "\udcxx" escape in the event) cannot come from UTF-8; its bytes
        # are then refused as not UTF-8 (400) instead of failing the function (502).
        body, unreadable = raw.encode("utf-8", "surrogatepass"), None
        if event.is_base64_encoded:
            try:
                body = base64.b64decode(raw)
            except ValueError:  # binascii.Error, or a str with non-ASCII characters
                unreadable = "isBase64Encoded is set but the body is not base64"
        return cls.of(
            body,
            dict(event.headers or {}),
            event.multi_value_query_string_parameters or {},
            source_ip=_source_ip(event.raw_event),
            unreadable=unreadable,
        )


def _source_ip(event: Mapping[str, Any]) -> str | None:
    # Read leniently: Powertools' accessors raise KeyError on an event without requestContext.identity.
    context = event.get("requestContext")
    identity = context.get("identity") if isinstance(context, Mapping) else None
    source_ip = identity.get("sourceIp") if isinstance(identity, Mapping) else None
    return source_ip if isinstance(source_ip, str) else None


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


@dataclass(frozen=True)
class IngestOutcome:
    """The HTTP answer, plus what the handler needs for metrics and logs."""

    status_code: int
    body: dict[str, Any]
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    change: QueuedChange | None = None

    @property
    def accepted(self) -> bool:
        return self.status_code == 200


def _reject(status: int, reason: str, message: str, problems: list[FieldProblem] | None = None) -> IngestOutcome:
    body: dict[str, Any] = {"success": False, "error": reason, "message": message}
    if problems:
        body["errors"] = [{"field": p.field, "message": p.message} for p in problems]
    return IngestOutcome(status_code=status, body=body, reason=reason)


def _challenge(realm: str, reason: str, message: str) -> IngestOutcome:
    outcome = _reject(401, reason, message, [FieldProblem("Authorization", message)])
    return IngestOutcome(
        status_code=401,
        body=outcome.body,
        reason=reason,
        headers={"WWW-Authenticate": basic_challenge(realm)},
    )


def source_allowed(source_ip: str | None, allowed: Sequence[IpNetwork]) -> bool:
    """True if ``allowed`` is empty (no allow-list) or holds the source address; an unknown address is refused."""
    if not allowed:
        return True
    if not source_ip:
        return False
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1 seen through an IPv6 socket.
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in allowed)


def _source_refused() -> IngestOutcome:
    # The address itself stays out of the answer and of the logs; API Gateway's access log has it.
    return _reject(
        403,
        "source_not_allowed",
        "this source address is not in the endpoint's allow-list",
        [FieldProblem("sourceIp", "not in ALLOWED_SOURCE_CIDRS")],
    )


def check_signature(signature: str | None, body: bytes, key: str) -> bool:
    """HMAC-SHA256 of the raw body, hex or base64, as Zuora's HMAC option can send it.

    Zuora's HMAC data template ends every item with a line feed, so the body with one trailing LF is accepted
    too; docs/CALLOUTS.md gives the exact settings.
    """
    if not signature:
        return False
    presented = signature.strip()
    if presented.lower().startswith("sha256="):
        presented = presented[len("sha256=") :]
    matched = False
    for data in (body, body + b"\n"):
        digest = hmac.new(key.encode(), data, hashlib.sha256).digest()
        # Hex is compared case-insensitively (some senders upper-case it); base64 is case-sensitive.
        matched |= hmac.compare_digest(presented.lower().encode(), digest.hex().encode())
        matched |= hmac.compare_digest(presented.encode(), base64.b64encode(digest))
    return matched


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _params_to_document(pairs: list[tuple[str, str]]) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Zuora's older parameter-style callouts: the same keys as the JSON body, every other key a field."""
    document: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    for key, value in pairs:
        if key in _TOP_LEVEL_KEYS:
            target, name, shown = document, key, key
        else:
            name = key[len(_FIELD_PREFIX) :] if key.startswith(_FIELD_PREFIX) else key
            target, shown = fields, f"fields.{name}"
        if name in target and target[name] != value:
            problems.append(FieldProblem(shown, "given more than once with different values"))
        target[name] = value
    if fields:
        document["fields"] = fields
    return document, problems


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; in a callout template that is a mistake that drops a value.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(key)
        document[key] = value
    return document


def _not_utf8() -> IngestOutcome:
    return _reject(400, "malformed_body", "the body is not UTF-8", [FieldProblem("body", "not UTF-8")])


def _read_json(body: bytes) -> tuple[Any, IngestOutcome | None]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, _not_utf8()
    try:
        return json.loads(text, object_pairs_hook=_unique_keys), None
    except _DuplicateKeyError as exc:
        problem = FieldProblem(exc.key, "given more than once")
        return None, _reject(422, "invalid_callout", "the callout repeats a key", [problem])
    except json.JSONDecodeError as exc:
        problem = FieldProblem("body", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return None, _reject(400, "malformed_body", "the body is not valid JSON", [problem])
    except (ValueError, RecursionError) as exc:
        # Valid JSON syntax Python will not read: an integer of over 4,300 digits, or nesting thousands deep.
        problem = FieldProblem("body", f"JSON that cannot be read: {type(exc).__name__}")
        return None, _reject(400, "malformed_body", "the body is not usable JSON", [problem])


def _read_params(request: CalloutRequest) -> tuple[Any, IngestOutcome | None]:
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None, _not_utf8()
    pairs += [(key, value) for key, values in request.query.items() for value in values]
    document, problems = _params_to_document(pairs)
    if problems:
        return None, _reject(422, "invalid_callout", "the callout has conflicting parameters", problems)
    return document, None


def _read_document(request: CalloutRequest) -> tuple[Any, IngestOutcome | None]:
    media_type = _media_type(request.headers)
    if media_type == "application/json" or media_type.endswith("+json"):
        return _read_json(request.body)
    # No Content-Type at all is accepted only without a body: then the callout is all query parameters.
    if media_type == "application/x-www-form-urlencoded" or (media_type == "" and not request.body):
        return _read_params(request)
    shown = media_type or "none"
    return None, _reject(
        415,
        "unsupported_media_type",
        f"Content-Type {shown} is not supported; send application/json (or form parameters)",
        [FieldProblem("Content-Type", f"{shown} is not supported")],
    )


def _problems_of(exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"] if part != "[key]") or "body"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (put Zuora fields inside 'fields')"
        problems.append(FieldProblem(path, message))
    return problems


def _refuse_access(
    request: CalloutRequest, credentials: CalloutCredentials, *, max_body_bytes: int, hmac_header: str, realm: str
) -> IngestOutcome | None:
    """The answer to a request we will not read: unauthenticated, too large, or wrongly signed."""
    auth = check_basic_auth(request.headers.get("authorization"), credentials)
    if auth is None:
        return _challenge(realm, "unauthenticated", "credentials are required")
    if not auth:
        return _challenge(realm, "unauthenticated", "the credentials are not valid")
    if len(request.body) > max_body_bytes:
        return _reject(
            413,
            "body_too_large",
            f"the body is {len(request.body)} bytes; the limit is {max_body_bytes}",
            [FieldProblem("body", f"larger than {max_body_bytes} bytes")],
        )
    if credentials.hmac_key and (unsigned := _unsigned_input(request)) is not None:
        return unsigned
    if credentials.hmac_key and not check_signature(
        request.headers.get(hmac_header.lower()), request.body, credentials.hmac_key
    ):
        # 403, not 401: the password was right, so a Basic challenge would only make Zuora send it again.
        return _reject(
            403,
            "bad_signature",
            f"the {hmac_header} signature is missing or does not match",
            [FieldProblem(hmac_header, "missing or does not match the body")],
        )
    return None


def _unsigned_input(request: CalloutRequest) -> IngestOutcome | None:
    """With an HMAC key the signature covers the body only (Zuora's HMAC data ``{{Request.Body}}``), so nothing
    else the endpoint would read may travel beside it: a query string could be added to a replayed signed body
    (``?changeType=DELETE``), and an empty body has the same signature on every request."""
    if request.query:
        return _reject(
            400,
            "unsigned_parameters",
            "with an HMAC key set the callout must carry everything in its signed body, not in the query string",
            [FieldProblem(f"query.{name}", "not covered by the signature") for name in sorted(request.query)],
        )
    if not request.body:
        return _reject(
            400,
            "empty_body",
            "with an HMAC key set the callout must have a body for the signature to cover",
            [FieldProblem("body", "empty: nothing for the signature to cover")],
        )
    return None


def _delivery_id_problem(request: CalloutRequest) -> IngestOutcome | None:
    """A delivery id that is not printable ASCII of at most 200 characters is refused (400), never half-stored."""
    for header, shown in ((NOTIFICATION_ID_HEADER, "Zuora-Notification-Id"), (REQUEST_ID_HEADER, "Zuora-Request-Id")):
        value = request.headers.get(header)
        if value is None or value.strip() == "":
            continue
        if len(value) > MAX_DELIVERY_ID_CHARS:
            message = f"longer than {MAX_DELIVERY_ID_CHARS} characters"
        elif not _PRINTABLE_ASCII.fullmatch(value):
            message = "must be printable ASCII"
        else:
            continue
        return _reject(400, "invalid_header", f"the {shown} header is not valid", [FieldProblem(shown, message)])
    return None


def _implausible_date(callout: Callout, received_at: datetime, max_skew: timedelta) -> IngestOutcome | None:
    # A date in the future outranks every real later change of the record for as long as it stands; Zuora's
    # clock and ours agree within seconds, so anything past the skew is a template or a forgery, not a change.
    if callout.updatedDate - received_at <= max_skew:
        return None
    problem = FieldProblem(
        "updatedDate", f"more than {int(max_skew.total_seconds())} seconds after the time the callout arrived"
    )
    return _reject(422, "invalid_callout", "the callout's updatedDate is in the future", [problem])


def _message_too_large(change: QueuedChange) -> IngestOutcome | None:
    # Escaped form bodies (and JSON's escapes) can grow past the queue's limit after parsing; SQS would refuse the
    # message on every retry, so this is the sender's problem (413), not ours (503).
    size = len(change.model_dump_json().encode())
    if size <= MAX_MESSAGE_BYTES:
        return None
    return _reject(
        413,
        "body_too_large",
        f"the change would be a {size}-byte queue message; the queue takes at most {MAX_MESSAGE_BYTES}",
        [FieldProblem("fields", f"too large once queued ({size} bytes > {MAX_MESSAGE_BYTES})")],
    )


def _parse_callout(
    request: CalloutRequest, object_types: frozenset[str], tenant_time_zone: tzinfo
) -> Callout | IngestOutcome:
    if request.unreadable is not None:
        return _reject(400, "malformed_body", "the body cannot be read", [FieldProblem("body", request.unreadable)])
    document, rejection = _read_document(request)
    if rejection is not None:
        return rejection
    if not isinstance(document, dict):
        return _reject(
            422,
            "invalid_callout",
            "the body must be a JSON object",
            [FieldProblem("body", f"must be a JSON object, not {type(document).__name__}")],
        )
    try:
        context = {"object_types": object_types, TENANT_TIME_ZONE: tenant_time_zone}
        return Callout.model_validate(document, context=context)
    except ValidationError as exc:
        return _reject(422, "invalid_callout", "the callout is not valid", _problems_of(exc))


def _queue_change(change: QueuedChange, queue: ChangeQueue) -> IngestOutcome:
    try:
        message_id = queue.send(change)
    except QueueUnavailableError:
        return IngestOutcome(
            status_code=503,
            body={"success": False, "error": "queue_unavailable", "message": "the change was not stored; retry later"},
            reason="queue_unavailable",
            headers={"Retry-After": "60"},
            change=change,
        )
    return IngestOutcome(
        status_code=200,
        # "success": Zuora's "Confirm success by parsing response content" counts a 200 only with it true.
        body={"success": True, "status": "queued", "messageId": message_id, "notificationId": change.notification_id},
        reason="accepted",
        change=change,
    )


def receive_callout(
    request: CalloutRequest,
    *,
    credentials: CalloutCredentials,
    queue: ChangeQueue,
    object_types: frozenset[str],
    max_body_bytes: int,
    hmac_header: str,
    realm: str,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    tenant_time_zone: tzinfo = UTC,
) -> IngestOutcome:
    """Authenticate, validate and queue one callout; the outcome is the HTTP answer to give Zuora.

    ``tenant_time_zone``: where an ``updatedDate`` without an offset is local time (the endpoint passes the
    configured ``ZUORA_TENANT_TIME_ZONE``)."""
    received_at = clock()
    refusal = _refuse_access(request, credentials, max_body_bytes=max_body_bytes, hmac_header=hmac_header, realm=realm)
    if refusal is None:
        refusal = _delivery_id_problem(request)
    if refusal is not None:
        return refusal
    parsed = _parse_callout(request, object_types, tenant_time_zone)
    if isinstance(parsed, IngestOutcome):
        return parsed
    if (future := _implausible_date(parsed, received_at, max_clock_skew)) is not None:
        return future
    notification_id = request.headers.get(NOTIFICATION_ID_HEADER, "").strip()
    if not notification_id:
        # Without Zuora's id, a hash of the body still makes an exact re-send recognisable downstream.
        notification_id = "body-sha256:" + hashlib.sha256(request.body).hexdigest()
    change = QueuedChange.from_callout(
        parsed,
        notification_id=notification_id,
        request_id=request.headers.get(REQUEST_ID_HEADER, "").strip() or None,
        received_at=received_at,
    )
    if (too_large := _message_too_large(change)) is not None:
        return too_large
    return _queue_change(change, queue)


class CalloutEndpoint:
    """The callout endpoint with its collaborators (``nrtsync.app.ingest.build_ingest`` puts it together)."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        queue: ChangeQueue,
        secrets: SecretSource,
        object_types: frozenset[str] | None = None,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._secrets = secrets
        # The mapping is read only when a callout gets that far (a refused source never pays for it).
        self._object_types = object_types

    def _collaborators(self) -> tuple[ChangeQueue, SecretSource, frozenset[str]]:
        if self._object_types is None:
            self._object_types = frozenset(cached_mapping(self._settings.mapping_path).objects)
        return self._queue, self._secrets, self._object_types

    def handle(self, request: CalloutRequest) -> IngestOutcome:
        """Answer one callout; a missing or broken secret is a 5xx so that Zuora retries.

        The source allow-list comes first: a request from elsewhere costs no secret read and learns nothing
        about the credentials (no 401 challenge, no 5xx when Secrets Manager is down).
        """
        if not source_allowed(request.source_ip, self._settings.allowed_source_cidrs):
            return _source_refused()
        queue, secrets, object_types = self._collaborators()
        try:
            credentials = CalloutCredentials.from_secret(secrets.get_json(self._settings.callout_secret_id))
        except SecretUnavailableError:
            return _server_error(503, "secret_unavailable", "the callout credentials could not be read; retry later")
        except (SecretInvalidError, ValueError):
            return _server_error(500, "secret_invalid", "the endpoint is misconfigured; an operator has been told")
        return receive_callout(
            request,
            credentials=credentials,
            queue=queue,
            object_types=object_types,
            max_body_bytes=self._settings.max_body_bytes,
            hmac_header=self._settings.hmac_header,
            realm=self._settings.auth_realm,
            max_clock_skew=timedelta(seconds=self._settings.max_clock_skew_seconds),
            tenant_time_zone=ZoneInfo(self._settings.tenant_time_zone),
        )


def _server_error(status: int, reason: str, message: str) -> IngestOutcome:
    body = {"success": False, "error": reason, "message": message}
    return IngestOutcome(status_code=status, body=body, reason=reason)
