"""Salesforce payloads, credentials and errors, as the sync logic sees them (no HTTP library types)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "GONE_CODES",
    "CollectionDelete",
    "CollectionUpsert",
    "RecordError",
    "RecordResult",
    "SalesforceAuthError",
    "SalesforceConcurrencyLimitError",
    "SalesforceCredentials",
    "SalesforceError",
    "SalesforceLimitExceededError",
    "SalesforceRequestError",
    "SalesforceRetryableError",
]

# Salesforce Help, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration": the assertion's ``aud`` is
# https://login.salesforce.com, https://test.salesforce.com or an Experience Cloud site URL, whichever token
# endpoint (My Domain included) receives it.
PRODUCTION_JWT_AUDIENCE = "https://login.salesforce.com"
SANDBOX_JWT_AUDIENCE = "https://test.salesforce.com"
# Sandbox login hosts: test.salesforce.com; enhanced-domain sandbox My Domains (acme--dev.sandbox.my.salesforce.com);
# pre-enhanced ones (acme--dev.my.salesforce.com, acme--dev.cs42.my.salesforce.com); CS instances (cs42.salesforce.com).
# The same rules as the Salesforce CLI's SfdcUrl.isSandboxUrl, without its DNS look-up.
_SANDBOX_HOST = re.compile(
    r"^(?:test\.salesforce\.com"
    r"|[a-z0-9-]+\.sandbox\.my\.salesforce\.com"
    r"|[a-z0-9-]+--[a-z0-9-]+(?:\.cs\d+)?\.my\.salesforce\.com"
    r"|cs\d+(?:\.my)?\.salesforce\.com)$"
)
_OWN_DOMAIN_SUFFIX = ".my.salesforce.com"
_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})


class SalesforceCredentials(BaseModel):
    """The Salesforce secret's JSON (Secrets Manager), for the client credentials or the JWT bearer flow.

    ``client_secret`` and ``private_key`` are kept out of ``repr``/``str`` so a logged model leaks nothing.
    ``audience`` (JWT bearer only) is the assertion's ``aud``; see ``jwt_audience`` for its default.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    auth_flow: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    login_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(default=None, repr=False)
    username: str | None = None
    private_key: str | None = Field(default=None, repr=False)
    audience: HttpUrl | None = None

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint of this org's login URL."""
        return f"{self.login_base_url}/services/oauth2/token"

    @property
    def login_base_url(self) -> str:
        """The login URL without a trailing slash: the token URL's base (never the JWT audience)."""
        return str(self.login_url).rstrip("/")

    @property
    def jwt_audience(self) -> str:
        """The JWT bearer assertion's ``aud``: ``audience`` if set, else by the login URL's host,
        https://test.salesforce.com for a sandbox and https://login.salesforce.com otherwise.

        Not the login URL itself: Salesforce refuses a My Domain audience (``invalid_grant: audience is invalid``)
        even when the token endpoint is that My Domain.
        """
        if self.audience is not None:
            return str(self.audience).rstrip("/")
        host = (self.login_url.host or "").lower()
        return SANDBOX_JWT_AUDIENCE if _SANDBOX_HOST.match(host) else PRODUCTION_JWT_AUDIENCE

    @field_validator("login_url")
    @classmethod
    def _https_only(cls, value: HttpUrl) -> HttpUrl:
        if value.scheme != "https":
            raise ValueError("login_url must use https")
        return value

    @field_validator("audience")
    @classmethod
    def _salesforce_audience(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is None:
            return value
        host = (value.host or "").lower()
        if value.scheme != "https":
            raise ValueError("audience must use https")
        if value.query or value.fragment:
            raise ValueError("audience must not have a query or fragment")
        if host.endswith(_OWN_DOMAIN_SUFFIX):
            # The mistake the default exists to avoid: Salesforce never accepts a My Domain as the audience.
            raise ValueError(
                f"audience must be {PRODUCTION_JWT_AUDIENCE}, {SANDBOX_JWT_AUDIENCE} or an Experience Cloud site URL, "
                f"not a My Domain ({host}); leave it out to use the default"
            )
        if host in _LOGIN_HOSTS and (value.path or "/") != "/":
            raise ValueError(f"audience must be https://{host} without a path (not the token endpoint)")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem_newlines(cls, value: str | None) -> str | None:
        # A PEM pasted into a JSON secret often arrives with literal "\n" sequences instead of newlines.
        if value is not None and "\\n" in value and "\n" not in value:
            return value.replace("\\n", "\n")
        return value

    @model_validator(mode="after")
    def _flow_fields_present(self) -> Self:
        if self.auth_flow == "client_credentials":
            if not self.client_secret:
                raise ValueError("client_credentials flow needs client_secret")
            return self
        missing = [name for name in ("username", "private_key") if not getattr(self, name)]
        if missing:
            raise ValueError(f"jwt_bearer flow needs {', '.join(missing)}")
        # Imported here: only a JWT bearer secret needs it, and cryptography is about 35 ms of a cold import.
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        try:
            key = serialization.load_pem_private_key((self.private_key or "").encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("private_key is not an unencrypted PEM private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            # pydantic turns ValueError (not TypeError) into a validation error.
            raise ValueError("private_key must be an RSA key (the JWT bearer flow signs with RS256)")  # noqa: TRY004
        return self


class RecordError(BaseModel):
    """One error Salesforce gave for one record (``statusCode`` in the API, e.g. ``UNABLE_TO_LOCK_ROW``)."""

    model_config = ConfigDict(frozen=True)

    status_code: str
    message: str
    fields: list[str] = Field(default_factory=list)


class CollectionUpsert(BaseModel):
    """One sObject Collections upsert: up to 200 records (without the ``attributes`` wrapper) of one sObject,
    matched by ``external_id_field``; several travel in one Composite call (``upsert_collections``)."""

    model_config = ConfigDict(frozen=True)

    sobject: str = Field(min_length=1)
    external_id_field: str = Field(min_length=1)
    records: list[dict[str, Any]] = Field(min_length=1, max_length=200)  # sObject Collections takes 1..200


class CollectionDelete(BaseModel):
    """One sObject Collections delete: up to 200 Salesforce Ids (REST API Developer Guide, "Delete Records Using
    sObject Collections": ``DELETE /composite/sobjects?ids=...&allOrNone=false``, one DeleteResult per Id in
    order). ``sobject`` is ours, for logs and ordering; Salesforce reads only the Ids."""

    model_config = ConfigDict(frozen=True)

    sobject: str = Field(min_length=1)
    ids: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")]] = Field(
        min_length=1, max_length=200
    )


# A delete's per-record codes that mean the record is already gone: the delete is done. ENTITY_IS_DELETED (in the
# recycle bin), INVALID_CROSS_REFERENCE_KEY (no such Id in the org), NOT_FOUND (REST's "no such resource").
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})


