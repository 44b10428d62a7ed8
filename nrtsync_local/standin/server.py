"""The HTTPS server both stand-ins (Salesforce, Zuora) run: JSON answers over HTTP/1.1, TLS from a throwaway
trustme CA, a background thread in tests, and the command line a child process runs until SIGTERM or SIGINT.

A stand-in is its state plus one ``answer`` method: ``HttpsStandin`` subclasses say which handler routes the
requests to the state, and ``serve`` writes the ready file (URL, CA, client credentials) the parent waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs

import trustme

from nrtsync_local.standin.tls import serve_tls, write_atomically


@dataclass
class Answer:
    """One HTTP answer: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def form_fields(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (an OAuth token request), first value of each field."""
    return {key: values[0] for key, values in parse_qs(body.decode()).items()}


class StandinRequestHandler[StateT](BaseHTTPRequestHandler):
    """Reads a request, asks ``answer`` and sends its JSON; the state is reached through the server."""

    server: StandinHTTPServer[StateT]
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection does not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    content_type: ClassVar[str] = "application/json; charset=utf-8"
    access_log_variable: ClassVar[str]
    """The environment variable that turns the access log on (quiet by default: the stats endpoint says more)."""

    def do_GET(self) -> None:
        self._respond("GET")

    def do_POST(self) -> None:
        self._respond("POST")

    def do_PATCH(self) -> None:
        self._respond("PATCH")

    def do_PUT(self) -> None:
        self._respond("PUT")

    def do_DELETE(self) -> None:
        self._respond("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get(self.access_log_variable):
            super().log_message(format, *args)

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[Answer, dict[str, str]]:
        """The answer to one request, and headers every answer of this stand-in carries."""
        raise NotImplementedError

    def _respond(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer, headers = self.answer(method, path, query, body)
        payload = b"" if answer.status == 204 else _payload(answer.body)  # 204 carries no body
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {"Content-Type": self.content_type, **headers, **answer.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _payload(body: Any) -> bytes:
    """JSON, or a text body as it is (an answer in XML says so in its Content-Type header)."""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


class StandinHTTPServer[StateT](ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections

    def __init__(self, address: tuple[str, int], handler: type[StandinRequestHandler[StateT]], state: StateT) -> None:
        super().__init__(address, handler)
        self.state = state


class HttpsStandin[StateT]:
    """A stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    handler: type[StandinRequestHandler[StateT]]
    title: ClassVar[str]

    def __init__(self, state: StateT, *, host: str = "127.0.0.1", port: int = 0, ca: Any = None) -> None:
        self.state = state
        self._host = host
        self._port = port
        self._ca = ca if ca is not None else trustme.CA()
        self._server: StandinHTTPServer[StateT] | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.title} is not started")
        return f"https://{self._host}:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA that signed the server certificate (what a client must trust)."""
        return bytes(self._ca.cert_pem.bytes())

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def start(self) -> Self:
        server = StandinHTTPServer((self._host, self._port), self.handler, self.state)
        serve_tls(server, self._ca)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.title, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopping()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def stopping(self) -> None:
        """Called before the server shuts down: wake what waits inside a request (e.g. injected latency)."""

    def credentials(self) -> tuple[str, str]:
        """The OAuth client (id, secret) the ready file hands the parent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def standin_arguments(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The command line every stand-in takes: where to listen and where to write the ready file and the CA."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, required=True, help="JSON written once listening")
    parser.add_argument("--ca-file", type=Path, help="where to write the CA PEM (default: next to the ready-file)")
    return parser


def serve(standin: HttpsStandin[Any], args: argparse.Namespace) -> int:
    """Serves until SIGTERM or SIGINT; writes ``{"url","ca_file","pid","client_id","client_secret"}``."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin.start()
    try:
        ca_file = standin.write_ca(args.ca_file or args.ready_file.with_suffix(".ca.pem"))
        client_id, client_secret = standin.credentials()
        ready = {
            "url": standin.url,
            "ca_file": str(ca_file.resolve()),
            "pid": os.getpid(),
            "client_id": client_id,
            "client_secret": client_secret,
        }
        write_atomically(args.ready_file, json.dumps(ready))
        while not stop.wait(0.2):
            pass
    finally:
        standin.stop()
    return 0
