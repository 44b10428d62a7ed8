"""Salesforce behind a small port: sObject Collections upserts and deletes (alone or up to five in one Composite
call), a look-up of a record's Id by external ID, and the org's API usage, on simple-salesforce.

simple-salesforce's login helpers hard-code ``https://{domain}.salesforce.com``, so the OAuth token is
fetched here from the org's own login URL (production, sandbox or My Domain) and handed to
``Salesforce(instance_url=..., session_id=...)``. The library has no retry of its own: retries, timeouts
and the deadline are handled here. An adapter instance is meant for one thread (a Lambda invocation).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import jwt
import requests
from pydantic import ValidationError
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError as LibrarySalesforceError
from simple_salesforce.exceptions import SalesforceExpiredSession
from urllib3.exceptions import NewConnectionError

from nrtsync.domain.models.salesforce import (
    CollectionDelete,
    CollectionUpsert,
    RecordResult,
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceCredentials,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.observability import logger
from nrtsync.ports.salesforce import MAX_COLLECTIONS_PER_COMPOSITE, ApiUsage

__all__ = ["SimpleSalesforceAdapter"]

_BACKOFF_BASE_SECONDS = 0.25
_BACKOFF_CAP_SECONDS = 8.0
# Salesforce wants the assertion's exp within 3 minutes of its own clock; 150 s leaves room for clock skew.
_JWT_LIFETIME_SECONDS = 150
# REQUEST_LIMIT_EXCEEDED names the limit in its message: "TotalRequests Limit exceeded." is the daily allocation;
# "ConcurrentRequests (Concurrent API Requests) Limit exceeded." and "ConcurrentPerOrgLongTxn Limit exceeded." are
# concurrency limits, which clear in seconds as the org's running requests finish.
_CONCURRENT_LIMIT_MARKERS = ("ConcurrentRequests", "ConcurrentPerOrgLongTxn")

T = TypeVar("T")


class _TransientError(Exception):
    """One attempt failed in a way that another attempt may fix (5xx, connection error, timeout).

    ``in_doubt``: the request may have reached Salesforce and may still commit (see
    ``SalesforceRetryableError.in_doubt``); ``http_status``: the answer's status, when there was one.
    """

    def __init__(self, message: str, *, in_doubt: bool, http_status: int | None = None) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt
        self.http_status = http_status


class _SessionRefusedError(Exception):
    """The API answered 401 INVALID_SESSION_ID: the cached token is no longer valid."""


@dataclass(frozen=True)
class _Token:
    access_token: str
    instance_url: str


class SimpleSalesforceAdapter:
    """``SalesforcePort`` on simple-salesforce, with a token cached across warm invocations."""

    def __init__(
        self,
        credentials_provider: Callable[[], SalesforceCredentials],
        *,
        api_version: str = "62.0",
        timeout_seconds: float = 20.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        max_attempts: int = 5,
    ) -> None:
        self._credentials_provider = credentials_provider
        self._api_version = api_version
        self._timeout = timeout_seconds
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._rng = rng
        self._max_attempts = max(1, max_attempts)
        self._client: Salesforce | None = None
        self._api_usage: ApiUsage | None = None
        self._api_calls = 0
        self._in_doubt = False  # an attempt of the current (or last) upsert_collections was in doubt

    @property
    def api_usage(self) -> ApiUsage | None:
        return self._api_usage

    @property
    def api_calls(self) -> int:
        return self._api_calls

    @property
    def last_call_in_doubt(self) -> bool:
        return self._in_doubt

    def upsert_collections(
        self, requests: Sequence[CollectionUpsert | CollectionDelete], *, deadline: float
    ) -> list[list[RecordResult] | SalesforceError]:
        """1..5 upserts or deletes in one API call; see ``SalesforcePort.upsert_collections``.

        With one request the plain sObject Collections call is the request's own call, so a 4xx refusal of it
        (an unknown sObject or field) is returned as that request's error, as it would be inside a Composite.
        """
        if not 1 <= len(requests) <= MAX_COLLECTIONS_PER_COMPOSITE:
            raise ValueError(
                f"upsert_collections takes 1 to {MAX_COLLECTIONS_PER_COMPOSITE} requests, not {len(requests)}"
            )
        self._in_doubt = False
        if len(requests) == 1:
            [request] = requests
            method, path, body = _collection_call(request)
            try:
                answer = self._api_call(method, path, body, deadline)
            except SalesforceRequestError as exc:
                return [exc]
            return [_collection_results(request, answer, 200)]
        subrequests = []
        for index, request in enumerate(requests):
            method, path, body = _collection_call(request)
            sub: dict[str, Any] = {
                "method": method,
                "url": f"/services/data/v{self._api_version}/{path}",
                "referenceId": f"c{index}",
            }
            if body is not None:
                sub["body"] = body
            subrequests.append(sub)
        composite = {
            "allOrNone": False,
            "collateSubrequests": False,  # the default from API 49.0 is true, which may reorder parents and children
            "compositeRequest": subrequests,
        }
        answer = self._api_call("POST", "composite", composite, deadline)
        subresponses = answer.get("compositeResponse") if isinstance(answer, dict) else None
        by_reference = {item.get("referenceId"): item for item in subresponses or [] if isinstance(item, dict)}
        if not subresponses or any(f"c{index}" not in by_reference for index in range(len(requests))):
            raise SalesforceRetryableError("composite: the answer does not pair with the subrequests sent")
        return [
            _collection_results(
                request, by_reference[f"c{index}"].get("body"), by_reference[f"c{index}"].get("httpStatusCode")
            )
            for index, request in enumerate(requests)
        ]

    def find_id(self, sobject: str, external_id_field: str, value: str, *, deadline: float) -> str | None:
        """``GET sobjects/{SObject}/{ExternalIdField}/{value}?fields=Id`` (REST API Developer Guide, "Get Records
        Using sObject Rows by External ID"): one API call; 404 NOT_FOUND means no such record."""
        path = f"sobjects/{sobject}/{external_id_field}/{quote(value, safe='')}?fields=Id"
        try:
            answer = self._api_call("GET", path, None, deadline)
        except SalesforceRequestError as exc:
            if exc.http_status == 404:
                return None
            raise
        found = answer.get("Id") if isinstance(answer, dict) else None
        if not isinstance(found, str) or not found:
            raise SalesforceRetryableError(f"find {sobject} by {external_id_field}: the answer has no Id")
        return found

    def fetch_api_usage(self, *, deadline: float) -> ApiUsage:
        """Reads ``DailyApiRequests`` from ``/limits``; see ``SalesforcePort.fetch_api_usage``."""
        answer = self._api_call("GET", "limits", None, deadline)
        try:
            daily = answer["DailyApiRequests"]
            limit, remaining = int(daily["Max"]), int(daily["Remaining"])
        except (TypeError, KeyError, ValueError) as exc:
            raise SalesforceRetryableError("limits: DailyApiRequests missing from the answer") from exc
        usage = ApiUsage(used=max(0, limit - remaining), limit=limit, observed_at=datetime.now(UTC))
        self._api_usage = usage
        return usage

    # --- API calls -------------------------------------------------------------------------------

    def _api_call(self, method: str, path: str, body: Any, deadline: float) -> Any:
        """One API call with retries; a refused session is renewed once and the call made again."""
        for renewed in (False, True):
            client = self._ensure_client(deadline)
            try:
                return self._with_retries(
                    f"{method} {path}", deadline, partial(self._api_attempt, client, method, path, body)
                )
            except _SessionRefusedError as exc:
                self._client = None
                if renewed:
                    raise SalesforceAuthError(f"{method} {path}: Salesforce refused a freshly issued token") from exc
                logger.info("Salesforce session expired; renewing the token once")
        raise AssertionError("unreachable")  # pragma: no cover

    def _api_attempt(self, client: Salesforce, method: str, path: str, body: Any, timeout: float) -> Any:
        self._api_calls += 1
        try:
            return client.restful(path, method=method, json=body, timeout=timeout, hooks={"response": self._observe})
        except SalesforceExpiredSession as exc:
            raise _SessionRefusedError() from exc
        except LibrarySalesforceError as exc:
            raise _error_for(int(exc.status), exc.content, f"{method} {path}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _TransientError(type(exc).__name__, in_doubt=not _never_sent(exc)) from exc
        except json.JSONDecodeError as exc:  # a 2xx whose body is not JSON: a proxy or an outage page
            raise _TransientError("answer is not JSON", in_doubt=True) from exc

    def _observe(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        # A response hook sees every answer, errors included (a refusal for the daily limit carries the header
        # too); simple-salesforce sets ``Salesforce.api_usage`` only after a success, so its parser is used here.
        limit_info = response.headers.get("Sforce-Limit-Info")
        usage = Salesforce.parse_api_usage(limit_info).get("api-usage") if limit_info else None
        if usage is not None:
            self._api_usage = ApiUsage(used=usage.used, limit=usage.total, observed_at=datetime.now(UTC))
        return response

    # --- token -----------------------------------------------------------------------------------

    def _ensure_client(self, deadline: float) -> Salesforce:
        if self._client is None:
            token = self._with_retries("token", deadline, self._token_attempt)
            self._client = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self._session,
                version=self._api_version,
            )
        return self._client

    def _token_attempt(self, timeout: float) -> _Token:
        try:
            credentials = self._credentials_provider()
        except ValidationError as exc:
            # An operator must fix the secret: an auth error (changes wait), naming the fields but never their
            # values; the input holds the client secret and the private key, hence no chained ValidationError.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'secret'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise SalesforceAuthError(f"the Salesforce secret is invalid: {problems}") from None
        form = _token_form(credentials)
        try:
            response = self._session.post(credentials.token_url, data=form, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            # The token endpoint writes nothing: a token request that may have run is never in doubt.
            raise _TransientError(type(exc).__name__, in_doubt=False) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise _TransientError(f"token endpoint answered {response.status_code}", in_doubt=False)
        payload = _json_or_none(response)
        if response.status_code != 200 or not isinstance(payload, dict):
            error = payload.get("error", "") if isinstance(payload, dict) else ""
            description = payload.get("error_description", "") if isinstance(payload, dict) else ""
            raise SalesforceAuthError(
                f"token endpoint {credentials.token_url} answered {response.status_code} {error}: {description}".strip()
            )
        access_token, instance_url = payload.get("access_token"), payload.get("instance_url")
        if not isinstance(access_token, str) or not isinstance(instance_url, str):
            raise SalesforceAuthError("token endpoint answered without access_token or instance_url")
        return _Token(access_token=access_token, instance_url=instance_url)

    # --- retries ---------------------------------------------------------------------------------

    def _with_retries(self, what: str, deadline: float, attempt: Callable[[float], T]) -> T:
        """Runs ``attempt(timeout)``; after a transient failure waits full-jitter backoff, never past the deadline."""
        failures = 0
        # Any attempt in doubt leaves the call in doubt: that attempt may still commit after a later one failed.
        in_doubt = False
        status: int | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SalesforceRetryableError(
                    f"{what}: deadline reached after {failures} failed attempts", in_doubt=in_doubt, http_status=status
                )
            try:
                return attempt(min(self._timeout, remaining))
            except _TransientError as exc:
                failures += 1
                in_doubt = in_doubt or exc.in_doubt
                self._in_doubt = self._in_doubt or exc.in_doubt
                status = exc.http_status
                if failures >= self._max_attempts:
                    raise SalesforceRetryableError(
                        f"{what}: {exc} (gave up after {failures} attempts)", in_doubt=in_doubt, http_status=status
                    ) from exc
                delay = self._rng() * min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
                if time.monotonic() + delay >= deadline:
                    raise SalesforceRetryableError(
                        f"{what}: {exc} (deadline reached after {failures} attempts)",
                        in_doubt=in_doubt,
                        http_status=status,
                    ) from exc
                logger.warning(
                    "Salesforce call failed; retrying",
                    extra={"call": what, "failure": str(exc), "attempt": failures, "delay_seconds": round(delay, 3)},
                )
                self._sleep(delay)


def _token_form(credentials: SalesforceCredentials) -> dict[str, str]:
    if credentials.auth_flow == "client_credentials":
        return {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret or "",
        }
    try:
        assertion = jwt.encode(
            {
                "iss": credentials.client_id,
                "sub": credentials.username,
                "aud": credentials.jwt_audience,
                "exp": int(time.time()) + _JWT_LIFETIME_SECONDS,
            },
            credentials.private_key or "",
            algorithm="RS256",
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise SalesforceAuthError("could not sign the JWT bearer assertion with the configured private key") from exc
    return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


def _collection_path(sobject: str, external_id_field: str) -> str:
    return f"composite/sobjects/{sobject}/{external_id_field}"


def _collection_body(sobject: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **record} for record in records]}


def _collection_call(request: CollectionUpsert | CollectionDelete) -> tuple[str, str, dict[str, Any] | None]:
    """Method, path (under the API version) and body of one collection request, alone or as a subrequest."""
    if isinstance(request, CollectionDelete):
        # REST API Developer Guide, "Delete Records Using sObject Collections": the Ids go in the query string,
        # no body; allOrNone=false so one refused record does not roll back the others.
        return "DELETE", f"composite/sobjects?ids={','.join(request.ids)}&allOrNone=false", None
    path = _collection_path(request.sobject, request.external_id_field)
    return "PATCH", path, _collection_body(request.sobject, request.records)


def _collection_results(
    request: CollectionUpsert | CollectionDelete, body: Any, status: Any
) -> list[RecordResult] | SalesforceError:
    """One collection's answer (plain or a Composite subresponse): its results, or its own error."""
    deleting = isinstance(request, CollectionDelete)
    what = f"{'delete' if deleting else 'upsert'} {request.sobject}"
    sent = len(request.ids) if isinstance(request, CollectionDelete) else len(request.records)
    if not isinstance(status, int) or not 200 <= status < 300:
        error = _error_for(status if isinstance(status, int) else 500, body, what)
        if isinstance(error, SalesforceError):
            return error
        # A subrequest's own 5xx came inside an answered call: that subrequest has ended, nothing runs on.
        http_status = error.http_status if isinstance(error, _TransientError) else None
        return SalesforceRetryableError(f"{what}: {error}", in_doubt=False, http_status=http_status)
    if not isinstance(body, list) or len(body) != sent or not all(isinstance(i, dict) for i in body):
        return SalesforceRetryableError(f"{what}: the answer does not pair with the records sent")
    return [RecordResult.from_api(item) for item in body]


def _error_for(status: int, content: Any, what: str) -> Exception:
    """Maps a non-2xx answer (of a call or of a Composite subrequest) to a transient failure or one of our errors."""
    error_code, message = _first_error(content)
    if status >= 500 or status == 429:
        return _TransientError(
            f"HTTP {status} {error_code}".strip(), in_doubt=_may_still_run(status, error_code), http_status=status
        )
    if status == 403 and error_code == "REQUEST_LIMIT_EXCEEDED":
        # One code for several limits (_CONCURRENT_LIMIT_MARKERS): only TotalRequests is the daily allocation.
        if any(marker in message for marker in _CONCURRENT_LIMIT_MARKERS):
            return SalesforceConcurrencyLimitError(f"{what}: {message}")
        return SalesforceLimitExceededError(f"{what}: {message or 'API request limit exceeded'}")
    return SalesforceRequestError(
        f"{what}: HTTP {status} {error_code}: {message}", status_code=error_code or f"HTTP_{status}", http_status=status
    )


def _first_error(content: Any) -> tuple[str, str]:
    """``errorCode`` and ``message`` of the first error in a Salesforce error body (a list of objects).

    A Composite request refused whole (e.g. over its subrequest limits) wraps that list in a
    ``compositeResponse`` entry whose ``referenceId`` is null.
    """
    if (
        isinstance(content, dict)
        and isinstance(content.get("compositeResponse"), list)
        and content["compositeResponse"]
    ):
        wrapped = content["compositeResponse"][0]
        content = wrapped.get("body") if isinstance(wrapped, dict) else wrapped
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, dict):
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    return "", str(content)[:300]


def _may_still_run(status: int, error_code: str) -> bool:
    """Whether the request may still be running in Salesforce after this answer. A 429 refuses it before it runs.
    A 500 or 503 with Salesforce's own error code (``UNKNOWN_EXCEPTION``, ``SERVER_UNAVAILABLE``) is the answer of
    the server that handled it: its transaction has ended, rolled back. A 502 or 504, or a 5xx without Salesforce's
    error body, comes from a front that gave up waiting: the request may still commit."""
    if status == 429:
        return False
    return not (status in (500, 503) and error_code)


def _never_sent(exc: requests.RequestException) -> bool:
    """The connection was never established (refused, or its connect timed out): no request reached Salesforce."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
