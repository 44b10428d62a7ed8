"""The changes ``make demo`` makes in the Zuora stand-in: a small tenant's busy minute, with the awkward cases
Zuora's callouts bring.

The stream is built up front from a seed (same seed, same records, names and amounts), as phases of ``Change``
steps. Each change is made in the Zuora stand-in (created, updated or deleted there) when its step runs, dated
then (its ``UpdatedDate``), and the stand-in's event triggers send its callout; what goes wrong on the callout's
way is one of the stand-in's delivery faults, armed for that change (``steps.Fault``).

What it holds (``build_stream``):

* ``accounts`` customer accounts, each with a subscription, an invoice (drafted, then posted) and for about
  two in three a payment, plus the account balance updates those cause: several changes of one record in
  quick succession, which the sync coalesces;
* three accounts whose callouts' first attempts get no answer, so that Zuora retries them after their
  subscriptions' and invoices' callouts were delivered: children **before** their parent;
* an older change of an account whose first attempt gets no answer, so that it is delivered **after** a newer one
  was written (it must be skipped as stale);
* Zuora retries of delivered notifications: the endpoint's 200 is lost on the way back, so the same
  ``Zuora-Notification-Id`` and body come again;
* a burst of renames of one account (superseded by the last);
* an account whose name a Salesforce validation rule refuses (a permanent failure, on the failure list);
* changes whose callouts Zuora gives up on (no attempt answered: three account updates, a new invoice): only
  reconciliation brings them; and an account created by mistake, then deleted in Zuora (its ``DELETE`` callout);
* on every callout, the ``401`` challenge of Zuora's non-preemptive Basic authentication (as ``zuora setup``
  writes the notification definitions).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nrtsync_local.demo.steps import Change, DemoStream, Phase, Step, Version, zuora_date
from nrtsync_local.demo.zuora360 import account_gaining_its_crm_link, amendment_of, crm_account_id

# The stream's step types are in ``steps``; the tests and the demo's modules take them from there or from here.
__all__ = ["ACCOUNT_SOBJECT", "VALIDATION_RULE", "Change", "DemoStream", "build_stream"]


ACCOUNT_SOBJECT = "Zuora__CustomerAccount__c"
REFUSED_NAME = "ZZ Test Account - do not sync"
VALIDATION_RULE = {
    "sobject": ACCOUNT_SOBJECT,
    "field": "Name",
    "equals": REFUSED_NAME,
    "message": "Test accounts must not reach Salesforce (validation rule Block_Test_Accounts)",
}

_ID_PREFIX = {"Account": "8ad09be4", "Subscription": "8ad0887e", "Invoice": "8ad09b7d", "Payment": "8ad0950c"}
_FIRST = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent",
    "Tyrell", "Cyberdyne", "Wonka", "Gringotts", "Monarch", "Aperture", "Oscorp", "Pied Piper", "Massive Dynamic",
    "Blue Sun", "Dunder", "Sterling", "Bluth", "Prestige", "Helix", "Nakatomi", "Rekall", "Zorin", "Octan", "Duff",
)  # fmt: skip
_SECOND = ("Widgets", "Traders", "Analytics", "Freight", "Foods", "Robotics", "Labs", "Logistics", "Media", "Energy")
_SUFFIX = ("Ltd", "Inc", "GmbH", "LLC", "S.A.", "Pty Ltd", "plc", "BV")


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not security
        self.versions: list[Version] = []
        self._numbers = {"Account": 100, "Subscription": 200, "Invoice": 1200, "Payment": 400}

    def zuora_id(self, object_type: str) -> str:
        return _ID_PREFIX[object_type] + f"{self.rng.getrandbits(96):024x}"

    def number(self, object_type: str) -> int:
        self._numbers[object_type] += 1
        return self._numbers[object_type]

    def version(
        self, object_type: str, record_id: str, fields: dict[str, str], what: str, *, deleted: bool = False
    ) -> Version:
        version = Version(object_type, record_id, dict(fields), what, deleted=deleted)
        self.versions.append(version)
        return version

    def newest_fields(self, key: tuple[str, str]) -> dict[str, str]:
        """The fields of the record's last change so far (the next change edits those)."""
        return dict(next(v for v in reversed(self.versions) if v.key == key).fields)


