"""What API Gateway's REST API does around a Lambda proxy integration, for the local front
(``nrtsync_local.gateway.server``, the HTTP server): the proxy event it sends the function, the response headers it
remaps or drops, its own answers (gateway responses, from the template's ``GatewayResponses``) and the REQUEST
Lambda authorizer (its settings from the template's ``Auth``, the result cache, the policy check), and the API's
resource policy (the template's ``Auth.ResourcePolicy``), whose explicit Deny comes before the authorizer."""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nrtsync_local.template import (
    TemplateError,
    api_authorizer,
    apply_conditions,
    gateway_responses,
    parameter_defaults,
    resource,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_API_ID = "local"
_JSON = "application/json"

# Gateway response types: default status and message ("Gateway response types for API Gateway").
_DEFAULT_RESPONSES: dict[str, tuple[int, str]] = {
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "Internal server error"),
    "AUTHORIZER_FAILURE": (500, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "UNAUTHORIZED": (401, "Unauthorized"),
}
# "Amazon API Gateway important notes" (REST APIs): customizing REQUEST_TOO_LARGE is not supported.
_NOT_CUSTOMIZABLE = frozenset({"REQUEST_TOO_LARGE"})

# What API Gateway does to the headers of a Lambda proxy integration's response, from the table of headers
# "dropped, remapped, or otherwise modified" in "Amazon API Gateway important notes" (REST APIs), column
# "lambda". Remapped: sent as x-amzn-Remapped-<name>; Date and Server are remapped and API Gateway then sends
# its own (here: the front's). Dropped: not sent at all.
_REMAPPED_RESPONSE_HEADERS = frozenset(
    {"authorization", "connection", "content-md5", "date", "max-forwards", "server", "user-agent", "www-authenticate"}
)
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"expect", "host", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade", "via"}
)
# The front frames the body itself.
_FRAMING_HEADERS = frozenset({"content-length"})


@dataclass(frozen=True)
class Route:
    """One ``Api`` event of the function: API Gateway resource path and HTTP method."""

    path: str
    method: str


