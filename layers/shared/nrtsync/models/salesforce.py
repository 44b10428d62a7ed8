"""Salesforce payloads, credentials and errors, as the sync logic sees them (no HTTP library types)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

__all__ = [
    "ApiUsage",
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


class SalesforceCredentials(BaseModel):
    """The Salesforce secret's JSON (Secrets Manager), for the client credentials or the JWT bearer flow.

    ``client_secret`` and ``private_key`` are kept out of ``repr``/``str`` so a logged model leaks nothing.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    auth_flow: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    login_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(default=None, repr=False)
    username: str | None = None
    private_key: str | None = Field(default=None, repr=False)

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint of this org's login URL."""
        return f"{self.login_base_url}/services/oauth2/token"

    @property
    def login_base_url(self) -> str:
        """The login URL without a trailing slash: the JWT audience and the token URL's base."""
        return str(self.login_url).rstrip("/")

    @field_validator("login_url")
    @classmethod
    def _https_only(cls, value: HttpUrl) -> HttpUrl:
        if value.scheme != "https":
            raise ValueError("login_url must use https")
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


class ApiUsage(BaseModel):
    """The org's API allocation as Salesforce last reported it (``Sforce-Limit-Info`` or ``/limits``)."""

    model_config = ConfigDict(frozen=True)

    used: int = Field(ge=0)
    limit: int = Field(ge=0)
    observed_at: datetime

    @property
    def percent(self) -> float:
        """Share of the allocation used, 0..100+ (an allocation of 0 counts as used up)."""
        return 100.0 * self.used / self.limit if self.limit > 0 else 100.0


class SalesforceError(Exception):
    """Base of every error the Salesforce adapter raises.

    ``completed_results`` holds the results of the chunks that Salesforce had already answered when a
    later chunk of the same ``upsert`` failed (empty otherwise); upserts by external ID are idempotent,
    so retrying the whole list is safe too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.completed_results: list[RecordResult] = []


class SalesforceRetryableError(SalesforceError):
    """Salesforce could not be reached or answered 5xx until the attempts or the deadline ran out."""


class SalesforceLimitExceededError(SalesforceRetryableError):
    """The org's API allocation is used up (403 ``REQUEST_LIMIT_EXCEEDED``); retry once it has recovered."""


class SalesforceConcurrencyLimitError(SalesforceRetryableError):
    """The org's concurrent long-running request limit (403 ``REQUEST_LIMIT_EXCEEDED`` whose message names
    ``ConcurrentPerOrgLongTxn``): it clears as the org's long requests finish, in seconds, unlike the daily
    allocation; retry after a short backoff."""


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
