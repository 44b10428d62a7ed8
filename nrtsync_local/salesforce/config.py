"""What the stand-in org is: credentials, the sObjects it knows, their relationships and field types, its limits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from nrtsync_local.salesforce.schema import ZUORA_360_FIELDS, ZUORA_360_PACKAGE, PackageField, SalesforceType

DEFAULT_API_LIMIT = 15_000
DEFAULT_SESSION_TTL_SECONDS = 7_200.0

ZUORA_360_SOBJECTS = (
    "Zuora__CustomerAccount__c",
    "Zuora__Subscription__c",
    "Zuora__ZInvoice__c",
    "Zuora__Payment__c",
    "Zuora__SubscriptionProductCharge__c",
    "Zuora__PaymentMethod__c",
)
DEFAULT_SOBJECTS = ("Account", "Contact", *ZUORA_360_SOBJECTS)
# Relationship name -> the sObject it points to (Zuora 360's lookups to the billing account).
DEFAULT_RELATIONSHIPS = {
    "Zuora__CustomerAccount__r": "Zuora__CustomerAccount__c",
    "Zuora__BillingAccount__r": "Zuora__CustomerAccount__c",
    "Account": "Account",
    "Zuora__Account__r": "Account",
}


@dataclass
class StandinConfig:
    """What the stand-in accepts: credentials, the sObjects it knows, relationships, the API allocation.

    JWT bearer (``nrtsync_local.salesforce.oauth``): ``jwt_certificate_pem`` is the connected app's certificate
    (or a PEM public key), ``jwt_username`` the one pre-authorised user (None: nobody), ``sandbox`` makes the
    org a sandbox (audience https://test.salesforce.com), ``experience_site_urls`` are further audiences.
    """

    client_id: str = field(default_factory=lambda: "3MVG9standin" + secrets.token_hex(8))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt_certificate_pem: str | None = None
    jwt_username: str | None = None
    sandbox: bool = False
    experience_site_urls: list[str] = field(default_factory=list)
    sobjects: set[str] = field(default_factory=lambda: set(DEFAULT_SOBJECTS))
    relationships: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RELATIONSHIPS))
    # sObject -> field -> type: values of these fields are type-checked as Salesforce deserializes them.
    fields: dict[str, dict[str, SalesforceType]] = field(
        default_factory=lambda: {sobject: dict(types) for sobject, types in ZUORA_360_FIELDS.items()}
    )
    # sObject -> field -> the package's metadata (nrtsync_local/salesforce/zuora360_package.json): External IDs,
    # uniqueness, master-details.
    package: dict[str, dict[str, PackageField]] = field(
        default_factory=lambda: {sobject: dict(fields) for sobject, fields in ZUORA_360_PACKAGE.items()}
    )
    # A new record without its master-detail parent, or one cleared with null, is refused as Salesforce always
    # refuses it (REQUIRED_FIELD_MISSING; Salesforce Help, "Object Relationships Overview"), seeded records too.
    # False only for a test that needs a bare org (POST /__standin/config {"enforce_master_detail": false}).
    enforce_master_detail: bool = True
    api_limit: int = DEFAULT_API_LIMIT
    session_ttl_seconds: float = DEFAULT_SESSION_TTL_SECONDS