@dataclass
class _Account:
    number: int
    record_id: str
    name: str
    fields: dict[str, str]
    subscription_id: str
    invoice_id: str
    payment_id: str | None
    amount: str
    early: list[Step] = field(default_factory=list)
    sequence: list[Step] = field(default_factory=list)

    @property
    def subscription_key(self) -> tuple[str, str]:
        return ("Subscription", self.subscription_id)


def _account(builder: _Builder, index: int, *, pays: bool, children_early: bool) -> _Account:
    rng = builder.rng
    number = builder.number("Account")
    name = f"{_FIRST[index % len(_FIRST)]} {rng.choice(_SECOND)} {rng.choice(_SUFFIX)}"
    amount = f"{rng.randrange(49, 4_999)}.{rng.choice(('00', '50', '99'))}"
    account_id = builder.zuora_id("Account")
    fields = {
        "Name": name,
        "AccountNumber": f"A{number:08d}",
        "Status": "Active",
        "Currency": rng.choice(("USD", "USD", "EUR", "GBP")),
        "Balance": "0.00",
        "CreditBalance": "0.00",
        "BillCycleDay": str(rng.choice((1, 1, 15, 28))),
        "PaymentTerm": rng.choice(("Due Upon Receipt", "Net 30", "Net 30", "Net 45")),
        "Batch": f"Batch{rng.randrange(1, 4)}",
        "AutoPay": str(pays).lower(),
        "LastInvoiceDate": "",
        # Zuora 360 syncs only billing accounts linked to a Salesforce Account (an unlinked one is held).
        "CrmId": crm_account_id(number),
    }
    account = _Account(
        number=number,
        record_id=account_id,
        name=name,
        fields=fields,
        subscription_id=builder.zuora_id("Subscription"),
        invoice_id=builder.zuora_id("Invoice"),
        payment_id=builder.zuora_id("Payment") if pays else None,
        amount=amount,
    )
    today = datetime.now(UTC).date()
    # Zuora's PostedDate is a dateTime (its callout renders it in the tenant's time zone); the others are dates.
    posted_at = zuora_date(datetime.now(UTC))
    term_end = today.replace(year=today.year + 1)
    subscription_number = f"A-S{builder.number('Subscription'):08d}"
    subscription = builder.version(
        "Subscription",
        account.subscription_id,
        {
            "Name": subscription_number,
            "Status": "Active",
            "AccountId": account_id,
            "AutoRenew": "true",
            "TermType": "TERMED",
            "TermStartDate": today.isoformat(),
            "TermEndDate": term_end.isoformat(),
            "SubscriptionStartDate": today.isoformat(),
            "SubscriptionEndDate": "",
            "ContractEffectiveDate": today.isoformat(),
            "CancelledDate": "",
            "Version": "1",
        },
        "subscription created",
    )
    invoice_fields = {
        "InvoiceNumber": f"INV{builder.number('Invoice'):08d}",
        "Status": "Draft",
        "AccountId": account_id,
        "InvoiceDate": today.isoformat(),
        "DueDate": (today + timedelta(days=30)).isoformat(),
        "PostedDate": "",
        "TargetDate": today.isoformat(),
        "Amount": amount,
        "Balance": amount,
        "Comments": f"{today:%B %Y} - annual plan",
    }
    draft = builder.version("Invoice", account.invoice_id, invoice_fields, "invoice drafted")
    posted = builder.version(
        "Invoice", account.invoice_id, invoice_fields | {"Status": "Posted", "PostedDate": posted_at}, "posted"
    )
    created = builder.version("Account", account_id, fields, "account created")
    billed = builder.version(
        "Account", account_id, fields | {"Balance": amount, "LastInvoiceDate": today.isoformat()}, "balance: invoiced"
    )
    if children_early:
        account.early = [
            Change(created, note="its callout's first attempt unanswered: retried after its children's", fault="late"),
            Change(subscription, note="child before its parent"),
            Change(draft, note="child before its parent"),
        ]
    else:
        account.sequence = [Change(created), Change(subscription), Change(draft)]
    account.sequence += [Change(posted), Change(billed)]
    if account.payment_id is not None:
        payment = builder.version(
            "Payment",
            account.payment_id,
            {
                "PaymentNumber": f"P-{builder.number('Payment'):08d}",
                "AccountId": account_id,
                "Amount": amount,
                "EffectiveDate": today.isoformat(),
                "Status": "Processed",
                "Type": "Electronic",
                "ReferenceId": f"ch_{rng.getrandbits(64):016x}",
            },
            "payment processed",
        )
        paid_invoice = builder.version(
            "Invoice",
            account.invoice_id,
            invoice_fields | {"Status": "Posted", "PostedDate": posted_at, "Balance": "0.00"},
            "invoice paid",
        )
        paid_account = builder.version(
            "Account",
            account_id,
            fields | {"Balance": "0.00", "LastInvoiceDate": today.isoformat()},
            "balance: paid",
        )
        account.sequence += [Change(payment), Change(paid_invoice), Change(paid_account)]
    return account


