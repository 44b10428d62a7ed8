"""When things happen in the drill: the outbox that holds deliveries until they are due (and defers those to
records a killed invocation still leases), and the fault schedule that repeats every cycle."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nrtsync_local.drill.generator import MAPPING_CODE, REFUSED_NAME, VALIDATION_CODE, Delivery, Scheduled

if TYPE_CHECKING:
    from nrtsync_local.drill.config import DrillConfig
    from nrtsync_local.standin.process import StandinClient

log = logging.getLogger("nrtsync_local.drill")


@dataclass
class Kill:
    kind: str  # "after-answer" or "after-return"
    at: float  # seconds since the drill started sending
    messages: int
    leases: dict[str, int] = field(default_factory=dict)  # record key -> lease_until (epoch ms), after-answer only


class Quarantine:
    """Record key -> monotonic time until which it gets no new change; written from the killed invocation's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def until(self, record_key: str) -> float:
        with self._lock:
            return self._until.get(record_key, 0.0)

    def extend(self, until_by_key: dict[str, float]) -> None:
        with self._lock:
            for key, until in until_by_key.items():
                self._until[key] = max(self._until.get(key, 0.0), until)


class Outbox:
    """Deliveries by the time they are due; ties go out in the order they were scheduled."""

    def __init__(self, quarantine: Quarantine) -> None:
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._quarantine = quarantine

    def __bool__(self) -> bool:
        return bool(self._heap)

    def schedule(self, *scheduled: Scheduled) -> None:
        for due, delivery in scheduled:
            heapq.heappush(self._heap, (due, next(self._seq), delivery))

    def release_due(self, now: float, deliver: Callable[[Delivery], None]) -> None:
        deferred: list[Scheduled] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, delivery = heapq.heappop(self._heap)
            until = self._quarantine.until(delivery.change.record_key)
            if until > now:
                deferred.append((until, delivery))  # its record is leased by a killed invocation: later
                continue
            deliver(delivery)
        self.schedule(*deferred)


class FaultSchedule:
    """The faults of one cycle, fired as the drill's clock passes them, cycle after cycle while changes are sent."""

    def __init__(
        self,
        config: DrillConfig,
        standin: StandinClient,
        *,
        arm: Callable[[str], None],
        send_invalid: Callable[[float, str], None],
        lockable_records: list[tuple[str, str]],
        kills: list[Kill],
    ) -> None:
        self._config = config
        self._standin = standin
        self._arm = arm
        self._send_invalid = send_invalid
        self._lockable = lockable_records
        self._kills = kills
        self._fired: set[tuple[int, str]] = set()
        self._api_limit = 0

    def start(self) -> None:
        """The org as the drill starts: a little latency, the validation rule the invalid changes break."""
        self._standin.set_faults(
            latency_ms=20,
            validation_rules=[{"field": "Name", "equals": REFUSED_NAME, "message": "Name refused by the drill"}],
        )
        self._api_limit = int(self._standin.set_faults()["api_limit"])

    def _faults(self) -> list[tuple[float, str, Callable[[float], object]]]:
        sf = self._standin
        return [
            (
                1.0,
                "kill after Salesforce answered, before commit and delete",
                lambda _: self._arm("after-answer"),
            ),
            (3.0, "kill after the handler returned, before the delete", lambda _: self._arm("after-return")),
            (5.0, "latency spike 300 ms", lambda _: sf.set_faults(latency_ms=300)),
            (8.0, "three 503s (retried within the call)", lambda _: sf.set_faults(fail_next=[{"status": 503}] * 3)),
            (10.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (12.0, "latency back to 20 ms", lambda _: sf.set_faults(latency_ms=20)),
            (14.0, "row locks on 8% of rows", lambda _: sf.set_faults(row_lock={"rate": 0.08, "count": 40, "seed": 7})),
            (16.0, "invalid: unconvertible value", lambda now: self._send_invalid(now, MAPPING_CODE)),
            (20.0, "session expired", lambda _: sf.set_faults(expire_sessions=True)),
            (22.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (
                24.0,
                "six 503s (the call gives up; records wait)",
                lambda _: sf.set_faults(fail_next=[{"status": 503}] * 6),
            ),
            (28.0, "latency spike 1500 ms", lambda _: sf.set_faults(latency_ms=1_500)),
            (31.0, "latency back to 20 ms", lambda _: sf.set_faults(latency_ms=20)),
            (34.0, "row lock on three records", lambda _: self._lock_rows()),
            (38.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (40.0, "invalid: unconvertible value", lambda now: self._send_invalid(now, MAPPING_CODE)),
            (42.0, "session expired and the token endpoint 503s once", lambda _: self._expire_with_token_fault()),
        ]

    def fire_due(self, elapsed: float) -> None:
        cycle = int(elapsed // self._config.cycle_seconds)
        offset = elapsed - cycle * self._config.cycle_seconds
        now = time.monotonic()
        for at, label, action in self._faults():
            if offset >= at and (cycle, f"{at}:{label}") not in self._fired:
                self._fired.add((cycle, f"{at}:{label}"))
                log.info("drill %.1f s: %s", elapsed, label)
                action(now)
        # The API allocation runs out for a while, then frees up. It falls between two retries of the killed
        # batch (which waits on its leases with doubling delays), so that batch is not retried faster than that.
        kill = next(
            (k for k in self._kills if k.kind == "after-answer" and k.at >= cycle * self._config.cycle_seconds), None
        )
        start = (kill.at + 32.0 - cycle * self._config.cycle_seconds) if kill else 32.0
        if offset >= start and (cycle, "api-out") not in self._fired:
            self._fired.add((cycle, "api-out"))
            log.info("drill %.1f s: API allocation used up", elapsed)
            self._standin.set_faults(api_used=self._api_limit)
        if offset >= start + 4.0 and (cycle, "api-back") not in self._fired and (cycle, "api-out") in self._fired:
            self._fired.add((cycle, "api-back"))
            self._api_limit += 100_000
            log.info("drill %.1f s: API allocation raised to %d", elapsed, self._api_limit)
            self._standin.set_faults(api_limit=self._api_limit)

    def _lock_rows(self) -> None:
        ids = [record_id for object_type, record_id in self._lockable[:3] if object_type == "Account"]
        self._standin.set_faults(row_lock={"external_ids": ids, "count": 6})

    def _expire_with_token_fault(self) -> None:
        self._standin.set_faults(expire_sessions=True, fail_next=[{"endpoint": "token", "status": 503}])

    def restore_org(self) -> None:
        """After the last send: whatever is still scheduled would only slow the drain down."""
        self._standin.set_faults(latency_ms=20, row_lock=None, fail_next=[])
        labels = {label for _, label in self._fired}
        if "api-out" in labels and "api-back" not in labels:
            self._api_limit += 100_000
            self._standin.set_faults(api_limit=self._api_limit)
