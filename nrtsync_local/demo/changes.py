"""How the demo makes its changes: each in the Zuora stand-in (through its control routes, as an edit in Zuora),
with the stand-in's delivery fault armed for it first when the stream says so; and the stand-in's delivery
history read back (one row per attempt, like Zuora's "Notification History - Callout")."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrtsync_local.demo.progress import Progress
from nrtsync_local.demo.steps import Change, Phase, Stamper
from nrtsync_local.demo.tenant import DemoTenant

if TYPE_CHECKING:
    from nrtsync_local.standin.process import ZuoraStandinClient


@dataclass(frozen=True)
class Attempt:
    """One attempt of one callout, from the Zuora stand-in's delivery history."""

    phase: int
    notification_id: str
    object_type: str
    record_id: str
    change: str
    updated_date: str | None
    attempt: int
    attempt_limit: int
    status: int | None
    """The HTTP status Zuora saw; None: no answer reached Zuora."""
    challenged: bool
    """The endpoint answered the attempt's first request, without credentials, with Basic's 401 challenge."""
    delivered: bool
    final: bool
    fault: str | None
    """The stand-in's delivery fault that hit this attempt (``no_answer``, ``answer_lost``), if any."""
    endpoint_status: int | None
    """With ``answer_lost``: what the endpoint answered (Zuora never saw it)."""
    error: str = ""
    """Why Zuora did not call at all (a value its formats cannot render, a URL it never calls)."""

    @classmethod
    def of(cls, phase: int, row: dict[str, Any]) -> Attempt:
        return cls(
            phase=phase,
            notification_id=str(row["notification_id"]),
            object_type=str(row["object_type"]),
            record_id=str(row["record_id"]),
            change=str(row["change"]),
            updated_date=row.get("updated_date"),
            attempt=int(row["attempt"]),
            attempt_limit=int(row["attempt_limit"]),
            status=row.get("status"),
            challenged=bool(row.get("challenged")),
            delivered=bool(row["delivered"]),
            final=bool(row["final"]),
            fault=row.get("fault"),
            endpoint_status=row.get("endpoint_status"),
            error=str(row.get("error") or ""),
        )

    @property
    def given_up(self) -> bool:
        """Zuora's last attempt of the notification, and it failed."""
        return self.final and not self.delivered

    @property
    def reached_endpoint(self) -> bool:
        return self.fault != "no_answer"


class ChangeMaker:
    """Makes the stream's changes in the Zuora stand-in, one at a time, in the stream's order."""

    def __init__(self, zuora: ZuoraStandinClient, stamper: Stamper) -> None:
        self._zuora = zuora
        self._tenant = DemoTenant(zuora)
        self._stamper = stamper
        settings = zuora.callouts()["settings"]
        self.attempt_limit = int(settings["retries"]) + 1
        """How many attempts Zuora makes of one notification (its first and its retries)."""

    def make(self, change: Change) -> None:
        version = change.version
        fault = {
            "late": {"fault": "no_answer", "attempts": 1},
            "duplicated": {"fault": "answer_lost", "attempts": 1},
            "given_up": {"fault": "no_answer", "attempts": self.attempt_limit},
        }.get(change.fault)
        if fault is not None:
            self._zuora.callouts(faults=[{"record_id": version.record_id, **fault}])
        self._stamper.stamp(version)
        self._tenant.happened(version)

    def history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self._zuora.callouts()["history"]
        return history

    def pending(self) -> int:
        return int(self._zuora.callouts()["pending"])


def make_phase(maker: ChangeMaker, phase: Phase, progress: Progress) -> float:
    """Makes a phase's changes in the Zuora stand-in; returns the seconds it took."""
    started = time.monotonic()
    bar = progress.bar("changing records in Zuora")
    try:
        for done, change in enumerate(phase.steps, 1):
            maker.make(change)
            bar(done, len(phase.steps))
    finally:
        progress.clear()
    return time.monotonic() - started
