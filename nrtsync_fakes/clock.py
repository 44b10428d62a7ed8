"""A clock the test moves: the wall clock, the monotonic clock and ``sleep`` on one timeline.

The services take ``clock`` (a datetime), ``monotonic`` (seconds, for deadlines) and ``sleep`` as arguments; a
``FakeClock`` gives all three, so a wait costs no real time and a test can say exactly how long it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """``clock()`` (or ``now``) is the wall clock, ``monotonic()`` the deadline clock; a ``sleep`` is recorded in
    ``sleeps`` and moves both forward, as does ``advance``."""

    def __init__(self, now: datetime = EPOCH, monotonic_now: float = 1_000.0) -> None:
        self.now = now
        self.monotonic_now = monotonic_now
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.monotonic_now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic_now += seconds
