"""The Zuora stand-in's HTTPS server and command line (TLS from a throwaway trustme CA, shared with the
Salesforce stand-in in ``nrtsync_local.standin.tls``).

Run as a process::

    python -m nrtsync_local.zuora --port 0 --ready-file ready.json --ca-file ca.pem
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

from nrtsync_local.standin.tls import serve_tls, write_atomically
from nrtsync_local.zuora.state import DEFAULT_PAGE_SIZE, Answer, ZuoraState


class _Handler(BaseHTTPRequestHandler):
    server: _ZuoraHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("ZUORA_STANDIN_ACCESS_LOG"):
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if path.startswith("/__standin/"):
                answer = state.control(method, path.removeprefix("/__standin/"), json.loads(raw or b"{}"))
            elif path == "/oauth/token":
                form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
                answer = state.handle(method, path, form, None, "")
            else:
                body = json.loads(raw) if raw else None
                answer = state.handle(method, path, {}, body, self.headers.get("Authorization", ""))
        except (ValueError, TypeError, KeyError) as exc:
            answer = Answer(400, {"faultcode": "fns:MALFORMED_QUERY", "faultstring": str(exc)})
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _ZuoraHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: ZuoraState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class ZuoraStandin:
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    def __init__(self, state: ZuoraState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or ZuoraState()
        self._host = host
        self._port = port
        self._ca = trustme.CA()
        self._server: _ZuoraHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Zuora stand-in is not started")
        return f"https://{self._host}:{self._server.server_address[1]}"

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(bytes(self._ca.cert_pem.bytes()))
        return path

    def start(self) -> ZuoraStandin:
        server = _ZuoraHTTPServer((self._host, self._port), self.state)
        serve_tls(server, self._ca)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="zuora-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> ZuoraStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT; writes ``{"url","ca_file","pid","client_id","client_secret"}``."""
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.zuora", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, required=True, help="JSON written once listening")
    parser.add_argument("--ca-file", type=Path, help="where to write the CA PEM (default: next to the ready-file)")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin = ZuoraStandin(ZuoraState(page_size=args.page_size), host=args.host, port=args.port).start()
    try:
        ca_file = standin.write_ca(args.ca_file or args.ready_file.with_suffix(".ca.pem"))
        ready = {
            "url": standin.url,
            "ca_file": str(ca_file.resolve()),
            "pid": os.getpid(),
            "client_id": standin.state.client_id,
            "client_secret": standin.state.client_secret,
        }
        write_atomically(args.ready_file, json.dumps(ready))
        while not stop.wait(0.2):
            pass
    finally:
        standin.stop()
    return 0
