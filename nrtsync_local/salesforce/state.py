"""Everything the stand-in knows, behind one lock: sessions, the API allocation, counters; and the routing of
the token endpoint and the REST API to the record store, the write resources and the faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from nrtsync_local.salesforce.answers import (
    COLLECTION_PATH,
    COLLECTIONS_ROOT_PATH,
    ROW_BY_EXTERNAL_ID_PATH,
    error_list,
    method_not_allowed,
    not_found,
)
from nrtsync_local.salesforce.composite import Upserts
from nrtsync_local.salesforce.config import StandinConfig
from nrtsync_local.salesforce.deletes import delete_collection, get_by_external_id
from nrtsync_local.salesforce.describe import describe_answer
from nrtsync_local.salesforce.faults import Faults
from nrtsync_local.salesforce.oauth import (
    JWT_BEARER_GRANT,
    ConnectedApp,
    OAuthRefusalError,
    load_verification_key,
    verify_jwt_bearer_assertion,
)
from nrtsync_local.salesforce.records import RecordStore, salesforce_id
from nrtsync_local.standin.server import Answer


@dataclass
class Stats:
    api_calls: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    records_per_call: list[int] = field(default_factory=list)
    injected_faults: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "records_per_call": self.records_per_call,
            "injected_faults": self.injected_faults,
        }


class SalesforceState:
    """Everything the stand-in knows, behind one lock: sessions, records, faults, counters."""

    def __init__(self, config: StandinConfig, base_url: Callable[[], str]) -> None:
        self.config = config
        self._base_url = base_url
        self._lock = threading.RLock()
        self._sessions: dict[str, float] = {}
        self._store = RecordStore(config)
        self._org_id = salesforce_id("00D", 1)
        self._user_id = salesforce_id("005", 1)
        self._api_used = 0
        self._faults = Faults()
        self._stats = Stats()
        self._rng = random.Random()  # noqa: S311 - fault injection, not security
        self.stop_event = threading.Event()

    # --- headers, latency, counters ----------------------------------------------------------

    def limit_info(self) -> str:
        with self._lock:
            return f"api-usage={self._api_used}/{self.config.api_limit}"

    def latency_seconds(self) -> float:
        with self._lock:
            return self._faults.latency_ms / 1000.0

    def late_commit_seconds(self) -> float:
        with self._lock:
            return self._faults.late_commit_seconds()

    def count_status(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._stats.by_endpoint[endpoint] += 1
            self._stats.by_status[str(status)] += 1

    # --- OAuth -------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> Answer:
        """``POST /services/oauth2/token`` for the client credentials and JWT bearer flows."""
        with self._lock:
            self._stats.token_requests += 1
            injected = self._pop_fault("token")
            if injected is not None:
                return injected
            grant_type = form.get("grant_type", "")
            try:
                self._check_grant(grant_type, form)
            except OAuthRefusalError as refusal:
                return Answer(400, {"error": refusal.error, "error_description": refusal.description})
            return Answer(200, self._issue_token(grant_type))

    def _check_grant(self, grant_type: str, form: dict[str, str]) -> None:
        if grant_type == "client_credentials":
            self._check_client_credentials(form)
        elif grant_type == JWT_BEARER_GRANT:
            self._check_jwt_assertion(form.get("assertion", ""))
        else:
            raise OAuthRefusalError("unsupported_grant_type", "grant type not supported")

    def _check_client_credentials(self, form: dict[str, str]) -> None:
        if form.get("client_id") != self.config.client_id:
            raise OAuthRefusalError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(form.get("client_secret", ""), self.config.client_secret):
            raise OAuthRefusalError("invalid_client", "invalid client credentials")

    def _check_jwt_assertion(self, assertion: str) -> None:
        # The URL the assertion was posted to plays no part: Salesforce checks aud against fixed values.
        app = ConnectedApp(
            consumer_key=self.config.client_id,
            certificate_pem=self.config.jwt_certificate_pem,
            username=self.config.jwt_username,
            sandbox=self.config.sandbox,
            experience_site_urls=tuple(self.config.experience_site_urls),
        )
        verify_jwt_bearer_assertion(assertion, app, now=time.time())

    def _issue_token(self, grant_type: str) -> dict[str, Any]:
        access_token = f"{self._org_id[:15]}!{secrets.token_urlsafe(48)}"
        self._sessions[access_token] = time.monotonic() + self.config.session_ttl_seconds
        self._stats.tokens_issued += 1
        base = self._base_url()
        identity = f"{base}/id/{self._org_id}/{self._user_id}"
        issued_at = str(int(time.time() * 1000))
        digest = hmac.new(self.config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        answer: dict[str, Any] = {
            "access_token": access_token,
            "signature": base64.b64encode(digest.digest()).decode(),
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if grant_type == "client_credentials":
            answer["scope"] = "api"
        return answer

    # --- the authenticated API ---------------------------------------------------------------

    def api(
        self, method: str, rest: str, authorization: str, body: bytes, version: str = "62.0", *, query: str = ""
    ) -> Answer:
        """Every request under ``/services/data/vNN.N``: session, injected faults, allocation, routing."""
        with self._lock:
            if not self._session_valid(authorization):
                return Answer(401, error_list("INVALID_SESSION_ID", "Session expired or invalid"))
            injected = self._pop_fault("api")
            if injected is not None:
                return injected
            if self._api_used >= self.config.api_limit:
                return Answer(403, error_list("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            self._api_used += 1
            self._stats.api_calls += 1
            return self._route(method, rest, body, version, query=query)

    def _session_valid(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return False
        expires = self._sessions.get(token.strip())
        return expires is not None and expires > time.monotonic()

    def _route(self, method: str, rest: str, body: bytes, version: str = "62.0", *, query: str = "") -> Answer:
        not_a_write = describe_answer(method, rest) or self._limits_delete_or_read(method, rest, query)
        if not_a_write is not None:
            return not_a_write
        is_composite = rest.rstrip("/") == "/composite"
        if not is_composite and not ROW_BY_EXTERNAL_ID_PATH.match(rest) and not COLLECTION_PATH.match(rest):
            return not_found()
        if method != ("POST" if is_composite else "PATCH"):
            return method_not_allowed(method, "POST" if is_composite else "PATCH")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return Answer(400, error_list("JSON_PARSER_ERROR", "The request body is not valid JSON"))
        upserts = Upserts(self._store, self._faults, self._rng, self._stats.records_per_call)
        if is_composite:
            return upserts.composite(payload)
        answer = upserts.upsert(rest, payload, version)
        return answer if answer is not None else not_found()

    def _limits_delete_or_read(self, method: str, rest: str, query: str) -> Answer | None:
        """``/limits``, sObject Collections DELETE and the GET of a record by external ID (``deletes.py``);
        None for the upserts."""
        if rest.rstrip("/") == "/limits":
            return Answer(200, self._limits()) if method == "GET" else method_not_allowed(method, "GET")
        if COLLECTIONS_ROOT_PATH.match(rest):
            if method != "DELETE":
                return method_not_allowed(method, "DELETE")
            return delete_collection(self._store, query, self._stats.records_per_call)
        row = ROW_BY_EXTERNAL_ID_PATH.match(rest)
        if row is not None and method == "GET":
            return get_by_external_id(self._store, row["sobject"], row["field"], unquote(row["value"]))
        return None

    def _limits(self) -> dict[str, Any]:
        limit = self.config.api_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - self._api_used)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }

    def _pop_fault(self, endpoint: str) -> Answer | None:
        injected = self._faults.pop(endpoint)
        if injected is not None:
            self._stats.injected_faults += 1
        return injected

    # --- what the control API reads and changes (nrtsync_local.salesforce.control) ----------------

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merges the keys given; ``expire_sessions``, ``api_limit`` and ``api_used`` act at once."""
        with self._lock:
            self._faults.update(changes, self._rng)
            if changes.get("expire_sessions"):
                self._sessions.clear()
            if "api_limit" in changes:
                self.config.api_limit = int(changes["api_limit"])
            if "api_used" in changes:
                self._api_used = int(changes["api_used"])
            return self.faults()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {**self._faults.as_json(), "api_limit": self.config.api_limit, "api_used": self._api_used}

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Changes credentials, the JWT bearer settings, known sObjects (added) and relationships (merged)."""
        with self._lock:
            # ``jwt_public_key_pem`` is the older name of the certificate setting; both take either PEM.
            certificate = changes.get("jwt_certificate_pem", changes.get("jwt_public_key_pem"))
            if certificate is not None:
                load_verification_key(str(certificate))  # a bad PEM is refused now (400), not at the first grant
            for name in ("client_id", "client_secret", "jwt_username"):
                if name in changes:
                    setattr(self.config, name, changes[name])
            if "jwt_certificate_pem" in changes or "jwt_public_key_pem" in changes:
                self.config.jwt_certificate_pem = certificate
            if "sandbox" in changes:
                self.config.sandbox = bool(changes["sandbox"])
            if "enforce_master_detail" in changes:
                self.config.enforce_master_detail = bool(changes["enforce_master_detail"])
            if "experience_site_urls" in changes:
                self.config.experience_site_urls = [str(url) for url in changes["experience_site_urls"] or []]
            self.config.sobjects.update(changes.get("sobjects") or [])
            self.config.relationships.update(changes.get("relationships") or {})
            for sobject, types in (changes.get("fields") or {}).items():
                self.config.fields.setdefault(sobject, {}).update(types)
            return self.config_json()

    def config_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "client_id": self.config.client_id,
                "jwt_username": self.config.jwt_username,
                "jwt_certificate_configured": self.config.jwt_certificate_pem is not None,
                "sandbox": self.config.sandbox,
                "enforce_master_detail": self.config.enforce_master_detail,
                "experience_site_urls": list(self.config.experience_site_urls),
                "sobjects": sorted(self.config.sobjects),
                "relationships": dict(self.config.relationships),
                "fields": {sobject: dict(types) for sobject, types in self.config.fields.items()},
                "api_limit": self.config.api_limit,
            }

    def records(self, sobject: str) -> dict[str, Any]:
        with self._lock:
            return self._store.listing(sobject)

    def seed_records(self, sobject: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Stores records directly (no API call counted): ``{"external_id_field": ..., "records": [...]}``."""
        with self._lock:
            self.config.sobjects.add(sobject)
            staged = self._store.by_sobject.setdefault(sobject, {})
            ext_field = str(payload.get("external_id_field", "Zuora__External_Id__c"))
            results = [
                self._store.upsert_one(
                    sobject,
                    ext_field,
                    dict(record),
                    staged,
                    set(),
                    faults=self._faults,
                    rng=self._rng,
                )
                for record in payload.get("records") or []
            ]
            return {"results": results}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._stats.as_json(), "api_used": self._api_used, "api_limit": self.config.api_limit}

    def reset(self) -> None:
        """Forgets records, faults, counters and API usage; keeps sessions and configuration."""
        with self._lock:
            self._store.clear()
            self._faults = Faults()
            self._stats = Stats()
            self._api_used = 0
