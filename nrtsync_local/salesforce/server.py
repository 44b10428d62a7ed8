"""The Salesforce stand-in's request dispatch and command line, on the stand-ins' HTTPS server
(``nrtsync_local.standin.server``).

Run as a process::

    python -m nrtsync_local.salesforce --port 0 --ready-file ready.json --ca-file ca.pem
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nrtsync_local.salesforce.answers import (
    COLLECTION_PATH,
    COLLECTIONS_ROOT_PATH,
    DATA_PATH,
    JSON_CONTENT_TYPE,
    ROW_BY_EXTERNAL_ID_PATH,
    error_list,
    method_not_allowed,
    not_found,
)
from nrtsync_local.salesforce.config import DEFAULT_API_LIMIT, StandinConfig
from nrtsync_local.salesforce.control import control
from nrtsync_local.salesforce.oauth import load_verification_key
from nrtsync_local.salesforce.state import SalesforceState
from nrtsync_local.standin.server import (
    Answer,
    HttpsStandin,
    StandinRequestHandler,
    form_fields,
    serve,
    standin_arguments,
)


class _Handler(StandinRequestHandler[SalesforceState]):
    """Routes HTTP to ``SalesforceState``."""

    content_type = JSON_CONTENT_TYPE
    access_log_variable = "SALESFORCE_STANDIN_ACCESS_LOG"

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[Answer, dict[str, str]]:
        state = self.server.state
        try:
            endpoint, answer = self._answer(state, method, path, body, query)
        except (ValueError, TypeError, KeyError) as exc:
            endpoint, answer = "bad-request", Answer(400, error_list("INVALID_INPUT", str(exc)))
        state.count_status(endpoint, answer.status)
        return answer, {"Sforce-Limit-Info": state.limit_info()}

    def _answer(self, state: SalesforceState, method: str, path: str, body: bytes, query: str) -> tuple[str, Answer]:
        if path.startswith("/__standin/"):
            return "control", control(state, method, path.removeprefix("/__standin/"), body)
        latency = state.latency_seconds()
        if latency > 0:
            state.stop_event.wait(latency)
        if path == "/services/oauth2/token":
            if method != "POST":
                return "token", method_not_allowed(method, "POST")
            return "token", state.token(form_fields(body))
        match = DATA_PATH.match(path)
        if match is None:
            return "unknown", not_found()
        rest = match["rest"] or "/"
        endpoint = f"{method} {_endpoint_name(rest)}"
        late = state.late_commit_seconds()
        if late > 0:
            state.stop_event.wait(late)  # the client may give up meanwhile; the call below still runs and commits
        authorization = self.headers.get("Authorization", "")
        return endpoint, state.api(method, rest, authorization, body, match["version"], query=query)


def _endpoint_name(rest: str) -> str:
    if COLLECTION_PATH.match(rest) or COLLECTIONS_ROOT_PATH.match(rest):
        return "composite/sobjects"
    if ROW_BY_EXTERNAL_ID_PATH.match(rest):
        return "sobjects/external-id"
    if rest.rstrip("/") == "/composite":
        return "composite"
    return rest.strip("/") or "/"


class SalesforceStandin(HttpsStandin[SalesforceState]):
    """The stand-in in this process: ``start()`` serves HTTPS on a background thread, ``stop()`` ends it."""

    handler = _Handler
    title = "the Salesforce stand-in"

    def __init__(
        self, config: StandinConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, ca: Any = None
    ) -> None:
        self.config = config or StandinConfig()
        super().__init__(SalesforceState(self.config, lambda: self.url), host=host, port=port, ca=ca)

    def stopping(self) -> None:
        self.state.stop_event.set()

    def credentials(self) -> tuple[str, str]:
        return self.config.client_id, self.config.client_secret


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = standin_arguments("python -m nrtsync_local.salesforce", __doc__)
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
    """Serves until SIGTERM or SIGINT (``nrtsync_local.standin.server.serve``)."""
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
    return serve(SalesforceStandin(config, host=args.host, port=args.port), args)
