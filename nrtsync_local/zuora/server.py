"""The Zuora stand-in's routes (control API, OAuth token, the query actions of ``ZuoraState``, the event triggers
and notification definitions of ``notifications``, describe) and its command line,
``python -m nrtsync_local.zuora --port 0 --ready-file ready.json [--page-size N]``; the HTTPS server and the ready
file are ``nrtsync_local.standin.server``'s. It sends callouts itself (``callouts``) while it runs."""

from __future__ import annotations

import json
from typing import Self

from nrtsync_local.standin import server as https
from nrtsync_local.zuora.callouts import CalloutSender
from nrtsync_local.zuora.describe import describe_xml
from nrtsync_local.zuora.notifications import Notifications
from nrtsync_local.zuora.state import DEFAULT_PAGE_SIZE, ZuoraState

XML = "application/xml; charset=utf-8"


class _Handler(https.StandinRequestHandler[ZuoraState]):
    """Routes HTTP to ``ZuoraState`` and to its notifications and callouts."""

    access_log_variable = "ZUORA_STANDIN_ACCESS_LOG"

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[https.Answer, dict[str, str]]:
        state = self.server.state
        try:
            set_up = self._set_up_routes(state, method, path, query, body)
            if set_up is not None:
                return set_up, {}
            if path.startswith("/__standin/"):
                return state.control(method, path.removeprefix("/__standin/"), json.loads(body or b"{}")), {}
            if path == "/oauth/token":
                return state.handle(method, path, https.form_fields(body), None, ""), {}
            parsed = json.loads(body) if body else None
            return state.handle(method, path, {}, parsed, self.headers.get("Authorization", "")), {}
        except (ValueError, TypeError, KeyError) as exc:
            return https.Answer(400, {"faultcode": "fns:MALFORMED_QUERY", "faultstring": str(exc)}), {}

    def _set_up_routes(self, state: ZuoraState, method: str, path: str, query: str, body: bytes) -> https.Answer | None:
        """Event triggers, notification definitions, describe, and the callouts' control route; None for others."""
        notifications, callouts = state.notifications, state.callouts
        if notifications is None or callouts is None:
            return None
        if path == "/__standin/callouts":
            return https.Answer(200, callouts.control(method, json.loads(body or b"{}")))
        if path == "/__standin/notifications" and method == "POST":
            return https.Answer(200, notifications.control(json.loads(body or b"{}")))
        if Notifications.serves(path):
            headers = {name.lower(): value for name, value in self.headers.items()}
            parsed = json.loads(body) if body else None
            return notifications.handle(method, path, https.form_fields(query.encode()), parsed, headers)
        if path.startswith("/v1/describe/") and method == "GET":
            return self._describe(state, path.removeprefix("/v1/describe/"))
        return None

    def _describe(self, state: ZuoraState, object_type: str) -> https.Answer:
        if not state.authorized(self.headers.get("Authorization", "")):
            return https.Answer(401, {"message": "Authentication error"})
        document = describe_xml(object_type)
        if document is None:
            reasons = [{"code": "NOT_FOUND", "message": f"no object {object_type}"}]
            return https.Answer(404, {"success": False, "reasons": reasons})
        return https.Answer(200, document, {"Content-Type": XML})


class ZuoraStandin(https.HttpsStandin[ZuoraState]):
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread and sends callouts, ``stop()``
    ends both."""

    handler = _Handler
    title = "the Zuora stand-in"

    def __init__(self, state: ZuoraState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(state or ZuoraState(), host=host, port=port)
        self.notifications = Notifications(self.state.authorized)
        self.callouts = CalloutSender(self.state, self.notifications)
        self.state.notifications, self.state.callouts = self.notifications, self.callouts
        self.state.on_change.append(self.callouts.changed)

    def start(self) -> Self:
        super().start()
        self.callouts.start()
        return self

    def stopping(self) -> None:
        self.callouts.stop()

    def credentials(self) -> tuple[str, str]:
        return self.state.client_id, self.state.client_secret


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT (``nrtsync_local.standin.server.serve``)."""
    parser = https.standin_arguments("python -m nrtsync_local.zuora", __doc__)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    args = parser.parse_args(argv)
    return https.serve(ZuoraStandin(ZuoraState(page_size=args.page_size), host=args.host, port=args.port), args)
