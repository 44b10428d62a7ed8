"""The Zuora stand-in's routes (control API, OAuth token, the query actions of ``ZuoraState``) and its command
line, ``python -m nrtsync_local.zuora --port 0 --ready-file ready.json [--page-size N]``; the HTTPS server and
the ready file are ``nrtsync_local.standin.server``'s."""

from __future__ import annotations

import json

from nrtsync_local.standin import server as https
from nrtsync_local.zuora.state import DEFAULT_PAGE_SIZE, ZuoraState


class _Handler(https.StandinRequestHandler[ZuoraState]):
    """Routes HTTP to ``ZuoraState``."""

    access_log_variable = "ZUORA_STANDIN_ACCESS_LOG"

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[https.Answer, dict[str, str]]:
        state = self.server.state
        try:
            if path.startswith("/__standin/"):
                return state.control(method, path.removeprefix("/__standin/"), json.loads(body or b"{}")), {}
            if path == "/oauth/token":
                return state.handle(method, path, https.form_fields(body), None, ""), {}
            parsed = json.loads(body) if body else None
            return state.handle(method, path, {}, parsed, self.headers.get("Authorization", "")), {}
        except (ValueError, TypeError, KeyError) as exc:
            return https.Answer(400, {"faultcode": "fns:MALFORMED_QUERY", "faultstring": str(exc)}), {}


class ZuoraStandin(https.HttpsStandin[ZuoraState]):
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    handler = _Handler
    title = "the Zuora stand-in"

    def __init__(self, state: ZuoraState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(state or ZuoraState(), host=host, port=port)

    def credentials(self) -> tuple[str, str]:
        return self.state.client_id, self.state.client_secret


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT (``nrtsync_local.standin.server.serve``)."""
    parser = https.standin_arguments("python -m nrtsync_local.zuora", __doc__)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    args = parser.parse_args(argv)
    return https.serve(ZuoraStandin(ZuoraState(page_size=args.page_size), host=args.host, port=args.port), args)
