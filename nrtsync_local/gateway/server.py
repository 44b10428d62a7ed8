"""A local stand-in for API Gateway's REST API in front of the ingest function (Lambda proxy integration).

Each HTTP request becomes the proxy event API Gateway would send (``resource``, ``path``, ``httpMethod``,
single- and multi-value headers and query parameters, the body, ``requestContext``); the handler's answer
(``statusCode``, headers, body) goes back to the client. What API Gateway does around the function, it does
here too, from the template's own ``Auth`` and ``GatewayResponses`` (never a copy in Python; those rules, and
the proxy event's shape, are in ``nrtsync_local.gateway.rules``):

* a body over 10 MB: 413 ``Request Too Long`` (a REQUEST_TOO_LARGE gateway response cannot be customized);
* a path or method that is not a route: the MISSING_AUTHENTICATION_TOKEN gateway response (403 by default);
* the API's resource policy (``Auth.ResourcePolicy``): a source an explicit Deny matches (outside
  ``AllowedSourceCidrs``) gets the ACCESS_DENIED gateway response before the authorizer is invoked;
* the Lambda REQUEST authorizer: a request without its identity-source headers gets the UNAUTHORIZED gateway
  response without the authorizer being invoked; an ``Exception("Unauthorized")`` is UNAUTHORIZED too; any
  other exception, or the authorizer running past its own timeout, is AUTHORIZER_CONFIGURATION_ERROR (500); a
  policy that does not allow the method is ACCESS_DENIED; a returned policy is cached per identity-source value
  for the authorizer's TTL and applied to later methods as is;
* a proxy event over Lambda's 6 MB synchronous payload limit (a body API Gateway accepts, up to 10 MB): Lambda
  refuses the invocation (413) and API Gateway answers 500 ``Internal server error``;
* the function still running at its own ``Timeout``: Lambda ends the invocation and API Gateway answers 502
  ``Internal server error``, as for any function error; not answering within the integration timeout (29 s),
  whichever comes first: the INTEGRATION_TIMEOUT gateway response (504);
* the function failing: 502 ``Internal server error``;
* the headers a proxy integration's response may not carry are renamed ``x-amzn-Remapped-<name>`` or dropped,
  while gateway responses' headers reach the client as the template sets them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from nrtsync_local.gateway.rules import (
    GatewayResponses,
    Handler,
    HttpRequest,
    LambdaAuthorizer,
    PolicyCache,
    ResourcePolicy,
    Route,
    method_arn,
    policy_allows,
    proxy_event,
    remap_response_headers,
)
from nrtsync_local.gateway.rules import json_body as _json
from nrtsync_local.poller import LAMBDA_SYNC_PAYLOAD_BYTES, LocalContext, run_within_timeout
from nrtsync_local.standin.tls import serve_tls

if TYPE_CHECKING:
    import trustme

# API Gateway's payload limit for REST APIs ("Amazon API Gateway quotas": payload size 10 MB).
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# The REST API integration timeout's default ("Amazon API Gateway quotas": 50 ms - 29 seconds).
INTEGRATION_TIMEOUT_SECONDS = 29.0
_DRAIN_LIMIT_BYTES = 8 * MAX_PAYLOAD_BYTES
LOCAL_REGION = "us-east-1"
_JSON = "application/json"
# API Gateway's body for a Lambda invocation it could not make (500) or a function error (502).
_INTERNAL_ERROR = _json({"message": "Internal server error"})


class ApiGatewayFront:
    """``http://127.0.0.1:<free port>/<stage><route>`` -> the handler, in this process, one thread per request.

    The handler is called from the request threads, concurrently: serialise it if it is not thread-safe (the
    local stack does, see ``nrtsync_local.stack``).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        routes: list[Route],
        stage: str,
        function_name: str,
        timeout_seconds: float,
        memory_mb: int = 128,
        host: str = "127.0.0.1",
        port: int = 0,
        gateway_responses: GatewayResponses | None = None,
        authorizer: LambdaAuthorizer | None = None,
        resource_policy: ResourcePolicy | None = None,
        integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        region: str = LOCAL_REGION,
        clock: Callable[[], float] = time.monotonic,
        tls: trustme.CA | None = None,
    ) -> None:
        """``tls``: serve HTTPS with a certificate from this CA (Zuora calls only https URLs); None: plain HTTP."""
        self.handler = handler
        self._tls = tls
        self.routes = routes
        self.stage = stage
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.gateway_responses = gateway_responses or GatewayResponses()
        self.authorizer = authorizer
        self.resource_policy = resource_policy
        self.integration_timeout_seconds = integration_timeout_seconds
        self.region = region
        self.authorizer_invocations = 0
        self._policy_cache = PolicyCache(clock)
        self._address = (host, port)
        self._server: _FrontServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/<stage>``, the local equivalent of the stage's invoke URL."""
        if self._server is None:
            raise RuntimeError("the API Gateway front is not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}/{self.stage}"

    def start(self) -> ApiGatewayFront:
        self._server = _FrontServer(self._address, self)
        if self._tls is not None:
            serve_tls(self._server, self._tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="api-gateway-front", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def route_of(self, method: str, path: str) -> Route | None:
        return next((r for r in self.routes if r.method == method and r.path == path), None)

    def denied_by_policy(self, event: dict[str, Any]) -> bool:
        """Whether the resource policy's explicit Deny refuses the request, before any authorizer."""
        return self.resource_policy is not None and self.resource_policy.denies(
            source_ip=event["requestContext"]["identity"]["sourceIp"],
            stage=self.stage,
            method=event["httpMethod"],
            resource_path=event["resource"],
        )

    def authorize(self, event: dict[str, Any], headers: list[tuple[str, str]]) -> str | None:
        """None if the request may go on (``event`` then carries the authorizer's context), else the
        gateway response type to answer with."""
        authorizer = self.authorizer
        if authorizer is None:
            return None
        by_name = {name.lower(): value for name, value in headers}
        identity = tuple(by_name.get(name.lower(), "") for name in authorizer.identity_headers)
        if not all(value.strip() for value in identity):
            # "missing, null, or empty" identity sources: 401 without calling the authorizer (AWS re:Post,
            # "Why does API Gateway return 401 Unauthorized errors after I create a Lambda authorizer?").
            return "UNAUTHORIZED"
        context = event["requestContext"]
        arn = method_arn(
            region=self.region, stage=self.stage, method=event["httpMethod"], resource_path=event["resource"]
        )
        result = self._policy_cache.get(identity)
        if result is None:
            try:
                result = self._invoke_authorizer(authorizer, event, arn)
            except Exception as exc:  # noqa: BLE001 - API Gateway maps every authorizer error to a gateway response
                # Anything but Unauthorized, a timeout included, is an authorizer error to API Gateway: 500 with
                # AUTHORIZER_CONFIGURATION_ERROR (x-amzn-ErrorType AuthorizerConfigurationException).
                return "UNAUTHORIZED" if str(exc) == "Unauthorized" else "AUTHORIZER_CONFIGURATION_ERROR"
            self._policy_cache.put(identity, result, authorizer.ttl_seconds)
        try:
            if not policy_allows(result, arn):
                return "ACCESS_DENIED"
        except TypeError:  # a malformed answer: API Gateway's AuthorizerConfigurationException
            return "AUTHORIZER_CONFIGURATION_ERROR"
        extra = result.get("context")
        context["authorizer"] = {"principalId": result.get("principalId"), **(extra if isinstance(extra, dict) else {})}
        return None

    def _invoke_authorizer(self, authorizer: LambdaAuthorizer, event: dict[str, Any], arn: str) -> dict[str, Any]:
        # A REQUEST authorizer's input is the proxy event without the body, plus its type and methodArn
        # ("Input to a Lambda authorizer" in the API Gateway developer guide).
        request = {k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")}
        request |= {"type": "REQUEST", "methodArn": arn}
        context = LocalContext(
            function_name=authorizer.function_name,
            timeout_seconds=authorizer.timeout_seconds,
            memory_limit_in_mb=authorizer.memory_mb,
            aws_request_id=str(uuid.uuid4()),
        )
        self.authorizer_invocations += 1
        result = run_within_timeout(authorizer.handler, request, context)
        if not isinstance(result, dict):
            raise TypeError(f"the authorizer returned {type(result).__name__}, not a policy")
        return result

    def invoke_within_timeout(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The function's answer, or None once the integration timeout has passed (the function runs on, as
        a Lambda invocation does after API Gateway gave up on it). Its exception is raised here, and
        FunctionTimedOutError when it is still running at its own timeout."""
        context = LocalContext(
            function_name=self.function_name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=event["requestContext"]["requestId"],
        )
        give_up_at = time.monotonic() + self.integration_timeout_seconds
        return run_within_timeout(self.handler, event, context, give_up_at=give_up_at)


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections

    def __init__(self, address: tuple[str, int], front: ApiGatewayFront) -> None:
        super().__init__(address, _FrontHandler)
        self.front = front


class _PayloadTooLargeError(Exception):
    pass


class _FrontHandler(BaseHTTPRequestHandler):
    server: _FrontServer
    protocol_version = "HTTP/1.1"
    server_version = "nrtsync-local-apigateway"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the ingest function logs every callout it answers."""

    def _dispatch(self) -> None:
        front = self.server.front
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
        except _PayloadTooLargeError:
            self.close_connection = True
            self._send(*front.gateway_responses.answer("REQUEST_TOO_LARGE"), request_id)
            return
        url = urlsplit(self.path)
        prefix = f"/{front.stage}"
        path = url.path[len(prefix) :] if url.path.startswith(prefix + "/") else None
        route = None if path is None else front.route_of(self.command, path)
        if route is None or path is None:
            self._send(*front.gateway_responses.answer("MISSING_AUTHENTICATION_TOKEN"), request_id)
            return
        request = HttpRequest(
            method=self.command,
            path=path,
            query=parse_qsl(url.query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        event = proxy_event(request, route=route, stage=front.stage, host=self.headers.get("Host", ""))
        event["requestContext"]["requestId"] = request_id
        refusal = "ACCESS_DENIED" if front.denied_by_policy(event) else front.authorize(event, request.headers)
        if refusal is not None:
            self._send(*front.gateway_responses.answer(refusal), request_id)
            return
        if len(json.dumps(event, separators=(",", ":")).encode("utf-8")) > LAMBDA_SYNC_PAYLOAD_BYTES:
            # Lambda refuses the invocation (413 RequestEntityTooLargeException); API Gateway answers any refused
            # invocation 500 (Lambda Developer Guide, "Handling Lambda errors with an API Gateway API").
            self._send(500, {"Content-Type": _JSON}, _INTERNAL_ERROR, request_id)
            return
        try:
            response = front.invoke_within_timeout(event)
            if response is None:
                self._send(*front.gateway_responses.answer("INTEGRATION_TIMEOUT"), request_id)
                return
            status, headers, payload = _proxy_response(response)
        except Exception:  # noqa: BLE001 - API Gateway turns any function error, a timeout too, into a 502; printed
            import traceback  # noqa: PLC0415 - only on this path

            traceback.print_exc()
            status, headers, payload = 502, {"Content-Type": _JSON}, _INTERNAL_ERROR
        headers = remap_response_headers(headers)
        headers["X-Local-Integration-Latency-Ms"] = str(int((time.monotonic() - started) * 1000))
        self._send(status, headers, payload, request_id)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            # Read what the client sends (up to a bound) so that it sees the 413, not a reset connection.
            remaining = min(length, _DRAIN_LIMIT_BYTES)
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
            raise _PayloadTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self.rfile.readline(64).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_PAYLOAD_BYTES:
                raise _PayloadTooLargeError
            body += self.rfile.read(size)
            self.rfile.readline(8)

    def _send(self, status: int, headers: dict[str, str], payload: bytes, request_id: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _proxy_response(response: Any) -> tuple[int, dict[str, str], bytes]:
    """statusCode, headers and body of a proxy integration response (payload format 1.0)."""
    if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
        raise TypeError(f"malformed Lambda proxy response: {response!r:.200}")
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if values:
            headers[str(name)] = ", ".join(str(v) for v in values)
    raw = response.get("body") or ""
    payload = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
    return response["statusCode"], headers, payload
