"""The ingest and authorizer functions' settings."""

from __future__ import annotations

import ipaddress
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from nrtsync.domain.settings import EnvSettings, IpNetwork


class IngestSettings(EnvSettings):
    """What the callout endpoint needs."""

    queue_url: str = Field(alias="CALLOUT_QUEUE_URL", min_length=1)
    callout_secret_id: str = Field(alias="CALLOUT_SECRET_ID", min_length=1)
    # At most 128 KiB (the template's MaxValue): the queued change must stay under the queue's 256 KiB message limit,
    # and the event API Gateway hands over (base64 doubles at worst) under Lambda's 6 MB request limit.
    max_body_bytes: int = Field(alias="MAX_CALLOUT_BYTES", default=65_536, ge=1_024, le=131_072)
    # How far a callout's updatedDate may lie after its arrival (clock skew between Zuora and AWS).
    max_clock_skew_seconds: int = Field(alias="MAX_CLOCK_SKEW_SECONDS", default=600, ge=0, le=86_400)
    hmac_header: str = Field(alias="CALLOUT_HMAC_HEADER", default="X-Zuora-Signature", min_length=1)
    auth_realm: str = Field(alias="CALLOUT_AUTH_REALM", default="nrtsync", pattern=r'^[^"\\]+$')
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
    mapping_path: str | None = Field(alias="SYNC_MAPPING_PATH", default=None)
    # Zuora renders dateTimes in the tenant's time zone (Pacific unless the tenant says otherwise): an
    # updatedDate without an offset is read in it. An IANA name.
    tenant_time_zone: str = Field(alias="ZUORA_TENANT_TIME_ZONE", default="America/Los_Angeles")

    @field_validator("tenant_time_zone")
    @classmethod
    def _is_a_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"not an IANA time zone name (such as America/Los_Angeles): {value!r}") from exc
        return value

    # Comma-separated CIDRs (IPv4 and IPv6) a callout may come from; empty allows every source address.
    allowed_source_cidrs: tuple[IpNetwork, ...] = Field(alias="ALLOWED_SOURCE_CIDRS", default=())

    @field_validator("allowed_source_cidrs", mode="before")
    @classmethod
    def _parse_cidrs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        networks = []
        for text in (part.strip() for part in value.split(",")):
            if not text:
                continue
            try:
                # strict: a CIDR with host bits set (10.0.0.1/8) is a typo more often than a wish for 10.0.0.0/8.
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a CIDR block such as 192.0.2.0/24 or 2001:db8::/32: {exc}") from exc
        return tuple(networks)


class AuthorizerSettings(EnvSettings):
    """What the callout API's Lambda authorizer needs: the callout secret, nothing else."""

    callout_secret_id: str = Field(alias="CALLOUT_SECRET_ID", min_length=1)
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
