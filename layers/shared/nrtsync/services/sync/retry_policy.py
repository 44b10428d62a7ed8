"""How long a change waits on the queue before it comes back: exponential backoff, and the wait for a busy record."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from nrtsync.ports.state import Claim

# SQS's ChangeMessageVisibility allows 12 h; past 5 min a change would only age without a better chance.
MAX_RETRY_DELAY_SECONDS = 300


@dataclass(frozen=True)
class RetryPolicy:
    """The delays, in whole seconds (what ChangeMessageVisibility takes)."""

    base_delay_seconds: int
    jitter: Callable[[], float] = random.random
    wall_clock: Callable[[], float] = time.time

    def backoff(self, receive_count: int) -> int:
        """The base delay doubled for each earlier receive, plus up to 20 % jitter, at most 5 min."""
        base = self.base_delay_seconds * 2 ** max(0, receive_count - 1)
        return int(min(MAX_RETRY_DELAY_SECONDS, base * (1 + 0.2 * self.jitter())))

    def busy_delay(self, receive_count: int, claim: Claim | None) -> int:
        """Back off like any other wait, so the retries outlast the other writer's lease even when its owner
        died after Salesforce answered (a constant delay spent all the change's receives within the lease
        and sent it to the dead-letter queue while the older change came back and was written). Waiting
        past the lease's expiry gains nothing, so the delay stops there."""
        delay = self.backoff(receive_count)
        if claim is not None and claim.lease_until_ms is not None:
            until_expiry = math.ceil((claim.lease_until_ms - self.wall_clock() * 1000) / 1000) + 1
            delay = max(1, min(delay, until_expiry))
        return delay
