"""The demo stream's parts: a ``Version`` of a Zuora record, the ``Change`` step that makes it in the Zuora
stand-in (with what goes wrong on its callout's way, if anything), the phases they come in, and the ``Stamper``
that dates a change when it is made."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

# Zuora renders dateTimes in the tenant's time zone: Pacific by default, as the Zuora stand-in's.
ZUORA_TZ = ZoneInfo("America/Los_Angeles")


def zuora_date(moment: datetime) -> str:
    """``UpdatedDate`` as Zuora renders it: ``2024-03-05T10:22:39.000-08:00``."""
    return moment.astimezone(ZUORA_TZ).isoformat(timespec="milliseconds")


@dataclass
class Version:
    """One change of one Zuora record: the record's fields after it."""

    object_type: str
    record_id: str
    fields: dict[str, str]
    what: str
    updated_date: datetime | None = None
    """Set when the change is made (``Stamper.stamp``): the record's ``UpdatedDate`` in Zuora."""
    deleted: bool = False
    """The record is deleted in Zuora: its callout is the delete event's (docs/CALLOUTS.md, "Deletes")."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.object_type, self.record_id)


Fault = Literal["", "late", "duplicated", "given_up"]
"""What happens on the way of a change's callout (the Zuora stand-in's delivery faults,
``nrtsync_local/zuora/callouts.py``): ``late``: its first attempt gets no answer, so Zuora retries it after the
retry interval, after later callouts; ``duplicated``: the endpoint's 200 is lost on the way back, so Zuora sends
the same notification again; ``given_up``: no attempt gets an answer, and Zuora gives up after its last retry."""


@dataclass(frozen=True)
class Change:
    """A change made in the Zuora stand-in (created, updated or deleted); its callout is the stand-in's."""

    version: Version
    note: str = ""
    fault: Fault = ""


Step = Change


@dataclass(frozen=True)
class Phase:
    title: str
    steps: list[Step]
    settle: Literal["waiting", "drain"]
    """After the phase: (``waiting``: until ``watch`` shows a waiting change, then) until every callout of the
    phase was delivered or given up on, and the queue is drained."""
    watch: tuple[str, str] | None = None


@dataclass
class DemoStream:
    phases: list[Phase]
    versions: list[Version]
    """Every change in the stream, in the order they are made."""
    refused: set[tuple[str, str]]
    """Records whose only change the org's validation rule refuses: on the failure list, not in Salesforce."""
    highlights: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Records worth a trail in the report: ``stale``, ``early_child``, ``coalesced``, ``row_lock``, ``recovered``,
    ``deleted``, ``linked``, ``amended``."""
    row_lock_ids: list[str] = field(default_factory=list)
    accounts: int = 0
    lost: set[tuple[str, str]] = field(default_factory=set)
    """Records whose newest change's callout Zuora gave up on: only reconciliation brings them."""
    deleted: set[tuple[str, str]] = field(default_factory=set)
    """Records deleted in Zuora (their delete callout delivered): must not be in Salesforce."""

    @property
    def changes(self) -> list[Change]:
        return [step for phase in self.phases for step in phase.steps]


class Stamper:
    """Gives each change its ``UpdatedDate`` when it is made: now, and always later than the record's previous
    change (Zuora's dates of one record never go backwards)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def stamp(self, version: Version, now: datetime | None = None) -> None:
        with self._lock:
            moment = now or datetime.now(UTC)
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            previous = self._last.get(version.key)
            if previous is not None and moment <= previous:
                moment = previous + timedelta(milliseconds=1)
            version.updated_date = moment
            self._last[version.key] = moment