class RecordResult(BaseModel):
    """What Salesforce did with one record of an upsert, in the order the records were sent."""

    model_config = ConfigDict(frozen=True)

    success: bool
    salesforce_id: str | None = None
    created: bool | None = None
    errors: list[RecordError] = Field(default_factory=list)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> RecordResult:
        """Builds a result from one element of the sObject Collections response (``id``, ``success``, ...)."""
        return cls(
            success=bool(item.get("success")),
            salesforce_id=item.get("id"),
            created=item.get("created"),
            errors=[
                RecordError(
                    status_code=str(error.get("statusCode", "UNKNOWN")),
                    message=str(error.get("message", "")),
                    fields=[str(field) for field in error.get("fields") or []],
                )
                for error in item.get("errors") or []
            ],
        )


class SalesforceError(Exception):
    """Base of every error the Salesforce adapter raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SalesforceRetryableError(SalesforceError):
    """Salesforce could not be reached or answered 5xx until the attempts or the deadline ran out.

    ``in_doubt``: the failure does not prove that the request is over (a read timeout, a 502/504 from a front that
    gave up waiting, a connection lost after the request went out): Salesforce keeps executing a request after its
    client gave up, so the request may still commit. False where nothing can have run or the request has ended
    (connection refused, 429, Salesforce's own 500/503 answer, the deadline reached before any attempt).
    ``http_status``: the last attempt's 5xx, when it had one.
    """

    def __init__(self, message: str, *, in_doubt: bool = True, http_status: int | None = None) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt
        self.http_status = http_status

    @property
    def server_failed(self) -> bool:
        """Salesforce answered 5xx (e.g. ``UNKNOWN_EXCEPTION``), which one record of a collection can cause."""
        return self.http_status is not None and self.http_status >= 500


class SalesforceLimitExceededError(SalesforceRetryableError):
    """The org's API allocation is used up (403 ``REQUEST_LIMIT_EXCEEDED``); retry once it has recovered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, in_doubt=False, http_status=403)  # refused before anything ran


class SalesforceConcurrencyLimitError(SalesforceRetryableError):
    """The org's concurrent long-running request limit (403 ``REQUEST_LIMIT_EXCEEDED`` whose message names
    ``ConcurrentPerOrgLongTxn``): it clears as the org's long requests finish, in seconds, unlike the daily
    allocation; retry after a short backoff."""

    def __init__(self, message: str) -> None:
        super().__init__(message, in_doubt=False, http_status=403)  # refused before anything ran


class SalesforceAuthError(SalesforceError):
    """The token endpoint refused the credentials, or the API refused a fresh token: an operator must fix it."""


class SalesforceRequestError(SalesforceError):
    """Salesforce refused the whole request (4xx such as an unknown sObject or field): permanent for its records.

    ``status_code`` is Salesforce's ``errorCode`` (e.g. ``NOT_FOUND``), ``http_status`` the HTTP status.
    """

    def __init__(self, message: str, *, status_code: str, http_status: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.http_status = http_status
