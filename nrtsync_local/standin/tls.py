"""What both HTTPS stand-ins (Salesforce, Zuora) share: TLS from a throwaway trustme CA, and the ready file."""

from __future__ import annotations

import ssl
import tempfile
from http.server import HTTPServer
from pathlib import Path

import trustme


def serve_tls(server: HTTPServer, ca: trustme.CA) -> None:
    """Wraps the server's socket in TLS with a certificate for localhost, 127.0.0.1 and ::1 signed by ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
    # The TLS handshake happens in the request thread, so a slow client cannot stall accept().
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)


def write_atomically(path: Path, content: str) -> None:
    """Writes ``content`` so that a reader polling ``path`` never sees half of it."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(content)
    Path(handle.name).replace(path)
