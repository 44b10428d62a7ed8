"""The circuit breaker's contracts: its state (one item in the state table) and the switch of the sync function's
SQS event source mapping. The breaker service imports only this module for them; adapters implement them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class BreakerReason(StrEnum):
    """Why the breaker is open (the item's ``reason``)."""

    API_BUDGET_REACHED = "API_BUDGET_REACHED"
    REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
    SALESFORCE_AUTH = "SALESFORCE_AUTH"
    SALESFORCE_REFUSED = "SALESFORCE_REFUSED"
    SALESFORCE_UNAVAILABLE = "SALESFORCE_UNAVAILABLE"
    MANUAL = "MANUAL"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The breaker as stored: ``by`` is ``sync``, ``probe`` or ``operator:<name>``; ``failures`` counts the
    consecutive failed Salesforce calls across invocations (the outage rule)."""

    is_open: bool
    reason: BreakerReason | None = None
    message: str = ""
    since: datetime | None = None
    by: str = ""
    updated_at: datetime | None = None
    failures: int = 0


class BreakerUnavailableError(RuntimeError):
    """The breaker's state or the event source mapping could not be read or changed."""


class BreakerStore(Protocol):
    def read(self) -> BreakerState:
        """The breaker's state; closed when no item exists."""
        ...

    def write(self, state: BreakerState, *, expected: BreakerState | None = None) -> bool:
        """Replace the state (open or closed), keeping nothing of the old item but what ``state`` says.

        With ``expected``, only if the stored state is still that one (open: the same reason, ``by`` and
        ``updated_at``; closed: any closed state), atomically; False when it changed meanwhile (nothing written).
        Without it, unconditionally: an operator's pause or resume wins over whatever is stored.
        """
        ...

    def count_failure(self, at: datetime) -> int:
        """Add one consecutive failed call (atomically, across invocations); returns the new count."""
        ...

    def reset_failures(self) -> None:
        """A call succeeded: the consecutive count goes back to 0 (no write when it already is)."""
        ...


class BreakerReader(Protocol):
    """What a sweep needs of the breaker: whether Salesforce is paused (reconciliation then queues nothing)."""

    def read(self) -> BreakerState: ...


class EventSourceBusyError(BreakerUnavailableError):
    """The event source mapping is still changing state (``Enabling``, ``Disabling``, ``Updating``) and refused
    another change meanwhile: in progress, not broken; the next probe or the operator's command asks again."""


class EventSourceSwitch(Protocol):
    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable the sync function's SQS event source mapping (idempotent)."""
        ...
