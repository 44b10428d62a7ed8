"""What happened to each change, and how a Salesforce error is classified."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Outcome(StrEnum):
    WRITTEN = "written"
    """Salesforce accepted the newest version."""
    SUPERSEDED = "superseded"
    """A newer change to the same record was in the same batch and was written instead."""
    DUPLICATE = "duplicate"
    """This exact change was already written (Zuora re-delivered it)."""
    STALE = "stale"
    """A newer version of the record is already in Salesforce (or being written): never overwrite it."""
    HELD = "held"
    """Not sent: its billing account has no CRM link yet; written once the link arrives (not a failure)."""
    WAITING = "waiting"
    """Retryable: the message goes back to the queue and comes again in seconds."""
    FAILED = "failed"
    """Permanent: parked in the failure list with Salesforce's error, acknowledged."""


class ErrorKind(StrEnum):
    PARENT_MISSING = "parent_missing"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


RETRYABLE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
    }
)
# Not retryable although it sounds like a lock: ENTITY_IS_LOCKED is a record locked by an approval process, held
# until a person approves or rejects it (hours or days), so retrying in seconds only spends the queue's receives
# and ends in the dead-letter queue. It is parked (permanent) like any other error someone must resolve first.

# Salesforce reports a parent that is not there (yet) as INVALID_FIELD with this wording.
_PARENT_MISSING_MARKERS = ("foreign key external id", "not found")


def classify(status_codes_and_messages: Sequence[tuple[str, str]]) -> ErrorKind:
    """Classify one record's errors: any permanent error makes the record permanent."""
    kinds = set()
    for code, message in status_codes_and_messages:
        lowered = message.lower()
        if code == "INVALID_FIELD" and all(marker in lowered for marker in _PARENT_MISSING_MARKERS):
            kinds.add(ErrorKind.PARENT_MISSING)
        elif code in RETRYABLE_CODES:
            kinds.add(ErrorKind.RETRYABLE)
        else:
            kinds.add(ErrorKind.PERMANENT)
    if not kinds or ErrorKind.PERMANENT in kinds:
        return ErrorKind.PERMANENT
    if ErrorKind.PARENT_MISSING in kinds:
        return ErrorKind.PARENT_MISSING
    return ErrorKind.RETRYABLE
