"""The records a benchmark syncs: steady full batches of the four Zuora 360 objects, parents already in Salesforce.

A batch of 200 carries 40 account, 60 subscription, 60 invoice and 40 payment changes (four sObject types, as
real traffic mixes them). Every child points at one of the 40 accounts, which are seeded into the stand-in
before the run (seeding is not an API call). Each batch is a newer version of the same 200 records, so in the
steady state every change is claimed and written (no duplicates, nothing stale, no parent missing).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from nrtsync.domain.mapping import MappingConfig, build_record, cached_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync_local.callouts import callout_body, queued_change
from nrtsync_local.standin.process import StandinClient

BATCH = 200
MIX = (("Account", 40), ("Subscription", 60), ("Invoice", 60), ("Payment", 40))
T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def zuora_id(object_type: str, n: int) -> str:
    prefix = {"Account": "8ad0a", "Subscription": "8ad0s", "Invoice": "8ad0i", "Payment": "8ad0p"}[object_type]
    return f"{prefix}{n:027x}"


def account_ids(count: int = 40) -> list[str]:
    return [zuora_id("Account", n) for n in range(count)]


def fields_for(object_type: str, n: int, seq: int, parent: str) -> dict[str, Any]:
    """Callout fields as the sample events in events/ carry them, varied by record and version."""
    if object_type == "Account":
        return {
            "Name": f"Customer {n} v{seq}",
            "AccountNumber": f"A{n:08d}",
            "Status": "Active",
            "Currency": "USD",
            "Balance": f"{(n * 37 + seq) % 5000}.00",
            "CreditBalance": "0.00",
            "BillCycleDay": "1",
            "PaymentTerm": "Net 30",
            "Batch": "Batch1",
            "AutoPay": "false",
            "LastInvoiceDate": "2026-01-01",
            "CrmId": f"0015g00000X{n:07d}",
        }
    if object_type == "Subscription":
        return {
            "Name": f"A-S{n:08d}",
            "Status": "Active",
            "AccountId": parent,
            "AutoRenew": "true",
            "TermType": "TERMED",
            "TermStartDate": "2026-01-01",
            "TermEndDate": "2027-01-01",
            "SubscriptionStartDate": "2026-01-01",
            "SubscriptionEndDate": "",
            "ContractEffectiveDate": "2026-01-01",
            "CancelledDate": "",
            "Version": str(seq + 1),
        }
    if object_type == "Invoice":
        return {
            "InvoiceNumber": f"INV{n:08d}",
            "Status": "Posted",
            "AccountId": parent,
            "InvoiceDate": "2026-01-05",
            "DueDate": "2026-02-04",
            "PostedDate": "2026-01-05",
            "TargetDate": "2026-01-05",
            "Amount": f"{100 + n}.00",
            "Balance": f"{100 + n - seq % 50}.00",
            "Comments": f"January 2026, version {seq}",
        }
    return {
        "PaymentNumber": f"P-{n:08d}",
        "AccountId": parent,
        "Amount": f"{100 + n}.00",
        "EffectiveDate": "2026-01-05",
        "Status": "Processed",
        "Type": "Electronic",
        "ReferenceId": f"ch_{n:012d}_{seq}",
    }


class Workload:
    """Versions of the same ``size`` records (200: a full batch), a newer version per call of ``batch()``."""

    def __init__(self, size: int = BATCH, mix: tuple[tuple[str, int], ...] = MIX) -> None:
        self.size = size
        self.mix = mix
        self._seq = itertools.count(1)
        self.parents = account_ids(max(1, size * MIX[0][1] // BATCH))

    def batch(self, *, received_at: datetime | None = None) -> list[QueuedChange]:
        seq = next(self._seq)
        updated = T0 + timedelta(seconds=seq)
        received = received_at or datetime.now(UTC)
        changes: list[QueuedChange] = []
        total = sum(share for _, share in self.mix)
        for object_type, share in self.mix:
            for n in range(self.size * share // total):
                record_id = zuora_id(object_type, n)
                parent = self.parents[n % len(self.parents)]
                changes.append(
                    queued_change(
                        object_type,
                        record_id,
                        updated,
                        fields_for(object_type, n, seq, parent),
                        event_type=f"{object_type}Updated",
                        notification_id=str(uuid.uuid4()),
                        received_at=received,
                    )
                )
        return changes


_EDGES = list(itertools.accumulate(share for _, share in MIX))


def live_record(n: int, parents: list[str]) -> tuple[str, str, dict[str, Any]]:
    """The n-th live callout's record: object types in the batch mix, a distinct record each (nothing coalesces)."""
    slot = n % _EDGES[-1]
    object_type = MIX[next(i for i, edge in enumerate(_EDGES) if slot < edge)][0]
    record_id = zuora_id(object_type, 10_000 + n)
    return object_type, record_id, fields_for(object_type, n, 1, parents[n % len(parents)])


def live_callout(n: int, parents: list[str]) -> tuple[bytes, str]:
    """The n-th live callout's body and notification id, ``updatedDate`` the instant before it is sent (so the
    history's ``e2e_ms`` is exactly "send to written")."""
    object_type, record_id, fields = live_record(n, parents)
    updated = datetime.now(UTC).isoformat(timespec="microseconds")
    body = callout_body(object_type, record_id, updated, fields, event_type=f"{object_type}Updated")
    return body, str(uuid.uuid4())


def seed_parents(standin: StandinClient, workload: Workload) -> None:
    """Put the accounts the children point at into the stand-in directly (no API call is counted), each linked to
    its Salesforce Account (a master-detail: the stand-in refuses, and ``seed`` raises for, an account without)."""
    mapping = cached_mapping(None)
    records = [
        build_record(mapping, "Account", pid, fields_for("Account", n, 0, "")) for n, pid in enumerate(workload.parents)
    ]
    account = mapping.objects["Account"]
    standin.seed(account.sobject, records, external_id_field=account.external_id_field)


def sqs_event(
    changes: list[QueuedChange], *, queue_arn: str = "arn:aws:sqs:eu-west-1:000000000000:bench"
) -> dict[str, Any]:
    """The SQS event Lambda's event source mapping would hand the sync function for these changes."""
    records = []
    for n, change in enumerate(changes):
        message_id = str(uuid.uuid4())
        records.append(
            {
                "messageId": message_id,
                "receiptHandle": f"rh-{message_id}-{n}",
                "body": change.model_dump_json(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "bench",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1",
            }
        )
    return {"Records": records}


def baseline_payloads(
    mapping: MappingConfig, changes: list[QueuedChange]
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(sObject, external id field, external id, body) per change: the same mapped record, one per request."""
    payloads = []
    for change in changes:
        obj = mapping.objects[change.object_type]
        record = build_record(mapping, change.object_type, change.record_id, dict(change.fields))
        body = {k: v for k, v in record.items() if k != obj.external_id_field}
        payloads.append((obj.sobject, obj.external_id_field, change.record_id, body))
    return payloads
