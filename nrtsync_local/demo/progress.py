"""The demo's progress: stage lines on the report stream, a live line on a terminal while something is awaited,
and the waits themselves (the Zuora stand-in's callouts all delivered or given up on, the queue drained, a
record's trail showing ``waiting``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from nrtsync_cli.render import ProgressBar
from nrtsync_local.stack import LocalDeployment

DRAIN_TIMEOUT_SECONDS = 90.0
WAITING_TIMEOUT_SECONDS = 15.0
CALLOUTS_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.2


class Progress:
    """Stage lines on the report stream; a live line on stderr (only on a terminal) while something is awaited."""

    def __init__(self, out: TextIO, err: TextIO, total_stages: int) -> None:
        self._out, self._err = out, err
        self._total = total_stages
        self._stage = 0
        self._started = time.monotonic()
        self._live = err.isatty()

    def stage(self, text: str) -> None:
        self._stage += 1
        print(f"[{self._stage}/{self._total}] {text}", file=self._out, flush=True)

    def note(self, text: str) -> None:
        print(f"      {text}", file=self._out, flush=True)

    def live(self, text: str) -> None:
        if self._live:
            print(f"\r      {text}\x1b[K", end="", file=self._err, flush=True)

    def clear(self) -> None:
        if self._live:
            print("\r\x1b[K", end="", file=self._err, flush=True)

    def bar(self, label: str) -> Callable[[int, int], None]:
        """The CLI's progress bar on the live line, or nothing when the error stream is not a terminal."""
        if not self._live:
            return lambda _done, _total: None
        return ProgressBar(f"      {label}", stream=self._err)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


def wait_drained(stack: LocalDeployment, progress: Progress, timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Until the queue holds nothing (visible, in flight, delayed: waiting children too) and no sync runs."""
    started = time.monotonic()
    spinner = "|/-\\"
    turn = 0
    while True:
        try:
            stack.wait_until_drained(timeout=0.4)
        except TimeoutError:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                progress.clear()
                raise
            depth = stack.queue_depth()
            turn += 1
            progress.live(
                f"{spinner[turn % 4]} draining the queue: {depth['visible']} visible, {depth['in_flight']} in flight,"
                f" {depth['delayed']} delayed  {elapsed:4.1f}s"
            )
            continue
        progress.clear()
        return time.monotonic() - started


def wait_for_callouts(
    pending: Callable[[], int], progress: Progress, timeout: float = CALLOUTS_TIMEOUT_SECONDS
) -> float:
    """Until the Zuora stand-in has no callout left to attempt (each delivered or given up on); ``pending`` reads
    its count. Its retries are due ``retry_interval_seconds`` after a failed attempt, so this is that long at least
    when one failed."""
    started = time.monotonic()
    pause = threading.Event()
    while (left := pending()) > 0:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            progress.clear()
            raise TimeoutError(f"the Zuora stand-in still has {left} callout(s) to attempt after {timeout:.0f} s")
        progress.live(f"Zuora: {left} callout(s) still to attempt (retries wait their interval)  {elapsed:4.1f}s")
        pause.wait(POLL_SECONDS)
    progress.clear()
    return time.monotonic() - started


def wait_for_waiting(stack: LocalDeployment, key: tuple[str, str], progress: Progress) -> float | None:
    """Until ``key``'s trail shows a ``waiting`` outcome (its parent is not in Salesforce yet); None on timeout."""
    started = time.monotonic()
    operations = stack.operations()
    while time.monotonic() - started < WAITING_TIMEOUT_SECONDS:
        if any(item.get("status") == "waiting" for item in operations.trail(*key)):
            progress.clear()
            return time.monotonic() - started
        progress.live(f"waiting for the sync to try {key[0]} {key[1][:12]}...  {time.monotonic() - started:4.1f}s")
        time.sleep(POLL_SECONDS)
    progress.clear()
    return None
