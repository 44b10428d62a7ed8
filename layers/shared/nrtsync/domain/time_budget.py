"""How long a call to a dependency may take, derived from the time the invocation has left.

Lambda stops a function at its timeout, and API Gateway then answers with its own 5xx: the endpoint's documented
``503`` with ``Retry-After`` is only sent if every dependency call gives up in time. A client's worst case is
``attempts x (connect + read)`` plus the backoff between attempts, so the limits are chosen from the seconds a call
may spend, not the other way round. One rule for every client, here; the adapters turn it into a botocore
``Config`` (``nrtsync.adapters.aws.clients``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# botocore's "standard" retry mode waits at most base**(attempt - 1) seconds after a failed attempt, base 2
# (botocore/retries/standard.py, ExponentialBackoff: random() * 2 ** (attempt - 1), at most 20 s).
_BACKOFF_BASE = 2
_BACKOFF_MAX_SECONDS = 20.0
# Below this a try cannot finish a TLS handshake and a request; fewer attempts with more time each are better.
MIN_TRY_SECONDS = 0.5
# Nothing shorter: a call with less time than this is not worth starting (the caller answers 503 instead).
MIN_CALL_SECONDS = 0.1


def backoff_bound(attempts: int) -> float:
    """The longest total wait between ``attempts`` attempts in botocore's standard retry mode."""
    return sum(min(_BACKOFF_MAX_SECONDS, float(_BACKOFF_BASE ** (n - 1))) for n in range(1, attempts))


@dataclass(frozen=True)
class CallLimits:
    """Timeouts and attempts of one client. ``read_timeout`` bounds each wait for bytes on the socket, which for
    the small answers of SQS, DynamoDB and Secrets Manager is the whole answer."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int

    @property
    def worst_case_seconds(self) -> float:
        return self.max_attempts * (self.connect_timeout + self.read_timeout) + backoff_bound(self.max_attempts)


# Clients built outside a short request path (the sync, metrics, reconcile and backfill functions, the CLI): each
# call gives up within 24 s, under half the shortest of those functions' timeouts (metrics, 50 s), and their
# services check their own deadlines between calls.
STANDARD_CALL = CallLimits(connect_timeout=2.0, read_timeout=5.0, max_attempts=3)
# PutMetricData carries up to 1 MB: a longer read, one retry (25 s).
PUBLISH_CALL = CallLimits(connect_timeout=2.0, read_timeout=10.0, max_attempts=2)


def limits_within(
    seconds: float, *, max_attempts: int = 3, max_connect: float = 2.0, max_read: float = 5.0
) -> CallLimits:
    """The most attempts (up to ``max_attempts``) whose worst case fits in ``seconds``, each with at least
    ``MIN_TRY_SECONDS``; a third of a try to connect (at most ``max_connect``), the rest to read."""
    seconds = max(seconds, MIN_CALL_SECONDS)
    for attempts in range(max(max_attempts, 1), 0, -1):
        per_try = (seconds - backoff_bound(attempts)) / attempts
        if per_try >= MIN_TRY_SECONDS or attempts == 1:
            per_try = max(per_try, MIN_CALL_SECONDS)
            connect = min(max_connect, per_try / 3)
            return CallLimits(connect, min(max_read, per_try - connect), attempts)
    raise AssertionError("unreachable: one attempt always fits")  # pragma: no cover


def split_remaining(
    remaining_seconds: float, shares: Mapping[str, float], *, reserve_seconds: float
) -> dict[str, CallLimits]:
    """Limits per dependency for calls made one after the other in an invocation with ``remaining_seconds``
    left: ``reserve_seconds`` kept to answer (the response, the logs, the metrics), the rest shared out."""
    if sum(shares.values()) > 1:
        raise ValueError(f"the shares {dict(shares)} add up to more than the time there is")
    available = max(remaining_seconds - reserve_seconds, 0.0)
    return {name: limits_within(available * share) for name, share in shares.items()}
