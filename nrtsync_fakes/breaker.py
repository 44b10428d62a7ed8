"""In-memory stand-ins for the circuit breaker's ports (``nrtsync.ports.breaker``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from nrtsync.ports.breaker import BreakerState, BreakerUnavailableError


@dataclass
class FakeEventSourceSwitch:
    """The sync function's event source mapping: its enabled state and every change asked for."""

    enabled: bool = True
    changes: list[bool] = field(default_factory=list)
    fail: bool = False  # the Lambda API refuses the next changes

    def set_enabled(self, enabled: bool) -> None:
        if self.fail:
            raise BreakerUnavailableError("injected: UpdateEventSourceMapping refused")
        self.changes.append(enabled)
        self.enabled = enabled


class MemoryBreakerStore:
    """``BreakerStore``: the breaker's state and its count of failed calls, as the ``ORG#BREAKER`` item keeps them
    (times to the second; a ``write`` sets the count the state carries, ``count_failure`` adds one to it)."""

    def __init__(self, state: BreakerState | None = None) -> None:
        self.state = state or BreakerState(is_open=False)

    def read(self) -> BreakerState:
        return self.state

    def write(self, state: BreakerState, *, expected: BreakerState | None = None) -> bool:
        if expected is not None and not _still(self.state, expected):
            return False
        self.state = replace(state, since=_to_the_second(state.since), updated_at=_to_the_second(state.updated_at))
        return True

    def count_failure(self, at: datetime) -> int:
        self.state = replace(self.state, failures=self.state.failures + 1)
        return self.state.failures

    def reset_failures(self) -> None:
        if self.state.failures > 0:
            self.state = replace(self.state, failures=0)


def _to_the_second(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(microsecond=0)


def _still(stored: BreakerState, expected: BreakerState) -> bool:
    """The stored item's condition as DynamoBreakerStore writes it: closed matches any closed state; open matches
    the same opening (reason, by, updated_at to the second)."""
    if not expected.is_open:
        return not stored.is_open
    return (
        stored.is_open
        and stored.reason == expected.reason
        and stored.by == expected.by
        and stored.updated_at == _to_the_second(expected.updated_at)
    )
