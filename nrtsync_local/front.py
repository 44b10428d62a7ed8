"""A local stand-in for API Gateway's REST API in front of the ingest function (Lambda proxy integration).

Each HTTP request becomes the proxy event API Gateway would send (``resource``, ``path``, ``httpMethod``,
single- and multi-value headers and query parameters, the body, ``requestContext``); the handler's answer
(``statusCode``, headers, body) goes back to the client. Like API Gateway it answers by itself, without calling
the function, when the path or method is not a route of the API (403 ``Missing Authentication Token``, which is
what a REST API answers there, not 404), when the body is over 10 MB (413), and when the function fails (502).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from nrtsync_local.poller import LocalContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# API Gateway's payload limit for REST APIs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
_DRAIN_LIMIT_BYTES = 8 * MAX_PAYLOAD_BYTES
LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_API_ID = "local"
_MISSING_TOKEN = {"message": "Missing Authentication Token"}


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
    ) -> None:
        self.handler = handler
        self.routes = routes
        self.stage = stage
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._address = (host, port)
        self._server: _FrontServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/<stage>``, the local equivalent of the stage's invoke URL."""
        if self._server is None:
            raise RuntimeError("the API Gateway front is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{self.stage}"

    def start(self) -> ApiGatewayFront:
        self._server = _FrontServer(self._address, self)
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

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LocalContext(
            function_name=self.function_name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=event["requestContext"]["requestId"],
        )
        return self.handler(event, context)


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
            self._send(413, {"Content-Type": "application/json"}, _json({"message": "Request Too Long"}), request_id)
            return
        url = urlsplit(self.path)
        prefix = f"/{front.stage}"
        path = url.path[len(prefix) :] if url.path.startswith(prefix + "/") else None
        route = None if path is None else front.route_of(self.command, path)
        if route is None or path is None:
            self._send(403, {"Content-Type": "application/json"}, _json(_MISSING_TOKEN), request_id)
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
        try:
            response = front.invoke(event)
            status, headers, payload = _proxy_response(response)
        except Exception:  # noqa: BLE001 - API Gateway turns any function error into a 502; the cause is printed
            import traceback  # noqa: PLC0415 - only on this path

            traceback.print_exc()
            status, headers, payload = (
                502,
                {"Content-Type": "application/json"},
                _json({"message": "Internal server error"}),
            )
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


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode("utf-8")
