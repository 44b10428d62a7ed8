"""The invocation a handler is running: its deadline, and its remaining time for what is built during it.

Clients are built on a container's first invocation and kept; their timeouts come from the time that invocation
has left (``nrtsync.domain.time_budget``), which only the handler's context knows. The handler records its
context here first; an assembly reads the remaining time when it builds.
"""

from __future__ import annotations

import time
from typing import Protocol


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Invocation:
    """The current invocation's context, as far as the remaining time goes."""

    def __init__(self) -> None:
        self._context: RemainingTime | None = None

    def start(self, context: RemainingTime) -> None:
        self._context = context

    def remaining_seconds(self) -> float | None:
        """Seconds left before Lambda stops the function; None outside an invocation (tests, the local stack)."""
        return None if self._context is None else self._context.get_remaining_time_in_millis() / 1000


def deadline_of(context: RemainingTime) -> float:
    """The invocation's deadline as a ``time.monotonic()`` value: what every handler hands its service."""
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000
