"""What every benchmark shares: the environment the handlers expect, quiet output, progress, statistics."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER = REPO_ROOT / "layers" / "shared"
REGION = "eu-west-1"

# Set before nrtsync.observability is first imported (Powertools reads them then). Dummy values only.
HANDLER_ENV = {
    "POWERTOOLS_METRICS_NAMESPACE": "NrtSync/bench",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "CALLOUT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-callouts",
    "CALLOUT_SECRET_ID": "bench-callout-secret",
    "SYNC_STATE_TABLE": "bench-state",
    "SYNC_HISTORY_TABLE": "bench-history",
    "SALESFORCE_SECRET_ID": "bench-salesforce-secret",
}

_STARTED = time.monotonic()


def prepare_environment() -> None:
    """The variables the handler modules need, unless already set; no real AWS profile is used."""
    os.environ.pop("AWS_PROFILE", None)
    for name, value in HANDLER_ENV.items():
        os.environ.setdefault(name, value)


def progress(message: str) -> None:
    """One progress line on stderr, with the time since the run started."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet_handlers() -> Iterator[None]:
    """Handler logs and EMF lines still get formatted and written (that is real work), but to /dev/null."""
    from nrtsync.observability import logger  # noqa: PLC0415 - after prepare_environment()

    handler: Any = logger.registered_handler
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        previous = handler.setStream(sink)
        try:
            yield
        finally:
            handler.setStream(previous)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and the runs themselves."""
    return {
        "median": round(median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }
