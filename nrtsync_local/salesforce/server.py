"""The stand-in's HTTPS server: request dispatch, TLS from a throwaway CA, and the command line.

Run as a process::

    python -m nrtsync_local.salesforce --port 0 --ready-file ready.json --ca-file ca.pem
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

import trustme

from nrtsync_local.salesforce.answers import (
    COLLECTION_PATH,
    COLLECTIONS_ROOT_PATH,
    DATA_PATH,
    JSON_CONTENT_TYPE,
    ROW_BY_EXTERNAL_ID_PATH,
    Answer,
    error_list,
    method_not_allowed,
    not_found,
)
from nrtsync_local.salesforce.config import DEFAULT_API_LIMIT, StandinConfig
from nrtsync_local.salesforce.control import control
from nrtsync_local.salesforce.oauth import load_verification_key
from nrtsync_local.salesforce.state import SalesforceState
from nrtsync_local.standin.tls import serve_tls, write_atomically


class _Handler(BaseHTTPRequestHandler):
    """Routes HTTP to ``SalesforceState``; the state is reached through the server."""

    server: _StandinHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection does not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: access logs would carry nothing the stats endpoint does not.
        if os.environ.get("SALESFORCE_STANDIN_ACCESS_LOG"):
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            endpoint, answer = self._answer(state, method, path, body, query)
        except (ValueError, TypeError, KeyError) as exc:
            endpoint, answer = "bad-request", Answer(400, error_list("INVALID_INPUT", str(exc)))
        state.count_status(endpoint, answer.status)
        self._send(answer, state.limit_info())

    def _answer(
        self, state: SalesforceState, method: str, path: str, body: bytes, query: str = ""
    ) -> tuple[str, Answer]:
        if path.startswith("/__standin/"):
            return "control", control(state, method, path.removeprefix("/__standin/"), body)
        latency = state.latency_seconds()
        if latency > 0:
            state.stop_event.wait(latency)
        if path == "/services/oauth2/token":
            if method != "POST":
                return "token", method_not_allowed(method, "POST")
            form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
            return "token", state.token(form)
        match = DATA_PATH.match(path)
        if match is None:
            return "unknown", not_found()
        rest = match["rest"] or "/"
        endpoint = f"{method} {_endpoint_name(rest)}"
        authorization = self.headers.get("Authorization", "")
        return endpoint, state.api(method, rest, authorization, body, match["version"], query=query)

    def _send(self, answer: Answer, limit_info: str) -> None:
        payload = b"" if answer.status == 204 else json.dumps(answer.body).encode()  # 204 carries no body
        self.send_response(answer.status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Sforce-Limit-Info", limit_info)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _endpoint_name(rest: str) -> str:
    if COLLECTION_PATH.match(rest) or COLLECTIONS_ROOT_PATH.match(rest):
        return "composite/sobjects"
    if ROW_BY_EXTERNAL_ID_PATH.match(rest):
        return "sobjects/external-id"
    if rest.rstrip("/") == "/composite":
        return "composite"
    return rest.strip("/") or "/"


class _StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections

    def __init__(self, address: tuple[str, int], state: SalesforceState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class SalesforceStandin:
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    def __init__(
        self, config: StandinConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, ca: Any = None
    ) -> None:
        self.config = config or StandinConfig()
        self._host = host
        self._port = port
        self._ca = ca if ca is not None else trustme.CA()
        self.state = SalesforceState(self.config, lambda: self.url)
        self._server: _StandinHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"https://{self._host}:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA that signed the server certificate (what a client must trust)."""
        return bytes(self._ca.cert_pem.bytes())

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def start(self) -> SalesforceStandin:
        server = _StandinHTTPServer((self._host, self._port), self.state)
        serve_tls(server, self._ca)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="salesforce-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.state.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> SalesforceStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.salesforce", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, required=True, help="JSON written once listening")
    parser.add_argument("--ca-file", type=Path, help="where to write the CA PEM (default: next to the ready-file)")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument(
        "--jwt-certificate-file",
        "--jwt-public-key-file",
        type=Path,
        help="the connected app's certificate (or PEM public key) that verifies JWT bearer assertions",
    )
    parser.add_argument("--jwt-username", help="the pre-authorised user (JWT sub); without it no JWT grant succeeds")
    parser.add_argument("--sandbox", action="store_true", help="a sandbox org: JWT aud must be test.salesforce.com")
    parser.add_argument(
        "--experience-site-url", action="append", default=[], help="an Experience Cloud site URL (another JWT aud)"
    )
    parser.add_argument("--api-limit", type=int, default=DEFAULT_API_LIMIT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT; writes ``{"url","ca_file","pid","client_id","client_secret"}``."""
    args = _parse_args(argv)
    config = StandinConfig(
        api_limit=args.api_limit,
        jwt_username=args.jwt_username,
        sandbox=args.sandbox,
        experience_site_urls=list(args.experience_site_url),
    )
    if args.client_id:
        config.client_id = args.client_id
    if args.client_secret:
        config.client_secret = args.client_secret
    if args.jwt_certificate_file:
        config.jwt_certificate_pem = args.jwt_certificate_file.read_text()
        load_verification_key(config.jwt_certificate_pem)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin = SalesforceStandin(config, host=args.host, port=args.port).start()
    try:
        ca_file = standin.write_ca(args.ca_file or args.ready_file.with_suffix(".ca.pem"))
        ready = {
            "url": standin.url,
            "ca_file": str(ca_file.resolve()),
            "pid": os.getpid(),
            "client_id": config.client_id,
            "client_secret": config.client_secret,
        }
        write_atomically(args.ready_file, json.dumps(ready))
        while not stop.wait(0.2):
            pass
    finally:
        standin.stop()
    return 0
