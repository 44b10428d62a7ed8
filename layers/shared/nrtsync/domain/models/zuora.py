"""The Zuora secret's JSON (OAuth client credentials for the REST API), and the Zuora client's errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

ZuoraRecord = dict[str, Any]
"""One record of a query result: Zuora field name -> value; fields whose value is null are left out."""


class ZuoraCredentials(BaseModel):
    """The Zuora secret's JSON (Secrets Manager): ``{"base_url", "client_id", "client_secret"}``.

    ``base_url`` is the tenant's REST endpoint, which depends on the data centre and on production or sandbox
    (https://rest.zuora.com, https://rest.eu.zuora.com, https://rest.apisandbox.zuora.com, ...; developer.zuora.com,
    v1 API reference, "Base URL"; docs/ZUORA.md lists them). ``client_secret`` is kept out of ``repr``/``str``
    so a logged model leaks nothing.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    base_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1, repr=False)

    @field_validator("base_url")
    @classmethod
    def _https_without_path(cls, value: HttpUrl) -> HttpUrl:
        # The token travels with every call: never over plain HTTP. A path (".../v1") would double in the URLs.
        if value.scheme != "https":
            raise ValueError("base_url must use https")
        if value.path not in (None, "", "/") or value.query or value.fragment:
            raise ValueError("base_url must be the tenant's REST endpoint without a path, e.g. https://rest.zuora.com")
        return value

    @property
    def base(self) -> str:
        """``base_url`` without a trailing slash."""
        return str(self.base_url).rstrip("/")


class ZuoraError(Exception):
    """Base of every error the Zuora client raises."""


class ZuoraRetryableError(ZuoraError):
    """Zuora could not be reached, answered 5xx, or kept answering 429 until the deadline ran out."""


class ZuoraAuthError(ZuoraError):
    """The token endpoint refused the credentials, or the API refused a fresh token: an operator must fix it."""


class ZuoraRequestError(ZuoraError):
    """Zuora refused the request itself (4xx such as a malformed ZOQL query): retrying will not help."""

    def __init__(self, message: str, *, code: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
