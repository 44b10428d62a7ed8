"""The demo's Zuora 360 cases: a billing account without a CRM link (held, then written when the link arrives) and
a subscription's amendment (version 2 with a new Id, version 1 Expired after it: one Salesforce record)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nrtsync_local.demo.steps import Change, Step

if TYPE_CHECKING:
    from nrtsync_local.demo.stream import _Account as Account
    from nrtsync_local.demo.stream import _Builder as Builder


def crm_account_id(number: int) -> str:
    """The Salesforce Account a demo billing account belongs to (its CrmId): an 18-character Account Id."""
    return f"0015g00000{number:08d}"


def account_gaining_its_crm_link(
    builder: Builder, tenant: Sequence[Account]
) -> tuple[list[Step], list[Step], tuple[str, str]]:
    """A new billing account without a CrmId, and its subscription (both held: Zuora 360 syncs only accounts
    linked to a Salesforce Account); then the account's update that links it (both written)."""
    account_id = builder.zuora_id("Account")
    number = builder.number("Account")
    fields = {
        "Name": f"{tenant[0].name.split(' ')[0]} Newco Ltd",
        "AccountNumber": f"A{number:08d}",
        "Status": "Active",
    }
    unlinked = builder.version("Account", account_id, fields | {"CrmId": ""}, "created without a CRM link (held)")
    subscription_number = f"A-S{builder.number('Subscription'):08d}"
    subscription = builder.version(
        "Subscription",
        builder.zuora_id("Subscription"),
        {
            "Name": subscription_number,
            "Status": "Active",
            "AccountId": account_id,
            "Version": "1",
        },
        "subscription of an account without a CRM link (held)",
    )
    linked = builder.version(
        "Account",
        account_id,
        fields | {"CrmId": crm_account_id(number)},
        "CRM link added (account and held child written)",
    )
    return [Change(unlinked), Change(subscription)], [Change(linked)], ("Account", account_id)


def amendment_of(builder: Builder, account: Account) -> tuple[list[Step], tuple[str, str]]:
    """Zuora's amendment of a subscription: version 2 inserted with a new Id, then version 1 updated to Expired
    (a later UpdatedDate). Salesforce must end with one record, version 2's."""
    first = builder.newest_fields(account.subscription_key)
    version_2 = builder.version(
        "Subscription",
        builder.zuora_id("Subscription"),
        first | {"Version": "2", "AutoRenew": "false"},
        "amendment: version 2, a new Id, auto-renew off",
    )
    expired = builder.version(
        "Subscription", account.subscription_id, first | {"Status": "Expired"}, "version 1 expired (after version 2)"
    )
    return [Change(version_2), Change(expired)], ("Subscription", first["Name"])