def _interleave(rng: random.Random, sequences: Sequence[list[Step]], wave: int = 5) -> list[Step]:
    """Several accounts' changes at once, as a busy tenant produces them; each account's own order is kept."""
    merged: list[Step] = []
    for start in range(0, len(sequences), wave):
        active = [list(sequence) for sequence in sequences[start : start + wave] if sequence]
        while active:
            sequence = rng.choice(active)
            merged.append(sequence.pop(0))
            if not sequence:
                active.remove(sequence)
    return merged


def build_stream(*, accounts: int = 24, seed: int = 7) -> DemoStream:
    """The demo's stream: ``accounts`` (at least 8) customer accounts and everything listed in the module doc."""
    if accounts < 8:
        raise ValueError("the demo needs at least 8 accounts for its cases")
    builder = _Builder(seed)
    rng = builder.rng
    tenant = [_account(builder, index, pays=index % 3 != 2, children_early=index < 3) for index in range(accounts)]

    # Phase 1: three accounts created with their subscriptions and invoices; the accounts' callouts come late.
    early = [step for account in tenant for step in account.early]
    # A subscription's Salesforce record (and trail) is its number's: one for all its versions.
    early_child = ("Subscription", builder.newest_fields(tenant[0].subscription_key)["Name"])

    # The stale case: an account's payment-term change, whose callout's first attempt gets no answer; a newer
    # change of the same account is delivered and written before Zuora's retry brings the older one.
    stale = tenant[3]
    older = builder.version(
        "Account", stale.record_id, stale.fields | {"PaymentTerm": "Net 60"}, "payment term Net 60 (delivered late)"
    )
    newer = builder.version(
        "Account",
        stale.record_id,
        stale.fields | {"PaymentTerm": "Net 15", "Name": stale.name + " (Europe)"},
        "renamed, payment term Net 15",
    )
    stale.sequence += [
        Change(older, note="older change delivered after a newer one (first attempt unanswered)", fault="late"),
        Change(newer),
    ]

    # A burst of renames of one account in a second or so: only the last one needs writing.
    burst = tenant[4]
    base = burst.name.rsplit(" ", 1)[0]
    renames = [base, base + " Co", base + " Company", base.upper() + " COMPANY"]
    burst.sequence += [
        Change(builder.version("Account", burst.record_id, burst.fields | {"Name": n}, f"renamed {n!r}"))
        for n in renames
    ]

    traffic = _interleave(rng, [account.sequence for account in tenant])

    # The account an org's validation rule refuses: its only change fails for good.
    refused = builder.version(
        "Account",
        builder.zuora_id("Account"),
        {
            "Name": REFUSED_NAME,
            "AccountNumber": f"A{builder.number('Account'):08d}",
            "Status": "Active",
            "CrmId": crm_account_id(0),
        },
        "test account (refused by a validation rule)",
    )
    traffic.insert(rng.randrange(len(traffic) // 4, len(traffic)), Change(refused))

    unlinked_steps, linked_steps, unlinked_key = account_gaining_its_crm_link(builder, tenant)
    amendment, amended_key = amendment_of(builder, tenant[6])

    highlight_row_lock = tenant[5].invoice_id
    busy = f"A busy minute: {accounts} accounts with their subscriptions, invoices and payments"
    lost_steps, duplicate, delete = _lost_and_deleted(builder, tenant)
    traffic.insert(rng.randrange(len(traffic) // 4, len(traffic)), Change(duplicate))
    lost = [step.version for step in lost_steps]

    # Zuora retries of delivered notifications: the endpoint's 200 was lost on the way back to Zuora. Each is a
    # record's last change, so that its retry finds it written (a duplicate), not overtaken by a newer one.
    last = {version.key: version for version in builder.versions}
    plain = [index for index, step in enumerate(traffic) if not step.fault and last[step.version.key] is step.version]
    for index in rng.sample(plain, 5):
        traffic[index] = Change(
            traffic[index].version, note="Zuora retry of a delivered notification (answer lost)", fault="duplicated"
        )
    return DemoStream(
        phases=[
            Phase("Children before their parents: the accounts' callouts come late", early, settle="waiting",
                  watch=early_child),
            Phase(busy + ", an older change delivered late, Zuora retries", traffic, settle="drain"),
            Phase("A billing account without a CRM link, and its subscription: held, no Salesforce call",
                  unlinked_steps, settle="drain"),
            Phase("The account gains its CRM link (both written), and an amendment: version 2 with a new Id",
                  [*linked_steps, *amendment], settle="drain"),
            Phase(
                "Callouts Zuora gives up on (no attempt answered), and a delete in Zuora",
                [*lost_steps, Change(delete, note="deleted in Zuora: its DELETE callout")],
                settle="drain",
            ),
        ],
        lost={version.key for version in lost},
        deleted={delete.key},
        versions=builder.versions,
        refused={refused.key},
        highlights={
            "stale": ("Account", stale.record_id),
            "early_child": early_child,
            "coalesced": ("Account", burst.record_id),
            "row_lock": ("Invoice", highlight_row_lock),
            "recovered": lost[1].key,
            "deleted": delete.key,
            "linked": unlinked_key,
            "amended": amended_key,
        },
        row_lock_ids=[highlight_row_lock],
        accounts=accounts,
    )  # fmt: skip


def _lost_and_deleted(builder: _Builder, tenant: Sequence[_Account]) -> tuple[list[Change], Version, Version]:
    """Three account updates and a new invoice whose callouts Zuora gives up on (parents and a child: the new
    invoice belongs to one of those accounts); and an account created by mistake, then deleted in Zuora."""
    rng = builder.rng
    edits = [
        (tenant[1], {"AutoPay": "false"}, "autopay turned off"),
        (tenant[6], {"PaymentTerm": "Net 60", "BillCycleDay": "15"}, "payment term Net 60, bill cycle day 15"),
        (tenant[7], {"Name": tenant[7].name + " Holdings"}, "renamed (Holdings)"),
    ]
    steps = [
        Change(builder.version("Account", account.record_id, builder.newest_fields(("Account", account.record_id))
                               | change, what), fault="given_up")
        for account, change, what in edits
    ]  # fmt: skip
    parent = tenant[6]
    amount = f"{rng.randrange(49, 999)}.00"
    invoice = builder.newest_fields(("Invoice", parent.invoice_id)) | {
        "InvoiceNumber": f"INV{builder.number('Invoice'):08d}",
        "Status": "Posted",
        "Amount": amount,
        "Balance": amount,
        "Comments": "Add-on: extra seats",
    }
    added = builder.version("Invoice", builder.zuora_id("Invoice"), invoice, "new invoice (add-on)")
    steps.append(Change(added, fault="given_up"))

    duplicate_id = builder.zuora_id("Account")
    name = f"{tenant[2].name} (duplicate)"
    number = builder.number("Account")
    fields = {"Name": name, "AccountNumber": f"A{number:08d}", "Status": "Active", "CrmId": crm_account_id(number)}
    duplicate = builder.version("Account", duplicate_id, fields, "duplicate account created by mistake")
    delete = builder.version("Account", duplicate_id, {}, "deleted in Zuora", deleted=True)
    return steps, duplicate, delete
