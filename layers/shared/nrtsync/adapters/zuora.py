"""Zuora's REST API over ``requests``: OAuth client credentials and the ZOQL query actions (``ZuoraPort``).

Zuora's docs this follows (developer.zuora.com):
- "Create an OAuth token" (``POST {base}/oauth/token``, form ``client_id``, ``client_secret``,
  ``grant_type=client_credentials``; the answer's ``expires_in`` is about an hour);
- "Actions" > "Query" and "QueryMore" (``POST /v1/action/query`` ``{"queryString"}`` and
  ``POST /v1/action/queryMore`` ``{"queryLocator"}``, each answering ``{records, size, done, queryLocator}``,
  at most 2,000 records a page);
- "Error handling" guide and "Rate limits": a 429 means wait and retry (``Retry-After`` says how long), an
  expired token is a 401 and a fresh token fixes it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from nrtsync.domain.models.zuora import (
    ZuoraAuthError,
    ZuoraCredentials,
    ZuoraError,
    ZuoraRequestError,
    ZuoraRetryableError,
)
from nrtsync.ports.zuora import QueryPage

TOKEN_RENEW_MARGIN_SECONDS = 300.0
"""A token is renewed this long before it expires, so no request starts with one about to lapse."""
DEFAULT_DEADLINE_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 60.0
"""A 429's ``Retry-After`` above this (or past the deadline) is not waited out: the caller retries later."""


