"""The demo stream's parts: a ``Version`` of a Zuora record, the steps that make it happen or deliver it (or
lose its callout, or deliver an invalid callout), the phases they come in, and the ``Stamper`` that dates a
change when it happens."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from nrtsync_local.callouts import callout_document

# Zuora renders UpdatedDate in the tenant's time zone; a US tenant on Pacific standard time.
ZUORA_TZ = timezone(timedelta(hours=-8))
# The delay between a change in Zuora and its callout leaving Zuora (seconds), for the stamped updatedDate.
CALLOUT_DELAY_SECONDS = (0.2, 1.2)


def zuora_date(moment: datetime) -> str:
    """``updatedDate`` as the callout template renders it: ``2024-03-05T10:22:39.000-08:00``."""
    return moment.astimezone(ZUORA_TZ).isoformat(timespec="milliseconds")


@dataclass
class Version:
    """One change of one Zuora record: what its callout template renders when the change happens."""

    object_type: str
    record_id: str
    fields: dict[str, str]
    notification_id: str
    what: str
    updated_date: datetime | None = None
    """Set when the change happens (``Stamper.stamp``); the callout body needs it."""
    deleted: bool = False
    """The record is deleted in Zuora: its callout is the delete event's (docs/CALLOUTS.md, "Deletes")."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.object_type, self.record_id)

    def document(self) -> dict[str, object]:
        if self.updated_date is None:
            raise RuntimeError(f"{self.object_type} {self.record_id} ({self.what}) has not happened yet")
        # A deleted record's callout is the delete event's template (docs/CALLOUTS.md, "Deletes"): no fields.
        return callout_document(
            self.object_type,
            self.record_id,
            zuora_date(self.updated_date),
            None if self.deleted else self.fields,
            event_type=f"Nrtsync{self.object_type}{'Deleted' if self.deleted else 'Changed'}",
        )

    def body(self) -> bytes:
        return json.dumps(self.document(), indent=2).encode("utf-8")


@dataclass(frozen=True)
class Deliver:
    """Zuora calls out with ``version`` (stamping it first if ``happen``: the change happens now)."""

    version: Version
    happen: bool = True
    note: str = ""
    auth: Literal["valid", "none"] = "valid"

    @property
    def expected_status(self) -> int:
        return 200 if self.auth == "valid" else 401


@dataclass(frozen=True)
class Happen:
    """The change happens in Zuora now, but its callout is held back (delivered by a later step)."""

    version: Version


@dataclass(frozen=True)
class GiveUp:
    """The change happens in Zuora now, but its callout never reaches us: Zuora tried it (3 times by default, at
    least 30 minutes apart; docs/ZUORA.md) and gave up after its last retry. Only reconciliation recovers it."""

    version: Version


@dataclass(frozen=True)
class Invalid:
    """A callout the endpoint must refuse; ``record_key`` names a record that must not reach Salesforce."""

    what: str
    expected_status: int
    notification_id: str
    body: bytes = b""
    auth: Literal["valid", "wrong"] = "valid"
    record_key: tuple[str, str] | None = None
    template: Version | None = None
    """When set, the body is this (never delivered) version's, with ``mutate`` applied at send time."""
    mutate: str = ""

    def render(self) -> bytes:
        if self.template is None:
            return self.body
        document = self.template.document()
        if self.mutate == "drop_id":
            document.pop("id")
        elif self.mutate == "bare_date":
            document["updatedDate"] = str(document["updatedDate"])[:10]
        elif self.mutate == "object_type":
            document["objectType"] = "Contact"
        elif self.mutate == "broken_quote":
            # What a template yields for a name with a double quote: the merge field is pasted in unescaped.
            name = self.template.fields["Name"]
            text = json.dumps(document, indent=2)
            return text.replace(json.dumps(name), f'"{name.replace("Bob", chr(34) + "Bob" + chr(34))}"').encode()
        return json.dumps(document, indent=2).encode("utf-8")


Step = Deliver | Happen | GiveUp | Invalid


@dataclass(frozen=True)
class Phase:
    title: str
    steps: list[Step]
    settle: Literal["waiting", "drain", "none"]
    """After the phase: wait until ``watch`` shows a waiting change, until the queue is drained, or not at all."""
    watch: tuple[str, str] | None = None


@dataclass
class DemoStream:
    phases: list[Phase]
    versions: list[Version]
    """Every valid change in the stream (delivered or not)."""
    refused: set[tuple[str, str]]
    """Records whose only change the org's validation rule refuses: on the failure list, not in Salesforce."""
    invalid_only: set[tuple[str, str]]
    """Records named only by refused callouts: must not reach Salesforce."""
    highlights: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Records worth a trail in the report: ``stale``, ``early_child``, ``coalesced``, ``row_lock``, ``recovered``,
    ``deleted``."""
    row_lock_ids: list[str] = field(default_factory=list)
    accounts: int = 0
    lost: set[tuple[str, str]] = field(default_factory=set)
    """Records whose newest change's callout Zuora gave up on (``GiveUp``): only reconciliation brings them."""
    deleted: set[tuple[str, str]] = field(default_factory=set)
    """Records deleted in Zuora (their delete callout delivered): must not be in Salesforce."""


class Stamper:
    """Gives each change its ``updatedDate`` when it happens: now minus Zuora's callout delay, and always
    later than the record's previous change (Zuora's dates of one record never go backwards)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._last: dict[tuple[str, str], datetime] = {}

    def stamp(self, version: Version, now: datetime | None = None) -> None:
        moment = (now or datetime.now(UTC)) - timedelta(seconds=self._rng.uniform(*CALLOUT_DELAY_SECONDS))
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        previous = self._last.get(version.key)
        if previous is not None and moment <= previous:
            moment = previous + timedelta(milliseconds=1)
        version.updated_date = moment
        self._last[version.key] = moment