@dataclass(frozen=True)
class HttpRequest:
    """What the front read from the socket; ``path`` is below the stage (``/callouts``)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str


def proxy_event(request: HttpRequest, *, route: Route, stage: str, host: str) -> dict[str, Any]:
    """The Lambda proxy integration event of a REST API (payload format 1.0) for ``request``."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value  # API Gateway keeps the last value of a repeated header here
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in request.query:
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    body: str | None
    try:
        body, encoded = request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(request.body).decode("ascii"), True
    if not request.body:
        body = None
    now = datetime.now(UTC)
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": request.method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{request.path}",
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": request.protocol,
            "stage": stage,
            "domainPrefix": LOCAL_API_ID,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": next((v for k, v in request.headers if k.lower() == "user-agent"), None),
            },
            "domainName": host,
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def remap_response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A proxy integration's response headers as API Gateway's REST API passes them to the client."""
    remapped: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _DROPPED_RESPONSE_HEADERS or lowered in _FRAMING_HEADERS:
            continue
        remapped[f"x-amzn-Remapped-{name}" if lowered in _REMAPPED_RESPONSE_HEADERS else name] = value
    return remapped


@dataclass(frozen=True)
class GatewayResponse:
    """One ``GatewayResponses`` entry of the template: status (None keeps the type's default), headers, bodies."""

    status_code: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    templates: Mapping[str, str] = field(default_factory=dict)


class GatewayResponses:
    """API Gateway's answers of its own, customized as the template's ``GatewayResponses`` say.

    A type the template does not customize falls back to DEFAULT_4XX or DEFAULT_5XX by its default status
    ("Gateway response types for API Gateway"), and without those to API Gateway's ``{"message": ...}``.
    Only static mapping templates are emulated (the template's are static JSON).
    """

    def __init__(self, custom: Mapping[str, GatewayResponse] | None = None) -> None:
        self._custom = {name: spec for name, spec in (custom or {}).items() if name not in _NOT_CUSTOMIZABLE}

    @classmethod
    def from_template(
        cls, template: Mapping[str, Any], api_logical_id: str, *, refs: Mapping[str, str] | None = None
    ) -> GatewayResponses:
        return cls(
            {
                name: GatewayResponse(spec["StatusCode"], spec["Headers"], spec["Templates"])
                for name, spec in gateway_responses(template, api_logical_id, refs=refs).items()
            }
        )

    def answer(self, response_type: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the gateway response of ``response_type``."""
        default_status, message = _DEFAULT_RESPONSES[response_type]
        if response_type in _NOT_CUSTOMIZABLE:  # neither its own entry nor DEFAULT_4XX applies
            return default_status, {"Content-Type": _JSON}, json_body({"message": message})
        fallback = self._custom.get("DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX")
        own = self._custom.get(response_type)
        status = next(
            (spec.status_code for spec in (own, fallback) if spec is not None and spec.status_code is not None),
            default_status,
        )
        chosen = own if own is not None else fallback
        headers = {"Content-Type": _JSON}
        body = json_body({"message": message})
        if chosen is not None:
            headers |= dict(chosen.headers)
            if _JSON in chosen.templates:
                body = chosen.templates[_JSON].encode("utf-8")
        return status, headers, body


@dataclass(frozen=True)
class LambdaAuthorizer:
    """A REQUEST Lambda authorizer: its handler, the identity-source headers and the result cache's TTL."""

    handler: Handler
    identity_headers: tuple[str, ...]
    ttl_seconds: int
    function_name: str
    timeout_seconds: float = 3.0
    memory_mb: int = 128

    @classmethod
    def from_template(
        cls,
        template: Mapping[str, Any],
        api_logical_id: str,
        handler: Handler,
        *,
        timeout_seconds: float = 3.0,
        memory_mb: int = 128,
    ) -> LambdaAuthorizer | None:
        spec = api_authorizer(template, api_logical_id)
        if spec is None:
            return None
        return cls(
            handler=handler,
            identity_headers=tuple(spec["IdentityHeaders"]),
            ttl_seconds=int(spec["ReauthorizeEvery"]),
            function_name=str(spec["Function"]),
            timeout_seconds=timeout_seconds,
            memory_mb=memory_mb,
        )


# The condition operators a resource policy statement may use here: enough for an IP allow-list.
_IP_CONDITIONS = {"IpAddress": True, "NotIpAddress": False}


@dataclass(frozen=True)
class _SourceCondition:
    """``IpAddress`` / ``NotIpAddress`` on ``aws:SourceIp``: ``inside`` says which side of the blocks matches."""

    blocks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    inside: bool

    def matches(self, source_ip: str) -> bool:
        address = ipaddress.ip_address(source_ip)
        within = any(address.version == block.version and address in block for block in self.blocks)
        return within is self.inside


@dataclass(frozen=True)
class _DenyStatement:
    resources: tuple[str, ...]
    conditions: tuple[_SourceCondition, ...]


class ResourcePolicy:
    """The first phase of API Gateway's resource policy evaluation with a Lambda authorizer: an explicit Deny that
    matches the request is answered ACCESS_DENIED before the authorizer runs ("How API Gateway resource policies
    affect authorization workflow"). What is not denied goes on to the authorizer, whose answer decides, so the
    policy's Allow statements change nothing here. Only what an IP allow-list needs is read: ``execute-api:Invoke``
    statements for every principal, conditions ``IpAddress`` / ``NotIpAddress`` on ``aws:SourceIp``; anything else
    in a Deny is refused when the policy is read rather than guessed at."""

    def __init__(self, statements: list[dict[str, Any]]) -> None:
        self._denies = tuple(_deny_statement(s) for s in statements if s.get("Effect") == "Deny")

    @classmethod
    def from_template(
        cls, template: Mapping[str, Any], api_logical_id: str, *, refs: Mapping[str, str] | None = None
    ) -> ResourcePolicy:
        return cls(api_resource_policy(template, api_logical_id, refs=refs))

    def denies(self, *, source_ip: str, stage: str, method: str, resource_path: str) -> bool:
        """Whether an explicit Deny refuses this source the method (``resource_path`` as ``/callouts``)."""
        target = f"execute-api:/{stage}/{method}{resource_path}"
        return any(
            any(fnmatch.fnmatchcase(target, pattern) for pattern in deny.resources)
            and all(condition.matches(source_ip) for condition in deny.conditions)
            for deny in self._denies
        )


def _deny_statement(statement: Mapping[str, Any]) -> _DenyStatement:
    if statement.get("Principal") not in ("*", {"AWS": "*"}):
        raise TemplateError(f"a resource policy Deny for principal {statement.get('Principal')!r} is not emulated")
    if not any(action in ("execute-api:Invoke", "execute-api:*", "*") for action in _as_list(statement.get("Action"))):
        raise TemplateError(f"a resource policy Deny of {statement.get('Action')!r} is not emulated")
    conditions: list[_SourceCondition] = []
    for operator, keys in (statement.get("Condition") or {}).items():
        if operator not in _IP_CONDITIONS or set(keys) != {"aws:SourceIp"}:
            raise TemplateError(f"a resource policy condition {operator} {sorted(keys)} is not emulated")
        blocks = tuple(ipaddress.ip_network(str(block).strip()) for block in _as_list(keys["aws:SourceIp"]))
        conditions.append(_SourceCondition(blocks, _IP_CONDITIONS[operator]))
    return _DenyStatement(tuple(str(r) for r in _as_list(statement.get("Resource"))), tuple(conditions))


class PolicyCache:
    """The authorizer's results by identity-source values, each kept for the TTL (API Gateway's cache)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, key: tuple[str, ...], result: dict[str, Any], ttl_seconds: int) -> None:
        if ttl_seconds > 0:
            with self._lock:
                self._entries[key] = (self._clock() + ttl_seconds, result)


def method_arn(*, region: str, stage: str, method: str, resource_path: str) -> str:
    """The ``methodArn`` API Gateway gives an authorizer: ``arn:aws:execute-api:region:account:api/stage/VERB/path``."""
    return f"arn:aws:execute-api:{region}:{LOCAL_ACCOUNT_ID}:{LOCAL_API_ID}/{stage}/{method}{resource_path}"


def policy_allows(result: Mapping[str, Any], arn: str) -> bool:
    """Whether an authorizer's policy allows ``execute-api:Invoke`` on ``arn``: an Allow matches, no Deny does."""
    document = result.get("policyDocument")
    statements = document.get("Statement") if isinstance(document, Mapping) else None
    if not isinstance(statements, list):
        raise TypeError("the authorizer's answer has no policyDocument.Statement list")
    allowed = False
    for statement in statements:
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if not any(action in ("execute-api:Invoke", "execute-api:*", "*") for action in actions):
            continue
        if not any(fnmatch.fnmatchcase(arn, str(pattern)) for pattern in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed |= statement.get("Effect") == "Allow"
    return allowed


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode("utf-8")


def api_resource_policy(
    template: Mapping[str, Any], api_logical_id: str, *, refs: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The ``AWS::Serverless::Api``'s ``Auth.ResourcePolicy.CustomStatements`` as API Gateway receives them:
    conditions applied, and ``Ref``, ``Fn::Split`` and ``Fn::Join`` of parameters evaluated (``refs`` overrides a
    parameter's default). Empty when the API has no resource policy."""
    auth = resource(template, api_logical_id, "AWS::Serverless::Api").get("Properties", {}).get("Auth") or {}
    statements = (auth.get("ResourcePolicy") or {}).get("CustomStatements") or []
    applied = apply_conditions(statements, template, refs=refs)
    names = {**parameter_defaults(template), **(refs or {})}
    return [_evaluate_lists(statement, names, f"{api_logical_id}.ResourcePolicy") for statement in applied]


def _evaluate_lists(value: Any, names: Mapping[str, str], where: str) -> Any:
    if isinstance(value, Mapping) and set(value) == {"Ref"}:
        name = str(value["Ref"])
        if name not in names:
            raise TemplateError(f"{where} names {name}, which cannot be resolved without a deployed stack")
        return names[name]
    if isinstance(value, Mapping) and set(value) == {"Fn::Split"}:
        delimiter, text = value["Fn::Split"]
        return str(_evaluate_lists(text, names, where)).split(str(delimiter))
    if isinstance(value, Mapping) and set(value) == {"Fn::Join"}:
        delimiter, items = value["Fn::Join"]
        return str(delimiter).join(str(item) for item in _evaluate_lists(items, names, where))
    if isinstance(value, Mapping):
        return {str(key): _evaluate_lists(item, names, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate_lists(item, names, where) for item in value]
    return value
