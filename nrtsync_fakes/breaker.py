"""In-memory stand-ins for the circuit breaker's ports (``nrtsync.ports.breaker``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nrtsync.ports.breaker import BreakerUnavailableError


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