class ZuoraClient:
    """Implements ``ZuoraPort``. One instance per warm container: the token is cached between invocations.

    Every call retries 5xx, connection errors and 429 until ``deadline_seconds`` after it started, then raises
    ``ZuoraRetryableError``; a 401 renews the token once; any other 4xx is a ``ZuoraRequestError``.
    """

    def __init__(
        self,
        credentials: ZuoraCredentials,
        *,
        session: requests.Session | None = None,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._credentials = credentials
        self._session = session or requests.Session()
        self._deadline_seconds = deadline_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self.token_requests = 0
        """How many tokens this client has asked for (tests and logs: a cached token costs none)."""

    def query(self, zoql: str) -> QueryPage:
        return _page(self._post("/v1/action/query", {"queryString": zoql}))

    def query_more(self, query_locator: str) -> QueryPage:
        return _page(self._post("/v1/action/queryMore", {"queryLocator": query_locator}))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _json_object(self._call("POST", path, json=body), path)

    def _call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """The successful response to one API call, with the token, retries and errors described above."""
        deadline = self._clock() + self._deadline_seconds
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._access_token(deadline)
            response = self._send(
                method,
                f"{self._credentials.base}{path}",
                deadline,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                **kwargs,
            )
            if response is not None and response.status_code == 401 and not renewed:
                # The token expired early or was revoked: one fresh token, then a second 401 is the operator's.
                renewed = True
                self._forget_token(token)
                continue
            if response is not None and response.status_code == 401:
                raise ZuoraAuthError(f"Zuora refused a fresh token on {path}: {_error_text(response)}")
            if response is not None and response.status_code < 400:
                return response
            if response is not None and response.status_code < 500 and response.status_code != 429:
                code, message = _error_code(response)
                raise ZuoraRequestError(
                    f"Zuora refused {path}: {code}: {message}", code=code, http_status=response.status_code
                )
            self._wait_before_retry(response, attempt, deadline, path)

    def _access_token(self, deadline: float) -> str:
        with self._lock:
            if self._token is not None and self._clock() < self._token_expires_at - TOKEN_RENEW_MARGIN_SECONDS:
                return self._token
            attempt = 0
            while True:
                attempt += 1
                self.token_requests += 1
                response = self._send(
                    "POST",
                    f"{self._credentials.base}/oauth/token",
                    deadline,
                    data={
                        "client_id": self._credentials.client_id,
                        "client_secret": self._credentials.client_secret,
                        "grant_type": "client_credentials",
                    },
                )
                if response is not None and response.status_code == 200:
                    answer = _json_object(response, "/oauth/token")
                    if not isinstance(answer.get("access_token"), str):
                        raise ZuoraRetryableError("Zuora's token endpoint answered 200 without an access_token")
                    self._token = str(answer["access_token"])
                    self._token_expires_at = self._clock() + float(answer.get("expires_in", 3600))
                    return self._token
                if response is not None and 400 <= response.status_code < 500 and response.status_code != 429:
                    raise ZuoraAuthError(f"Zuora's token endpoint refused the credentials: {_error_text(response)}")
                self._wait_before_retry(response, attempt, deadline, "/oauth/token")

    def _forget_token(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _send(self, method: str, url: str, deadline: float, **kwargs: Any) -> requests.Response | None:
        """The response, or None when Zuora could not be reached (retried like a 5xx)."""
        timeout = max(1.0, min(self._timeout, deadline - self._clock()))
        try:
            return self._session.request(method, url, timeout=timeout, **kwargs)
        except requests.RequestException:
            return None

    def _wait_before_retry(self, response: requests.Response | None, attempt: int, deadline: float, path: str) -> None:
        if response is not None and response.status_code == 429:
            delay = _retry_after(response)
            what = f"429 (Retry-After {delay:g}s)"
        else:
            # Full jitter on an exponential backoff, so many containers do not retry in step.
            delay = self._jitter() * min(8.0, 0.5 * 2 ** (attempt - 1))
            what = "no answer" if response is None else f"HTTP {response.status_code}"
        if delay > MAX_RETRY_AFTER_SECONDS or self._clock() + delay >= deadline:
            raise ZuoraRetryableError(f"Zuora {path}: {what} after {attempt} attempt(s); retry later")
        self._sleep(delay)


def _json_object(response: requests.Response, path: str) -> dict[str, Any]:
    """A success's JSON object; anything else (a proxy's or a maintenance page's HTML) is worth a later retry."""
    try:
        answer = response.json()
    except ValueError as exc:
        raise ZuoraRetryableError(f"Zuora answered {path} with {response.status_code} but no JSON") from exc
    if not isinstance(answer, dict):
        raise ZuoraRetryableError(f"Zuora answered {path} with {response.status_code} but not a JSON object")
    return answer


def _retry_after(response: requests.Response) -> float:
    """How long a 429 asks to wait: ``Retry-After``, else ``RateLimit-Reset`` (Zuora's "Rate limits": the seconds
    until the quota resets, beside ``RateLimit-Limit`` and ``RateLimit-Remaining``), else a short wait."""
    for header in ("Retry-After", "RateLimit-Reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue
    return 1.0


def _page(answer: dict[str, Any]) -> QueryPage:
    records = answer.get("records") or []
    if not isinstance(records, list):
        raise ZuoraError("Zuora's query answer has no records list")
    locator = answer.get("queryLocator")
    return QueryPage(records=records, done=bool(answer.get("done", True)), query_locator=locator or None)


def _error_code(response: requests.Response) -> tuple[str, str]:
    """Zuora's action errors: ``{"faultcode": "fns:MALFORMED_QUERY", "faultstring": ...}``; REST errors:
    ``{"Errors": [{"Code", "Message"}]}`` or ``{"reasons": [{"code", "message"}]}``."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:500]
    if isinstance(body, dict):
        if "faultcode" in body:
            return str(body["faultcode"]).split(":")[-1], str(body.get("faultstring", ""))
        for key, code, message in (("Errors", "Code", "Message"), ("reasons", "code", "message")):
            items = body.get(key)
            if isinstance(items, list) and items and isinstance(items[0], dict):
                return str(items[0].get(code, "")), str(items[0].get(message, ""))
    return f"HTTP_{response.status_code}", response.text[:500]


def _error_text(response: requests.Response) -> str:
    code, message = _error_code(response)
    return f"HTTP {response.status_code} {code}: {message}"
