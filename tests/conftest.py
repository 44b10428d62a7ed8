"""Test-wide environment: set before any handler module is imported, as Lambda sets it before the import."""

import os

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "nrtsync-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "NrtSyncTest")
os.environ.setdefault("POWERTOOLS_DEV", "0")
# Never let a developer's real AWS endpoint or profile leak into a test.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


import logging
import sys
from collections.abc import Iterator

import pytest

from nrtsync.observability import logger


class _CurrentStdout:
    """Writes to whatever sys.stdout is now: pytest's capture swaps it per test phase."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def _powertools_logs_follow_stdout() -> Iterator[None]:
    # Powertools' handler keeps the stdout it found at import, closed by the time a later test runs (that
    # prints "--- Logging error ---") and invisible to capsys. Plain assignment: setStream() would flush
    # the old, closed stream first.
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.stream for h in handlers]
    for handler in handlers:
        handler.stream = _CurrentStdout()
    yield
    for handler, stream in zip(handlers, previous, strict=True):
        handler.stream = stream
