"""The drill's change stream: seeded versions of a few hundred Zuora accounts and subscriptions, some re-delivered,
some reordered, a few permanently invalid. Every random draw comes from the drill's one seeded generator, in
the same order, so a seed gives the same stream."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from nrtsync_local.callouts import callout_body, queued_change

if TYPE_CHECKING:
    from nrtsync_local.drill.config import DrillConfig

REFUSED_NAME = "Refused by the drill's validation rule"
UNCONVERTIBLE = "not-a-number"
VALIDATION_CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
MAPPING_CODE = "MAPPING_ERROR"


@dataclass(frozen=True)
class Change:
    """One Zuora change as the drill made it: one notification, delivered once or more."""

    seq: int
    object_type: str
    record_id: str
    version: int
    updated: datetime
    fields: dict[str, str]
    notification_id: str
    refusal: str | None = None
    """The error code this change must end with on the failure list; None for a valid change."""

    @property
    def key(self) -> tuple[str, str]:
        return self.object_type, self.record_id

    @property
    def record_key(self) -> str:
        return f"{self.object_type}#{self.record_id}"

    def callout_body(self) -> bytes:
        """The body Zuora's callout template renders (README: the canonical callout)."""
        return callout_body(self.object_type, self.record_id, self._updated_date, self.fields, event_type=self._event)

    def queued_body(self, received_at: datetime) -> str:
        """The queue message ingest would send for this change, received now."""
        return queued_change(
            self.object_type,
            self.record_id,
            self.updated,
            self.fields,
            event_type=self._event,
            notification_id=self.notification_id,
            received_at=received_at,
        ).model_dump_json()

    @property
    def _event(self) -> str:
        return f"Nrtsync{self.object_type}Changed"

    @property
    def _updated_date(self) -> str:
        return self.updated.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Delivery:
    change: Change
    http: bool
    redelivery: bool = False


Scheduled = tuple[float, Delivery]  # (monotonic time it is due, the delivery)


class ChangeGenerator:
    """Makes the changes; ``changes`` is every change made so far, in order. ``quarantined_until`` gives, for a
    record key, the monotonic time until which the record should get no new change (a killed invocation leases it).
    """

    def __init__(
        self,
        config: DrillConfig,
        rng: random.Random,
        quarantined_until: Callable[[str], float],
        counts: Counter[str],
    ) -> None:
        self._config = config
        self._rng = rng
        self._quarantined_until = quarantined_until
        self._counts = counts
        self.changes: list[Change] = []
        self._next_version: dict[tuple[str, str], int] = defaultdict(int)
        self._last_updated: dict[tuple[str, str], datetime] = {}
        self._accounts = max(1, round(config.records * 2 / 3))
        self.records: list[tuple[str, str]] = [("Account", f"A{i:05d}") for i in range(self._accounts)] + [
            ("Subscription", f"S{i:05d}") for i in range(config.records - self._accounts)
        ]

    def generate(self, now: float) -> list[Scheduled]:
        """One new change (two when reordered), and the re-deliveries drawn for what was made."""
        config, rng = self._config, self._rng
        scheduled: list[Scheduled] = []
        key = self._pick_record(now)
        first = self._new_change(key)
        if rng.random() < config.reorder_share and len(self.changes) < config.changes:
            # Zuora does not promise order: the newer version arrives first, this one seconds later (another batch).
            newer = self._new_change(key)
            scheduled.append((now, Delivery(newer, http=rng.random() < config.http_share)))
            scheduled.append((now + rng.uniform(1.5, 6.0), Delivery(first, http=rng.random() < config.http_share)))
            self._counts["reordered"] += 1
        else:
            scheduled.append((now, Delivery(first, http=rng.random() < config.http_share)))
        for change in self.changes[first.seq :]:
            if rng.random() < config.redeliver_share:
                # Zuora re-delivers: same notification id, same body, a little (or a lot) later.
                scheduled.append(
                    (now + rng.uniform(0.2, 12.0), Delivery(change, http=rng.random() < 0.5, redelivery=True))
                )
        return scheduled

    def invalid(self, now: float, code: str) -> Scheduled:
        """A change the org (or the mapping) refuses for good, to a record of its own, over HTTP (ingest takes it)."""
        record_id = f"BAD{self._counts['invalid_sent']:04d}"
        self._counts["invalid_sent"] += 1
        return now, Delivery(self._new_change(("Account", record_id), refusal=code), http=True)

    def _pick_record(self, now: float) -> tuple[str, str]:
        for _ in range(20):
            key = self._rng.choice(self.records)
            if key[0] == "Subscription" and not self._next_version[("Account", self._parent_of(key[1]))]:
                key = ("Account", self._parent_of(key[1]))  # Zuora has the account before its subscriptions
            if self._quarantined_until(f"{key[0]}#{key[1]}") <= now:
                return key
        return key  # all tried are quarantined: the outbox defers it anyway

    def _parent_of(self, subscription_id: str) -> str:
        return f"A{int(subscription_id[1:]) % self._accounts:05d}"

    def _new_change(self, key: tuple[str, str], *, refusal: str | None = None) -> Change:
        object_type, record_id = key
        self._next_version[key] += 1
        version = self._next_version[key]
        moment = datetime.now(UTC).replace(microsecond=datetime.now(UTC).microsecond // 1000 * 1000)
        previous = self._last_updated.get(key)
        if previous is not None and moment <= previous:
            moment = previous + timedelta(milliseconds=1)  # Zuora's updatedDate grows with every change
        self._last_updated[key] = moment
        if object_type == "Account":
            fields = {"Name": f"Account {record_id} v{version}", "Balance": str(version), "AccountNumber": record_id}
            # Linked to a Salesforce Account, as Zuora 360 requires (an unlinked account is held, not written).
            fields["CrmId"] = f"0015g{record_id.encode().hex()[:13]:0>13}"
        else:
            parent = self._parent_of(record_id)
            # A subscription's Name is its number, the same in every version; its Version counts them.
            fields = {"Name": record_id, "Version": str(version), "AccountId": parent}
        if refusal == VALIDATION_CODE:
            fields["Name"] = REFUSED_NAME
        elif refusal == MAPPING_CODE:
            fields["Balance"] = UNCONVERTIBLE
        change = Change(
            seq=len(self.changes),
            object_type=object_type,
            record_id=record_id,
            version=version,
            updated=moment,
            fields=fields,
            notification_id=f"drill-{uuid.UUID(int=self._rng.getrandbits(128))}",
            refusal=refusal,
        )
        self.changes.append(change)
        return change
